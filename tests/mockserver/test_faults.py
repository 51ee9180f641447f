"""Fault injection over real HTTP: every fault of decisions.md "Faults", and how rules pick them.

A real ``requests`` client on loopback sees each fault the way a partner's sender would: an
error answer in the API's envelope, a slow answer, a read timeout, a reset connection, a body
cut short or not JSON. Each test also checks the journal, which must name the rule that fired
and whether the batch was committed. Rules come from the admin API, scenario files and the
``X-Rokt-Mock-Fault`` header; selection (match, n-th attempt, seeded probability, windows on
the mock's clock, lifetime, priority) follows ``mockserver/faults/engine.py``'s docstring.

Waits are bounded by client timeouts; stalls and delays are kept short (a stall of 2 s read
with a 0.5 s client timeout) and elapsed times only get lower bounds, or upper bounds of
several seconds where the point is that a cap or a stall's end was honoured.
"""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from contract_tests.mock import MockServer
from tests.conftest import (
    ACCOUNT,
    APP_ID,
    APP_SECRET,
    RPUB,
    RSEC,
    Client,
    basic,
    error_of,
    make_body,
    make_event,
    start_mock,
)

FAULT = "X-Rokt-Mock-Fault"
STALL_TIMEOUT = 0.5  # the client's read timeout against a stall
OTHER_APP, OTHER_SECRET = "other", "other-secret"


# -- helpers --------------------------------------------------------------------------------


def send(
    client: Client,
    api: str = "v1",
    body: Any = None,
    *,
    fault: str | None = None,
    key: str | None = "new",
    timeout: float = 10.0,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    """POST events on a fresh connection (a stalled or reset socket never poisons a pool)."""
    h = {"Content-Type": "application/json", "Charset": "utf-8", "Rokt-Version": "2020-05-21"}
    if api == "v1":
        h["Authorization"] = f"Bearer {client.token()}"
        if key is not None:
            h["Idempotency-Key"] = str(uuid.uuid4()) if key == "new" else key
    else:
        h["Authorization"] = basic(RPUB, RSEC)
    if fault is not None:
        h[FAULT] = fault
    h.update(headers or {})
    return requests.post(
        f"{client.base}/{api}/events",
        data=json.dumps(make_body() if body is None else body),
        headers=h,
        timeout=timeout,
    )


def causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything it wraps (``__cause__``, ``__context__`` and exception args)."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if any(current is s for s in seen):
            continue
        seen.append(current)
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
        todo += [a for a in current.args if isinstance(a, BaseException)]
    return seen


def caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    return any(isinstance(e, kind) for e in causes(exc))


def was_reset(exc: BaseException) -> bool:
    """A TCP reset (ECONNRESET), not an orderly close (RemoteDisconnected subclasses the same)."""
    return any(
        isinstance(e, ConnectionResetError) and not isinstance(e, http.client.RemoteDisconnected)
        for e in causes(exc)
    )


def outcome(call: Callable[[], requests.Response]) -> int | str:
    """The status, or what went wrong on the wire: reset, disconnected, timeout, truncated."""
    try:
        return call().status_code
    except requests.exceptions.ReadTimeout:
        return "timeout"
    except requests.exceptions.ChunkedEncodingError:
        return "truncated"
    except requests.exceptions.ConnectionError as exc:
        if was_reset(exc):
            return "reset"
        return "disconnected" if caused_by(exc, http.client.RemoteDisconnected) else repr(exc)


def add_rules(
    mock: MockServer, *rules: dict[str, Any], namespace: str | None = None, seed: int | None = None
) -> list[dict[str, Any]]:
    body: dict[str, Any] = rules[0] if len(rules) == 1 and seed is None else {"rules": list(rules)}
    if seed is not None:
        body["seed"] = seed
    params = {"namespace": namespace} if namespace else None
    response = mock.admin("POST", "faults", params=params, json=body)
    assert response.status_code == 201, response.text
    return list(response.json()["rules"])


def listed(mock: MockServer, namespace: str = "default") -> dict[str, dict[str, Any]]:
    response = mock.admin("GET", "faults", params={"namespace": namespace})
    assert response.status_code == 200, response.text
    return {rule["id"]: rule for rule in response.json()["rules"]}


def freeze(mock: MockServer, namespace: str | None = None, **body: Any) -> float:
    """Freeze the (namespace's) clock, by default at the current instant; returns its epoch."""
    params = {"namespace": namespace} if namespace else None
    response = mock.admin("POST", "clock", params=params, json={"frozen": True, **body})
    assert response.status_code == 200, response.text
    return float(response.json()["epoch"])


def advance(mock: MockServer, seconds: float, namespace: str | None = None) -> None:
    params = {"namespace": namespace} if namespace else None
    response = mock.admin("POST", "clock", params=params, json={"advance": seconds})
    assert response.status_code == 200, response.text


def iso(epoch: float) -> str:
    return (
        datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    )


def deliveries(mock: MockServer, namespace: str = "default") -> dict[str, int]:
    response = mock.admin("GET", "events", params={"namespace": namespace, "limit": 1000})
    assert response.status_code == 200, response.text
    return {e["clientEventId"]: e["deliveries"] for e in response.json()["events"]}


def last_request(mock: MockServer, **filters: Any) -> dict[str, Any]:
    rows = mock.requests(limit=1, **filters)
    assert rows, f"no journal row matches {filters}"
    return rows[0]


def ids_of(body: dict[str, Any]) -> list[str]:
    return [e["clientEventId"] for e in body["events"]]


def statuses(calls: int, call: Callable[[], requests.Response]) -> list[int | str]:
    return [outcome(call) for _ in range(calls)]


def fired_at(results: list[int | str], ok: int = 200) -> set[int]:
    """1-based positions of the results that are not ``ok``."""
    return {i + 1 for i, r in enumerate(results) if r != ok}


def assert_healthy(mock: MockServer, client: Client) -> None:
    """The server still answers: health, and a normal batch accepted."""
    assert requests.get(f"{mock.url}/__admin/health", timeout=5).status_code == 200
    response = send(client, timeout=5)
    assert response.status_code == 200, response.text


# -- the catalogue: status faults --------------------------------------------------------------

STATUS_CODES = [
    (429, "TooManyRequestsError"),
    (500, "InternalServerError"),
    (502, "ServiceUnavailableError"),
    (503, "ServiceUnavailableError"),
    (504, "ServiceUnavailableError"),
    (401, "UnauthorizedError"),
    (413, "RequestEntityTooLarge"),
]


@pytest.mark.parametrize(("status", "code"), STATUS_CODES, ids=[str(s) for s, _ in STATUS_CODES])
@pytest.mark.parametrize("api", ["v1", "v2"])
def test_status_fault_answers_in_the_api_envelope(
    mock: MockServer, client: Client, api: str, status: int, code: str
) -> None:
    add_rules(mock, {"id": "injected", "times": 1, "fault": {"status": status}})
    body = make_body(2)
    response = send(client, api, body)
    assert error_of(response) == (status, code), response.text
    assert response.headers["Content-Type"].startswith("application/json")
    if status == 401 and api == "v1":
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    elif status == 401:  # v2 has no token: the key pair is challenged
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    row = last_request(mock)
    assert (row["status"], row["code"]) == (status, code)
    assert row["fault"]["rule"] == "injected"
    assert row["fault"]["kind"] == "status"
    assert row["fault"]["source"] == "rule"
    assert not row["fault"].get("committed")
    assert deliveries(mock) == {}  # nothing was committed
    again = send(client, api, body)  # times: 1 -> the retry goes through
    assert again.status_code == 200, again.text
    assert deliveries(mock) == dict.fromkeys(ids_of(body), 1)


@pytest.mark.parametrize(
    ("header", "status", "code"),
    [
        ("status=503", 503, "ServiceUnavailableError"),
        ("status=500", 500, "InternalServerError"),
        ("status=502", 502, "ServiceUnavailableError"),
        ("status=504", 504, "ServiceUnavailableError"),
        ("status=413", 413, "RequestEntityTooLarge"),
        ("status=401", 401, "UnauthorizedError"),
    ],
)
def test_status_fault_from_the_header(
    mock: MockServer, client: Client, header: str, status: int, code: str
) -> None:
    response = send(client, fault=header)
    assert error_of(response) == (status, code), response.text
    row = last_request(mock)
    assert row["fault"]["source"] == "header"
    assert row["fault"]["kind"] == "status"
    assert row["status"] == status


def test_retry_after_in_seconds_and_as_an_http_date(mock: MockServer, client: Client) -> None:
    now = freeze(mock)
    seconds = send(client, fault="status=429;retry-after=2")
    assert error_of(seconds) == (429, "TooManyRequestsError")
    assert seconds.headers["Retry-After"] == "2"

    rounded = send(client, fault="status=503;retry-after=1.2")
    assert error_of(rounded) == (503, "ServiceUnavailableError")
    assert rounded.headers["Retry-After"] == "2"  # whole seconds, rounded up

    dated = send(client, fault="status=429;retry-after=3;format=http-date")
    assert error_of(dated) == (429, "TooManyRequestsError")
    value = dated.headers["Retry-After"]
    assert value.endswith(" GMT"), value
    expected = datetime.fromtimestamp(int(now), tz=timezone.utc) + timedelta(seconds=3)
    # HTTP-dates have whole seconds; the frozen instant may have a fraction
    assert abs((parsedate_to_datetime(value) - expected).total_seconds()) <= 1, value

    add_rules(mock, {"fault": {"status": 429, "retryAfter": 7, "retryAfterFormat": "http-date"}})
    ruled = send(client)
    assert error_of(ruled) == (429, "TooManyRequestsError")
    delta = parsedate_to_datetime(ruled.headers["Retry-After"]).timestamp() - now
    assert 6 <= delta <= 8, ruled.headers["Retry-After"]
    assert last_request(mock)["fault"]["retryAfter"] == 7


# -- latency -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delay", "low", "high"),
    [
        (0.3, 0.3, 0.3),
        ({"uniform": [0.2, 0.35]}, 0.2, 0.35),
        ({"lognormal": {"median": 0.25, "sigma": 0}}, 0.25, 0.25),
        ({"lognormal": {"median": 30, "sigma": 0.5, "cap": 0.3}}, 0.3, 0.3),
    ],
    ids=["fixed", "uniform", "lognormal", "lognormal-capped"],
)
def test_latency(mock: MockServer, client: Client, delay: Any, low: float, high: float) -> None:
    client.token()  # not timed
    add_rules(mock, {"id": "slow", "fault": {"delay": delay}})
    started = time.monotonic()
    response = send(client, timeout=10)
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert response.json()["data"]["details"]["accepted"] == 1
    note = last_request(mock)["fault"]
    assert note["delayRules"] == ["slow"]
    assert low - 1e-6 <= note["delaySeconds"] <= high + 1e-6, note
    assert elapsed >= note["delaySeconds"] - 0.02, (elapsed, note)
    # the cap of 0.3 s holds a median of 30 s well under it (generous bound)
    assert elapsed < 5
    assert mock.summary()["requests"]["byFault"] == {"delay": 1}


# -- network faults ------------------------------------------------------------------------


def test_stall_times_the_client_out_and_the_server_stays_healthy(
    mock: MockServer, client: Client
) -> None:
    client.token()
    body = make_body()
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        send(client, body=body, fault="stall=2", timeout=STALL_TIMEOUT)
    assert time.monotonic() - started >= STALL_TIMEOUT - 0.05
    assert_healthy(mock, client)
    row = last_request(mock, fault="stall")
    assert (row["status"], row["code"]) == (0, "Stalled")
    assert row["fault"]["fault"] == {"stall": 2}
    assert set(deliveries(mock)) & set(ids_of(body)) == set()  # the stall came first


def test_connection_reset(mock: MockServer, client: Client) -> None:
    body = make_body()
    with pytest.raises(requests.exceptions.ConnectionError) as caught:
        send(client, body=body, fault="reset")
    assert was_reset(caught.value), causes(caught.value)
    row = last_request(mock, fault="reset")
    assert (row["status"], row["code"]) == (0, "ConnectionReset")
    assert deliveries(mock) == {}
    assert_healthy(mock, client)


def test_empty_reply(mock: MockServer, client: Client) -> None:
    with pytest.raises(requests.exceptions.ConnectionError) as caught:
        send(client, fault="empty")
    assert caused_by(caught.value, http.client.RemoteDisconnected), causes(caught.value)
    row = last_request(mock, fault="empty")
    assert (row["status"], row["code"]) == (0, "EmptyReply")
    assert deliveries(mock) == {}
    assert_healthy(mock, client)


def test_truncated_body_is_shorter_than_its_content_length(
    mock: MockServer, client: Client
) -> None:
    body = make_body()
    with pytest.raises(requests.exceptions.ChunkedEncodingError) as caught:
        send(client, body=body, fault="truncate=0.5")
    assert caused_by(caught.value, http.client.IncompleteRead)

    # byte-level: the status line and Content-Length arrive, then fewer bytes than promised
    url = urlsplit(mock.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        conn.request(
            "POST",
            "/v1/events",
            body=json.dumps(make_body()),
            headers={
                "Authorization": f"Bearer {client.token()}",
                "Content-Type": "application/json",
                "Idempotency-Key": str(uuid.uuid4()),
                FAULT: "truncate=0.3",
            },
        )
        answer = conn.getresponse()
        assert answer.status == 200
        promised = int(answer.getheader("Content-Length"))
        with pytest.raises(http.client.IncompleteRead) as short:
            answer.read()
        assert 0 < len(short.value.partial) < promised
        assert len(short.value.partial) == int(promised * 0.3)
    finally:
        conn.close()
    row = last_request(mock, fault="truncate")
    assert (row["status"], row["code"]) == (200, "TruncatedBody")
    assert row["fault"]["committed"] is True  # the batch was processed; only the answer broke
    assert deliveries(mock)[ids_of(body)[0]] == 1


def test_malformed_json_body_with_a_200(mock: MockServer, client: Client) -> None:
    body = make_body()
    response = send(client, body=body, fault="malformed")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    with pytest.raises(requests.exceptions.JSONDecodeError):
        response.json()
    row = last_request(mock, fault="malformed")
    assert (row["status"], row["code"]) == (200, "MalformedBody")
    assert deliveries(mock) == dict.fromkeys(ids_of(body), 1)


@pytest.mark.parametrize("source", ["header", "rule"])
def test_slow_dribble(mock: MockServer, client: Client, source: str) -> None:
    client.token()
    if source == "rule":
        add_rules(mock, {"fault": {"dribble": {"seconds": 1, "chunks": 5}}})
    started = time.monotonic()
    response = send(client, fault="dribble=1;chunks=5" if source == "header" else None)
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert response.json()["data"]["details"]["accepted"] == 1
    assert elapsed >= 0.75, elapsed
    assert elapsed < 8
    assert last_request(mock, fault="dribble")["fault"]["source"] == source


# -- accept-then-fail ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("then", "seen", "status", "code"),
    [
        ("500", 500, 500, "InternalServerError"),
        ("503", 503, 503, "ServiceUnavailableError"),
        ("reset", "reset", 0, "ConnectionReset"),
        ("stall", "timeout", 0, "Stalled"),
        ("empty", "disconnected", 0, "EmptyReply"),
    ],
)
def test_accept_then_fail_commits_first(
    mock: MockServer, client: Client, then: str, seen: int | str, status: int, code: str
) -> None:
    body, key = make_body(2), str(uuid.uuid4())
    first = outcome(
        lambda: send(client, body=body, key=key, fault=f"accept-then={then}", timeout=STALL_TIMEOUT)
    )
    assert first == seen
    row = last_request(mock, fault="acceptThen")
    assert row["fault"]["committed"] is True
    assert row["fault"]["kind"] == "acceptThen"
    assert (row["status"], row["code"]) == (status, code)
    assert row["idempotencyKey"] == key

    retry = send(client, body=body, key=key)
    assert error_of(retry) == (409, "IdempotencyKeyReused"), retry.text
    assert retry.json()["data"]["details"]["originalRequestId"] == row["id"]
    assert deliveries(mock) == dict.fromkeys(ids_of(body), 1)  # delivered once
    assert_healthy(mock, client)


def test_accept_then_fail_on_v2_leaves_the_duplicate_in_the_journal(
    mock: MockServer, client: Client
) -> None:
    body = make_body(2)
    lost = send(client, "v2", body, fault="accept-then=503")
    assert error_of(lost) == (503, "ServiceUnavailableError")
    retry = send(client, "v2", body)
    assert retry.status_code == 200, retry.text
    assert retry.json()["data"]["details"]["duplicates"] == 2
    assert deliveries(mock) == dict.fromkeys(ids_of(body), 2)


# -- token expiry and partial rejects -----------------------------------------------------------


def test_expire_token_now(mock: MockServer, client: Client) -> None:
    expired = send(client, fault="expire-token")
    assert error_of(expired) == (401, "UnauthorizedError")
    assert expired.json()["data"]["details"]["tokenExpired"] is True
    assert 'error="invalid_token"' in expired.headers["WWW-Authenticate"]
    assert last_request(mock)["fault"]["kind"] == "expireToken"

    later = send(client)  # the same token, no fault asked for
    assert error_of(later) == (401, "UnauthorizedError")
    assert later.json()["data"]["details"]["tokenExpired"] is True
    assert last_request(mock)["fault"] is None  # refused by auth, not by a fault

    fresh = Client(mock)
    assert send(fresh).status_code == 200
    assert deliveries(mock) != {}


def test_partial_reject_of_chosen_indexes(mock: MockServer, client: Client) -> None:
    body = make_body(4)
    response = send(client, body=body, fault="partial=0+2")
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    records = data["unprocessedRecords"]
    assert [r["record"]["clientEventId"] for r in records] == [ids_of(body)[i] for i in (0, 2)]
    for index, record in zip((0, 2), records, strict=True):
        assert record["error"]["code"] == "ValidationError"
        assert [(d["rule"], d["pointer"]) for d in record["error"]["details"]] == [
            ("fault.partial_reject", f"/events/{index}")
        ]
    assert (data["details"]["accepted"], data["details"]["rejected"]) == (2, 2)
    assert deliveries(mock) == {ids_of(body)[i]: 1 for i in (1, 3)}
    row = last_request(mock)
    assert row["fault"]["rejectedIndexes"] == [0, 2]
    assert row["fault"]["committed"] is True
    assert [e["outcome"] for e in row["events"]] == ["rejected", "accepted"] * 2


def test_partial_reject_rule_every_second_event(mock: MockServer, client: Client) -> None:
    add_rules(mock, {"fault": {"partialReject": {"every": 2}}})
    body = make_body(5)
    response = send(client, body=body)
    assert response.status_code == 200, response.text
    rejected = [r["record"]["clientEventId"] for r in response.json()["data"]["unprocessedRecords"]]
    assert rejected == [ids_of(body)[1], ids_of(body)[3]]


# -- the leaky bucket ------------------------------------------------------------------------


def test_rate_limit_leaky_bucket(mock: MockServer, client: Client) -> None:
    freeze(mock)
    add_rules(mock, {"id": "bucket", "fault": {"rateLimit": {"rate": 0.5, "burst": 2}}})
    assert statuses(2, lambda: send(client)) == [200, 200]
    limited = send(client)
    assert error_of(limited) == (429, "TooManyRequestsError")
    assert limited.headers["Retry-After"] == "2"  # one request over, drained at 0.5/s
    assert last_request(mock)["fault"]["kind"] == "rateLimit"
    assert send(client).status_code == 429  # a refused request does not fill the bucket more

    assert send(client, "v2").status_code == 200  # another credential, another bucket

    advance(mock, 1)
    half = send(client)
    assert error_of(half) == (429, "TooManyRequestsError")
    assert half.headers["Retry-After"] == "1"
    advance(mock, 1)
    assert send(client).status_code == 200
    assert send(client).status_code == 429


def test_rate_limit_retry_after_as_an_http_date(mock: MockServer, client: Client) -> None:
    now = freeze(mock)
    add_rules(mock, {"fault": {"rateLimit": {"rate": 1, "retryAfterFormat": "http-date"}}})
    assert send(client).status_code == 200
    limited = send(client)
    assert limited.status_code == 429
    moment = parsedate_to_datetime(limited.headers["Retry-After"]).timestamp()
    assert int(now) <= moment <= now + 2, limited.headers["Retry-After"]


def test_http_date_retry_after_is_never_early(mock: MockServer, client: Client) -> None:
    """An HTTP-date has whole seconds: it must round up, or a sender that waits until that
    date retries too early and is refused again."""
    now = freeze(mock, now=iso(int(time.time()) + 0.7))  # a fraction of a second
    asked = send(client, fault="status=429;retry-after=3;format=http-date")
    assert asked.status_code == 429
    assert parsedate_to_datetime(asked.headers["Retry-After"]).timestamp() >= now + 3

    add_rules(mock, {"fault": {"rateLimit": {"rate": 2, "retryAfterFormat": "http-date"}}})
    assert send(client).status_code == 200
    limited = send(client)
    assert limited.status_code == 429
    until = parsedate_to_datetime(limited.headers["Retry-After"]).timestamp()
    advance(mock, until - now)  # the sender waits exactly as told
    assert send(client).status_code == 200


@pytest.fixture
def two_apps() -> Iterator[MockServer]:
    server = start_mock(
        "--app",
        f"{APP_ID}:{APP_SECRET}:{ACCOUNT}",
        "--app",
        f"{OTHER_APP}:{OTHER_SECRET}:{ACCOUNT}",
    )
    try:
        yield server
    finally:
        server.stop()


def token_for(mock: MockServer, user: str, password: str) -> str:
    response = Client(mock).token_response(user, password)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def test_rate_limit_buckets_are_per_credential(two_apps: MockServer) -> None:
    mock = two_apps
    freeze(mock)
    add_rules(mock, {"fault": {"rateLimit": {"rate": 1, "burst": 2}}})
    first, second = Client(mock), Client(mock)
    second._token = token_for(mock, OTHER_APP, OTHER_SECRET)
    assert statuses(3, lambda: send(first)) == [200, 200, 429]
    assert statuses(3, lambda: send(second)) == [200, 200, 429]
    advance(mock, 1)
    assert statuses(2, lambda: send(first)) == [200, 429]
    assert statuses(2, lambda: send(second)) == [200, 429]
    assert len(mock.requests(status="429")) == 4


def test_match_on_credential(two_apps: MockServer) -> None:
    mock = two_apps
    add_rules(mock, {"match": {"credential": OTHER_APP}, "fault": {"status": 503}})
    mine, theirs = Client(mock), Client(mock)
    theirs._token = token_for(mock, OTHER_APP, OTHER_SECRET)
    assert send(mine).status_code == 200
    assert error_of(send(theirs)) == (503, "ServiceUnavailableError")
    assert send(mine, "v2").status_code == 200  # rpub-demo-0001 is not "other"


# -- the token endpoint ----------------------------------------------------------------------


def test_token_endpoint_faults(mock: MockServer, client: Client) -> None:
    add_rules(mock, {"match": {"endpoint": "token"}, "times": 1, "fault": {"status": 503}})
    down = client.token_response()
    assert down.status_code == 503
    assert down.json()["error"] == "temporarily_unavailable"
    row = last_request(mock, endpoint="/auth/oauth2/token")
    assert row["fault"]["kind"] == "status"
    assert client.token_response().status_code == 200

    with pytest.raises(requests.exceptions.ConnectionError) as caught:
        client.token_response(headers={FAULT: "reset"})
    assert was_reset(caught.value), causes(caught.value)
    assert last_request(mock, fault="reset")["endpoint"] == "/auth/oauth2/token"

    started = time.monotonic()
    slow = client.token_response(headers={FAULT: "delay=0.3"})
    assert slow.status_code == 200
    assert "access_token" in slow.json()
    assert time.monotonic() - started >= 0.29

    busy = client.token_response(headers={FAULT: "status=429;retry-after=2"})
    assert busy.status_code == 429
    assert busy.headers["Retry-After"] == "2"
    assert "error" in busy.json()


def test_injected_401_on_the_token_endpoint_challenges_basic(
    mock: MockServer, client: Client
) -> None:
    """RFC 6749 5.2: invalid_client with 401 carries a challenge for the scheme used (Basic)."""
    response = client.token_response(headers={FAULT: "status=401"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic"), response.headers


# -- rules: match --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "token_status", "events_status"),
    [("events", 200, 503), ("token", 503, 200), ("any", 503, 503)],
)
def test_match_endpoint(
    mock: MockServer, endpoint: str, token_status: int, events_status: int
) -> None:
    client = Client(mock)
    client.token()  # before the rule
    add_rules(mock, {"match": {"endpoint": endpoint}, "fault": {"status": 503}})
    assert client.token_response().status_code == token_status
    assert send(client).status_code == events_status
    assert send(client, "v2").status_code == events_status


def test_match_version_and_unmatched_requests_are_not_attempts(
    mock: MockServer, client: Client
) -> None:
    add_rules(
        mock,
        {
            "id": "v2-only",
            "match": {"version": "v2"},
            "when": {"first": 1},
            "fault": {"status": 503},
        },
    )
    assert statuses(3, lambda: send(client, "v1")) == [200, 200, 200]
    assert statuses(2, lambda: send(client, "v2")) == [503, 200]
    assert listed(mock)["v2-only"]["counters"] == {"default": {"matched": 2, "fired": 1}}


def test_match_account(mock: MockServer, client: Client) -> None:
    add_rules(mock, {"match": {"account": "9999999999"}, "fault": {"status": 503}})
    assert send(client).status_code == 200
    other = make_body()
    other["accountId"] = "9999999999"
    assert error_of(send(client, body=other)) == (503, "ServiceUnavailableError")
    # without the rule that batch is refused for its account: the fault came first
    assert mock.admin("DELETE", "faults").status_code == 200
    assert error_of(send(client, body=other))[0] == 403


def test_match_event_type_present_in_the_batch(mock: MockServer, client: Client) -> None:
    add_rules(mock, {"match": {"eventType": "signup"}, "fault": {"status": 503}})
    plain = make_body(3)
    assert send(client, body=plain).status_code == 200
    mixed = make_body(2)
    mixed["events"].append(make_event(eventType="signup"))
    assert send(client, body=mixed).status_code == 503
    assert send(client, "v2", mixed).status_code == 503


# -- rules: which attempt --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ({"first": 2}, {1, 2}),
        ({"attempts": [3, 5]}, {3, 4, 5}),
        ({"every": 3}, {3, 6, 9}),
        ({"attempts": [4, 4]}, {4}),
    ],
    ids=["first-2", "attempts-3-5", "every-3", "attempts-4-4"],
)
def test_nth_matching_attempt(
    mock: MockServer, client: Client, when: dict[str, Any], expected: set[int]
) -> None:
    add_rules(mock, {"when": when, "fault": {"status": 503}})
    assert fired_at(statuses(10, lambda: send(client))) == expected


def coin_flips(client: Client, n: int = 20) -> set[int]:
    return fired_at(statuses(n, lambda: send(client)))


def test_seeded_probability_repeats(mock: MockServer) -> None:
    rule = {"id": "coin", "seed": 42, "when": {"probability": 0.5}, "fault": {"status": 503}}
    add_rules(mock, rule)
    first = coin_flips(Client(mock))
    assert 0 < len(first) < 20
    mock.reset()
    add_rules(mock, rule)
    assert coin_flips(Client(mock)) == first
    mock.reset()
    add_rules(mock, {**rule, "seed": 43})
    assert coin_flips(Client(mock)) != first


# -- rules: time window and lifetime (mock clock) ----------------------------------------------


def test_window_from_to_on_the_mock_clock(mock: MockServer, client: Client) -> None:
    now = freeze(mock)
    window = {"from": iso(now + 10), "to": iso(now + 20)}
    add_rules(mock, {"when": {"window": window}, "fault": {"status": 503}})
    assert send(client).status_code == 200
    advance(mock, 10)
    assert send(client).status_code == 503
    advance(mock, 9.5)
    assert send(client).status_code == 503
    advance(mock, 0.5)
    assert send(client).status_code == 200  # "to" is exclusive


def test_window_after_and_for_seconds(mock: MockServer, client: Client) -> None:
    freeze(mock)
    add_rules(
        mock, {"when": {"window": {"afterSeconds": 5, "forSeconds": 10}}, "fault": {"status": 503}}
    )
    assert send(client).status_code == 200
    advance(mock, 5)
    assert send(client).status_code == 503
    advance(mock, 9)
    assert send(client).status_code == 503
    advance(mock, 1)
    assert send(client).status_code == 200


def test_times_limits_how_often_a_rule_fires(mock: MockServer, client: Client) -> None:
    add_rules(mock, {"id": "twice", "times": 2, "fault": {"status": 503}})
    assert send(client).status_code == 503
    assert listed(mock)["twice"]["timesLeft"] == {"default": 1}
    assert statuses(3, lambda: send(client)) == [503, 200, 200]
    assert listed(mock)["twice"]["timesLeft"] == {"default": 0}


def test_ttl_removes_the_rule_on_the_mock_clock(mock: MockServer, client: Client) -> None:
    freeze(mock)
    add_rules(mock, {"id": "brief", "ttl": 30, "fault": {"status": 503}})
    assert send(client).status_code == 503
    assert listed(mock)["brief"]["expiresIn"] == pytest.approx(30, abs=0.01)
    advance(mock, 29)
    assert send(client).status_code == 503
    advance(mock, 1)
    assert send(client).status_code == 200
    assert "brief" not in listed(mock)


# -- rules: several at once ----------------------------------------------------------------------


def test_priority_then_oldest_first(mock: MockServer, client: Client) -> None:
    add_rules(
        mock, {"id": "old", "fault": {"status": 500}}, {"id": "young", "fault": {"status": 502}}
    )
    assert send(client).status_code == 500  # same priority: the older rule
    add_rules(mock, {"id": "urgent", "priority": 5, "fault": {"status": 503}})
    assert send(client).status_code == 503
    assert last_request(mock)["fault"]["rule"] == "urgent"
    counters = {rule_id: rule["counters"]["default"] for rule_id, rule in listed(mock).items()}
    # every matching rule counts the attempt; only the outcome's rule fires
    assert counters == {
        "old": {"matched": 2, "fired": 1},
        "young": {"matched": 2, "fired": 0},
        "urgent": {"matched": 1, "fired": 1},
    }


def test_latencies_add_up_and_the_first_outcome_wins(mock: MockServer, client: Client) -> None:
    client.token()
    add_rules(
        mock,
        {"id": "lag-a", "fault": {"delay": 0.2}},
        {"id": "lag-b", "fault": {"delay": 0.25, "status": 503}},
        {"id": "late", "fault": {"status": 500}},
    )
    started = time.monotonic()
    response = send(client)
    elapsed = time.monotonic() - started
    assert error_of(response) == (503, "ServiceUnavailableError")
    assert elapsed >= 0.44, elapsed
    note = last_request(mock)["fault"]
    assert note["rule"] == "lag-b"
    assert note["delayRules"] == ["lag-a", "lag-b"]
    assert note["delaySeconds"] == pytest.approx(0.45)


def test_a_rule_that_loses_still_counts_the_attempt(mock: MockServer, client: Client) -> None:
    add_rules(
        mock,
        {"id": "a", "when": {"first": 1}, "fault": {"status": 500}},
        {"id": "b", "when": {"first": 2}, "fault": {"status": 503}},
    )
    assert statuses(3, lambda: send(client)) == [500, 503, 200]
    assert listed(mock)["b"]["counters"] == {"default": {"matched": 3, "fired": 1}}


# -- determinism ------------------------------------------------------------------------------

SEEDED_RULES = [
    {"id": "drop", "when": {"probability": 0.1}, "fault": {"reset": True}},
    {"id": "busy", "when": {"probability": 0.15}, "fault": {"status": 429, "retryAfter": 1}},
    {"id": "down", "when": {"probability": 0.15}, "fault": {"status": 503}},
    {"id": "some", "when": {"probability": 0.2}, "fault": {"partialReject": {"probability": 0.3}}},
]


def run_sequence(mock: MockServer, n: int) -> list[Any]:
    """The same n requests (v1 and v2 alternating, 3 events each) and what each one saw."""
    client = Client(mock)
    seen: list[Any] = []
    for i in range(n):
        api = "v1" if i % 3 else "v2"
        try:
            response = send(client, api, make_body(3))
        except requests.exceptions.ConnectionError as exc:
            seen.append("reset" if was_reset(exc) else "closed")
            continue
        rejected = [
            r["error"]["details"][0]["pointer"]
            for r in response.json()["data"].get("unprocessedRecords", [])
        ]
        seen.append((response.status_code, tuple(rejected)))
    return seen


def test_same_seed_same_faults_on_two_fresh_mocks() -> None:
    runs = []
    for seed in ("7", "7", "8"):
        server = start_mock("--seed", seed)
        try:
            add_rules(server, *SEEDED_RULES)
            runs.append(run_sequence(server, 60))
        finally:
            server.stop()
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    kinds = {r if isinstance(r, str) else r[0] for r in runs[0]}
    assert {"reset", 429, 503, 200} <= kinds, runs[0]
    assert any(isinstance(r, tuple) and r[1] for r in runs[0])  # some partial rejects


def test_counters_persist_across_a_restart(tmp_path: Path) -> None:
    rules = [
        {
            "id": "first3",
            "match": {"version": "v1"},
            "when": {"first": 3},
            "fault": {"status": 503},
        },
        {
            "id": "coin",
            "seed": 1,
            "match": {"version": "v2"},
            "when": {"probability": 0.5},
            "fault": {"status": 500},
        },
    ]

    def v2_run(server: MockServer, n: int) -> list[int | str]:
        client = Client(server)
        return statuses(n, lambda: send(client, "v2"))

    server = start_mock(tmp_path=tmp_path)
    try:
        add_rules(server, *rules)
        assert statuses(2, lambda: send(Client(server))) == [503, 503]
        before = v2_run(server, 10)
    finally:
        server.stop()
    server = start_mock(tmp_path=tmp_path)  # the same journal file
    try:
        assert set(listed(server)) == {"first3", "coin"}
        assert statuses(2, lambda: send(Client(server))) == [503, 200]
        after = v2_run(server, 10)
        assert listed(server)["first3"]["counters"] == {"default": {"matched": 4, "fired": 3}}
    finally:
        server.stop()
    uninterrupted = start_mock()
    try:
        add_rules(uninterrupted, *rules)
        assert before + after == v2_run(uninterrupted, 20)
    finally:
        uninterrupted.stop()
    assert 500 in before + after
    assert 200 in before + after


# -- three ways in: scenario files ---------------------------------------------------------------

SCENARIO_YAML = """\
name: mine
description: one outage answer, then slow tokens
seed: 3
rules:
  - id: once
    when: {first: 1}
    fault: {status: 503, retryAfter: 2}
  - id: slow-token
    match: {endpoint: token}
    fault: {delay: 0.2}
"""

SCENARIO_TOML = """\
name = "mine"
description = "one outage answer, then slow tokens"
seed = 3

[[rules]]
id = "once"
when = { first = 1 }
fault = { status = 503, retryAfter = 2 }

[[rules]]
id = "slow-token"
match = { endpoint = "token" }
fault = { delay = 0.2 }
"""


@pytest.mark.parametrize("suffix", ["yaml", "toml"])
def test_scenario_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"mine.{suffix}"
    path.write_text(SCENARIO_YAML if suffix == "yaml" else SCENARIO_TOML, encoding="utf-8")
    server = start_mock("--scenario", str(path))
    try:
        rules = listed(server)
        assert set(rules) == {"once", "slow-token"}
        assert {r["source"] for r in rules.values()} == {"scenario:mine"}
        assert {r["scope"] for r in rules.values()} == {"*"}
        assert rules["once"]["seed"] == 3

        client = Client(server)
        started = time.monotonic()
        client.token()
        assert time.monotonic() - started >= 0.19
        down = send(client)
        assert error_of(down) == (503, "ServiceUnavailableError")
        assert down.headers["Retry-After"] == "2"
        assert send(client).status_code == 200
        # scenario rules are scope *: each namespace counts its own attempts
        assert statuses(2, lambda: send(Client(server, "ns-a"))) == [503, 200]
        # a reset keeps scenario rules, with fresh counters
        server.reset()
        assert set(listed(server)) == {"once", "slow-token"}
        assert send(Client(server)).status_code == 503
    finally:
        server.stop()


# -- three ways in: the admin API ---------------------------------------------------------------


def test_admin_api_adds_lists_and_deletes_rules(mock: MockServer, client: Client) -> None:
    added = add_rules(mock, {"fault": {"status": 500}})
    assert len(added) == 1
    generated = added[0]["id"]
    assert added[0]["scope"] == "default"
    add_rules(mock, {"id": "x", "fault": {"status": 502}}, {"id": "y", "fault": {"status": 503}})
    rules = listed(mock)
    assert list(rules) == [generated, "x", "y"]
    assert {r["source"] for r in rules.values()} == {"api"}

    assert send(client).status_code == 500
    gone = mock.admin("DELETE", f"faults/{generated}")
    assert gone.status_code == 200
    assert gone.json()["deleted"] == 1
    assert send(client).status_code == 502
    missing = mock.admin("DELETE", f"faults/{generated}")
    assert error_of(missing) == (404, "NotFound")

    cleared = mock.admin("DELETE", "faults")
    assert cleared.status_code == 200
    assert cleared.json()["deleted"] == 2
    assert listed(mock) == {}
    assert send(client).status_code == 200


def test_admin_api_loads_a_bundled_scenario(mock: MockServer, client: Client) -> None:
    freeze(mock)
    response = mock.admin("POST", "faults", json={"scenario": "rate-limited"})
    assert response.status_code == 201, response.text
    assert [r["id"] for r in response.json()["rules"]] == ["bucket"]
    assert statuses(4, lambda: send(client)) == [200, 200, 200, 429]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"fault": {"status": 599}}, [("/fault/status", "rule.enum")]),
        (
            {"rules": [{"fault": {"status": 503}}, {"fault": {"stall": -1}}]},
            [("/rules/1/fault/stall", "rule.exclusiveMinimum")],
        ),
        ({"fault": {"status": 503, "reset": True}}, [("/fault", "fault.one_outcome")]),
        (
            {"when": {"first": 2, "every": 3}, "fault": {"reset": True}},
            [("/when", "when.one_selector")],
        ),
        (
            {"fault": {"status": 500, "retryAfter": 3}},
            [("/fault/retryAfter", "fault.retry_after")],
        ),
        (
            {"match": {"endpoint": "token"}, "fault": {"acceptThen": 500}},
            [("/fault/acceptThen", "fault.events_only")],
        ),
        (
            {"when": {"attempts": [5, 2]}, "fault": {"reset": True}},
            [("/when/attempts", "when.attempts")],
        ),
        ({"fault": {"reset": True}, "colour": "red"}, [("", "rule.additionalProperties")]),
        ({"fault": {}}, [("/fault", "rule.minProperties")]),
    ],
    ids=[
        "status",
        "second-rule-stall",
        "two-outcomes",
        "two-selectors",
        "retry-after-500",
        "token-accept-then",
        "attempts-backwards",
        "unknown-key",
        "empty-fault",
    ],
)
def test_admin_api_refuses_invalid_rules(
    mock: MockServer, body: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    response = mock.admin("POST", "faults", json=body)
    assert error_of(response) == (400, "BadAdminRequest"), response.text
    found = [(v["pointer"], v["rule"]) for v in response.json()["data"]["details"]["violations"]]
    assert found == expected
    assert listed(mock) == {}  # all or nothing


# -- three ways in: the header ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "seen", "kind"),
    [
        ("status=503", 503, "status"),
        ("status=429;retry-after=2", 429, "status"),
        ("reset", "reset", "reset"),
        ("stall=5", "timeout", "stall"),
        ("delay=0.3", 200, "delay"),
        ("accept-then=500", 500, "acceptThen"),
        ("accept-then=reset", "reset", "acceptThen"),
        ("expire-token", 401, "expireToken"),
        ("delay=0.2, status=503", 503, "status"),
    ],
)
def test_header_grammar(
    mock: MockServer, client: Client, header: str, seen: int | str, kind: str | None
) -> None:
    client.token()
    started = time.monotonic()
    assert outcome(lambda: send(client, fault=header, timeout=STALL_TIMEOUT + 1)) == seen
    if "delay=" in header:
        assert time.monotonic() - started >= 0.19
    note = last_request(mock)["fault"]
    assert note["source"] == "header"
    assert note.get("kind") == kind


def test_header_wins_and_rules_do_not_count_it(mock: MockServer, client: Client) -> None:
    add_rules(mock, {"id": "once", "when": {"first": 1}, "fault": {"status": 500}})
    assert send(client, fault="delay=0.01").status_code == 200
    assert send(client, fault="status=502").status_code == 502
    assert listed(mock)["once"]["counters"] == {}
    assert send(client).status_code == 500  # still the rule's first attempt


@pytest.mark.parametrize(
    "header",
    [
        "bogus",
        "status=abc",
        "status=599",
        "stall=-1",
        "delay=soon",
        "",
        "accept-then=maybe",
        "partial=a",
    ],
)
def test_bad_header_is_a_400(mock: MockServer, client: Client, header: str) -> None:
    body = make_body()
    response = send(client, body=body, fault=header)
    assert error_of(response) == (400, "RequestValidationError"), response.text
    violations = response.json()["data"]["details"]["violations"]
    assert [(v["rule"], v["pointer"]) for v in violations] == [
        ("header.fault", "/X-Rokt-Mock-Fault")
    ]
    assert deliveries(mock) == {}


def test_bad_header_on_the_token_endpoint(mock: MockServer, client: Client) -> None:
    response = client.token_response(headers={FAULT: "expire-token"})
    assert response.status_code == 400
    assert "events" in response.text


# -- namespaces ------------------------------------------------------------------------------


def test_namespace_rules_apply_to_their_namespace_only(mock: MockServer) -> None:
    add_rules(mock, {"id": "a-down", "fault": {"status": 503}}, namespace="a")
    assert send(Client(mock, "a")).status_code == 503
    assert send(Client(mock, "b")).status_code == 200
    assert send(Client(mock)).status_code == 200
    assert "a-down" in listed(mock, "a")
    assert "a-down" not in listed(mock)
    assert listed(mock, "*")["a-down"]["scope"] == "a"
    assert [r["namespace"] for r in mock.requests(namespace="*", fault="status")] == ["a"]


def test_star_rules_count_attempts_per_namespace(mock: MockServer) -> None:
    add_rules(mock, {"id": "two", "when": {"first": 2}, "fault": {"status": 503}}, namespace="*")
    for namespace in ("a", "b", None):
        client = Client(mock, namespace)
        assert statuses(3, lambda c=client: send(c)) == [503, 503, 200], namespace
    counters = listed(mock, "*")["two"]["counters"]
    assert counters == {ns: {"matched": 3, "fired": 2} for ns in ("a", "b", "default")}


def test_namespaces_have_their_own_idempotency_store_and_journal(mock: MockServer) -> None:
    a, b = Client(mock, "a"), Client(mock, "b")
    body, key = make_body(2), str(uuid.uuid4())
    assert error_of(send(a, body=body, key=key, fault="accept-then=500"))[0] == 500
    assert error_of(send(a, body=body, key=key)) == (409, "IdempotencyKeyReused")
    assert send(b, body=body, key=key).status_code == 200  # b never saw that key
    assert deliveries(mock, "a") == dict.fromkeys(ids_of(body), 1)
    assert deliveries(mock, "b") == dict.fromkeys(ids_of(body), 1)
    assert deliveries(mock) == {}
    rows = mock.requests(namespace="a", endpoint="/v1/events")
    assert [r["status"] for r in rows] == [409, 500]
    assert rows[1]["fault"]["committed"] is True
    assert mock.requests(namespace="default", endpoint="/v1/events") == []


def test_namespace_clock_drives_the_window(mock: MockServer) -> None:
    real = freeze(mock)
    ahead = freeze(mock, namespace="a", now=iso(real + 3600))
    window = {"from": iso(ahead), "to": iso(ahead + 10)}
    add_rules(mock, {"when": {"window": window}, "fault": {"status": 503}}, namespace="*")
    a = Client(mock, "a")
    assert send(a).status_code == 503
    assert send(Client(mock)).status_code == 200  # default is an hour before the window
    advance(mock, 10, namespace="a")
    assert send(a).status_code == 200


@pytest.mark.parametrize(
    "rule",
    [
        {"when": {"window": {"afterSeconds": 0, "forSeconds": 20}}, "fault": {"status": 503}},
        {"ttl": 30, "fault": {"status": 503}},
    ],
    ids=["after-for-seconds", "ttl"],
)
def test_namespace_rule_lifetime_runs_on_its_clock(mock: MockServer, rule: dict[str, Any]) -> None:
    """A rule added to namespace a with its own clock starts and ends on a's clock."""
    real = freeze(mock)
    freeze(mock, namespace="a", now=iso(real + 3600))
    add_rules(mock, rule, namespace="a")
    a = Client(mock, "a")
    assert send(a).status_code == 503, "the rule should be active right after it was added"
    advance(mock, 30, namespace="a")
    assert send(a).status_code == 200


def test_deleting_a_namespace_resets_only_it(mock: MockServer) -> None:
    add_rules(mock, {"id": "star", "when": {"first": 1}, "fault": {"status": 500}}, namespace="*")
    add_rules(
        mock, {"id": "a-only", "when": {"every": 100}, "fault": {"status": 503}}, namespace="a"
    )
    a, b = Client(mock, "a"), Client(mock, "b")
    for namespace in ("a", "b"):
        freeze(mock, namespace=namespace)
    body, key = make_body(), str(uuid.uuid4())
    assert send(a).status_code == 500
    assert send(b).status_code == 500
    assert send(a, body=body, key=key).status_code == 200
    assert send(b, body=body, key=key).status_code == 200

    response = mock.admin("DELETE", "namespaces/a")
    assert response.status_code == 200, response.text

    assert "a-only" not in listed(mock, "*")
    assert "star" in listed(mock, "*")
    assert mock.requests(namespace="a") == []
    assert mock.requests(namespace="b") != []
    assert mock.admin("GET", "clock", params={"namespace": "a"}).json()["own"] is False
    assert mock.admin("GET", "clock", params={"namespace": "b"}).json()["own"] is True
    a = Client(mock, "a")
    assert send(a).status_code == 500  # a counts from 1 again under the * rule
    assert send(b).status_code == 200  # b does not
    assert send(a, body=body, key=key).status_code == 200  # a's keys are forgotten
    assert error_of(send(b, body=body, key=key)) == (409, "IdempotencyKeyReused")


# -- the journal -------------------------------------------------------------------------------


def test_journal_names_the_rule_of_every_fault(mock: MockServer, client: Client) -> None:
    add_rules(
        mock,
        {"id": "r-reset", "when": {"attempts": [1, 1]}, "fault": {"reset": True}},
        {"id": "r-stall", "when": {"attempts": [2, 2]}, "fault": {"stall": 2}},
        {"id": "r-empty", "when": {"attempts": [3, 3]}, "fault": {"empty": True}},
        {"id": "r-503", "when": {"attempts": [4, 4]}, "fault": {"status": 503}},
        {"id": "r-lost", "when": {"attempts": [5, 5]}, "fault": {"acceptThen": "reset"}},
        {"id": "r-lag", "when": {"attempts": [6, 6]}, "fault": {"delay": 0.05}},
    )
    seen = statuses(7, lambda: send(client, timeout=STALL_TIMEOUT))
    assert seen == ["reset", "timeout", "disconnected", 503, "reset", 200, 200]

    expected = {
        "reset": ("r-reset", 1, 0, "ConnectionReset"),
        "stall": ("r-stall", 2, 0, "Stalled"),
        "empty": ("r-empty", 3, 0, "EmptyReply"),
        "status": ("r-503", 4, 503, "ServiceUnavailableError"),
        "acceptThen": ("r-lost", 5, 0, "ConnectionReset"),
    }
    for kind, (rule, attempt, status, code) in expected.items():
        rows = mock.requests(fault=kind)
        assert len(rows) == 1, (kind, rows)
        note = rows[0]["fault"]
        assert (note["source"], note["rule"], note["kind"], note["attempt"]) == (
            "rule",
            rule,
            kind,
            attempt,
        )
        assert (rows[0]["status"], rows[0]["code"]) == (status, code)
        assert note.get("committed", False) is (kind == "acceptThen")
    assert len(mock.requests(fault="any")) == 6
    assert len(mock.requests(status="0")) == 4
    summary = mock.summary()["requests"]
    assert summary["byFault"] == {
        "reset": 1,
        "stall": 1,
        "empty": 1,
        "status": 1,
        "acceptThen": 1,
        "delay": 1,
    }
    assert summary["byStatus"]["0"] == 4


def test_by_fault_counts_match_the_journal_filters(mock: MockServer, client: Client) -> None:
    """``requests.byFault`` counts per kind; ``?fault=KIND`` finds the same rows, and
    latency-only rows have kind ``delay``."""
    send(client, fault="delay=0.01")
    send(client, fault="status=503")
    send(client, fault="status=502")
    outcome(lambda: send(client, fault="reset"))
    send(client)
    by_fault = mock.summary()["requests"]["byFault"]
    assert by_fault == {"delay": 1, "status": 2, "reset": 1}
    assert len(mock.requests(fault="status")) == 2
    assert len(mock.requests(fault="reset")) == 1
    assert len(mock.requests(fault="any")) == sum(by_fault.values())
    latency_only = mock.requests(fault="delay")
    assert [r["fault"]["delaySeconds"] for r in latency_only] == [0.01]


def test_a_stall_ends_by_closing_the_connection(mock: MockServer, client: Client) -> None:
    client.token()
    started = time.monotonic()
    assert outcome(lambda: send(client, fault="stall=1", timeout=10)) == "disconnected"
    assert time.monotonic() - started >= 0.95


# -- several workers ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockServer]:
    server = start_mock("--workers", "2", tmp_path=tmp_path_factory.mktemp("workers"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def workers(two_workers: MockServer) -> MockServer:
    two_workers.reset()
    return two_workers


def test_first_n_across_two_workers(workers: MockServer) -> None:
    add_rules(workers, {"id": "first3", "when": {"first": 3}, "fault": {"status": 503}})
    client = Client(workers)
    # each send() is a fresh connection, so the kernel spreads them over both workers
    seen = statuses(16, lambda: send(client, headers={"Connection": "close"}))
    assert seen == [503] * 3 + [200] * 13
    assert listed(workers)["first3"]["counters"] == {"default": {"matched": 16, "fired": 3}}


def test_network_faults_under_two_workers(workers: MockServer) -> None:
    client = Client(workers)
    body, key = make_body(2), str(uuid.uuid4())
    assert outcome(lambda: send(client, fault="reset")) == "reset"
    assert outcome(lambda: send(client, fault="stall=2", timeout=STALL_TIMEOUT)) == "timeout"
    assert outcome(lambda: send(client, body=body, key=key, fault="accept-then=reset")) == "reset"
    assert error_of(send(client, body=body, key=key)) == (409, "IdempotencyKeyReused")
    assert deliveries(workers) == dict.fromkeys(ids_of(body), 1)
    codes = [(r["status"], r["code"]) for r in workers.requests(endpoint="/v1/events")]
    assert codes == [
        (409, "IdempotencyKeyReused"),
        (0, "ConnectionReset"),
        (0, "Stalled"),
        (0, "ConnectionReset"),
    ]
    assert statuses(6, lambda: send(client, headers={"Connection": "close"})) == [200] * 6
