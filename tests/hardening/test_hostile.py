"""Hostile input at every endpoint, on the wire: never a 5xx, never a hang, healthy afterwards.

The requests are written byte by byte on a raw socket (``exchange``), so nothing between the
test and the server tidies them up: arbitrary bytes, request lines, methods, paths with
percent-encoding, NUL and non-ASCII bytes, header names and values, framing (Content-Length,
chunked, Expect), content types and charsets, JSON shapes, admin query strings and bodies.
Every exchange has a deadline (a hang fails the test) and every answer must pass
``check_answer``: a status below 500, no redirect, and a strict-JSON body in the documented
envelope (``{"data": {"code", "message"}}``, or RFC 6749 ``{"error"}`` from the token endpoint)
for every error.

Each property test runs one bounded batch (the hypothesis profile's examples: 60 under ``ci``)
against a private mock and then checks that it survived (``Target.survived``): health is 200
"ok", a valid token, v1 and v2 request still succeed, and the sentinel events accepted before
the batch are still journaled, delivered once (nothing already accepted is lost). Fault
injection is never asked for: ``X-Rokt-Mock-Fault`` (in any spelling) is never generated, and
a fault rule or clock change that hostile admin input manages to store is undone at once.

Bugs found are kept as strict xfails with a reproduction in the docstring until they are fixed
(then as plain tests that say where they were fixed); the property tests steer clear of exactly
the inputs of an open one (each such filter names its xfail test).
"""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from contract_tests.mock import MockServer
from tests.conftest import (
    APP_ID,
    APP_SECRET,
    RPUB,
    RSEC,
    Client,
    arbitrary_json,
    basic,
    make_body,
    start_mock,
)

#: One batch per property test: the loaded profile's examples (60 under ci), at most 60.
BATCH = settings(max_examples=min(60, settings.default.max_examples))
#: A raw exchange that neither answers nor closes within this many seconds is a hang.
DEADLINE = 10.0

OAUTH_ERRORS = {"invalid_request", "invalid_client", "unsupported_grant_type"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}

# -- the raw client -------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return strict_json(self.body)


@dataclass
class Exchange:
    sent: bytes
    answers: list[Answer] = field(default_factory=list)
    reset: bool = False

    @property
    def first(self) -> Answer:
        assert self.answers, f"no answer to {self.sent[:300]!r}"
        return self.answers[0]


def _no_constants(name: str) -> Any:
    raise AssertionError(f"the answer holds {name}, which is not JSON")


def strict_json(body: bytes) -> Any:
    return json.loads(body.decode("utf-8"), parse_constant=_no_constants)


def _address(mock: MockServer) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(mock.url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


def exchange(mock: MockServer, data: bytes, *, head: bool = False) -> Exchange:
    """Send ``data``, half-close, read until the server closes; fail if it never does."""
    result = Exchange(data)
    received = bytearray()
    deadline = time.monotonic() + DEADLINE
    with socket.create_connection(_address(mock), timeout=DEADLINE) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # it answered and closed before reading everything: the answer is read below
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                raise AssertionError(
                    f"the server neither answered nor closed within {DEADLINE} s: {data[:300]!r}"
                ) from None
            except ConnectionResetError:
                result.reset = True
                break
            if not chunk:
                break
            received += chunk
    result.answers = parse_answers(bytes(received), head)
    return result


#: Never sent by the property tests: fault injection, which answers 5xx, resets or stalls on
#: purpose. A CR or LF inside a drawn name or value could otherwise write such a header line.
NEVER = (b"x-rokt-mock-fault", b"x_rokt_mock_fault")


def hostile_exchange(mock: MockServer, data: bytes, *, head: bool = False) -> Exchange:
    """``exchange`` for drawn input, which steers clear of :data:`NEVER`."""
    lowered = data.lower()
    assume(not any(word in lowered for word in NEVER))
    return exchange(mock, data, head=head)


KNOWN_CODINGS = {"chunked", "gzip", "x-gzip", "deflate", "compress", "x-compress", "identity"}
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")


def _codings(data: bytes) -> list[list[str]]:
    """The codings of each Transfer-Encoding line in the head of ``data``."""
    head = data.split(b"\r\n\r\n", 1)[0]
    found = []
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() == b"transfer-encoding":
            found.append([part.strip() for part in value.decode("latin-1").split(",")])
    return found


def unknown_coding(data: bytes) -> bool:
    """A well-formed Transfer-Encoding naming a coding the server does not implement, which
    RFC 9112 §6.1 answers with 501 (Go's net/http does the same): the one 5xx accepted."""
    return any(
        all(_TOKEN.match(c) for c in codings)
        and any(c.lower() not in KNOWN_CODINGS for c in codings)
        for codings in _codings(data)
    )


def _dechunk(data: bytes, pos: int) -> tuple[bytes, int]:
    body = bytearray()
    while True:
        end = data.index(b"\r\n", pos)
        size = int(data[pos:end].split(b";")[0], 16)
        pos = end + 2
        if size == 0:
            return bytes(body), data.index(b"\r\n\r\n", pos - 2) + 4
        body += data[pos : pos + size]
        pos += size + 2


def parse_answers(data: bytes, head: bool) -> list[Answer]:
    """Every HTTP/1.x answer in ``data`` (pipelined ones too); interim 1xx answers skipped."""
    answers: list[Answer] = []
    pos = 0
    while pos < len(data):
        end = data.find(b"\r\n\r\n", pos)
        assert end >= 0, f"an incomplete answer: {data[pos : pos + 300]!r}"
        lines = data[pos:end].split(b"\r\n")
        match = re.match(rb"HTTP/1\.[01] (\d{3}) ", lines[0] + b" ")
        assert match, f"not an HTTP answer: {data[pos : pos + 300]!r}"
        status = int(match.group(1))
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
        pos = end + 4
        if 100 <= status < 200:
            continue
        if status in (204, 304) or (head and not answers and not data.startswith(b"{", pos)):
            body = b""  # gunicorn's own error answers carry a body even for HEAD
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body, pos = _dechunk(data, pos)
        elif "content-length" in headers:
            length = int(headers["content-length"])
            body, pos = data[pos : pos + length], pos + length
        else:
            body, pos = data[pos:], len(data)
        answers.append(Answer(status, headers, body))
    return answers


#: The dashboard's page and files (docs/dashboard.md): the only answers that are not JSON.
DASHBOARD_PAGE = re.compile(r"/__admin(/ns/[^/?]+)?/?(\?.*)?\Z")
DASHBOARD_FILE = re.compile(r"/__admin/dashboard/static/")
PAGE_TYPES = ("text/html", "text/css", "text/javascript", "application/javascript")


def check_answer(answer: Answer, method: str | None = None, path: str | None = None) -> Any:
    """The property every answer has; returns the parsed body (None when bodiless).

    ``method`` and ``path`` are those of the request when the test knows them: a GET of the
    dashboard's page may answer HTML, and ``/__admin`` redirects to ``/__admin/``."""
    assert answer.status < 500, (answer.status, answer.body[:500])
    ctype = answer.headers.get("content-type", "")
    page = method in ("GET", "HEAD") and path is not None
    if page and 300 <= answer.status < 400:
        location = urllib.parse.urlsplit(answer.headers.get("location", "")).path
        assert DASHBOARD_PAGE.match(path), ("an undocumented redirect", path, answer)
        assert location == urllib.parse.urlsplit(path).path + "/", (path, answer)
        return None
    assert not 300 <= answer.status < 400, ("an undocumented redirect", answer)
    if page and answer.status < 300 and ctype.startswith(PAGE_TYPES):
        assert DASHBOARD_PAGE.match(path) or DASHBOARD_FILE.match(path), (path, answer)
        return None
    if answer.status >= 400:
        if not answer.body:  # an error answer to HEAD
            return None
        assert ctype.startswith("application/json"), (answer.status, ctype, answer.body[:300])
        payload = answer.json()
        assert isinstance(payload, dict), payload
        if "error" in payload:
            assert set(payload) <= {"error", "error_description"}, payload
            assert payload["error"] in OAUTH_ERRORS, payload
            return payload
        assert set(payload) == {"data"}, payload
        data = payload["data"]
        assert isinstance(data["code"], str), payload
        assert data["code"], payload
        assert isinstance(data["message"], str), payload
        for violation in data.get("details", {}).get("violations", []):
            assert violation["in"] in {"body", "header", "query"}, violation
            assert isinstance(violation["pointer"], str), violation
            assert re.fullmatch(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)+", violation["rule"]), violation
        return payload
    if not answer.body:
        return None  # HEAD, or the automatic OPTIONS answer that carries only Allow
    if ctype.startswith("application/x-ndjson"):
        return [strict_json(line) for line in answer.body.splitlines() if line]
    assert ctype.startswith("application/json"), (answer.status, ctype, answer.body[:300])
    return answer.json()


def check_all(result: Exchange, method: str | None = None, path: str | None = None) -> None:
    for i, answer in enumerate(result.answers):
        if answer.status == 501 and unknown_coding(result.sent):
            assert answer.json()["data"]["code"] == "NotImplemented", answer
            continue
        try:
            check_answer(answer, method if i == 0 else None, path if i == 0 else None)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n  in answer to: {result.sent[:600]!r}") from None


def request_bytes(
    method: str,
    target: str | bytes,
    headers: list[tuple[str, str]] | list[tuple[bytes, bytes]] = (),  # type: ignore[assignment]
    body: bytes = b"",
    *,
    length: bool = True,
    version: bytes = b"HTTP/1.1",
    host: str = "rokt-mock.test",
) -> bytes:
    def raw(value: str | bytes) -> bytes:
        return value if isinstance(value, bytes) else value.encode("latin-1")

    lines = [raw(method) + b" " + raw(target) + b" " + version, b"Host: " + raw(host)]
    lines += [raw(name) + b": " + raw(value) for name, value in headers]
    if length:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


# -- the mock under fire --------------------------------------------------------------------------


class Target:
    """A private mock with sentinel events accepted before any hostile input."""

    def __init__(self, mock: MockServer) -> None:
        self.mock = mock
        self.client = Client(mock)
        self.token = self.client.token()
        self.sentinel = self._seed()

    def _seed(self) -> list[str]:
        body = make_body(3)
        response = Client(self.mock, namespace="sentinel").v1(body)
        assert response.status_code == 200, response.text
        assert response.json()["data"]["details"]["accepted"] == 3
        return [event["clientEventId"] for event in body["events"]]

    def reseed(self) -> None:
        self.mock.reset()
        self.sentinel = self._seed()

    def undo_admin_writes(self) -> None:
        """Hostile admin input may store a fault rule or move a clock: start over."""
        self.mock.reset()

    def auth(self, kind: str) -> str:
        return {
            "bearer": f"Bearer {self.token}",
            "app": basic(APP_ID, APP_SECRET),
            "keys": basic(RPUB, RSEC),
        }[kind]

    def survived(self, *, sentinel: bool = True) -> None:
        health = self.mock.admin("GET", "health")
        assert health.status_code == 200, health.text
        assert health.json()["status"] == "ok"
        assert self.client.token_response().status_code == 200
        for response in (self.client.v1(), self.client.v2()):
            assert response.status_code == 200, response.text[:500]
            assert response.json()["data"]["unprocessedRecords"] == []
            assert response.json()["data"]["details"]["accepted"] == 1
        if sentinel:
            listed = self.mock.admin("GET", "events", params={"namespace": "sentinel"}).json()
            deliveries = {e["clientEventId"]: e["deliveries"] for e in listed["events"]}
            for ceid in self.sentinel:
                assert deliveries.get(ceid) == 1, (ceid, deliveries)


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    server = start_mock()
    try:
        yield Target(server)
    finally:
        server.stop()


# -- strategies -----------------------------------------------------------------------------------

FAULT_HEADER = "x-rokt-mock-fault"


def is_fault_header(name: str | bytes) -> bool:
    text = name.decode("latin-1") if isinstance(name, bytes) else name
    return text.strip().lower().replace("_", "-") == FAULT_HEADER


ENDPOINTS = [
    "/auth/oauth2/token",
    "/v1/events",
    "/v2/events",
    "/openapi.json",
    "/__admin/health",
    "/__admin/requests",
    "/__admin/events",
    "/__admin/summary",
    "/__admin/journal",
    "/__admin/journal/export",
    "/__admin/clock",
    "/__admin/reset",
    "/__admin/faults",
    "/__admin/faults/x-1",
    "/__admin/namespaces/fuzz",
    "/__admin/dashboard/funnel",
    "/__admin/dashboard/requests",
    "/__admin/dashboard/namespaces",
    "/__admin/dashboard/scenarios",
    "/__admin/dashboard/static/dashboard.js",
    "/__admin/ns/fuzz/",
    "/__admin/",
    "/__admin",
    "/ns",
    "/",
]
namespace_names = st.one_of(
    st.sampled_from(["fuzz", "ci-1", "sentinel", "a" * 64, "a" * 65, ".x", "-x", "*", "%2A"]),
    st.sampled_from(["..", ".", "%2e%2e", "%00", "a%00b", "%2F", "%", "%zz", "%C0%AF", "%ff"]),
    st.text(min_size=1, max_size=12).map(lambda s: urllib.parse.quote(s, safe="")),
)
segments = st.one_of(
    st.text(min_size=1, max_size=12).map(lambda s: urllib.parse.quote(s, safe="")),
    st.sampled_from(["..", ".", "%00", "%2F", "%2f..%2f", "~", ";x=1", "%", "%G0", "%e2%82", ""]),
    st.integers(100, 3000).map(lambda n: "a" * n),
)
query_keys = st.sampled_from(
    [
        *["namespace", "status", "limit", "before", "since", "fault", "endpoint", "offset"],
        *["minDeliveries", "accountId", "clientEventId", "idempotencyKey", "x", "limit[]", ""],
        "window",
    ]
)
query_values = st.one_of(
    st.sampled_from(["", "*", "0", "-1", "4xx", "1e9", "9" * 30, "%00", "%ff", "%", "a%zz"]),
    st.text(max_size=20).map(lambda s: urllib.parse.quote(s, safe="")),
    st.from_regex(r"\A-?[0-9]{1,20}\Z"),
)
queries = st.lists(st.tuples(query_keys, query_values), max_size=5).map(
    lambda pairs: "&".join(f"{k}={v}" for k, v in pairs)
)


@st.composite
def paths(draw: st.DrawFn) -> str:
    """An endpoint, maybe under /ns/<weird>, maybe with extra (or empty) segments and a query
    string."""
    path = draw(st.sampled_from(ENDPOINTS))
    if draw(st.booleans()) and not path.startswith("/__admin"):
        path = f"/ns/{draw(namespace_names)}{path}".rstrip("/")
    for segment in draw(st.lists(segments, max_size=2)):
        path += "/" + segment
    if draw(st.booleans()):
        path += "?" + draw(queries)
    return path or "/"


methods = st.one_of(
    st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE"]),
    st.sampled_from(["CONNECT", "PROPFIND", "PRI", "get", "G\x00T", "M" * 40, "PO ST", ""]),
    st.from_regex(r"\A[A-Z][A-Z0-9_-]{0,19}\Z"),
)

json_values = arbitrary_json(max_size=5, max_leaves=40)


def _raw_json_texts() -> st.SearchStrategy[bytes]:
    """JSON text that a serializer never writes: duplicate keys, huge or odd numbers, escapes,
    invalid UTF-8, a BOM, trailing data, and documents that are almost JSON."""
    valid = json.dumps(make_body())
    return st.sampled_from(
        [
            b'{"accountId": "1234567890", "accountId": "other", "events": []}',
            b'{"events": [], "events": [{}], "accountId": "1234567890"}',
            ('{"accountId": ' + "9" * 20000 + ', "events": []}').encode(),
            b'{"accountId": 1e999, "events": [-0, -0.0, 1E-400, 0.1e1]}',
            b'{"now": "2026-11-20T12:00:00Z", "advance": 1e308, "frozen": true}',
            b'{"advance": -1e-400, "now": "\\u0032026-11-20T12:00:00Z"}',
            b'{"fault": {"status": 503}, "fault": {"status": 99999999999999999999}}',
            b'{"rules": [' + b"{}," * 5000 + b"{}]}",
            b'{"scenario": "\\u0000"}',
            b'{"a": "\\ud800"}',
            b'{"a": "\\udfff\\ud800"}',
            b'{"a": "\xff\xfe"}',
            b'{"a": "\xc0\xaf"}',
            b'{"a": "\xed\xa0\x80"}',
            b"\xef\xbb\xbf" + valid.encode(),
            valid.encode() + b" trailing",
            valid.encode() + valid.encode(),
            valid.encode("utf-16"),
            valid.encode("utf-32"),
            b"{'accountId': '1234567890'}",
            b'{"a" 1}',
            b'{"a": 1,}',
            b"[1, 2, ]",
            b"\x00" * 64,
            b'"' + b"\\" * 5001 + b'"',
            b"[" * 900 + b"]" * 900,
            b'{"a":' * 900 + b"1" + b"}" * 900,
        ]
    )


#: Where a mutated body gets a drawn value: request level, event level, attribute level.
BODY_SPOTS = [
    ("accountId",),
    ("events",),
    ("events", 0),
    ("events", 0, "clientEventId"),
    ("events", 0, "eventType"),
    ("events", 0, "eventTime"),
    ("events", 0, "objectData"),
    ("events", 0, "objectData", 0),
    ("events", 0, "objectData", 0, "name"),
    ("events", 0, "objectData", 0, "value"),
    ("events", 0, "metaData"),
]


#: An unknown field with a drawn name, at the top, in an event or in an attribute.
drawn_keys = st.builds(
    lambda prefix, key: (*prefix, key),
    st.sampled_from([(), ("events", 0), ("events", 0, "metaData", 0)]),
    st.text(max_size=8).filter(lambda k: not (k.isdigit() and not k.isdecimal())),
)


def _mutate(spot: tuple[Any, ...], value: Any) -> dict[str, Any]:
    body = make_body(2)
    body["events"][0]["metaData"] = [{"name": "note", "value": "x"}]
    node: Any = body
    for key in spot[:-1]:
        node = node[key]
    node[spot[-1]] = value
    return body


def json_bodies() -> st.SearchStrategy[bytes]:
    return st.one_of(
        json_values.map(lambda v: json.dumps(v).encode()),
        st.builds(_mutate, st.sampled_from(BODY_SPOTS) | drawn_keys, json_values).map(
            lambda body: json.dumps(body).encode()
        ),
        _raw_json_texts(),
        st.binary(max_size=300),
    )


# -- properties -----------------------------------------------------------------------------------


def test_arbitrary_bytes_on_the_socket(target: Target) -> None:
    @BATCH
    @given(
        data=st.one_of(
            st.binary(max_size=4096),
            st.text(max_size=500).map(lambda s: s.encode("utf-8", "surrogatepass")),
            st.lists(
                st.sampled_from(
                    [
                        *[b"GET ", b"POST ", b"/v1/events", b"/__admin/health", b" HTTP/1.1"],
                        *[b"\r\n", b"\r\n\r\n", b"Host: x", b"Content-Length: 5", b"\n"],
                        *[b"\x00", b": ", b"Expect: 100-continue", b"Connection: close"],
                        *[b"Transfer-Encoding: chunked", b"0\r\n", b"zz\r\n", b"5\r\nab"],
                    ]
                ),
                max_size=12,
            ).map(b"".join),
        )
    )
    def batch(data: bytes) -> None:
        result = hostile_exchange(target.mock, data)
        check_all(result)

    batch()
    target.survived()


def test_methods_and_paths_everywhere(target: Target) -> None:
    """Any method on any path (the Event API, /ns/<weird>/..., /__admin/..., unknown ones),
    with percent-encoding, long segments, NUL and raw non-ASCII bytes, query strings and a
    body; admin writes that succeed are undone at once."""
    wiped = []

    @BATCH
    @given(
        method=methods,
        path=paths(),
        raw_tail=st.none() | st.binary(min_size=1, max_size=8),
        auth=st.sampled_from([None, "bearer", "app", "keys"]),
        content_type=st.sampled_from(
            [None, "application/json", "application/x-www-form-urlencoded", "text/plain"]
        ),
        body=st.just(b"") | json_bodies() | st.just(b"grant_type=client_credentials"),
    )
    def batch(
        method: str,
        path: str,
        raw_tail: bytes | None,
        auth: str | None,
        content_type: str | None,
        body: bytes,
    ) -> None:
        target_bytes = path.encode() + (raw_tail or b"")
        headers = [("Authorization", target.auth(auth))] if auth else []
        headers += [("Content-Type", content_type)] if content_type else []
        if "__admin" not in path:
            headers.append(("Idempotency-Key", str(uuid.uuid4())))
        result = hostile_exchange(
            target.mock, request_bytes(method, target_bytes, headers, body), head=method == "HEAD"
        )
        check_all(result, method, target_bytes.decode("latin-1"))
        written = any(a.status < 300 for a in result.answers)
        if "__admin" in path and method not in SAFE_METHODS and written:
            target.undo_admin_writes()
            wiped.append(path)

    batch()
    target.survived(sentinel=not wiped)
    if wiped:
        target.reseed()


#: Headers whose value the mock (or gunicorn in front of it) reads: a change to them may change
#: the answer.
READ_HEADERS = {
    "authorization",
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "charset",
    "rokt-version",
    "idempotency-key",
    "host",
    "expect",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "forwarded",
}
TOKEN_CHARS = "!#$%&'*+-.^`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_token_names = st.text(TOKEN_CHARS, min_size=1, max_size=30)
header_names = st.one_of(  # well-formed names drawn three times as often
    _token_names,
    _token_names,
    _token_names,
    st.sampled_from([*sorted(READ_HEADERS), "X-Forwarded-Proto"]),
    st.sampled_from(["Rokt-Version", "CHARSET", "idempotency-key", "Content-type", "X_Under"]),
    st.binary(min_size=1, max_size=20).map(lambda b: b.decode("latin-1")),
    st.sampled_from(["", " ", "Bad Name", "a:b", "\u00e9t\u00e9", "X-\x00", "(x)", "X" * 300]),
).filter(lambda name: not is_fault_header(name))
_printable_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
header_field_values = st.one_of(  # well-formed values drawn three times as often
    _printable_values,
    _printable_values,
    _printable_values,
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
    st.sampled_from(["", " x ", "\t", "a\x00b", "a\rb", "\x7f", "\u00ff\u00fe", "x" * 8000]),
    st.sampled_from(["application/json", "2020-05-21", "utf-8", "100-continue", "close", "-1"]),
    st.sampled_from(["Basic " + "=" * 10, "Bearer ", basic(RPUB, RSEC), "h2c", "gzip", "5"]),
    st.sampled_from(["chunked", "gzip, chunked", "chunked, chunked", "identity", "Chunked"]),
)


def well_formed(name: str, value: str) -> bool:
    return bool(re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", name)) and not re.search(
        r"[\x00-\x08\x0a-\x1f\x7f]", value
    )


VALID_REQUESTS = {
    "v1": ("POST", "/v1/events", "bearer", "application/json", 200),
    "v2": ("POST", "/ns/fuzz/v2/events", "keys", "application/json", 200),
    "token": ("POST", "/auth/oauth2/token", "app", "application/x-www-form-urlencoded", 200),
    "health": ("GET", "/__admin/health", None, None, 200),
    "requests": ("GET", "/__admin/requests?limit=1", None, None, 200),
}


def valid_request(target: Target, kind: str) -> tuple[str, str, list[tuple[str, str]], bytes]:
    method, path, auth, ctype, _ = VALID_REQUESTS[kind]
    headers = [("Authorization", target.auth(auth))] if auth else []
    headers += [("Content-Type", ctype)] if ctype else []
    body = b""
    if kind in ("v1", "v2"):
        headers += [("Charset", "utf-8"), ("Rokt-Version", "2020-05-21")]
        headers += [("Idempotency-Key", str(uuid.uuid4()))] if kind == "v1" else []
        body = json.dumps(make_body()).encode()
    elif kind == "token":
        body = b"grant_type=client_credentials"
    return method, path, headers, body


def test_arbitrary_header_names_and_values(target: Target) -> None:
    """Extra header lines on otherwise valid requests. A well-formed header the mock does not
    read must not change the answer; anything else gets a 4xx in the envelope."""
    harmless_seen = []

    @BATCH
    @given(
        kind=st.sampled_from(sorted(VALID_REQUESTS)),
        extra=st.lists(st.tuples(header_names, header_field_values), min_size=1, max_size=4),
        ending=st.sampled_from([b"\r\n", b"\r\n", b"\n"]),
    )
    def batch(kind: str, extra: list[tuple[str, str]], ending: bytes) -> None:
        method, path, headers, body = valid_request(target, kind)
        data = request_bytes(method, path, [*headers, *extra], body)
        if ending != b"\r\n":  # one bare LF in the middle of the head
            head, _, rest = data.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            data = b"\r\n".join(lines[:-1]) + ending + lines[-1] + b"\r\n\r\n" + rest
        result = hostile_exchange(target.mock, data)
        check_all(result)
        harmless = ending == b"\r\n" and all(
            well_formed(name, value)
            and name.lower() not in READ_HEADERS
            and not name.lower().startswith("x-forwarded")
            for name, value in extra
        )
        if harmless:
            harmless_seen.append(kind)
            assert result.first.status == VALID_REQUESTS[kind][4], (extra, result.first)

    batch()
    assert harmless_seen, "no example exercised the unchanged-answer property"
    target.survived()


_media_types = st.sampled_from(
    [
        "application/json",
        "APPLICATION/JSON",
        "application/json; charset=utf-8",
        'application/json; charset="UTF-8"',
        "application/json;charset=utf-16",
        "application/json; charset=latin-1",
        "application/json; boundary=x; q=0.5",
        "application/json;;;",
        "application/jsonx",
        "application/vnd.api+json",
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=utf-16",
        "multipart/form-data; boundary=----x",
        "text/plain",
        "text/json",
        "*/*",
        "application/",
        "",
        " ",
    ]
)
media_types = st.one_of(  # the listed ones drawn twice as often as printable noise
    _media_types,
    _media_types,
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
)
encodings = st.sampled_from(
    ["utf-8", "utf-8", "utf-8", "utf-8-sig", "utf-16", "utf-16-be", "utf-32", "latin-1"]
)


def is_json_media_type(value: str) -> bool:
    return value.split(";")[0].strip().lower() == "application/json"


def test_content_types_and_charsets(target: Target) -> None:
    """Valid documents under any Content-Type, Charset and text encoding, to the JSON and form
    endpoints. The events endpoints take application/json (parameters allowed) in UTF-8 and
    nothing else; the token endpoint takes the form media type."""
    accepted = []

    @BATCH
    @given(
        kind=st.sampled_from(["v1", "v2", "token", "clock", "faults"]),
        media_type=media_types,
        charset=st.none() | st.sampled_from(["utf-8", "UTF-8", "utf-16", "latin-1", "x" * 300]),
        encoding=encodings,
    )
    def batch(kind: str, media_type: str, charset: str | None, encoding: str) -> None:
        if kind in ("v1", "v2", "token"):
            method, path, headers, body = valid_request(target, kind)
            headers = [(n, v) for n, v in headers if n not in ("Content-Type", "Charset")]
            text = body.decode()
            if kind != "token":  # not ASCII, so that only UTF-8 bytes are UTF-8
                body = make_body(metaData=[{"name": "note", "value": "caf\u00e9"}])
                text = json.dumps(body, ensure_ascii=False)
        else:
            method, path, headers = "POST", f"/__admin/{kind}", []
            # a well-formed body the endpoint refuses, so nothing is ever stored
            text = '{"frozen": "maybe"}' if kind == "clock" else '{"rules": []}'
        headers.append(("Content-Type", media_type))
        if charset is not None:
            headers.append(("Charset", charset))
        result = hostile_exchange(
            target.mock, request_bytes(method, path, headers, text.encode(encoding))
        )
        check_all(result)
        status = result.first.status
        utf8 = encoding == "utf-8"
        context = (kind, media_type, charset, encoding, result.first)
        if kind in ("v1", "v2"):
            if is_json_media_type(media_type) and utf8:
                accepted.append(kind)
                assert status == 200, context
            elif not is_json_media_type(media_type):
                assert status == 400, context
                violations = result.first.json()["data"]["details"]["violations"]
                assert violations[0]["pointer"] == "/Content-Type", violations
            else:
                assert status == 400, context
                assert result.first.json()["data"]["code"] == "RequestJsonUnmarshalError"
        elif kind == "token":
            form = media_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded"
            expected = 200 if form and encoding in ("utf-8", "latin-1") else 400
            assert status == expected, context
        else:
            assert status == 400, context  # the bodies above are refused whatever the type

    batch()
    assert accepted, "no example sent a valid events request"
    target.survived()


JSON_ENDPOINTS = {
    "v1": ("/v1/events", "bearer", "application/json"),
    "v2": ("/v2/events", "keys", "application/json"),
    "ns-v2": ("/ns/fuzz/v2/events", "keys", "application/json"),
    "token": ("/auth/oauth2/token", "app", "application/json"),
    "token-form": ("/auth/oauth2/token", "app", "application/x-www-form-urlencoded"),
    "clock": ("/__admin/clock", None, "application/json"),
    "faults": ("/__admin/faults", None, "application/json"),
    "ns-faults": ("/__admin/faults?namespace=fuzz", None, "application/json"),
    "reset": ("/__admin/reset?namespace=fuzz", None, "application/json"),
}


def test_json_shapes_to_every_json_endpoint(target: Target) -> None:
    """Recursive JSON values, raw JSON text no serializer writes (duplicate keys, 20,000-digit
    numbers, 1e999, lone surrogates, invalid UTF-8, BOM, trailing data, 900-deep nesting) and
    plain bytes, to the events, token and admin POST endpoints."""
    stored = []

    @BATCH
    @given(kind=st.sampled_from(sorted(JSON_ENDPOINTS)), body=json_bodies())
    def batch(kind: str, body: bytes) -> None:
        path, auth, ctype = JSON_ENDPOINTS[kind]
        headers = [("Authorization", target.auth(auth))] if auth else []
        headers += [("Content-Type", ctype), ("Charset", "utf-8")]
        if kind == "v1":
            headers.append(("Idempotency-Key", str(uuid.uuid4())))
        result = hostile_exchange(target.mock, request_bytes("POST", path, headers, body))
        check_all(result)
        status = result.first.status
        if kind.endswith("v1") or kind.endswith("v2"):
            assert status in (200, 400, 403), result.first
            if status == 400:  # a request-level refusal names where it broke
                assert result.first.json()["data"]["details"]["violations"], result.first
        elif kind == "token":
            assert status == 400, result.first  # JSON is not the form media type
        elif kind == "token-form":
            assert status in (200, 400), result.first
        else:
            assert status in (200, 201, 400), result.first
            if status < 300 and kind != "reset":
                stored.append(kind)
                target.undo_admin_writes()

    batch()
    target.survived(sentinel=not stored)
    if stored:
        target.reseed()


KNOWN_FIELDS = {"accountId", "events", "clientEventId", "eventType", "eventTime"}
KNOWN_FIELDS |= {"metaData", "objectData", "name", "value"}


def pointer_escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def test_unknown_fields_are_warned_at_their_pointer(target: Target) -> None:
    """An unknown field of any name (slashes, tildes, NUL, empty, digits, "__proto__") at the
    top, in an event and in an attribute is tolerated, and warned about at its JSON pointer,
    escaped as RFC 6901 says."""

    @BATCH
    @given(
        key=st.one_of(
            st.text(max_size=12),
            st.sampled_from(["", "0", "-1", "a/b", "~", "~1", "a~0/", "__proto__", "\x00", "."]),
        ).filter(lambda k: k not in KNOWN_FIELDS),
        value=json_values,
        api=st.sampled_from(["v1", "v2"]),
    )
    def batch(key: str, value: Any, api: str) -> None:
        body = make_body(metaData=[{"name": "note", "value": "x", key: value}])
        body[key] = value
        body["events"][0][key] = value
        response = target.client.v1(body) if api == "v1" else target.client.v2(body)
        assert response.status_code == 200, response.text[:500]
        details = response.json()["data"]["details"]
        assert details["accepted"] == 1, details
        escaped = pointer_escape(key)
        warned = {(w["rule"], w["pointer"]) for w in details["warnings"]}
        assert {
            ("body.unknown_field", f"/{escaped}"),
            ("event.unknown_field", f"/events/0/{escaped}"),
            ("attribute.unknown_field", f"/events/0/metaData/0/{escaped}"),
        } <= warned, (key, warned)

    batch()
    target.survived()


def test_arbitrary_admin_query_strings(target: Target) -> None:
    """Raw query strings (repeated, empty, percent-garbage, arrays, huge numbers) on every admin
    endpoint that reads one. 200 or 400 BadAdminRequest naming a parameter that was sent (404
    for an unknown rule id)."""
    wiped = []

    @BATCH
    @given(
        route=st.sampled_from(
            [
                ("GET", "requests"),
                ("GET", "events"),
                ("GET", "summary"),
                ("GET", "journal/export"),
                ("GET", "faults"),
                ("GET", "clock"),
                ("GET", "dashboard/funnel"),
                ("GET", "dashboard/requests"),
                ("DELETE", "faults"),
                ("DELETE", "faults/nope"),
                ("DELETE", "journal"),
                ("POST", "reset"),
                ("DELETE", "namespaces/fuzz"),
            ]
        ),
        query=queries,
        raw_tail=st.sampled_from(["", "&", "&&", "#frag", "&%", "&=", "&a=%ff%fe", "&;"]),
    )
    def batch(route: tuple[str, str], query: str, raw_tail: str) -> None:
        method, path = route
        result = hostile_exchange(
            target.mock, request_bytes(method, f"/__admin/{path}?{query}{raw_tail}")
        )
        check_all(result)
        answer = result.first
        assert answer.status in (200, 400, 404), answer
        if answer.status == 404:
            assert path == "faults/nope", answer
        elif answer.status == 400:
            data = answer.json()["data"]
            assert data["code"] == "BadAdminRequest", data
            sent = {k for k, _ in urllib.parse.parse_qsl(query, keep_blank_values=True)}
            for violation in data["details"]["violations"]:
                assert violation["in"] == "query", violation
                assert violation["rule"] == "query." + violation["pointer"][1:], violation
                assert violation["pointer"][1:] in sent, (violation, query)
        elif method != "GET":
            wiped.append(path)

    batch()
    target.survived(sentinel=not wiped)
    if wiped:
        target.reseed()


# -- explicit examples: sizes and framing ---------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        pytest.param(
            request_bytes("GET", "/__admin/health?" + "a" * 9000), 414, "URITooLong", id="9000-line"
        ),
        pytest.param(
            request_bytes("GET", "/__admin/health", [("X-Big", "a" * 17000)]),
            431,
            "RequestHeaderFieldsTooLarge",
            id="17000-header",
        ),
        pytest.param(
            request_bytes("GET", "/__admin/health", [(f"X-{i}", "1") for i in range(250)]),
            431,
            "RequestHeaderFieldsTooLarge",
            id="250-headers",
        ),
        pytest.param(
            request_bytes("GET", "/__admin/health", [(f"X-{i}", "a" * 16000) for i in range(190)]),
            200,
            None,
            id="3-MB-head",
        ),
        pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", None, None, id="tls-hello"),
        pytest.param(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, None, id="http2-preface"),
        pytest.param(request_bytes("GET", "/__admin/health", version=b"HTTP/9.9"), 400, None),
        pytest.param(request_bytes("GET", "/__admin/h\x00ealth"), 400, None, id="nul-in-path"),
        pytest.param(request_bytes("GET", b"/ns/\xc3\xa9/v1/events"), 400, None, id="utf8-path"),
        pytest.param(
            request_bytes("POST", "/v2/events", [("Content-Length", "1"), ("Content-Length", "2")]),
            400,
            None,
            id="two-lengths",
        ),
        pytest.param(
            request_bytes("POST", "/v2/events", [("Expect", "teapot")], length=False),
            417,
            "ExpectationFailed",
            id="expect",
        ),
    ],
)
def test_what_gunicorn_refuses_gets_the_envelope(
    target: Target, data: bytes, status: int | None, code: str | None
) -> None:
    result = exchange(target.mock, data)
    check_all(result)
    if status is None:  # no request line: closing without an answer is fine too
        assert [a.status for a in result.answers] in ([], [400]), result.answers
        return
    assert result.first.status == status, result.first
    if code is not None:
        assert result.first.json()["data"]["code"] == code
    target.survived()


def _chunked(target: Target, path: str, auth: str | None, ctype: str, framed: bytes) -> Exchange:
    headers = [("Content-Type", ctype), ("Transfer-Encoding", "chunked")]
    headers += [("Authorization", target.auth(auth))] if auth else []
    return exchange(target.mock, request_bytes("POST", path, headers, framed, length=False))


def _chunks(body: bytes, size: int = 7) -> bytes:
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


CHUNKED_ROUTES = {
    "v2": ("/v2/events", "keys", "application/json"),
    "token": ("/auth/oauth2/token", "app", "application/x-www-form-urlencoded"),
    "clock": ("/__admin/clock", None, "application/json"),
}


@pytest.mark.parametrize("route", sorted(CHUNKED_ROUTES))
def test_chunked_bodies_are_read(target: Target, route: str) -> None:
    path, auth, ctype = CHUNKED_ROUTES[route]
    body = {
        "v2": json.dumps(make_body()).encode(),
        "token": b"grant_type=client_credentials",
        "clock": b'{"frozen": false}',
    }[route]
    result = _chunked(target, path, auth, ctype, _chunks(body))
    check_all(result)
    assert result.first.status == 200, result.first
    truncated = _chunked(target, path, auth, ctype, _chunks(body)[:-9])
    check_all(truncated)
    assert truncated.first.status == 400, truncated.first
    target.survived()


BAD_CHUNKS = {
    "size-not-hex": b"zz\r\nabc\r\n0\r\n\r\n",
    "negative-size": b"-2\r\n{}\r\n0\r\n\r\n",
    "no-crlf-after-data": b"2\r\n{}XX0\r\n\r\n",
}


@pytest.mark.parametrize("framing", sorted(BAD_CHUNKS))
@pytest.mark.parametrize("route", sorted(CHUNKED_ROUTES))
def test_malformed_chunked_framing_is_a_400(target: Target, route: str, framing: str) -> None:
    """Found here, fixed in 982a50b: gunicorn's InvalidChunkSize / ChunkMissingTerminator
    escaped the body reader as a 500 (``printf 'POST /v2/events HTTP/1.1\\r\\nHost: x\\r\\n
    Transfer-Encoding: chunked\\r\\n\\r\\nzz\\r\\nabc\\r\\n0\\r\\n\\r\\n' | nc 127.0.0.1 8080``)."""
    path, auth, ctype = CHUNKED_ROUTES[route]
    result = _chunked(target, path, auth, ctype, BAD_CHUNKS[framing])
    check_all(result)
    assert result.first.status == 400, result.first
    if route == "v2":
        violations = result.first.json()["data"]["details"]["violations"]
        assert [v["rule"] for v in violations] == ["body.read"], violations
    target.survived()


# -- explicit examples: deep nesting ---------------------------------------------------------------

DEEP = 100_000
DEEP_BODIES = {"arrays": b"[" * DEEP, "objects": b'{"a":' * DEEP + b"1" + b"}" * DEEP}


@pytest.mark.parametrize("shape", sorted(DEEP_BODIES))
@pytest.mark.parametrize(
    "route",
    [
        "v1",
        "v2",
        "token-form",
        "clock",
        "faults",
    ],
)
def test_100000_deep_nesting(target: Target, route: str, shape: str) -> None:
    """The events endpoints refuse it with 400 json.syntax. Found here, fixed in 982a50b: the
    admin endpoints answered 500 (``python3 -c 'print("[" * 100000)' | curl -X POST
    $MOCK/__admin/clock -H 'Content-Type: application/json' --data-binary @-``: a
    RecursionError from json.loads, which get_json(silent=True) does not catch)."""
    path, auth, ctype = JSON_ENDPOINTS[route]
    headers = [("Content-Type", ctype)] + ([("Authorization", target.auth(auth))] if auth else [])
    headers += [("Idempotency-Key", str(uuid.uuid4()))] if route == "v1" else []
    result = exchange(target.mock, request_bytes("POST", path, headers, DEEP_BODIES[shape]))
    check_all(result)
    assert result.first.status == 400, result.first
    if route in ("v1", "v2"):
        violations = result.first.json()["data"]["details"]["violations"]
        assert [v["rule"] for v in violations] == ["json.syntax"], violations
    target.survived()


# -- explicit examples: slow clients ---------------------------------------------------------------


def _partial(target: Target, data: bytes) -> socket.socket:
    sock = socket.create_connection(_address(target.mock), timeout=DEADLINE)
    sock.sendall(data)
    return sock


def _health_within(target: Target, seconds: float) -> None:
    result = exchange_with_timeout(target, request_bytes("GET", "/__admin/health"), seconds)
    assert result is not None, f"/__admin/health did not answer within {seconds} s"
    assert result.first.status == 200


def exchange_with_timeout(target: Target, data: bytes, seconds: float) -> Exchange | None:
    with socket.create_connection(_address(target.mock), timeout=seconds) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        received = bytearray()
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            return None
    return Exchange(data, parse_answers(bytes(received), head=False))


def test_one_stalled_client_does_not_block_the_others(target: Target) -> None:
    stalled = _partial(target, b"POST /v2/events HTTP/1.1\r\nHost: x\r\nContent-Length: 99\r\n")
    try:
        _health_within(target, 5.0)
        target.survived()
    finally:
        stalled.close()


def test_a_dribbled_request_is_answered(target: Target) -> None:
    """A slow but complete request (the head and body sent a few bytes at a time)."""
    method, path, headers, body = valid_request(target, "v2")
    data = request_bytes(method, path, headers, body)
    with socket.create_connection(_address(target.mock), timeout=DEADLINE) as sock:
        for i in range(0, len(data), max(1, len(data) // 20)):
            sock.sendall(data[i : i + max(1, len(data) // 20)])
            time.sleep(0.02)  # the pace of a slow client, not a synchronisation
        sock.shutdown(socket.SHUT_WR)
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
    (answer,) = parse_answers(bytes(received), head=False)
    assert answer.status == 200, answer
    assert answer.json()["data"]["details"]["accepted"] == 1


def test_stalled_clients_do_not_starve_the_server(target: Target) -> None:
    """More unfinished requests than worker threads (slowloris). Found here, fixed in 2750b27:
    ``for i in $(seq 40); do (printf 'POST /v2/events HTTP/1.1\\r\\nHost: x\\r\\n'; sleep 60)
    | nc 127.0.0.1 8080 & done; curl -m 10 $MOCK/__admin/health`` timed out, each unfinished
    head holding one of the 16 gthread threads with no read timeout."""
    stalled = [_partial(target, b"POST /v2/events HTTP/1.1\r\nHost: x\r\n") for _ in range(40)]
    try:
        _health_within(target, 5.0)
    finally:
        for sock in stalled:
            sock.close()


@pytest.mark.parametrize("value", ["", " ", "x y", "(x)", ",", "a,,b", "\xff"])
def test_malformed_transfer_encoding_is_a_400(target: Target, value: str) -> None:
    """A value that is not a list of codings is a malformed header: 400, like two
    Content-Lengths (a well-formed unknown coding such as "br" may keep RFC 9112's 501). Found
    here, fixed in 2750b27: ``printf 'GET /__admin/health HTTP/1.1\\r\\nHost: x\\r\\n
    Transfer-Encoding: \\r\\n\\r\\n' | nc 127.0.0.1 8080`` answered 501 NotImplemented."""
    data = request_bytes("POST", "/v2/events", [("Transfer-Encoding", value)], length=False)
    result = exchange(target.mock, data)
    assert [a.status for a in result.answers] == [400], result.answers
    check_all(result)
    target.survived()


# -- explicit examples: bugs in paths and admin bodies ---------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v2//events"),
        ("POST", "/ns/fuzz//v1/events"),
        ("POST", "/auth//oauth2/token"),
        ("GET", "/__admin//health"),
    ],
)
def test_double_slash_gets_the_envelope(target: Target, method: str, path: str) -> None:
    """Found here, fixed in 982a50b: ``curl -si -X POST http://127.0.0.1:8080/v2//events
    -H 'Host: evil.example'`` answered ``308 PERMANENT REDIRECT`` with an HTML body and
    ``Location: http://evil.example/v2/events`` (werkzeug's merge_slashes)."""
    result = exchange(target.mock, request_bytes(method, path, host="evil.example"))
    check_all(result)
    assert result.first.status == 404, result.first
    assert "location" not in result.first.headers


def test_admin_faults_do_not_read_server_files(target: Target, tmp_path: Path) -> None:
    """Only bundled scenario names (docs/api.md §7). Found here, fixed in 982a50b (security):
    ``curl -X POST $MOCK/__admin/faults -H 'Content-Type: application/json'
    -d '{"scenario": "/etc/passwd"}'`` answered 400 quoting the first line of /etc/passwd, and
    a readable YAML file of rules anywhere on the server was installed."""
    leaky = tmp_path / "private.yaml"
    leaky.write_text("hunter2-canary: the content of a private file\n")
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules: [{fault: {status: 503}}]\n")
    try:
        for path in (leaky, rules, Path("/etc/passwd")):
            response = target.mock.admin(
                "POST", "faults", params={"namespace": "fuzz"}, json={"scenario": str(path)}
            )
            assert response.status_code == 400, (path, response.text)
            assert "hunter2-canary" not in response.text
            assert "root:" not in response.text
        listed = target.mock.admin("GET", "faults", params={"namespace": "fuzz"}).json()
        assert listed["rules"] == [], listed
    finally:
        target.mock.admin("DELETE", "faults", params={"namespace": "*"})


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"speed": 2}, "/speed"),
        ({"now": "yesterday"}, "/now"),
        ({"advance": "1h"}, "/advance"),
        ({"advance": 1e12}, "/advance"),
        ({"frozen": "yes"}, "/frozen"),
        ([], ""),
    ],
)
def test_clock_refusals_point_at_the_field(target: Target, body: Any, pointer: str) -> None:
    """Found here, fixed in 982a50b: ``curl -X POST $MOCK/__admin/clock -H 'Content-Type:
    application/json' -d '{"advance": "1h"}'`` answered a BadAdminRequest without any
    violation, unlike the rest of the API."""
    response = target.mock.admin("POST", "clock", json=body)
    assert response.status_code == 400, response.text
    violations = response.json()["data"].get("details", {}).get("violations", [])
    assert [(v["in"], v["pointer"]) for v in violations] == [("body", pointer)], response.text


def test_fault_refusals_point_at_the_field(target: Target) -> None:
    """The counterpart that holds: a broken rule is refused field by field, nothing stored."""
    response = target.mock.admin(
        "POST", "faults", params={"namespace": "fuzz"}, json={"fault": {"status": "x"}}
    )
    assert response.status_code == 400, response.text
    violations = response.json()["data"]["details"]["violations"]
    assert violations, response.text
    assert all(v["pointer"].startswith("/fault") for v in violations), violations
    assert target.mock.admin("GET", "faults", params={"namespace": "fuzz"}).json()["rules"] == []


@pytest.mark.parametrize("kind", sorted(VALID_REQUESTS))
def test_the_raw_client_sees_valid_requests_succeed(target: Target, kind: str) -> None:
    """The raw client itself: valid requests written byte by byte, two of them pipelined on
    one connection, get their answers, and the checks above accept them."""
    method, path, headers, body = valid_request(target, kind)
    first = request_bytes(method, path, headers, body)
    method, path, headers, body = valid_request(target, kind)  # a new Idempotency-Key
    result = exchange(target.mock, first + request_bytes(method, path, headers, body))
    assert [a.status for a in result.answers] == [VALID_REQUESTS[kind][4]] * 2, result.answers
    check_all(result, method, path)
    if kind in ("v1", "v2"):
        assert [check_answer(a)["data"]["details"]["accepted"] for a in result.answers] == [1, 1]
