"""The admin API under ``/__admin/`` over HTTP: health, journal queries, clock, reset, export,
and the served ``/openapi.json`` (which also documents the admin API's shapes)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

import mockserver
from contract_tests.mock import MockServer
from tests.conftest import (
    ACCOUNT,
    APP_SECRET,
    ROOT,
    RSEC,
    Client,
    basic,
    error_of,
    make_body,
    make_event,
    set_clock,
    start_mock,
)

REQUEST_ID = "X-Rokt-Mock-Request-Id"


def rid(response: requests.Response) -> int:
    return int(response.headers[REQUEST_ID])


def page(mock: MockServer, **params: Any) -> dict[str, Any]:
    response = mock.admin("GET", "requests", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def walk(mock: MockServer, **params: Any) -> Iterator[dict[str, Any]]:
    """Every row matching ``params``, following ``next`` through ``before``."""
    params = dict(params)
    for _ in range(10_000):
        body = page(mock, **params)
        yield from body["requests"]
        if body["next"] is None:
            return
        params["before"] = body["next"]
    raise AssertionError("pagination never ended")


def ids_of(rows: list[dict[str, Any]]) -> list[int]:
    return [row["id"] for row in rows]


def ping(mock: MockServer, http: requests.Session, path: str = "/nope") -> requests.Response:
    """An unknown path: the cheapest journaled request (404)."""
    response = http.get(f"{mock.url}{path}", timeout=30)
    assert response.status_code == 404
    return response


def namespaced(client: Client, name: str) -> Client:
    """A client of namespace ``name`` holding a token from the default namespace (tokens are not
    bound to a namespace), so tests of the journal do not hang on the namespaced token endpoint,
    which has a test of its own."""
    other = Client(client.mock, namespace=name)
    other._token = client.token()
    return other


def epoch_of(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# -- health --------------------------------------------------------------------------------


def test_health_shape(mock: MockServer) -> None:
    response = mock.admin("GET", "health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["version"] == mockserver.__version__
    source = json.loads((ROOT / "schemas" / "openapi.json").read_text(encoding="utf-8"))
    assert body["schemaVersion"] == source["info"]["version"]
    assert body["apiVersions"] == ["2020-05-21"]
    assert body["journal"]["requests"] == 0
    assert body["journal"]["events"] == 0
    assert body["journal"]["path"].endswith("journal.sqlite3")
    assert body["clock"]["real"] is True


def test_health_counts_grow_with_api_requests_only(client: Client) -> None:
    mock = client.mock

    def counts() -> dict[str, int]:
        return dict(mock.admin("GET", "health").json()["journal"])

    assert (counts()["requests"], counts()["events"]) == (0, 0)  # admin calls are not journaled
    response = client.v1(make_body(3))  # a token request, then the batch
    assert response.status_code == 200
    after = counts()
    assert (after["requests"], after["events"]) == (2, 3)
    assert after["lastRequestId"] == rid(response)
    ping(mock, client.http)
    later = counts()
    assert (later["requests"], later["events"]) == (3, 3)
    assert later["lastRequestId"] == after["lastRequestId"] + 1


# -- the journal records every request ------------------------------------------------------


def test_every_kind_of_request_is_journaled_before_its_response(client: Client) -> None:
    mock = client.mock
    client.token()
    senders = {
        "token 200": lambda: client.token_response(),
        "token 401": lambda: client.token_response(password="wrong"),
        "token 400": lambda: client.token_response(data=""),
        "v1 200": lambda: client.v1(),
        "v1 401": lambda: client.v1(headers={"Authorization": None}),
        "v1 400 malformed": lambda: client.v1(raw=b'{"accountId": '),
        "v2 200": lambda: client.v2(),
        "v2 401": lambda: client.v2(headers={"Authorization": basic("rpub-x", "rsec-x")}),
        "404 GET": lambda: client.http.get(f"{mock.url}/v3/events", timeout=30),
        "404 POST": lambda: client.http.post(f"{mock.url}/v1/events/x", data=b"{}", timeout=30),
        "405": lambda: client.http.get(f"{mock.url}/v1/events", timeout=30),
    }
    seen = []
    for name, send in senders.items():
        response = send()
        # no waiting at all: the row is there as soon as the response is
        newest = page(mock, limit=1)["requests"]
        assert newest, name
        assert newest[0]["id"] == rid(response), name
        assert newest[0]["status"] == response.status_code, name
        seen.append(rid(response))
    assert client.token_response().status_code == 200
    rows = list(walk(mock, limit=1000))
    assert len(rows) == len(senders) + 2  # + the first and the last token requests
    assert set(seen) <= set(ids_of(rows))
    assert ids_of(rows) == sorted(ids_of(rows), reverse=True)
    statuses = {row["id"]: row["status"] for row in rows}
    assert [statuses[i] for i in seen] == [200, 401, 400, 200, 401, 400, 200, 401, 404, 404, 405]


def test_v1_row_fields(client: Client) -> None:
    mock = client.mock
    client.token()
    state = set_clock(mock, frozen=True)
    event = make_event()
    key = str(uuid.uuid4())
    raw = (
        b'{"accountId":"1234567890",\n  "events": ['
        + json.dumps(event, separators=(",", ":")).encode()
        + b"]}\n"
    )
    response = client.v1(raw=raw, key=key, headers={"X-Trace": "trace-1"})
    assert response.status_code == 200
    row = page(mock, limit=1)["requests"][0]
    assert row["id"] == rid(response)
    assert row["at"] == state["now"]
    assert abs(epoch_of(row["wallTime"]) - time.time()) < 60
    assert row["namespace"] == "default"
    assert (row["method"], row["path"], row["endpoint"]) == ("POST", "/v1/events", "/v1/events")
    assert row["apiVersion"] == "v1"
    assert row["credential"] == "demo-app-id"
    assert row["accountId"] == ACCOUNT
    assert (row["status"], row["code"]) == (200, None)
    assert row["idempotencyKey"] == key
    assert row["body"] == raw.decode()
    assert row["bodySize"] == len(raw)
    assert row["bodySha256"] == hashlib.sha256(raw).hexdigest()
    assert row["eventCount"] == 1
    assert row["headers"]["Authorization"] == "Bearer <redacted>"
    assert row["headers"]["Idempotency-Key"] == key
    assert row["headers"]["X-Trace"] == "trace-1"
    assert row["response"] == {"data": {"unprocessedRecords": []}}
    assert row["events"] == [
        {
            "index": 0,
            "clientEventId": event["clientEventId"],
            "eventType": "conversion",
            "outcome": "accepted",
        }
    ]
    assert client.token() not in json.dumps(row)


def test_v2_and_token_rows_name_the_credential_never_the_secret(client: Client) -> None:
    mock = client.mock
    token_response = client.token_response()
    v2 = client.v2()
    bad_v2 = client.v2(headers={"Authorization": basic("rpub-demo-0001", "rsec-wrong")})
    bad_token = client.token_response(password="wrong-secret")
    rows = {row["id"]: row for row in walk(mock)}
    token_row = rows[rid(token_response)]
    assert token_row["endpoint"] == "/auth/oauth2/token"
    assert token_row["apiVersion"] == "v1"
    assert token_row["credential"] == "demo-app-id"
    assert token_row["headers"]["Authorization"] == "Basic <redacted>"
    assert token_row["body"] == "grant_type=client_credentials"
    assert token_row["idempotencyKey"] is None
    v2_row = rows[rid(v2)]
    assert (v2_row["endpoint"], v2_row["apiVersion"]) == ("/v2/events", "v2")
    assert v2_row["credential"] == "rpub-demo-0001"
    assert v2_row["headers"]["Authorization"] == "Basic <redacted>"
    assert v2_row["idempotencyKey"] is None
    assert (rows[rid(bad_v2)]["status"], rows[rid(bad_v2)]["code"]) == (401, "UnauthorizedError")
    bad = rows[rid(bad_token)]
    assert (bad["status"], bad["code"]) == (401, "invalid_client")
    assert bad["credential"] in (None, "demo-app-id")
    text = json.dumps(list(rows.values()))
    access_token = token_response.json()["access_token"]
    for secret in (APP_SECRET, RSEC, "rsec-wrong", "wrong-secret", access_token):
        assert secret not in text


def test_unauthenticated_malformed_and_unknown_rows(client: Client) -> None:
    mock = client.mock
    unauth = client.v1(headers={"Authorization": None})
    client.token()
    malformed = client.v1(raw=b"{not json")
    unknown = client.http.get(f"{mock.url}/nope?x=1", timeout=30)
    rows = {row["id"]: row for row in walk(mock)}
    row = rows[rid(unauth)]
    assert (row["status"], row["code"], row["credential"]) == (401, "UnauthorizedError", None)
    assert "Authorization" not in row["headers"]
    row = rows[rid(malformed)]
    assert (row["status"], row["code"]) == (400, "RequestJsonUnmarshalError")
    assert row["body"] == "{not json"
    assert row["credential"] == "demo-app-id"
    assert row["violations"][0]["rule"] == "json.syntax"
    row = rows[rid(unknown)]
    assert (row["status"], row["code"], row["method"]) == (404, "NotFound", "GET")
    assert row["endpoint"] == "/nope"
    assert row["path"] == "/nope?x=1"
    assert row["apiVersion"] is None


def test_per_event_outcomes(client: Client) -> None:
    mock = client.mock
    first = make_event()
    assert client.v2({"accountId": ACCOUNT, "events": [first]}).status_code == 200
    fresh = make_event()
    reserved = make_event(objectData=[{"name": "rokt.internal", "value": "x"}])
    key = str(uuid.uuid4())
    body = {"accountId": ACCOUNT, "events": [fresh, reserved, first]}
    ok = client.v1(body, key=key)
    assert ok.status_code == 200
    assert len(ok.json()["data"]["unprocessedRecords"]) == 1
    reused = client.v1(body, key=key)
    assert error_of(reused) == (409, "IdempotencyKeyReused")
    rows = {row["id"]: row for row in walk(mock)}
    assert [(e["index"], e["outcome"], e.get("rule")) for e in rows[rid(ok)]["events"]] == [
        (0, "accepted", None),
        (1, "rejected", "name.reserved_prefix"),
        (2, "duplicate", None),
    ]
    assert [e["clientEventId"] for e in rows[rid(ok)]["events"]] == [
        fresh["clientEventId"],
        reserved["clientEventId"],
        first["clientEventId"],
    ]
    again = rows[rid(reused)]
    assert [e["outcome"] for e in again["events"]] == ["refused"] * 3
    assert again["idempotencyKey"] == key
    assert again["note"]["idempotency"] == {"originalRequestId": rid(ok), "bodyDiffers": False}


def test_namespaced_token_request(client: Client) -> None:
    mock = client.mock
    team = Client(mock, namespace="team-t")
    response = team.token_response()
    assert response.status_code == 200, response.text
    row = page(mock, namespace="team-t")["requests"][0]
    assert row["id"] == rid(response)
    assert (row["endpoint"], row["path"]) == ("/auth/oauth2/token", "/ns/team-t/auth/oauth2/token")
    assert (row["status"], row["credential"]) == (200, "demo-app-id")
    assert page(mock)["requests"] == []
    assert team.v1().status_code == 200


def test_request_id_header_on_every_answer(client: Client) -> None:
    mock = client.mock
    answers = [client.token_response(), client.v1(), client.v2(raw=b"[]"), ping(mock, client.http)]
    ids = [rid(r) for r in answers]
    assert len(set(ids)) == len(ids)
    assert set(ids) <= set(ids_of(list(walk(mock))))
    assert REQUEST_ID not in mock.admin("GET", "health").headers


# -- /__admin/requests filters --------------------------------------------------------------


def test_filter_since_on_the_mock_clock(client: Client) -> None:
    mock = client.mock
    set_clock(mock, now="2031-03-04T05:06:00Z", frozen=True)
    early = ping(mock, client.http)
    set_clock(mock, advance=60)
    late = [ping(mock, client.http), client.token_response()]
    set_clock(mock, advance=60)
    latest = ping(mock, client.http)

    def since(value: str) -> list[int]:
        return ids_of(list(walk(mock, since=value)))

    assert since("2031-03-04T05:06:00Z") == [
        rid(latest),
        *[rid(r) for r in reversed(late)],
        rid(early),
    ]
    assert since("2031-03-04T05:06:30Z") == [rid(latest), *[rid(r) for r in reversed(late)]]
    assert since("2031-03-04T05:07:00.000Z") == [rid(latest), *[rid(r) for r in reversed(late)]]
    assert since("2031-03-04T06:07:30+01:00") == [rid(latest)]
    assert since("2031-03-04T05:08:00.001Z") == []


def test_filter_status(client: Client) -> None:
    mock = client.mock
    ok = client.v1()
    unauth = client.v1(headers={"Authorization": None})
    missing = ping(mock, client.http)
    malformed = client.v1(raw=b"{")
    assert ids_of(page(mock, status="401")["requests"]) == [rid(unauth)]
    assert ids_of(page(mock, status="4xx")["requests"]) == [
        rid(malformed),
        rid(missing),
        rid(unauth),
    ]
    assert ids_of(page(mock, status="4XX")["requests"]) == ids_of(
        page(mock, status="4xx")["requests"]
    )
    two = ids_of(page(mock, status="2xx")["requests"])
    assert rid(ok) in two
    assert len(two) == 2  # the token request and the batch
    assert page(mock, status="5xx")["requests"] == []
    assert page(mock, status="409")["requests"] == []


def test_filter_endpoint(client: Client) -> None:
    mock = client.mock
    batch = client.v1()
    v2 = client.v2()
    ns = Client(mock, namespace="team-e").v2()
    tokens = ids_of(page(mock, endpoint="/auth/oauth2/token")["requests"])
    assert len(tokens) == 1
    assert tokens[0] < rid(batch)
    assert ids_of(page(mock, endpoint="/v1/events")["requests"]) == [rid(batch)]
    assert ids_of(page(mock, endpoint="/v2/events")["requests"]) == [rid(v2)]
    everywhere = ids_of(page(mock, endpoint="/v2/events", namespace="*")["requests"])
    assert everywhere == [rid(ns), rid(v2)]
    assert page(mock, endpoint="/ns/team-e/v2/events", namespace="*")["requests"] == []
    assert page(mock, endpoint="/v3/events")["requests"] == []


def test_filter_client_event_id_finds_every_attempt(client: Client) -> None:
    mock = client.mock
    event = make_event()
    other = make_event()
    key = str(uuid.uuid4())
    body = {"accountId": ACCOUNT, "events": [event, other]}
    attempts = [
        client.v1(body, key=key),  # 200, accepted
        client.v1(body, key=key),  # 409, refused
        client.v1({"accountId": "someone-else", "events": [event]}),  # 403, refused
        client.v1({"accountId": ACCOUNT, "events": [event, {"clientEventId": "x"}]}),  # 400
        client.v1({"accountId": ACCOUNT, "events": [{**event, "eventType": 5}]}),  # 400 types
        client.v2({"accountId": ACCOUNT, "events": [event]}),  # 200, duplicate
    ]
    assert [r.status_code for r in attempts] == [200, 409, 403, 400, 400, 200]
    unrelated = client.v2()
    rows = list(walk(mock, clientEventId=event["clientEventId"]))
    assert ids_of(rows) == [rid(r) for r in reversed(attempts)]
    assert rid(unrelated) not in ids_of(rows)
    outcomes = [
        next(e["outcome"] for e in row["events"] if e["clientEventId"] == event["clientEventId"])
        for row in reversed(rows)
    ]
    assert outcomes == ["accepted", "refused", "refused", "refused", "refused", "duplicate"]
    assert page(mock, clientEventId=str(uuid.uuid4()))["requests"] == []


def test_filter_client_event_id_finds_unauthenticated_attempts(client: Client) -> None:
    """A sender whose token expired retries the same events: the 401 attempt carried them too."""
    mock = client.mock
    event = make_event()
    body = {"accountId": ACCOUNT, "events": [event]}
    unauth = client.v1(body, headers={"Authorization": "Bearer expired.or.bad"})
    assert unauth.status_code == 401
    ok = client.v1(body)
    assert ok.status_code == 200
    rows = list(walk(mock, clientEventId=event["clientEventId"]))
    assert ids_of(rows) == [rid(ok), rid(unauth)]


def test_filter_idempotency_key(client: Client) -> None:
    mock = client.mock
    key = str(uuid.uuid4())
    first = client.v1(key=key)
    second = client.v1(key=key)
    assert [first.status_code, second.status_code] == [200, 409]
    client.v1()
    rows = page(mock, idempotencyKey=key)["requests"]
    assert ids_of(rows) == [rid(second), rid(first)]
    assert {row["idempotencyKey"] for row in rows} == {key}
    assert page(mock, idempotencyKey=str(uuid.uuid4()))["requests"] == []


def test_filters_combine(client: Client) -> None:
    mock = client.mock
    key = str(uuid.uuid4())
    client.v1(key=key)
    reused = client.v1(key=key)
    rows = page(mock, idempotencyKey=key, status="4xx", endpoint="/v1/events")["requests"]
    assert ids_of(rows) == [rid(reused)]


def test_pagination_walks_every_row_exactly_once(client: Client) -> None:
    mock = client.mock
    sent = [rid(ping(mock, client.http, f"/p{i}")) for i in range(23)]
    first = page(mock, limit=5)
    assert ids_of(first["requests"]) == sorted(sent, reverse=True)[:5]
    assert first["next"] == first["requests"][-1]["id"]
    sizes = []
    params: dict[str, Any] = {"limit": 5}
    collected: list[int] = []
    while True:
        body = page(mock, **params)
        sizes.append(len(body["requests"]))
        collected += ids_of(body["requests"])
        if body["next"] is None:
            break
        params["before"] = body["next"]
    assert sizes == [5, 5, 5, 5, 3]
    assert collected == sorted(sent, reverse=True)
    assert len(set(collected)) == len(collected)
    exact = page(mock, limit=23)
    assert len(exact["requests"]) == 23
    assert exact["next"] is None
    assert page(mock)["next"] is None  # default limit 50


def test_pagination_with_a_filter(client: Client) -> None:
    mock = client.mock
    wanted = []
    for i in range(7):
        wanted.append(rid(ping(mock, client.http, f"/q{i}")))
        client.token_response()
    rows = list(walk(mock, status="404", limit=2))
    assert ids_of(rows) == sorted(wanted, reverse=True)


def test_namespace_parameter(client: Client) -> None:
    mock = client.mock
    team = Client(mock, namespace="team-a")
    other = namespaced(client, "team-b")  # one token request in default
    in_default = client.v2()
    in_a = team.v2()
    in_b = other.v1()
    defaults = ids_of(page(mock)["requests"])
    assert len(defaults) == 2
    assert defaults[0] == rid(in_default)
    assert ids_of(page(mock, namespace="default")["requests"]) == defaults
    assert ids_of(page(mock, namespace="team-a")["requests"]) == [rid(in_a)]
    row = page(mock, namespace="team-a")["requests"][0]
    assert (row["namespace"], row["path"], row["endpoint"]) == (
        "team-a",
        "/ns/team-a/v2/events",
        "/v2/events",
    )
    everything = ids_of(list(walk(mock, namespace="*")))
    assert rid(in_b) in everything
    assert set(everything) >= {rid(in_default), rid(in_a), rid(in_b)}
    assert len(everything) == 4
    assert page(mock, namespace="nobody")["requests"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "abc"},
        {"limit": "1001"},
        {"limit": "-1"},
        {"status": "abc"},
        {"status": "4x"},
        {"status": "6xx"},
        {"since": "yesterday"},
        {"since": "2026-11-20"},
        {"before": "abc"},
    ],
)
def test_bad_request_parameters(mock: MockServer, params: dict[str, str]) -> None:
    response = mock.admin("GET", "requests", params=params)
    assert error_of(response) == (400, "BadAdminRequest")
    name = next(iter(params))
    assert name in response.json()["data"]["message"]


@pytest.mark.parametrize(
    ("method", "path", "params"),
    [
        ("GET", "requests", {"status": "0xx"}),
        ("GET", "requests", {"status": "600"}),
        ("GET", "requests", {"status": "42"}),
        ("GET", "requests", {"namespace": "bad name!"}),
        ("GET", "summary", {"namespace": "-dash-first"}),
        ("DELETE", "journal", {"namespace": "bad name!"}),
    ],
    ids=lambda v: v if isinstance(v, str) else "&".join(f"{k}={x}" for k, x in v.items()),
)
def test_parameters_outside_the_documented_patterns(
    mock: MockServer, method: str, path: str, params: dict[str, str]
) -> None:
    """/openapi.json documents status as ^[1-5]([0-9]{2}|[xX]{2})$ and namespace as
    ^(\\*|[A-Za-z0-9][A-Za-z0-9._-]{0,63})$; anything else is a bad parameter, not an empty
    answer (or a 'cleared' one for a namespace that cannot exist)."""
    assert error_of(mock.admin(method, path, params=params)) == (400, "BadAdminRequest")


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("events", {"limit": "0"}),
        ("events", {"minDeliveries": "0"}),
        ("events", {"minDeliveries": "two"}),
        ("events", {"offset": "-1"}),
        ("journal/export", {"since": "yesterday"}),
    ],
)
def test_bad_parameters_elsewhere(mock: MockServer, path: str, params: dict[str, str]) -> None:
    assert error_of(mock.admin("GET", path, params=params)) == (400, "BadAdminRequest")


def test_unknown_admin_path_is_a_404_envelope_and_not_journaled(mock: MockServer) -> None:
    response = mock.admin("GET", "nothing-here")
    assert error_of(response) == (404, "NotFound")
    assert page(mock, namespace="*")["requests"] == []


# -- /__admin/events ------------------------------------------------------------------------


def test_events_lists_accepted_events_with_delivery_counts(client: Client) -> None:
    mock = client.mock
    twice, once = make_event(), make_event()
    rejected = make_event(eventTime="2020-01-01T00:00:00Z")
    first = client.v1({"accountId": ACCOUNT, "events": [twice, once, rejected]})
    assert first.status_code == 200
    assert len(first.json()["data"]["unprocessedRecords"]) == 1
    second = client.v2({"accountId": ACCOUNT, "events": [twice]})
    assert second.status_code == 200
    refused = client.v1({"accountId": "someone-else", "events": [make_event()]})
    assert refused.status_code == 403

    response = mock.admin("GET", "events")
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 2
    by_id = {e["clientEventId"]: e for e in body["events"]}
    assert set(by_id) == {twice["clientEventId"], once["clientEventId"]}
    assert by_id[twice["clientEventId"]]["deliveries"] == 2
    assert by_id[twice["clientEventId"]]["firstRequestId"] == rid(first)
    assert by_id[twice["clientEventId"]]["lastRequestId"] == rid(second)
    assert by_id[once["clientEventId"]]["deliveries"] == 1
    assert by_id[once["clientEventId"]]["accountId"] == ACCOUNT
    assert by_id[once["clientEventId"]]["eventType"] == "conversion"
    assert by_id[once["clientEventId"]]["namespace"] == "default"

    def events(**params: Any) -> tuple[int, list[str]]:
        answer = mock.admin("GET", "events", params=params).json()
        return answer["total"], [e["clientEventId"] for e in answer["events"]]

    assert events(minDeliveries=2) == (1, [twice["clientEventId"]])
    assert events(clientEventId=once["clientEventId"]) == (1, [once["clientEventId"]])
    assert events(clientEventId=rejected["clientEventId"]) == (0, [])
    assert events(accountId=ACCOUNT)[0] == 2
    assert events(accountId="someone-else") == (0, [])
    total, listed = events(limit=1)
    assert (total, len(listed)) == (2, 1)
    assert events(limit=1, offset=1)[1] != listed


def test_events_in_order_of_first_arrival_with_delivery_thresholds(client: Client) -> None:
    """The listing runs in the order the ids first arrived (request, then position in it);
    minDeliveries keeps the ids delivered at least that often, per namespace and account."""
    mock = client.mock
    thrice, twice, once = make_event(), make_event(), make_event()
    ids = [e["clientEventId"] for e in (twice, thrice, once)]
    assert client.v2({"accountId": ACCOUNT, "events": [twice, thrice, once]}).status_code == 200
    assert client.v2({"accountId": ACCOUNT, "events": [thrice, twice]}).status_code == 200
    assert client.v2({"accountId": ACCOUNT, "events": [thrice]}).status_code == 200
    other = Client(mock, namespace="team-o")
    assert other.v2({"accountId": ACCOUNT, "events": [once, once]}).status_code == 200

    def listed(**params: Any) -> list[tuple[str, int]]:
        answer = mock.admin("GET", "events", params=params).json()
        got = [(e["clientEventId"], e["deliveries"]) for e in answer["events"]]
        assert answer["total"] == len(got)
        return got

    assert listed() == [(ids[0], 2), (ids[1], 3), (ids[2], 1)]
    assert listed(minDeliveries=1) == listed()
    assert listed(minDeliveries=2) == [(ids[0], 2), (ids[1], 3)]
    assert listed(minDeliveries=3) == [(ids[1], 3)]
    assert listed(minDeliveries=4) == []
    assert listed(minDeliveries=2, accountId=ACCOUNT) == [(ids[0], 2), (ids[1], 3)]
    assert listed(minDeliveries=2, accountId="nobody") == []
    assert listed(minDeliveries=2, clientEventId=ids[1]) == [(ids[1], 3)]
    assert listed(minDeliveries=2, namespace="team-o") == [(ids[2], 2)]
    assert sorted(listed(minDeliveries=2, namespace="*")) == sorted(
        [(ids[0], 2), (ids[1], 3), (ids[2], 2)]
    )
    first = mock.admin("GET", "events", params={"clientEventId": ids[1]}).json()["events"][0]
    assert first["lastRequestId"] > first["firstRequestId"]
    assert first["lastAt"] >= first["firstAt"]


def test_events_per_namespace(client: Client) -> None:
    mock = client.mock
    shared = make_event()
    client.v2({"accountId": ACCOUNT, "events": [shared]})
    Client(mock, namespace="team-v").v2({"accountId": ACCOUNT, "events": [shared]})
    default = mock.admin("GET", "events").json()
    assert (default["total"], default["events"][0]["deliveries"]) == (1, 1)
    team = mock.admin("GET", "events", params={"namespace": "team-v"}).json()
    assert (team["total"], team["events"][0]["namespace"]) == (1, "team-v")
    assert mock.admin("GET", "events", params={"namespace": "*"}).json()["total"] == 2


# -- /__admin/summary -----------------------------------------------------------------------


def test_summary_counts(client: Client) -> None:
    mock = client.mock
    first = make_event()
    assert client.v2({"accountId": ACCOUNT, "events": [first]}).status_code == 200
    key = str(uuid.uuid4())
    reserved = make_event(objectData=[{"name": "ROKT.x", "value": "y"}])
    body = {"accountId": ACCOUNT, "events": [make_event(), reserved, first]}
    assert client.v1(body, key=key).status_code == 200  # + its token request
    assert client.v1(body, key=key).status_code == 409
    assert client.v1(raw=b"{}", headers={"Authorization": None}).status_code == 401
    ping(mock, client.http)
    Client(mock, namespace="team-s").v2()

    summary = mock.summary()
    assert summary["namespace"] == "default"
    requests_ = summary["requests"]
    assert requests_["total"] == 6
    assert requests_["byStatus"] == {"200": 3, "401": 1, "404": 1, "409": 1}
    assert requests_["byCode"] == {"IdempotencyKeyReused": 1, "UnauthorizedError": 1, "NotFound": 1}
    assert summary["events"] == {
        "received": 7,
        "accepted": 2,
        "duplicates": 1,
        "rejected": 1,
        "refused": 3,
        "unique": 2,
        "rejectedByRule": {"name.reserved_prefix": 1},
    }
    team = mock.summary("team-s")
    assert team["namespace"] == "team-s"
    assert team["requests"]["byStatus"] == {"200": 1}
    assert (team["events"]["received"], team["events"]["unique"]) == (1, 1)
    everything = mock.summary("*")
    assert everything["requests"]["total"] == 7
    assert everything["events"]["unique"] == 3
    empty = mock.summary("nobody")
    assert (empty["requests"]["total"], empty["requests"]["byStatus"]) == (0, {})
    assert empty["events"]["received"] == 0


# -- clearing and resetting -----------------------------------------------------------------


def test_delete_journal_clears_every_namespace(client: Client) -> None:
    mock = client.mock
    key = str(uuid.uuid4())
    assert client.v1(key=key).status_code == 200
    Client(mock, namespace="team-d").v2()
    response = mock.admin("DELETE", "journal")
    assert response.status_code == 200
    assert response.json() == {"cleared": True, "namespace": "*"}
    assert page(mock, namespace="*")["requests"] == []
    assert mock.admin("GET", "events", params={"namespace": "*"}).json()["total"] == 0
    assert mock.admin("GET", "health").json()["journal"]["requests"] == 0
    # only the record is cleared: an accepted key is still remembered (reset forgets it)
    assert client.v1(key=key).status_code == 409


def test_delete_journal_of_one_namespace_leaves_the_others(client: Client) -> None:
    mock = client.mock
    kept = client.v2()
    Client(mock, namespace="team-x").v2()
    other = Client(mock, namespace="team-y").v2()
    response = mock.admin("DELETE", "journal", params={"namespace": "team-x"})
    assert response.json() == {"cleared": True, "namespace": "team-x"}
    assert page(mock, namespace="team-x")["requests"] == []
    assert ids_of(page(mock)["requests"]) == [rid(kept)]
    assert rid(other) in ids_of(page(mock, namespace="team-y")["requests"])
    assert mock.summary("team-x")["events"]["unique"] == 0
    assert mock.summary()["events"]["unique"] == 1


def test_reset_forgets_journal_keys_and_clock(client: Client) -> None:
    mock = client.mock
    key = str(uuid.uuid4())
    assert client.v1(key=key).status_code == 200
    Client(mock, namespace="team-r").v2()
    set_clock(mock, advance=30, frozen=True)
    response = mock.admin("POST", "reset")
    assert response.status_code == 200
    assert response.json() == {"reset": True, "namespace": "*"}
    assert page(mock, namespace="*")["requests"] == []
    clock = mock.admin("GET", "clock").json()
    assert (clock["frozen"], clock["real"]) == (False, True)
    assert client.v1(key=key).status_code == 200


def test_reset_of_one_namespace(client: Client) -> None:
    mock = client.mock
    team = namespaced(client, "team-n")
    key_default, key_team = str(uuid.uuid4()), str(uuid.uuid4())
    assert client.v1(key=key_default).status_code == 200
    assert team.v1(key=key_team).status_code == 200
    frozen = set_clock(mock, frozen=True)
    response = mock.admin("POST", "reset", params={"namespace": "team-n"})
    assert response.json() == {"reset": True, "namespace": "team-n"}
    assert page(mock, namespace="team-n")["requests"] == []
    assert len(page(mock)["requests"]) == 2
    after = mock.admin("GET", "clock").json()  # a namespace reset keeps the clock
    assert (after["frozen"], after["epoch"]) == (True, frozen["epoch"])
    assert team.v1(key=key_team).status_code == 200
    assert client.v1(key=key_default).status_code == 409


# -- export ---------------------------------------------------------------------------------


def test_export_is_json_lines_matching_requests(client: Client) -> None:
    mock = client.mock
    client.v1(make_body(2))
    client.v2(raw='{"accountId": "é"}'.encode())
    client.v1(headers={"Authorization": None})
    ping(mock, client.http)
    Client(mock, namespace="team-x").v2()
    response = mock.admin("GET", "journal/export")
    assert response.status_code == 200
    assert response.headers["Content-Type"].split(";")[0] == "application/x-ndjson"
    assert response.text.endswith("\n")
    lines = response.text.splitlines()
    rows = [json.loads(line) for line in lines]
    assert all(isinstance(row, dict) for row in rows)
    assert rows == list(reversed(list(walk(mock))))  # oldest first, same rows
    assert len(rows) == 5
    everything = mock.admin("GET", "journal/export", params={"namespace": "*"}).text
    assert len(everything.splitlines()) == 6
    team = mock.admin("GET", "journal/export", params={"namespace": "team-x"}).text.splitlines()
    assert [json.loads(line)["namespace"] for line in team] == ["team-x"]


def test_export_of_an_empty_journal_is_empty(mock: MockServer) -> None:
    response = mock.admin("GET", "journal/export")
    assert response.status_code == 200
    assert response.text == ""


def test_export_streams_thousands_of_rows(client: Client) -> None:
    mock = client.mock
    n = 2500
    with requests.Session() as http:
        for i in range(n):
            http.get(f"{mock.url}/bulk/{i}", timeout=30)
    last = page(mock, limit=1)["requests"][0]["id"]
    with mock.admin("GET", "journal/export", stream=True) as response:
        assert response.status_code == 200
        assert "Content-Length" not in response.headers  # streamed, not buffered
        ids = []
        for line in response.iter_lines():
            row = json.loads(line)
            ids.append(row["id"])
            assert row["path"] == f"/bulk/{len(ids) - 1}"
    assert len(ids) == n
    assert ids == sorted(set(ids))
    assert ids[-1] == last


# -- the clock ------------------------------------------------------------------------------


def clock(mock: MockServer) -> dict[str, Any]:
    response = mock.admin("GET", "clock")
    assert response.status_code == 200
    return dict(response.json())


def test_clock_shape(mock: MockServer) -> None:
    state = clock(mock)
    assert set(state) == {"now", "epoch", "frozen", "offsetSeconds", "real"}
    assert (state["frozen"], state["real"]) == (False, True)
    assert abs(state["epoch"] - time.time()) < 5
    assert abs(epoch_of(state["now"]) - state["epoch"]) < 0.002
    assert abs(state["offsetSeconds"]) < 1


def test_clock_freeze_holds_still(mock: MockServer) -> None:
    frozen = set_clock(mock, frozen=True)
    assert frozen["frozen"] is True
    assert frozen["real"] is False
    first, second = clock(mock), clock(mock)
    assert first["epoch"] == second["epoch"] == frozen["epoch"]
    assert first["now"] == second["now"] == frozen["now"]


def test_clock_set_advance_unfreeze_reset(mock: MockServer) -> None:
    state = set_clock(mock, now="2030-01-02T03:04:05.500Z", frozen=True)
    assert state["now"] == "2030-01-02T03:04:05.500Z"
    assert state["epoch"] == epoch_of("2030-01-02T03:04:05.500Z")
    state = set_clock(mock, advance=90)
    assert state["now"] == "2030-01-02T03:05:35.500Z"
    assert state["frozen"] is True
    state = set_clock(mock, advance=-3600.25)
    assert state["now"] == "2030-01-02T02:05:35.250Z"
    assert clock(mock)["now"] == state["now"]
    state = set_clock(mock, frozen=False)
    assert (state["frozen"], state["real"]) == (False, False)
    assert 0 <= state["epoch"] - epoch_of("2030-01-02T02:05:35.250Z") < 5
    state = set_clock(mock, reset=True)
    assert (state["frozen"], state["real"]) == (False, True)
    assert abs(state["epoch"] - time.time()) < 5


def test_set_running_clock_keeps_moving(mock: MockServer) -> None:
    start = set_clock(mock, now="2030-06-01T00:00:00Z")
    assert start["frozen"] is False
    target = epoch_of("2030-06-01T00:00:00Z")
    assert 0 <= start["epoch"] - target < 5
    deadline = time.monotonic() + 5
    later = clock(mock)
    while later["epoch"] <= start["epoch"] and time.monotonic() < deadline:
        later = clock(mock)
    assert start["epoch"] < later["epoch"] < target + 5
    assert later["frozen"] is False


def test_advance_on_a_running_clock(mock: MockServer) -> None:
    state = set_clock(mock, advance=86400)
    assert state["frozen"] is False
    assert 86400 - 5 < state["offsetSeconds"] < 86400 + 5


@pytest.mark.parametrize(
    "body",
    [
        {"bogus": 1},
        {"frozen": True, "speed": 2},
        {"now": "tomorrow"},
        {"now": 1893553445},
        {"advance": "x"},
        {"advance": True},
        {"frozen": "yes"},
        {"reset": 1},
        [{"frozen": True}],
        "frozen",
        42,
    ],
)
def test_clock_rejects_bad_bodies(mock: MockServer, body: Any) -> None:
    before = set_clock(mock, now="2030-01-01T00:00:00Z", frozen=True)
    response = mock.admin("POST", "clock", json=body)
    assert error_of(response) == (400, "BadAdminRequest")
    assert clock(mock)["epoch"] == before["epoch"]


def test_clock_rejects_a_body_that_is_not_json(mock: MockServer) -> None:
    response = mock.admin(
        "POST", "clock", data=b"frozen=true", headers={"Content-Type": "application/json"}
    )
    assert error_of(response) == (400, "BadAdminRequest")


def test_a_bad_field_changes_nothing(mock: MockServer) -> None:
    before = set_clock(mock, now="2030-01-01T00:00:00Z", frozen=True)
    response = mock.admin("POST", "clock", json={"now": "2040-01-01T00:00:00Z", "advance": "x"})
    assert response.status_code == 400
    assert clock(mock)["now"] == before["now"]


def test_journal_at_follows_the_mock_clock(client: Client) -> None:
    mock = client.mock
    set_clock(mock, now="2029-02-03T04:05:06.250Z", frozen=True)
    first = ping(mock, client.http)
    set_clock(mock, advance=3600)
    token = client.token_response()
    rows = {row["id"]: row for row in walk(mock)}
    assert rows[rid(first)]["at"] == "2029-02-03T04:05:06.250Z"
    assert rows[rid(token)]["at"] == "2029-02-03T05:05:06.250Z"
    assert abs(epoch_of(rows[rid(token)]["wallTime"]) - time.time()) < 60
    events = client.v2({"accountId": ACCOUNT, "events": [make_event()]})
    assert events.status_code == 200  # the event time is judged against the mock clock...
    assert events.json()["data"]["unprocessedRecords"][0]["error"]["code"] == "ValidationError"
    set_clock(mock, reset=True)
    assert client.v2().json()["data"]["unprocessedRecords"] == []


# -- /openapi.json --------------------------------------------------------------------------

OPENAPI_URI = "urn:rokt-mock:served-openapi"


@pytest.fixture(scope="module")
def served_openapi(mock_server: MockServer) -> dict[str, Any]:
    response = requests.get(f"{mock_server.url}/openapi.json", timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    return dict(response.json())


def refs_in(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs_in(value)


def resolve_pointer(document: Any, pointer: str) -> Any:
    node = document
    for part in pointer.lstrip("/").split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def test_openapi_is_self_contained_3_1(served_openapi: dict[str, Any]) -> None:
    assert str(served_openapi["openapi"]).startswith("3.1")
    refs = list(refs_in(served_openapi))
    assert len(refs) > 20
    assert [r for r in refs if not r.startswith("#/")] == []
    for ref in set(refs):
        target = resolve_pointer(served_openapi, ref[1:])
        assert isinstance(target, dict), ref
    for path in ("/__admin/requests", "/__admin/clock", "/v1/events", "/auth/oauth2/token"):
        assert path in served_openapi["paths"]


def test_openapi_is_not_journaled(mock: MockServer) -> None:
    assert requests.get(f"{mock.url}/openapi.json", timeout=30).status_code == 200
    assert page(mock, namespace="*")["requests"] == []


def response_validator(
    document: dict[str, Any], path: str, method: str, status: int, media: str = "application/json"
) -> Draft202012Validator:
    """A validator for the documented response schema, resolving refs in the whole document."""
    parts = ["paths", path, method, "responses", str(status), "content", media, "schema"]
    node: Any = document
    for part in parts:
        assert part in node, f"{method.upper()} {path} documents no {status} {media} schema"
        node = node[part]
    pointer = "".join("/" + quote(p.replace("~", "~0").replace("/", "~1"), safe="~") for p in parts)
    registry: Registry[Any] = Registry().with_resource(
        OPENAPI_URI, DRAFT202012.create_resource(document)
    )
    return Draft202012Validator(
        {"$ref": f"{OPENAPI_URI}#{pointer}"},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def assert_documented(
    document: dict[str, Any], path: str, method: str, response: requests.Response
) -> None:
    validator = response_validator(document, path, method, response.status_code)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(response.json())
    ]
    assert errors == [], (path, response.status_code)


def test_real_responses_match_the_served_document(
    client: Client, served_openapi: dict[str, Any]
) -> None:
    mock = client.mock
    doc = served_openapi
    token = client.token_response()
    assert token.status_code == 200
    assert_documented(doc, "/auth/oauth2/token", "post", token)
    bad_token = client.token_response(password="wrong")
    assert_documented(doc, "/auth/oauth2/token", "post", bad_token)
    ok = client.v1(make_body(2, objectData=[{"name": "rokt.bad", "value": "x"}]))
    assert ok.status_code == 200
    assert len(ok.json()["data"]["unprocessedRecords"]) == 2
    assert_documented(doc, "/v1/events", "post", ok)
    assert_documented(doc, "/v2/events", "post", client.v2())
    malformed = client.v1(raw=b"{")
    assert malformed.status_code == 400
    assert_documented(doc, "/v1/events", "post", malformed)
    invalid = client.v2({"accountId": ACCOUNT, "events": []})
    assert invalid.status_code == 400
    assert_documented(doc, "/v2/events", "post", invalid)
    assert_documented(doc, "/v1/events", "post", client.v1(headers={"Authorization": None}))
    key = str(uuid.uuid4())
    client.v1(key=key)
    reused = client.v1(key=key)
    assert reused.status_code == 409
    assert_documented(doc, "/v1/events", "post", reused)
    ping(mock, client.http)

    assert_documented(doc, "/__admin/health", "get", mock.admin("GET", "health"))
    assert_documented(doc, "/__admin/requests", "get", mock.admin("GET", "requests"))
    assert_documented(
        doc, "/__admin/requests", "get", mock.admin("GET", "requests", params={"limit": "2"})
    )
    assert_documented(doc, "/__admin/events", "get", mock.admin("GET", "events"))
    assert_documented(doc, "/__admin/summary", "get", mock.admin("GET", "summary"))
    assert_documented(doc, "/__admin/clock", "get", mock.admin("GET", "clock"))
    bad = mock.admin("GET", "requests", params={"limit": "0"})
    assert_documented(doc, "/__admin/requests", "get", bad)
    assert_documented(doc, "/__admin/clock", "post", mock.admin("POST", "clock", json={"x": 1}))
    assert_documented(doc, "/__admin/journal", "delete", mock.admin("DELETE", "journal"))
    assert_documented(doc, "/__admin/reset", "post", mock.admin("POST", "reset"))


def test_the_validator_can_fail(served_openapi: dict[str, Any]) -> None:
    """The resolver really follows refs: a wrong body is caught deep inside a $ref."""
    validator = response_validator(served_openapi, "/__admin/requests", "get", 200)
    assert validator.is_valid({"requests": [], "next": None})
    assert not validator.is_valid({"requests": [{"id": "one"}], "next": None})
    health = response_validator(served_openapi, "/__admin/health", "get", 200)
    assert not health.is_valid({"status": "ok"})


# -- summary tallies ------------------------------------------------------------------------------

_SCAN = {
    "req": "SELECT namespace, status || '|' || coalesce(code, ''), count(*) FROM requests"
    " GROUP BY 1, 2",
    "fault": "SELECT namespace, coalesce(json_extract(fault, '$.kind'), 'delay'), count(*)"
    " FROM requests WHERE fault IS NOT NULL GROUP BY 1, 2",
    "ev": "SELECT namespace, outcome || '|' || coalesce(rule, ''), count(*) FROM events"
    " GROUP BY 1, 2",
}


def _scan_counts(path: Path) -> dict[tuple[str, str, str], int]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return {(ns, kind, key): n for kind, sql in _SCAN.items() for ns, key, n in db.execute(sql)}


def _tallies(path: Path) -> dict[tuple[str, str, str], int]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return {
            (ns, kind, key): n
            for ns, kind, key, n in db.execute("SELECT namespace, kind, key, n FROM tallies")
            if n
        }


def test_summary_tallies_equal_a_full_count_of_the_journal(tmp_path: Path) -> None:
    """/__admin/summary reads running counts kept in each commit; after mixed traffic (faults,
    rejects, duplicates, 409s, refusals, two namespaces, one of them cleared) they equal a
    count of every row, and a journal opened without them (an older one) is counted once."""
    journal = tmp_path / "journal.sqlite3"
    with start_mock(journal=journal) as mock:
        for namespace in ("default", "other", "gone"):
            client = Client(mock, namespace=namespace)
            body = make_body(3)
            body["events"][1]["eventTime"] = "2026-11-20T10:00:00+10:00"
            key = str(uuid.uuid4())
            client.v1(body, key=key, headers={"X-Rokt-Mock-Fault": "accept-then=503"})
            client.v1(body, key=key)  # 409
            client.v2(body)  # duplicates and a reject
            client.v2(make_body(1), headers={"X-Rokt-Mock-Fault": "status=503"})
            client.v2(make_body(1), headers={"Content-Type": "text/plain"})
            client.v2(make_body(2), headers={"X-Rokt-Mock-Fault": "delay=0.01"})
        assert mock.admin("DELETE", "journal", params={"namespace": "gone"}).status_code == 200
        summary = mock.summary("*")
        health = mock.admin("GET", "health").json()
    counted = _scan_counts(journal)
    assert _tallies(journal) == counted
    assert summary["requests"]["total"] == sum(n for (_, k, _), n in counted.items() if k == "req")
    with sqlite3.connect(journal) as db:  # /__admin/health's counts come from the tallies too
        rows, events, last = db.execute(
            "SELECT (SELECT count(*) FROM requests), (SELECT count(*) FROM events),"
            " (SELECT max(id) FROM requests)"
        ).fetchone()
    assert health["journal"]["requests"] == rows
    assert health["journal"]["events"] == events
    assert health["journal"]["lastRequestId"] == last
    # an older journal: no tallies yet -> counted when opened
    with sqlite3.connect(journal) as db:
        db.execute("DELETE FROM tallies")
        db.execute("DELETE FROM state WHERE key='tallies'")
    with start_mock(journal=journal) as mock:
        assert mock.summary("*") == summary
    assert _tallies(journal) == counted


def test_a_schema_2_journal_is_upgraded_in_place_and_keeps_its_deliveries(tmp_path: Path) -> None:
    """Schema 2 kept delivery counts in a second table keyed by event id; schema 3 reads them
    from the events index. Opening a schema-2 journal drops that table and its index, and an
    id delivered before the upgrade is still a duplicate after it."""
    journal = tmp_path / "journal.sqlite3"
    event = make_event()
    with start_mock(journal=journal) as mock:
        assert Client(mock).v2({"accountId": ACCOUNT, "events": [event]}).status_code == 200
    with sqlite3.connect(journal) as db:  # what schema 2 looked like on disk
        db.execute(
            "CREATE TABLE deliveries (namespace TEXT NOT NULL, account_id TEXT NOT NULL,"
            " client_event_id TEXT NOT NULL, event_type TEXT, deliveries INTEGER NOT NULL,"
            " first_request_id INTEGER NOT NULL, last_request_id INTEGER NOT NULL,"
            " first_at REAL NOT NULL, last_at REAL NOT NULL,"
            " PRIMARY KEY (namespace, client_event_id, account_id)) WITHOUT ROWID"
        )
        db.execute("CREATE INDEX events_ceid ON events(client_event_id, namespace)")
        db.execute("UPDATE state SET value='2' WHERE key='schema_version'")
    with start_mock(journal=journal) as mock:
        again = Client(mock).v2({"accountId": ACCOUNT, "events": [event]})
        assert again.json()["data"]["details"]["duplicates"] == 1
        listed = mock.admin("GET", "events").json()
        assert [(e["clientEventId"], e["deliveries"]) for e in listed["events"]] == [
            (event["clientEventId"], 2)
        ]
    with sqlite3.connect(journal) as db:
        names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        version = db.execute("SELECT value FROM state WHERE key='schema_version'").fetchone()[0]
    assert "deliveries" not in names
    assert "events_ceid" not in names
    assert "events_by_id" in names
    assert version == "3"


def test_a_journal_of_an_unknown_schema_is_refused(tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite3"
    with start_mock(journal=journal):
        pass
    with sqlite3.connect(journal) as db:
        db.execute("UPDATE state SET value='99' WHERE key='schema_version'")
    proc = subprocess.run(
        [sys.executable, "-m", "mockserver", "serve", "--port", "0", "--journal", str(journal)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "journal schema 99" in proc.stderr
    with sqlite3.connect(journal) as db:  # refused before anything was changed
        version = db.execute("SELECT value FROM state WHERE key='schema_version'").fetchone()
    assert version == ("99",)
