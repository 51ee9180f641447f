"""Hostile input: arbitrary bytes, JSON shapes, header values, methods, paths and admin queries.

The property everywhere: the mock never answers 5xx, every answer with a body is strict JSON
(no ``NaN``/``Infinity``), errors come in the envelope (``{"data": {"code", "message"}}`` for
the Event API and the admin API, ``{"error": ...}`` from the token endpoint), and the mock is
still healthy afterwards. The property tests share the session mock (``mock_server``) and do
not reset it between examples; the explicit examples check the exact 4xx code and rule.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from requests.exceptions import InvalidHeader
from requests.utils import check_header_validity

from contract_tests.mock import MockServer
from tests.conftest import (
    ACCOUNT,
    APP_ID,
    APP_SECRET,
    RPUB,
    RSEC,
    Client,
    arbitrary_json,
    basic,
    make_body,
    make_event,
    start_mock,
)

#: At most 60 examples per property, fewer when the loaded profile asks for fewer.
LIMITED = settings(max_examples=min(60, settings.default.max_examples))

API_ERROR_CODES = {"RequestJsonUnmarshalError", "RequestValidationError", "RequestBodyReadError"}
VALID_AUTH = "<valid credentials>"  # replaced by the real header for the drawn API version


# -- checking answers -----------------------------------------------------------------------


def _no_constants(name: str) -> Any:
    raise AssertionError(f"the answer holds {name}, which is not JSON")


def strict_json(response: requests.Response) -> Any:
    ctype = response.headers.get("Content-Type", "")
    assert ctype.startswith("application/json"), (response.status_code, ctype, response.text[:300])
    return json.loads(response.content.decode("utf-8"), parse_constant=_no_constants)


#: docs/dashboard.md: the page at /__admin/ and /__admin/ns/<name>/, and its static files.
_DASHBOARD_FILES = re.compile(r"^/__admin/(ns/[^/]+/)?$|^/__admin/dashboard/static/")


def check_answer(response: requests.Response, method: str = "POST") -> Any:
    """The property every answer must have; returns the parsed body (None when bodiless)."""
    status = response.status_code
    assert status < 500, (status, response.text[:500])
    if method == "HEAD" or (status < 400 and not response.content):
        return None  # HEAD has no body; an automatic OPTIONS 200 carries only Allow
    path = urllib.parse.urlsplit(response.url).path
    if status == 200 and _DASHBOARD_FILES.match(path):
        # the dashboard's page and its static files are the one documented non-JSON answer
        assert response.headers["Content-Type"].startswith(("text/", "application/javascript"))
        return None
    payload = strict_json(response)
    if status >= 400:
        assert isinstance(payload, dict), payload
        is_token = urllib.parse.urlsplit(response.url).path.endswith("/auth/oauth2/token")
        if is_token and method == "POST" and status in (400, 401):
            assert set(payload) <= {"error", "error_description"}, payload
            assert payload["error"] in {
                "invalid_request",
                "invalid_client",
                "unsupported_grant_type",
            }, payload
        else:
            assert set(payload) == {"data"}, payload
            assert isinstance(payload["data"]["code"], str), payload
            assert payload["data"]["code"], payload
            assert isinstance(payload["data"]["message"], str), payload
    return payload


def assert_healthy(mock: MockServer) -> None:
    response = mock.admin("GET", "health")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ok"


def rules_and_pointers(response: requests.Response) -> list[tuple[str, str]]:
    details = response.json()["data"].get("details", {})
    return [(v["rule"], v["pointer"]) for v in details.get("violations", [])]


def assert_refused(
    response: requests.Response, status: int, code: str, *rules: tuple[str, str]
) -> None:
    payload = check_answer(response)
    assert (response.status_code, payload["data"]["code"]) == (status, code), response.text[:500]
    found = rules_and_pointers(response)
    for rule in rules:
        assert rule in found, (rule, response.text[:500])


# -- sending --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def v1_token(mock_server: MockServer) -> str:
    mock_server.reset()  # once for the module, never per example
    return Client(mock_server).token()


def auth_for(api: str, token: str) -> str:
    return f"Bearer {token}" if api == "v1" else basic(RPUB, RSEC)


def post_events(
    mock: MockServer,
    api: str,
    token: str,
    data: bytes,
    headers: dict[str, str | None] | None = None,
    namespace: str | None = None,
    timeout: float = 30,
) -> requests.Response:
    h: dict[str, str | None] = {
        "Authorization": auth_for(api, token),
        "Content-Type": "application/json",
        "Charset": "utf-8",
        "Rokt-Version": "2020-05-21",
        "Idempotency-Key": str(uuid.uuid4()) if api == "v1" else None,
    }
    for name, value in (headers or {}).items():
        h[name] = auth_for(api, token) if value == VALID_AUTH else value
    prefix = f"/ns/{namespace}" if namespace else ""
    return mock.session.post(
        f"{mock.url}{prefix}/{api}/events",
        data=data,
        headers={k: v for k, v in h.items() if v is not None},
        timeout=timeout,
    )


# -- strategies -----------------------------------------------------------------------------

apis = st.sampled_from(["v1", "v2"])
namespaces = st.sampled_from([None, "fuzz", "fuzz.2"])

json_values = arbitrary_json(max_size=4, max_leaves=15)
field_names = st.sampled_from(
    ["clientEventId", "eventType", "eventTime", "metaData", "objectData", "name", "value"]
) | st.text(max_size=10)
rfc3339ish = st.from_regex(
    r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})\Z"
)

#: Around the length limits (36, 128, 256) and past them.
long_texts = st.text(min_size=30, max_size=300) | st.sampled_from(["rokt.x", "ROKT.y", "rOkT."])


def _event_with(key: str, value: Any) -> dict[str, Any]:
    event = make_event()
    event[key] = value
    return event


def _attribute_body(key: str, value: Any, where: str) -> dict[str, Any]:
    event = make_event()
    event[where] = [{"name": "email", "value": "jane@example.com"}, {"name": "x", key: value}]
    return {"accountId": ACCOUNT, "events": [event]}


bodies = st.one_of(
    json_values,
    st.dictionaries(st.sampled_from(["accountId", "events"]) | st.text(max_size=8), json_values),
    st.builds(lambda v: {"accountId": ACCOUNT, "events": v}, json_values),
    st.builds(lambda v: {"accountId": v, "events": [make_event()]}, json_values),
    st.builds(lambda v: {"accountId": ACCOUNT, "events": [make_event(), v]}, json_values),
    st.builds(
        lambda k, v: {"accountId": ACCOUNT, "events": [_event_with(k, v)]},
        field_names,
        json_values | rfc3339ish | long_texts,
    ),
    st.builds(
        _attribute_body,
        st.sampled_from(["name", "value"]) | st.text(max_size=6),
        json_values | long_texts,
        st.sampled_from(["metaData", "objectData"]),
    ),
)


def sendable(value: str) -> bool:
    """What ``requests`` will put on the wire as a header value, minus control characters
    (those are covered by :func:`test_control_characters_in_headers_get_the_envelope`)."""
    try:
        value.encode("latin-1")
        check_header_validity(("X-Probe", value))
    except (UnicodeEncodeError, InvalidHeader):
        return False
    return not re.search(r"[\x00-\x08\x0a-\x1f\x7f]", value)


header_values = st.one_of(
    st.text(st.characters(max_codepoint=0xFF), max_size=60),
    st.text(max_size=8),
    st.binary(max_size=60).map(lambda b: b.decode("latin-1")),
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "application/json; charset=latin-1",
            "application/json;;;",
            "application/",
            "2020-05-21",
            "utf-8",
            "UTF8",
            str(uuid.uuid4()),
            str(uuid.uuid1()),
            str(uuid.uuid4()).upper(),
            "{" + str(uuid.uuid4()) + "}",
            "Bearer ",
            "Basic ",
            "Basic " + "=" * 8,
        ]
    ),
).filter(sendable)
authorizations = st.one_of(
    st.just(VALID_AUTH),
    header_values,
    st.builds(lambda t: f"Bearer {t}", header_values),
    st.builds(lambda u, p: basic(u, p), st.text(max_size=20), st.text(max_size=20)),
    st.builds(lambda u: basic(u, RSEC), st.sampled_from([RPUB, APP_ID, ""])),
).filter(sendable)
optional = st.none()
header_sets = st.fixed_dictionaries(
    {},
    optional={
        "Content-Type": optional | header_values,
        "Rokt-Version": optional | header_values,
        "Charset": optional | header_values,
        "Idempotency-Key": optional | header_values,
        "Authorization": optional | authorizations,
    },
)

methods = st.sampled_from(
    ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE", "PROPFIND"]
) | st.from_regex(r"\A[A-Z][A-Z0-9_-]{2,19}\Z")
segments = st.lists(
    st.text(max_size=12).map(lambda s: urllib.parse.quote(s, safe="")), max_size=3
).map(lambda parts: "".join("/" + p for p in parts))
namespace_names = st.sampled_from(["fuzz", "ci-1", "", ".dot", "-x", "a" * 65]) | st.text(
    max_size=12
).map(lambda s: urllib.parse.quote(s, safe=""))
path_prefixes = st.sampled_from(
    [
        "",
        "/auth/oauth2/token",
        "/v1/events",
        "/v2/events",
        "/ns/{ns}/auth/oauth2/token",
        "/ns/{ns}/v1/events",
        "/ns/{ns}/v2/events",
        "/ns/{ns}",
        "/ns",
        "/__admin",
        "/__admin/health",
        "/openapi.json",
    ]
)
paths = st.builds(
    lambda prefix, ns, rest, keep: prefix.replace("{ns}", ns) + ("" if keep else rest),
    path_prefixes,
    namespace_names,
    segments,
    st.booleans(),
).map(lambda p: p or "/")
form_bodies = st.one_of(
    st.binary(max_size=200),
    st.just(b"grant_type=client_credentials"),
    st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3).map(
        lambda d: urllib.parse.urlencode(d).encode()
    ),
    json_values.map(lambda v: json.dumps(v).encode()),
)

digit_like = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"\A-?[0-9]{1,6}\Z"),
    st.sampled_from(["4xx", "2XX", "5xx", "6xx", "409", "0", "1000", "1001", "abc", ""]),
    rfc3339ish,
)
admin_params = st.dictionaries(
    st.sampled_from(
        [
            "status",
            "limit",
            "since",
            "before",
            "namespace",
            "endpoint",
            "idempotencyKey",
            "clientEventId",
            "accountId",
            "minDeliveries",
            "offset",
        ]
    ),
    digit_like,
    max_size=4,
)
clock_values = json_values | rfc3339ish | st.floats(-4e9, 4e9) | st.integers(-(10**10), 10**10)
clock_bodies = st.one_of(
    json_values,
    st.dictionaries(
        st.sampled_from(["now", "advance", "frozen", "reset"]) | st.text(max_size=8),
        clock_values,
        max_size=4,
    ),
)


# -- properties -----------------------------------------------------------------------------


@LIMITED
@given(data=st.binary(max_size=2000) | st.text().map(str.encode), api=apis, namespace=namespaces)
def test_arbitrary_bytes_to_the_events_endpoints(
    mock_server: MockServer, v1_token: str, data: bytes, api: str, namespace: str | None
) -> None:
    response = post_events(mock_server, api, v1_token, data, namespace=namespace)
    payload = check_answer(response)
    assert response.status_code == 400, response.text[:300]
    assert payload["data"]["code"] in API_ERROR_CODES
    assert_healthy(mock_server)


@LIMITED
@given(body=bodies, api=apis, namespace=namespaces)
def test_arbitrary_json_shapes(
    mock_server: MockServer, v1_token: str, body: Any, api: str, namespace: str | None
) -> None:
    response = post_events(
        mock_server, api, v1_token, json.dumps(body).encode(), namespace=namespace
    )
    payload = check_answer(response)
    status = response.status_code
    assert status in (200, 400, 403), response.text[:300]
    if status == 400:
        assert payload["data"]["code"] in API_ERROR_CODES
        assert rules_and_pointers(response), "a 400 names the rule it broke"
    elif status == 403:
        assert payload["data"]["code"] == "Forbidden"
        assert body["accountId"] != ACCOUNT
    else:
        assert set(payload["data"]) == {"unprocessedRecords", "details"}
        for record in payload["data"]["unprocessedRecords"]:
            assert record["error"]["code"] == "ValidationError"
            assert record["record"] in body["events"]
    assert_healthy(mock_server)


@LIMITED
@given(headers=header_sets, api=apis)
def test_arbitrary_header_values(
    mock_server: MockServer, v1_token: str, headers: dict[str, str | None], api: str
) -> None:
    response = post_events(mock_server, api, v1_token, json.dumps(make_body()).encode(), headers)
    payload = check_answer(response)
    assert response.status_code in (200, 400, 401), response.text[:300]
    # the defaults are valid, so whatever is refused names a header that was drawn
    if response.status_code == 400:
        assert payload["data"]["code"] in {"RequestBodyReadError", "RequestValidationError"}
        rule, pointer = rules_and_pointers(response)[0]
        assert rule.startswith("header."), rule
        assert pointer[1:] in headers, (pointer, headers)
    elif response.status_code == 401:
        assert payload["data"]["code"] == "UnauthorizedError"
        assert headers.get("Authorization", VALID_AUTH) != VALID_AUTH
    assert_healthy(mock_server)


@LIMITED
@given(
    method=methods,
    path=paths,
    body=form_bodies,
    content_type=st.sampled_from(
        [None, "application/json", "application/x-www-form-urlencoded", "text/plain"]
    ),
    authorization=st.sampled_from([None, basic(APP_ID, APP_SECRET), basic(RPUB, RSEC), "x"]),
)
def test_arbitrary_methods_and_paths(
    mock_server: MockServer,
    method: str,
    path: str,
    body: bytes,
    content_type: str | None,
    authorization: str | None,
) -> None:
    headers = {"Content-Type": content_type, "Authorization": authorization}
    response = mock_server.session.request(
        method,
        mock_server.url + path,
        data=body,
        headers={k: v for k, v in headers.items() if v is not None},
        timeout=30,
        allow_redirects=False,
    )
    check_answer(response, method)
    assert_healthy(mock_server)


@LIMITED
@given(
    endpoint=st.sampled_from(["requests", "events", "summary"]),
    params=admin_params,
)
def test_arbitrary_admin_query_parameters(
    mock_server: MockServer, endpoint: str, params: dict[str, str]
) -> None:
    response = mock_server.admin("GET", endpoint, params=params)
    payload = check_answer(response, "GET")
    assert response.status_code in (200, 400), response.text[:300]
    if response.status_code == 400:
        assert payload["data"]["code"] == "BadAdminRequest"
        (violation,) = payload["data"]["details"]["violations"]
        assert violation["rule"] == f"query.{violation['pointer'][1:]}"
        assert violation["pointer"][1:] in params
    assert_healthy(mock_server)


@LIMITED
@given(body=clock_bodies | st.binary(max_size=100))
def test_arbitrary_clock_requests(mock_server: MockServer, body: Any) -> None:
    try:
        if isinstance(body, bytes):
            response = mock_server.admin(
                "POST", "clock", data=body, headers={"Content-Type": "application/json"}
            )
        else:
            response = mock_server.admin("POST", "clock", json=body)
        payload = check_answer(response)
        assert response.status_code in (200, 400), response.text[:300]
        if response.status_code == 400:
            assert payload["data"]["code"] == "BadAdminRequest"
        else:
            assert {"now", "epoch", "frozen"} <= set(payload)
        assert_healthy(mock_server)
    finally:
        mock_server.admin("POST", "clock", json={"reset": True})


# -- explicit examples ----------------------------------------------------------------------

DEEP = 10_000
_BODY = json.dumps(make_body())


def _with_raw_field(event_field: str, raw: str) -> bytes:
    """A valid body whose first event's ``event_field`` is replaced by raw JSON text."""
    event = json.dumps(make_event(**{event_field: "PLACEHOLDER"}))
    event = event.replace('"PLACEHOLDER"', raw)
    return f'{{"accountId": "{ACCOUNT}", "events": [{event}]}}'.encode()


UNMARSHAL = "RequestJsonUnmarshalError"
EXPLICIT_BODIES: list[Any] = [
    pytest.param(
        f'{{"accountId": "{ACCOUNT}\xff", "events": []}}'.encode("latin-1"),
        [("json.utf8", "")],
        id="invalid-utf8",
    ),
    pytest.param(b"\xc3\x28", [("json.utf8", "")], id="invalid-utf8-sequence"),
    pytest.param(b"\xef\xbb\xbf" + _BODY.encode(), [("json.syntax", "")], id="utf8-bom"),
    pytest.param(b"NaN", [("json.syntax", "")], id="NaN"),
    pytest.param(_with_raw_field("eventType", "NaN"), [("json.syntax", "")], id="NaN-field"),
    pytest.param(_with_raw_field("eventType", "-Infinity"), [("json.syntax", "")], id="-Inf"),
    pytest.param(b"[" * DEEP + b"]" * DEEP, [("json.syntax", "")], id="deep-arrays"),
    pytest.param(b'{"a":' * DEEP + b"1" + b"}" * DEEP, [("json.syntax", "")], id="deep-objects"),
    pytest.param(
        _with_raw_field("metaData", "[" * DEEP + "]" * DEEP),
        [("json.syntax", "")],
        id="deep-arrays-in-event",
    ),
    pytest.param(
        _with_raw_field("objectData", '{"a":' * DEEP + "1" + "}" * DEEP),
        [("json.syntax", "")],
        id="deep-objects-in-event",
    ),
    pytest.param(
        f'{{"accountId": {"9" * 5000}, "events": []}}'.encode(),
        [("json.syntax", ""), ("accountId.type", "/accountId")],
        id="5000-digit-integer",
    ),
    pytest.param(
        b'{"accountId": 1e400, "events": []}',
        [("json.syntax", ""), ("accountId.type", "/accountId")],
        id="1e400",
    ),
    pytest.param(
        _with_raw_field("objectData", '[{"name": "amount", "value": 1e400}]'),
        [("json.syntax", ""), ("value.type", "/events/0/objectData/0/value")],
        id="1e400-value",
    ),
    pytest.param(
        _with_raw_field("eventType", '"conv\\ud800"'), [("json.utf8", "")], id="lone-surrogate"
    ),
    pytest.param(
        _with_raw_field("eventType", '"\\udc00x"'), [("json.utf8", "")], id="lone-low-surrogate"
    ),
    pytest.param(b"", [("json.syntax", "")], id="empty"),
    pytest.param(b" \r\n\t ", [("json.syntax", "")], id="whitespace"),
]


@pytest.mark.parametrize(("raw", "any_of"), EXPLICIT_BODIES)
@pytest.mark.parametrize("api", ["v1", "v2"])
def test_explicit_bad_bodies(
    mock_server: MockServer,
    v1_token: str,
    api: str,
    raw: bytes,
    any_of: list[tuple[str, str]],
) -> None:
    response = post_events(mock_server, api, v1_token, raw)
    assert_refused(response, 400, UNMARSHAL)
    assert set(rules_and_pointers(response)) & set(any_of), response.text[:500]
    assert_healthy(mock_server)


def test_paired_surrogate_escape_is_fine(mock_server: MockServer, v1_token: str) -> None:
    response = post_events(
        mock_server, "v2", v1_token, _with_raw_field("eventType", '"\\ud83d\\ude00"')
    )
    assert response.status_code == 200, response.text


def test_body_of_6_mib_gets_413(mock_server: MockServer, v1_token: str) -> None:
    body = make_body()
    body["events"][0]["metaData"] = [{"name": "pad", "value": "p" * (6 * 1024 * 1024)}]
    for api in ("v1", "v2"):
        response = post_events(mock_server, api, v1_token, json.dumps(body).encode())
        assert_refused(response, 413, "RequestEntityTooLarge", ("body.too_large", ""))
    assert_healthy(mock_server)


@pytest.fixture(scope="module")
def scratch() -> Iterator[MockServer]:
    """A private mock for inputs whose answers are huge or that may break the mock's state."""
    server = start_mock()
    try:
        yield server
    finally:
        server.stop()


def test_100000_tiny_events_are_refused_quickly(scratch: MockServer) -> None:
    raw = f'{{"accountId": "{ACCOUNT}", "events": [{",".join(["{}"] * 100_000)}]}}'.encode()
    started = time.monotonic()
    response = post_events(scratch, "v2", "", raw, timeout=60)
    elapsed = time.monotonic() - started
    assert_refused(response, 400, "RequestValidationError", ("events.max_items", "/events"))
    assert elapsed < 5.0, f"answered in {elapsed:.1f} s ({len(response.content)} bytes)"
    assert_healthy(scratch)


EIGHT_KB = "x" * 8192
BIG_HEADERS: list[Any] = [
    pytest.param(
        "Rokt-Version", EIGHT_KB, 400, "RequestValidationError", "header.rokt_version", id="rv"
    ),
    pytest.param(
        "Idempotency-Key",
        EIGHT_KB,
        400,
        "RequestValidationError",
        "header.idempotency_key",
        id="idempotency-key",
    ),
    pytest.param(
        "Content-Type",
        "text/" + EIGHT_KB,
        400,
        "RequestBodyReadError",
        "header.content_type",
        id="content-type",
    ),
    pytest.param("Authorization", "Bearer " + EIGHT_KB, 401, "UnauthorizedError", None, id="auth"),
]


@pytest.mark.parametrize(("name", "value", "status", "code", "rule"), BIG_HEADERS)
def test_header_value_of_8_kb(
    mock_server: MockServer,
    v1_token: str,
    name: str,
    value: str,
    status: int,
    code: str,
    rule: str | None,
) -> None:
    response = post_events(mock_server, "v1", v1_token, _BODY.encode(), {name: value})
    assert_refused(response, status, code)
    if rule is not None:
        assert rule in [r for r, _ in rules_and_pointers(response)]
    assert_healthy(mock_server)


def test_charset_of_8_kb_is_a_warning(mock_server: MockServer, v1_token: str) -> None:
    response = post_events(mock_server, "v2", v1_token, _BODY.encode(), {"Charset": EIGHT_KB})
    assert response.status_code == 200, response.text[:300]
    warnings = response.json()["data"]["details"]["warnings"]
    assert ("header.charset", "/Charset") in [(w["rule"], w["pointer"]) for w in warnings]


@pytest.mark.parametrize("extra", ["1e400", "-1e400", '[1e400, {"x": 1e999}]'])
def test_echoed_record_stays_valid_json(mock_server: MockServer, v1_token: str, extra: str) -> None:
    """An invalid event is echoed in unprocessedRecords; its unknown fields must not turn the
    answer into something JSON cannot hold (Python's json writes ``Infinity``). Refusing the
    out-of-range number while unmarshalling is the other acceptable answer."""
    event = json.dumps(make_event(eventType="t" * 129))
    raw = f'{{"accountId": "{ACCOUNT}", "events": [{event[:-1]}, "extra": {extra}}}]}}'
    response = post_events(mock_server, "v2", v1_token, raw.encode())
    payload = check_answer(response)  # strict JSON: no Infinity
    if response.status_code == 400:
        assert payload["data"]["code"] == UNMARSHAL
    else:
        assert response.status_code == 200
        assert len(payload["data"]["unprocessedRecords"]) == 1
    row = mock_server.requests(limit=1)[0]
    assert row["id"] == int(response.headers["X-Rokt-Mock-Request-Id"])
    assert row["status"] == response.status_code


def test_deep_but_parseable_nesting_in_an_echoed_record(
    mock_server: MockServer, v1_token: str
) -> None:
    depth = 500
    event = json.dumps(make_event(eventType="t" * 129))
    nested = "[" * depth + "]" * depth
    raw = f'{{"accountId": "{ACCOUNT}", "events": [{event[:-1]}, "extra": {nested}}}]}}'
    response = post_events(mock_server, "v1", v1_token, raw.encode())
    payload = check_answer(response)
    assert response.status_code == 200
    assert len(payload["data"]["unprocessedRecords"]) == 1
    assert_healthy(mock_server)


@pytest.mark.parametrize("status", ["\u00b2", "\u2460", "9" * 25, "4" + "0" * 19])
def test_admin_status_filter_refuses_odd_numbers(mock_server: MockServer, status: str) -> None:
    """``str.isdigit`` accepts superscripts and circled digits that ``int`` refuses, and a
    huge number overflows SQLite's integers: each must be a 400, not a 500."""
    response = mock_server.admin("GET", "requests", params={"status": status})
    assert_refused(response, 400, "BadAdminRequest", ("query.status", "/status"))
    assert_healthy(mock_server)


@pytest.mark.parametrize(
    "body",
    [
        b'{"now": "9999-12-31T23:59:58Z", "advance": 1000000000}',
        b'{"now": "0001-01-01T00:00:01Z", "advance": -1000000000}',
        b'{"advance": NaN}',
        b'{"advance": Infinity}',
        b'{"now": "2026-11-20T12:00:00Z", "advance": NaN, "frozen": true}',
    ],
    ids=["past-year-9999", "before-year-1", "NaN", "Infinity", "NaN-frozen"],
)
def test_clock_cannot_be_broken(scratch: MockServer, body: bytes) -> None:
    try:
        response = scratch.admin(
            "POST", "clock", data=body, headers={"Content-Type": "application/json"}
        )
        assert_refused(response, 400, "BadAdminRequest")
        assert_healthy(scratch)
        token = Client(scratch).token_response()
        assert token.status_code == 200, token.text
    finally:
        scratch.admin("POST", "clock", json={"reset": True})


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("POST", {"Rokt-Version": "2020-05-21\x00"}),
        ("POST", {"Charset": "utf-8\x01"}),
        ("POST", {"Idempotency-Key": "\x7f"}),
        ("POST", {"X-Anything": "a\x1bb"}),
        ("ABCDEFGHIJKLMNOPQRSTU", {}),
        ("GO", {}),
    ],
    ids=["nul", "soh", "del", "esc", "21-char-method", "2-char-method"],
)
def test_requests_refused_by_the_http_layer_get_the_envelope(
    mock_server: MockServer, v1_token: str, method: str, headers: dict[str, str]
) -> None:
    """Header values with control characters and odd methods are refused before the app runs;
    decisions.md still promises the JSON envelope everywhere."""
    all_headers = {
        "Authorization": f"Bearer {v1_token}",
        "Content-Type": "application/json",
        "Idempotency-Key": str(uuid.uuid4()),
        **headers,
    }
    response = mock_server.session.request(
        method, f"{mock_server.url}/v1/events", data=_BODY, headers=all_headers, timeout=30
    )
    assert 400 <= response.status_code < 500
    check_answer(response, method)
    assert_healthy(mock_server)
