"""POST /v1/events and POST /v2/events over HTTP: every rule of decisions.md "Events endpoints".

Each refusal is checked three ways: the HTTP status, ``data.code``, and (where a rule applies)
the rule id and JSON pointer in ``data.details.violations``. Requests that break two stages at
once pin the order of the checks: the earlier stage must answer.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests

from contract_tests.mock import MockServer
from tests.conftest import (
    ACCOUNT,
    APP_ID,
    APP_SECRET,
    Client,
    error_of,
    make_body,
    make_event,
    now_iso,
    set_clock,
    start_mock,
)

API_VERSIONS = ("v1", "v2")
FROZEN_AT = "2026-11-20T12:00:00Z"
FROZEN = datetime(2026, 11, 20, 12, 0, 0, tzinfo=timezone.utc)
RETENTION = 3 * 3600
OTHER_APP, OTHER_SECRET = "other-app", "other-secret"


# -- helpers --------------------------------------------------------------------------------


def send(client: Client, api: str, body: Any = None, **kwargs: Any) -> requests.Response:
    """POST to /v1/events or /v2/events; ``key`` is only meaningful (and only passed) for v1."""
    if api == "v1":
        return client.v1(body, **kwargs)
    kwargs.pop("key", None)
    return client.v2(body, **kwargs)


def violations(response: requests.Response) -> list[tuple[str, str]]:
    details = response.json()["data"].get("details", {})
    return [(v["rule"], v["pointer"]) for v in details.get("violations", [])]


def warnings_of(response: requests.Response) -> list[tuple[str, str]]:
    return [(w["rule"], w["pointer"]) for w in response.json()["data"]["details"]["warnings"]]


def assert_refused(
    response: requests.Response,
    status: int,
    code: str,
    rule: str | None = None,
    pointer: str | None = None,
) -> None:
    assert error_of(response) == (status, code), response.text
    if rule is not None:
        assert (rule, pointer) in violations(response), response.text


def assert_accepted(response: requests.Response, accepted: int = 1) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["unprocessedRecords"] == [], response.text
    assert data["details"]["accepted"] == accepted, response.text
    return dict(data)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def raw_body(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def bearer(mock: MockServer, app: str = APP_ID, secret: str = APP_SECRET) -> str:
    response = Client(mock).token_response(user=app, password=secret)
    assert response.status_code == 200, response.text
    return f"Bearer {response.json()['access_token']}"


def journal_row(mock: MockServer, response: requests.Response, **params: Any) -> dict[str, Any]:
    """The journal entry of ``response``, found through its X-Rokt-Mock-Request-Id."""
    request_id = int(response.headers["X-Rokt-Mock-Request-Id"])
    rows = [r for r in mock.requests(limit=1000, **params) if r["id"] == request_id]
    assert len(rows) == 1, (request_id, params)
    return rows[0]


class RootTokenClient(Client):
    """A namespaced client that takes its v1 token from the root token endpoint, so that the
    namespace tests of the events endpoints do not depend on the namespaced token endpoint
    (which has its own test)."""

    def token(self) -> str:
        if self._token is None:
            self._token = Client(self.mock).token()
        return self._token


@pytest.fixture(params=API_VERSIONS)
def api(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _own_mock(*args: str) -> Iterator[MockServer]:
    server = start_mock(*args)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def small_mock() -> Iterator[MockServer]:
    yield from _own_mock("--max-body-bytes", "2000")


@pytest.fixture(scope="module")
def strict_mock() -> Iterator[MockServer]:
    yield from _own_mock("--strict")


@pytest.fixture(scope="module")
def reject_mock() -> Iterator[MockServer]:
    yield from _own_mock("--invalid-events", "reject")


@pytest.fixture(scope="module")
def exact_mock() -> Iterator[MockServer]:
    yield from _own_mock("--exact-bodies")


@pytest.fixture(scope="module")
def short_retention_mock() -> Iterator[MockServer]:
    yield from _own_mock("--idempotency-retention", "60")


@pytest.fixture(scope="module")
def two_apps_mock() -> Iterator[MockServer]:
    yield from _own_mock("--app", f"{APP_ID}:{APP_SECRET}", "--app", f"{OTHER_APP}:{OTHER_SECRET}")


# -- 1 beats 2: auth first ------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization", [None, "Bearer nope", "Basic cnB1Yi14OnJzZWMteA=="], ids=str
)
def test_unauthorized_beats_bad_content_type_and_bad_body(
    client: Client, api: str, authorization: str | None
) -> None:
    response = send(
        client,
        api,
        raw=b"{not json",
        key=None,
        headers={
            "Authorization": authorization,
            "Content-Type": "text/plain",
            "Rokt-Version": "1999-01-01",
        },
    )
    assert_refused(response, 401, "UnauthorizedError")
    assert "WWW-Authenticate" in response.headers


# -- 2: headers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "json", None]
)
def test_bad_content_type_beats_bad_json(
    client: Client, api: str, content_type: str | None
) -> None:
    response = send(client, api, raw=b"{not json", headers={"Content-Type": content_type})
    assert_refused(response, 400, "RequestBodyReadError", "header.content_type", "/Content-Type")


def test_bad_content_type_beats_unknown_rokt_version(client: Client, api: str) -> None:
    response = send(
        client, api, headers={"Content-Type": "text/plain", "Rokt-Version": "2099-01-01"}
    )
    assert_refused(response, 400, "RequestBodyReadError", "header.content_type", "/Content-Type")


@pytest.mark.parametrize("version", ["2021-01-01", "latest", "2020-05-21x", "v1"])
def test_unknown_rokt_version_beats_bad_body(client: Client, api: str, version: str) -> None:
    response = send(client, api, raw=b"{not json", headers={"Rokt-Version": version})
    assert_refused(response, 400, "RequestValidationError", "header.rokt_version", "/Rokt-Version")


def test_unknown_rokt_version_beats_missing_idempotency_key(client: Client) -> None:
    response = client.v1(key=None, headers={"Rokt-Version": "2021-01-01"})
    assert_refused(response, 400, "RequestValidationError", "header.rokt_version", "/Rokt-Version")


@pytest.mark.parametrize(
    "key",
    [None, "", "not-a-uuid", "12345678-1234-1234-1234-1234567890", "g" * 36],
    ids=["missing", "empty", "word", "short", "non-hex"],
)
def test_v1_bad_idempotency_key_beats_bad_body(client: Client, key: str | None) -> None:
    response = client.v1(raw=b"{not json", key=key)
    assert_refused(
        response, 400, "RequestValidationError", "header.idempotency_key", "/Idempotency-Key"
    )


@pytest.mark.parametrize(
    "headers",
    [
        {"Rokt-Version": None},
        {"Rokt-Version": ""},
        {"Content-Type": "application/json; charset=utf-8"},
        {"Content-Type": "Application/JSON"},
    ],
    ids=["rokt-version-absent", "rokt-version-empty", "content-type-charset", "content-type-case"],
)
def test_accepted_header_variants(client: Client, api: str, headers: dict[str, str]) -> None:
    response = send(client, api, headers=headers)
    assert_accepted(response)
    assert warnings_of(response) == []


def test_missing_charset_is_accepted_with_a_contract_warning(client: Client, api: str) -> None:
    response = send(client, api, headers={"Charset": None})
    assert_accepted(response)
    assert ("header.charset", "/Charset") in warnings_of(response)
    row = journal_row(client.mock, response)
    assert row["status"] == 200
    assert [w["rule"] for w in row["warnings"]] == ["header.charset"]
    assert client.mock.requests()[0]["warnings"] == row["warnings"]


def test_missing_charset_is_refused_in_strict_mode(strict_mock: MockServer, api: str) -> None:
    client = Client(strict_mock)
    response = send(client, api, headers={"Charset": None})
    assert_refused(response, 400, "RequestValidationError", "header.charset", "/Charset")
    assert_accepted(send(client, api))


# -- 3: body size, read and unmarshal -------------------------------------------------------


def test_too_large_body_beats_bad_json(small_mock: MockServer, api: str) -> None:
    response = send(Client(small_mock), api, raw=b"{" * 3000)
    assert_refused(response, 413, "RequestEntityTooLarge", "body.too_large", "")


def test_too_large_body_loses_to_unauthorized(small_mock: MockServer, api: str) -> None:
    response = send(Client(small_mock), api, raw=b"{" * 3000, headers={"Authorization": None})
    assert_refused(response, 401, "UnauthorizedError")


def test_too_large_body_loses_to_bad_headers(small_mock: MockServer, api: str) -> None:
    response = send(
        Client(small_mock), api, raw=b"{" * 3000, headers={"Content-Type": "text/plain"}
    )
    assert_refused(response, 400, "RequestBodyReadError", "header.content_type", "/Content-Type")
    response = Client(small_mock).v1(raw=b"{" * 3000, key="nope")
    assert_refused(
        response, 400, "RequestValidationError", "header.idempotency_key", "/Idempotency-Key"
    )


def test_body_exactly_at_the_size_limit_is_read(small_mock: MockServer, api: str) -> None:
    response = send(Client(small_mock), api, raw=b"[" * 2000)
    assert_refused(response, 400, "RequestJsonUnmarshalError")
    body = make_body()
    body["events"][0]["metaData"] = [{"name": "pad", "value": ""}]
    size = len(raw_body(body))
    body["events"][0]["metaData"][0]["value"] = "p" * (2000 - size)
    assert len(raw_body(body)) == 2000
    assert_accepted(send(Client(small_mock), api, body))


UNMARSHAL_CASES = [
    pytest.param(b"{accountId: 1}", "json.syntax", "", id="not-json"),
    pytest.param(
        raw_body(
            {
                "accountId": "999",
                "events": [
                    {
                        "clientEventId": "a",
                        "eventType": "conversion",
                        "objectData": [{"name": "amount", "value": 300.5}],
                    }
                ],
            }
        ),
        "value.type",
        "/events/0/objectData/0/value",
        id="value-number",
    ),
    pytest.param(
        raw_body({"events": {"0": make_event()}}), "events.type", "/events", id="events-object"
    ),
    pytest.param(
        raw_body({"accountId": 1234567890, "events": []}),
        "accountId.type",
        "/accountId",
        id="accountId-number",
    ),
    pytest.param(
        raw_body({"accountId": ACCOUNT, "events": [make_event(eventTime=1700000000)]}),
        "eventTime.type",
        "/events/0/eventTime",
        id="eventTime-number",
    ),
    pytest.param(raw_body([make_body()]), "body.type", "", id="body-array"),
]


@pytest.mark.parametrize(("raw", "rule", "pointer"), UNMARSHAL_CASES)
def test_unmarshal_error_beats_request_validation_and_forbidden(
    client: Client, api: str, raw: bytes, rule: str, pointer: str
) -> None:
    response = send(client, api, raw=raw)
    assert_refused(response, 400, "RequestJsonUnmarshalError", rule, pointer)


# -- 4: request-level validation beats 403 --------------------------------------------------

VALIDATION_CASES = [
    pytest.param(
        {"events": [make_event(eventType="t" * 129)]},
        "accountId.required",
        "/accountId",
        id="accountId-missing",
    ),
    pytest.param(
        {"accountId": "", "events": [make_event()]},
        "accountId.required",
        "/accountId",
        id="accountId-empty",
    ),
    pytest.param(
        {"accountId": "9" * 65, "events": [make_event()]},
        "accountId.max_length",
        "/accountId",
        id="accountId-65",
    ),
    pytest.param({"accountId": "999"}, "events.required", "/events", id="events-missing"),
    pytest.param(
        {"accountId": "999", "events": []}, "events.min_items", "/events", id="events-empty"
    ),
    pytest.param(
        {"accountId": "999", "events": [make_event() for _ in range(101)]},
        "events.max_items",
        "/events",
        id="events-101",
    ),
    pytest.param(
        {"accountId": "999", "events": [make_event(eventTime=None)]},
        "eventTime.required",
        "/events/0/eventTime",
        id="eventTime-missing",
    ),
    pytest.param(
        {"accountId": "999", "events": [make_event(clientEventId="")]},
        "clientEventId.required",
        "/events/0/clientEventId",
        id="clientEventId-empty",
    ),
    pytest.param(
        {"accountId": "999", "events": [make_event(objectData=[{"name": "x"}])]},
        "value.required",
        "/events/0/objectData/0/value",
        id="attribute-value-missing",
    ),
]


@pytest.mark.parametrize(("body", "rule", "pointer"), VALIDATION_CASES)
def test_request_validation_beats_forbidden(
    client: Client, api: str, body: dict[str, Any], rule: str, pointer: str
) -> None:
    response = send(client, api, body)
    assert_refused(response, 400, "RequestValidationError", rule, pointer)


def test_accountid_of_64_chars_passes_validation(client: Client, api: str) -> None:
    response = send(client, api, {"accountId": "9" * 64, "events": [make_event()]})
    assert_refused(response, 403, "Forbidden", "accountId.forbidden", "/accountId")


def test_100_events_are_accepted(client: Client, api: str) -> None:
    assert_accepted(send(client, api, make_body(100)), accepted=100)


# -- 5 and 6: 403, then 409 -----------------------------------------------------------------


def test_forbidden_account(client: Client, api: str) -> None:
    response = send(client, api, {"accountId": "999", "events": [make_event()]})
    assert_refused(response, 403, "Forbidden", "accountId.forbidden", "/accountId")
    row = journal_row(client.mock, response)
    assert (row["status"], row["code"], row["accountId"]) == (403, "Forbidden", "999")


def test_forbidden_beats_idempotency_key_reused(client: Client) -> None:
    key = str(uuid.uuid4())
    assert_accepted(client.v1(key=key))
    response = client.v1({"accountId": "999", "events": [make_event()]}, key=key)
    assert_refused(response, 403, "Forbidden", "accountId.forbidden", "/accountId")
    assert_refused(client.v1(key=key), 409, "IdempotencyKeyReused")


def test_idempotency_key_reused_beats_per_event_rules(client: Client) -> None:
    key = str(uuid.uuid4())
    assert_accepted(client.v1(key=key))
    response = client.v1(make_body(eventType="t" * 129), key=key)
    assert_refused(response, 409, "IdempotencyKeyReused")


# -- 7: per-event rules ---------------------------------------------------------------------


def _in_offset(seconds_ago: float, hours: int) -> str:
    tz = timezone(timedelta(hours=hours))
    return (datetime.now(tz) - timedelta(seconds=seconds_ago)).isoformat(timespec="seconds")


PER_EVENT_CASES: list[Any] = [
    pytest.param(
        lambda: {"clientEventId": "c" * 37},
        "clientEventId.max_length",
        "/events/1/clientEventId",
        id="clientEventId-37",
    ),
    pytest.param(
        lambda: {"eventType": "t" * 129}, "eventType.max_length", "/events/1/eventType", id="type"
    ),
    pytest.param(
        lambda: {"eventTime": now_iso(-60).replace("T", " ")},
        "eventTime.format",
        "/events/1/eventTime",
        id="eventTime-space",
    ),
    pytest.param(
        lambda: {"eventTime": "yesterday"},
        "eventTime.format",
        "/events/1/eventTime",
        id="eventTime-word",
    ),
    pytest.param(
        lambda: {"eventTime": now_iso(-60)[:-1]},
        "eventTime.format",
        "/events/1/eventTime",
        id="eventTime-no-zone",
    ),
    pytest.param(
        lambda: {"eventTime": _in_offset(60, 10)},
        "eventTime.utc",
        "/events/1/eventTime",
        id="eventTime-+10:00",
    ),
    pytest.param(
        lambda: {"eventTime": now_iso(-549 * 86400)},
        "eventTime.too_old",
        "/events/1/eventTime",
        id="eventTime-549-days-old",
    ),
    pytest.param(
        lambda: {"eventTime": now_iso(600)},
        "eventTime.in_future",
        "/events/1/eventTime",
        id="eventTime-10-min-ahead",
    ),
    pytest.param(
        lambda: {"objectData": [{"name": "n" * 257, "value": "v"}]},
        "name.max_length",
        "/events/1/objectData/0/name",
        id="name-257",
    ),
    pytest.param(
        lambda: {
            "objectData": [{"name": "email", "value": "a@b.c"}, {"name": "rokt.x", "value": ""}]
        },
        "name.reserved_prefix",
        "/events/1/objectData/1/name",
        id="name-rokt.x",
    ),
    pytest.param(
        lambda: {"objectData": [{"name": "ROKT.X", "value": "v"}]},
        "name.reserved_prefix",
        "/events/1/objectData/0/name",
        id="name-ROKT.X",
    ),
    pytest.param(
        lambda: {"metaData": [{"name": "RoKt.campaign", "value": "v"}]},
        "name.reserved_prefix",
        "/events/1/metaData/0/name",
        id="metaData-name-RoKt.",
    ),
    pytest.param(
        lambda: {"objectData": [{"name": "email", "value": "v" * 65537}]},
        "value.max_length",
        "/events/1/objectData/0/value",
        id="value-65537",
    ),
    pytest.param(
        lambda: {"metaData": [{"name": "blob", "value": "v" * 65537}]},
        "value.max_length",
        "/events/1/metaData/0/value",
        id="metaData-value-65537",
    ),
]


@pytest.mark.parametrize(("overrides", "rule", "pointer"), PER_EVENT_CASES)
def test_per_event_rule_sends_the_event_to_unprocessed_records(
    client: Client,
    api: str,
    overrides: Callable[[], dict[str, Any]],
    rule: str,
    pointer: str,
) -> None:
    good, bad, also_good = make_event(), make_event(**overrides()), make_event()
    response = send(client, api, {"accountId": ACCOUNT, "events": [good, bad, also_good]})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert len(data["unprocessedRecords"]) == 1, response.text
    record = data["unprocessedRecords"][0]
    assert record["error"]["code"] == "ValidationError"
    assert isinstance(record["error"]["message"], str)
    assert record["record"] == bad
    assert (rule, pointer) in [(d["rule"], d["pointer"]) for d in record["error"]["details"]]
    details = data["details"]
    assert (details["accepted"], details["rejected"], details["duplicates"]) == (2, 1, 0)
    row = journal_row(client.mock, response)
    assert [e["outcome"] for e in row["events"]] == ["accepted", "rejected", "accepted"]
    assert row["events"][1]["rule"] == rule
    delivered = client.mock.admin("GET", "events").json()
    assert {e["clientEventId"] for e in delivered["events"]} == {
        good["clientEventId"],
        also_good["clientEventId"],
    }


def test_record_is_echoed_exactly_as_sent(client: Client) -> None:
    bad = make_event(eventType="t" * 129)
    bad["metaData"] = [{"name": "note", "value": 'ünïcødé 😀 \u2028 \\ " /'}]
    bad["extraField"] = {"nested": [1, 2.5, None, True, "x"]}
    response = client.v2({"accountId": ACCOUNT, "events": [bad]})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["unprocessedRecords"][0]["record"] == bad


ACCEPTED_CASES: list[Any] = [
    pytest.param(lambda: {"clientEventId": "c" * 36}, id="clientEventId-36"),
    pytest.param(lambda: {"clientEventId": "😀" * 36}, id="clientEventId-36-emoji"),
    pytest.param(lambda: {"eventType": "t" * 128}, id="eventType-128"),
    pytest.param(lambda: {"eventType": "😀" * 128}, id="eventType-128-emoji"),
    pytest.param(lambda: {"eventTime": now_iso(-60)[:-1] + "+00:00"}, id="eventTime-+00:00"),
    pytest.param(lambda: {"eventTime": now_iso(-60)[:-1] + "123456Z"}, id="eventTime-9-digits"),
    pytest.param(lambda: {"eventTime": now_iso(-60)[:19] + "Z"}, id="eventTime-no-fraction"),
    pytest.param(
        lambda: {
            "objectData": [{"name": "email", "value": "a@b.c"}, {"name": "n" * 256, "value": ""}]
        },
        id="name-256",
    ),
    pytest.param(
        lambda: {
            "objectData": [{"name": "email", "value": "a@b.c"}, {"name": "😀" * 256, "value": ""}]
        },
        id="name-256-emoji",
    ),
    pytest.param(
        lambda: {"metaData": [{"name": "rokt", "value": ""}, {"name": "roktx.y", "value": ""}]},
        id="names-resembling-rokt.",
    ),
    pytest.param(
        lambda: {"objectData": [{"name": "email", "value": "v" * 65536}]}, id="value-65536"
    ),
    pytest.param(
        lambda: {"objectData": [{"name": "email", "value": "😀" * 65536}]}, id="value-65536-emoji"
    ),
]


@pytest.mark.parametrize("overrides", ACCEPTED_CASES)
def test_values_at_the_limit_are_accepted(
    client: Client, api: str, overrides: Callable[[], dict[str, Any]]
) -> None:
    assert_accepted(
        send(client, api, {"accountId": ACCOUNT, "events": [make_event(**overrides())]})
    )


def test_event_time_window_edges_on_a_frozen_clock(mock: MockServer, api: str) -> None:
    set_clock(mock, now=FROZEN_AT, frozen=True)
    client = Client(mock)
    times = [
        iso(FROZEN + timedelta(seconds=300)),
        iso(FROZEN + timedelta(seconds=301)),
        iso(FROZEN + timedelta(seconds=300)).replace("Z", ".001Z"),
        iso(FROZEN - timedelta(days=548)),
        iso(FROZEN - timedelta(days=548, seconds=1)),
        iso(FROZEN - timedelta(days=548)).replace(":00Z", ":00+00:00"),
    ]
    events = [make_event(eventTime=t) for t in times]
    response = send(client, api, {"accountId": ACCOUNT, "events": events})
    assert response.status_code == 200, response.text
    unprocessed = response.json()["data"]["unprocessedRecords"]
    assert [r["record"]["eventTime"] for r in unprocessed] == [times[1], times[2], times[4]]
    rules = [[d["rule"] for d in r["error"]["details"]] for r in unprocessed]
    assert rules == [["eventTime.in_future"], ["eventTime.in_future"], ["eventTime.too_old"]]
    assert response.json()["data"]["details"]["accepted"] == 3


def test_reject_mode_refuses_the_whole_request(reject_mock: MockServer, api: str) -> None:
    reject_mock.reset()
    client = Client(reject_mock)
    events = [make_event(), make_event(eventType="t" * 129), make_event(eventTime="nope")]
    key = str(uuid.uuid4())
    response = send(client, api, {"accountId": ACCOUNT, "events": events}, key=key)
    assert_refused(
        response, 400, "RequestValidationError", "eventType.max_length", "/events/1/eventType"
    )
    assert ("eventTime.format", "/events/2/eventTime") in violations(response)
    indexes = [v.get("eventIndex") for v in response.json()["data"]["details"]["violations"]]
    assert indexes == [1, 2]
    assert reject_mock.admin("GET", "events").json()["total"] == 0
    row = journal_row(reject_mock, response)
    assert [e["outcome"] for e in row["events"]] == ["refused", "rejected", "rejected"]
    # nothing was committed, so the key is still free
    assert_accepted(send(client, api, make_body(), key=key))


# -- exact bodies ---------------------------------------------------------------------------

EXACT_ERRORS: list[Any] = [
    pytest.param(
        lambda c: c.v1(raw=b"{not json"),
        400,
        "RequestJsonUnmarshalError",
        "unable to unmarshal request body",
        id="unmarshal",
    ),
    pytest.param(
        lambda c: c.v1(headers={"Content-Type": "text/plain"}),
        400,
        "RequestBodyReadError",
        "unable to read request body",
        id="content-type",
    ),
    pytest.param(
        lambda c: c.v2({"accountId": ACCOUNT, "events": []}),
        400,
        "RequestValidationError",
        "request validation failed",
        id="validation",
    ),
    pytest.param(
        lambda c: c.v2(headers={"Authorization": None}),
        401,
        "UnauthorizedError",
        "Unauthorized",
        id="unauthorized",
    ),
    pytest.param(
        lambda c: c.v2({"accountId": "999", "events": [make_event()]}),
        403,
        "Forbidden",
        "Forbidden",
        id="forbidden",
    ),
]


@pytest.mark.parametrize(("call", "status", "code", "message"), EXACT_ERRORS)
def test_exact_bodies_errors(
    exact_mock: MockServer,
    call: Callable[[Client], requests.Response],
    status: int,
    code: str,
    message: str,
) -> None:
    response = call(Client(exact_mock))
    assert response.status_code == status
    assert response.json() == {"data": {"code": code, "message": message}}


def test_exact_bodies_409_and_404(exact_mock: MockServer) -> None:
    client = Client(exact_mock)
    key = str(uuid.uuid4())
    assert client.v1(key=key).json() == {"data": {"unprocessedRecords": []}}
    response = client.v1(key=key)
    assert response.status_code == 409
    assert set(response.json()["data"]) == {"code", "message"}
    assert response.json()["data"]["code"] == "IdempotencyKeyReused"
    response = exact_mock.session.get(f"{exact_mock.url}/v9/events", timeout=30)
    assert response.status_code == 404
    assert set(response.json()) == {"data"}
    assert set(response.json()["data"]) == {"code", "message"}


def test_exact_bodies_success(exact_mock: MockServer, api: str) -> None:
    client = Client(exact_mock)
    assert send(client, api).json() == {"data": {"unprocessedRecords": []}}
    bad = make_event(eventType="t" * 129)
    response = send(client, api, {"accountId": ACCOUNT, "events": [make_event(), bad]})
    assert response.status_code == 200
    assert response.json() == {
        "data": {
            "unprocessedRecords": [
                {"error": {"code": "ValidationError", "message": "Invalid content"}, "record": bad}
            ]
        }
    }


# -- 8: success shape -----------------------------------------------------------------------


def test_success_body_shape_and_request_id(client: Client, api: str) -> None:
    response = send(client, api, make_body(2))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    payload = response.json()
    assert set(payload) == {"data"}
    assert set(payload["data"]) == {"unprocessedRecords", "details"}
    assert payload["data"]["unprocessedRecords"] == []
    details = payload["data"]["details"]
    assert {"requestId", "accepted", "duplicates", "rejected", "warnings"} <= set(details)
    assert (details["accepted"], details["duplicates"], details["rejected"]) == (2, 0, 0)
    assert response.headers["X-Rokt-Mock-Request-Id"] == str(details["requestId"])
    row = client.mock.requests()[0]
    assert row["id"] == details["requestId"]
    assert (row["status"], row["apiVersion"], row["eventCount"]) == (200, api, 2)
    assert row["response"] == {"data": {"unprocessedRecords": []}}


def test_error_request_id_matches_the_journal(client: Client, api: str) -> None:
    response = send(client, api, raw=b"nope")
    assert_refused(response, 400, "RequestJsonUnmarshalError", "json.syntax", "")
    request_id = response.json()["data"]["details"]["requestId"]
    assert response.headers["X-Rokt-Mock-Request-Id"] == str(request_id)
    row = client.mock.requests()[0]
    assert (row["id"], row["status"], row["code"]) == (
        request_id,
        400,
        "RequestJsonUnmarshalError",
    )


# -- v1 idempotency -------------------------------------------------------------------------


def test_reused_key_gets_409_with_the_original_request(client: Client) -> None:
    key = str(uuid.uuid4())
    body = make_body()
    first = client.v1(body, key=key)
    original = assert_accepted(first)["details"]["requestId"]

    same = client.v1(body, key=key)
    assert_refused(same, 409, "IdempotencyKeyReused")
    details = same.json()["data"]["details"]
    assert (details["originalRequestId"], details["bodyDiffers"]) == (original, False)
    row = journal_row(client.mock, same)
    assert row["note"]["idempotency"] == {"originalRequestId": original, "bodyDiffers": False}
    assert [e["outcome"] for e in row["events"]] == ["refused"]

    different = client.v1(make_body(), key=key)
    assert_refused(different, 409, "IdempotencyKeyReused")
    details = different.json()["data"]["details"]
    assert (details["originalRequestId"], details["bodyDiffers"]) == (original, True)
    row = journal_row(client.mock, different)
    assert row["note"]["idempotency"] == {"originalRequestId": original, "bodyDiffers": True}
    # the refused retries delivered nothing
    delivered = client.mock.admin("GET", "events").json()["events"]
    assert [e["deliveries"] for e in delivered] == [1]


REFUSALS: list[Any] = [
    pytest.param({"raw": b"{not json"}, 400, id="400-unmarshal"),
    pytest.param({"body": {"accountId": ACCOUNT, "events": []}}, 400, id="400-validation"),
    pytest.param({"headers": {"Rokt-Version": "2000-01-01"}}, 400, id="400-header"),
    pytest.param({"headers": {"Content-Type": "text/plain"}}, 400, id="400-content-type"),
    pytest.param({"body": {"accountId": "999", "events": [make_event()]}}, 403, id="403"),
    pytest.param({"headers": {"Authorization": "Bearer x.y.z"}}, 401, id="401"),
]


@pytest.mark.parametrize(("kwargs", "status"), REFUSALS)
def test_refused_request_does_not_burn_its_key(
    client: Client, kwargs: dict[str, Any], status: int
) -> None:
    key = str(uuid.uuid4())
    kwargs = dict(kwargs)
    body = kwargs.pop("body", None)
    refused = client.v1(body, key=key, **kwargs)
    assert refused.status_code == status, refused.text
    assert_accepted(client.v1(key=key))
    assert_refused(client.v1(key=key), 409, "IdempotencyKeyReused")


def test_idempotency_retention_of_three_hours(mock: MockServer) -> None:
    set_clock(mock, frozen=True)
    key = str(uuid.uuid4())
    assert_accepted(Client(mock).v1(key=key))
    set_clock(mock, advance=RETENTION - 1)
    # a fresh client: the first token has expired on the mock clock by now
    assert_refused(Client(mock).v1(key=key), 409, "IdempotencyKeyReused")
    set_clock(mock, advance=2)
    assert_accepted(Client(mock).v1(key=key))
    assert_refused(Client(mock).v1(key=key), 409, "IdempotencyKeyReused")


def test_idempotency_retention_is_switchable(short_retention_mock: MockServer) -> None:
    mock = short_retention_mock
    set_clock(mock, reset=True, frozen=True)
    try:
        client = Client(mock)
        key = str(uuid.uuid4())
        assert_accepted(client.v1(key=key))
        set_clock(mock, advance=59)
        assert_refused(client.v1(key=key), 409, "IdempotencyKeyReused")
        set_clock(mock, advance=2)
        assert_accepted(client.v1(key=key))
    finally:
        set_clock(mock, reset=True)


def test_keys_are_scoped_per_credential(two_apps_mock: MockServer) -> None:
    client = Client(two_apps_mock)
    first, other = bearer(two_apps_mock), bearer(two_apps_mock, OTHER_APP, OTHER_SECRET)
    key = str(uuid.uuid4())
    assert_accepted(client.v1(key=key, headers={"Authorization": first}))
    assert_accepted(client.v1(key=key, headers={"Authorization": other}))
    for token in (first, other):
        response = client.v1(key=key, headers={"Authorization": token})
        assert_refused(response, 409, "IdempotencyKeyReused")


def test_keys_are_scoped_per_namespace(mock: MockServer) -> None:
    key = str(uuid.uuid4())
    clients = [Client(mock), RootTokenClient(mock, "a"), RootTokenClient(mock, "b")]
    for client in clients:
        assert_accepted(client.v1(key=key))
    for client in clients:
        assert_refused(client.v1(key=key), 409, "IdempotencyKeyReused")


def test_v2_ignores_idempotency_key(client: Client) -> None:
    key = str(uuid.uuid4())
    for headers in ({"Idempotency-Key": key}, {"Idempotency-Key": key}, {"Idempotency-Key": "x"}):
        assert_accepted(client.v2(headers=headers))
    assert all(r["idempotencyKey"] is None for r in client.mock.requests())


# -- duplicates -----------------------------------------------------------------------------


def _deliveries(mock: MockServer, client_event_id: str) -> int:
    response = mock.admin("GET", "events", params={"clientEventId": client_event_id})
    events = response.json()["events"]
    assert len(events) == 1, events
    return int(events[0]["deliveries"])


def test_v2_repeated_client_event_id_is_a_duplicate_delivery(client: Client) -> None:
    body = make_body()
    ceid = body["events"][0]["clientEventId"]
    assert_accepted(client.v2(body))
    response = client.v2(body)
    assert response.status_code == 200
    details = response.json()["data"]["details"]
    assert (details["accepted"], details["duplicates"]) == (0, 1)
    assert response.json()["data"]["unprocessedRecords"] == []
    assert _deliveries(client.mock, ceid) == 2
    events = client.mock.summary()["events"]
    assert (events["accepted"], events["duplicates"], events["unique"]) == (1, 1, 1)


def test_v1_repeated_client_event_id_under_a_new_key_is_a_duplicate(client: Client) -> None:
    body = make_body()
    assert_accepted(client.v1(body))
    response = client.v1(body)  # a new Idempotency-Key
    assert response.status_code == 200
    assert response.json()["data"]["details"]["duplicates"] == 1
    assert _deliveries(client.mock, body["events"][0]["clientEventId"]) == 2
    assert client.mock.summary()["events"]["duplicates"] == 1


def test_duplicate_within_one_batch(client: Client, api: str) -> None:
    event = make_event()
    response = send(client, api, {"accountId": ACCOUNT, "events": [event, dict(event)]})
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["unprocessedRecords"] == []
    assert (data["details"]["accepted"], data["details"]["duplicates"]) == (1, 1)
    assert ("clientEventId.duplicate_in_batch", "/events/1/clientEventId") in warnings_of(response)
    assert _deliveries(client.mock, event["clientEventId"]) == 2
    row = journal_row(client.mock, response)
    assert [e["outcome"] for e in row["events"]] == ["accepted", "duplicate"]
    assert "clientEventId.duplicate_in_batch" in [w["rule"] for w in row["warnings"]]


def test_same_client_event_id_in_another_namespace_is_not_a_duplicate(mock: MockServer) -> None:
    body = make_body()
    assert_accepted(Client(mock).v2(body))
    response = RootTokenClient(mock, "other").v2(body)
    assert response.json()["data"]["details"]["duplicates"] == 0


# -- namespaces, 404, 405 -------------------------------------------------------------------


def test_namespaced_paths_work_and_are_journaled_apart(mock: MockServer, api: str) -> None:
    client = RootTokenClient(mock, "ci-1")
    response = send(client, api)
    assert_accepted(response)
    rows = mock.requests(namespace="ci-1")
    assert len(rows) == 1
    assert rows[0]["endpoint"] == f"/{api}/events"
    assert rows[0]["namespace"] == "ci-1"
    assert rows[0]["path"] == f"/ns/ci-1/{api}/events"
    assert rows[0]["id"] == int(response.headers["X-Rokt-Mock-Request-Id"])
    assert [r["endpoint"] for r in mock.requests()] == (
        ["/auth/oauth2/token"] if api == "v1" else []
    )
    assert mock.summary("ci-1")["events"]["accepted"] == 1
    assert mock.summary()["events"]["accepted"] == 0


def test_namespaced_token_endpoint(mock: MockServer) -> None:
    client = Client(mock, namespace="ci-1")
    response = client.token_response()
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "Bearer"
    assert_accepted(client.v1())
    wrong = client.token_response(password="wrong")
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    rows = mock.requests(namespace="ci-1")
    assert [(r["endpoint"], r["status"]) for r in rows] == [
        ("/auth/oauth2/token", 401),
        ("/v1/events", 200),
        ("/auth/oauth2/token", 200),  # the one client.v1() fetched
        ("/auth/oauth2/token", 200),
    ]
    assert all(r["namespace"] == "ci-1" for r in rows)
    assert mock.requests() == []


@pytest.mark.parametrize(
    "name", ["bad%20name!", "-leading", "a" * 65, "%C3%A9t%C3%A9", "a%2Fb"], ids=str
)
def test_invalid_namespace_gets_404_envelope(mock: MockServer, name: str) -> None:
    response = mock.session.post(
        f"{mock.url}/ns/{name}/v1/events",
        data=raw_body(make_body()),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert error_of(response) == (404, "NotFound")


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/v1/events", 405, "MethodNotAllowed"),
        ("PUT", "/v2/events", 405, "MethodNotAllowed"),
        ("DELETE", "/ns/ci-2/v1/events", 405, "MethodNotAllowed"),
        ("GET", "/auth/oauth2/token", 405, "MethodNotAllowed"),
        ("POST", "/v3/events", 404, "NotFound"),
        ("POST", "/v1/events/", 404, "NotFound"),
        ("GET", "/", 404, "NotFound"),
        ("POST", "/ns/ci-2/v3/events", 404, "NotFound"),
    ],
)
def test_unknown_paths_and_methods_get_the_envelope_and_are_journaled(
    mock: MockServer, method: str, path: str, status: int, code: str
) -> None:
    response = mock.session.request(
        method, mock.url + path, data=raw_body(make_body()), timeout=30, allow_redirects=False
    )
    assert error_of(response) == (status, code)
    if status == 405:
        assert "POST" in response.headers["Allow"]
    namespace = "ci-2" if path.startswith("/ns/ci-2/") else "default"
    row = journal_row(mock, response, namespace=namespace)
    assert (row["method"], row["path"], row["status"], row["code"]) == (
        method,
        path,
        status,
        code,
    )


# -- concurrency ----------------------------------------------------------------------------


def test_concurrent_requests_with_one_key_get_exactly_one_acceptance(mock: MockServer) -> None:
    threads_count = 20
    token = Client(mock).token()
    key = str(uuid.uuid4())
    payload = raw_body(make_body(3))
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Charset": "utf-8",
        "Rokt-Version": "2020-05-21",
        "Idempotency-Key": key,
    }
    barrier = threading.Barrier(threads_count)
    results: list[tuple[int, str]] = []
    lock = threading.Lock()

    def post() -> None:
        with requests.Session() as session:
            barrier.wait(timeout=30)
            response = session.post(
                f"{mock.url}/v1/events", data=payload, headers=headers, timeout=60
            )
            with lock:
                results.append((response.status_code, response.text))

    threads = [threading.Thread(target=post) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] + [409] * (threads_count - 1), results

    rows = mock.requests(idempotencyKey=key, limit=100)
    assert sorted(r["status"] for r in rows) == statuses
    (accepted,) = [r for r in rows if r["status"] == 200]
    for row in rows:
        if row["status"] == 409:
            assert row["note"]["idempotency"] == {
                "originalRequestId": accepted["id"],
                "bodyDiffers": False,
            }
    summary = mock.summary()["events"]
    assert (summary["accepted"], summary["duplicates"], summary["refused"]) == (
        3,
        0,
        3 * (threads_count - 1),
    )
