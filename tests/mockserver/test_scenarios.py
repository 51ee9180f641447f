"""The bundled fault scenarios (fixtures/scenarios/*.yaml): each one does what its text says.

Every scenario is exercised the way a partner uses it, from ``serve --scenario NAME`` or
``POST /__admin/faults {"scenario": NAME}``, by a real HTTP client. Time-based behaviour is
driven with the mock's clock, never by waiting. Scenario files with mistakes must stop the
start with exit code 2 and a ``FILE:LINE: /pointer`` message.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from contract_tests.mock import MockServer
from tests.conftest import FIXTURES, Client, error_of, make_body, start_mock
from tests.mockserver.test_faults import (
    advance,
    deliveries,
    freeze,
    ids_of,
    last_request,
    listed,
    outcome,
    run_sequence,
    send,
    statuses,
)

SCENARIOS = FIXTURES / "scenarios"
NAMES = {
    "accept-then-fail",
    "chaos",
    "flaky-5xx",
    "outage-then-recovery",
    "partial-rejects",
    "rate-limited",
    "slow-network",
    "token-expiry-mid-run",
}


def load_scenario(mock: MockServer, name: str) -> list[dict[str, Any]]:
    response = mock.admin("POST", "faults", json={"scenario": name})
    assert response.status_code == 201, response.text
    return list(response.json()["rules"])


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Iterator[MockServer]:
    """A mock started with ``--scenario <param>`` (and any further flags)."""
    args = request.param if isinstance(request.param, tuple) else (request.param,)
    server = start_mock("--scenario", *args)
    try:
        yield server
    finally:
        server.stop()


def test_every_bundled_scenario_is_covered_here() -> None:
    found = {p.stem for p in SCENARIOS.iterdir() if p.suffix in (".yaml", ".yml", ".toml")}
    assert found == NAMES
    for path in SCENARIOS.glob("*.yaml"):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert data["name"] == path.stem
        assert data["description"].strip()


# -- flaky-5xx ---------------------------------------------------------------------------------

#: With seed 5, the 1-based positions of the failed batches among 40 and their statuses.
FLAKY_5XX = {1: 503, 8: 503, 16: 502, 18: 500, 23: 503, 30: 500, 31: 500, 34: 500}


def failures(results: list[int | str]) -> dict[int, int | str]:
    return {i + 1: r for i, r in enumerate(results) if r != 200}


@pytest.mark.parametrize("served", ["flaky-5xx"], indirect=True)
def test_flaky_5xx_fails_the_same_batches_every_run(served: MockServer) -> None:
    client = Client(served)
    first = failures(statuses(40, lambda: send(client)))
    assert first == FLAKY_5XX
    assert 0 < len(first) < 20
    assert len(deliveries(served)) == 40 - len(first)  # failed batches committed nothing
    codes = {r["code"] for r in served.requests(status="5xx", limit=100)}
    assert codes == {"InternalServerError", "ServiceUnavailableError"}

    served.reset()  # scenario rules stay, counters start again
    assert failures(statuses(40, lambda: send(Client(served)))) == first


@pytest.mark.parametrize("served", ["flaky-5xx"], indirect=True)
def test_flaky_5xx_a_retrying_sender_delivers_everything_once(served: MockServer) -> None:
    client = Client(served)
    sent: list[str] = []
    retries = 0
    for _ in range(15):
        body, key = make_body(2), str(uuid.uuid4())
        sent += ids_of(body)
        for _attempt in range(10):
            response = send(client, body=body, key=key)
            if response.status_code == 200:
                break
            assert response.status_code in (500, 502, 503), response.text
            retries += 1
        else:
            pytest.fail("a batch never got through")
    assert retries > 0
    assert deliveries(served) == dict.fromkeys(sent, 1)


# -- outage-then-recovery ----------------------------------------------------------------------


def test_outage_then_recovery(mock: MockServer) -> None:
    freeze(mock)
    load_scenario(mock, "outage-then-recovery")
    client = Client(mock)
    assert client.token_response().status_code == 200  # only the events endpoints are down
    body, key = make_body(), str(uuid.uuid4())
    for api in ("v1", "v2"):
        response = send(client, api, body, key=key)
        assert error_of(response) == (503, "ServiceUnavailableError"), response.text
        assert response.headers["Retry-After"] == "2"
    advance(mock, 19.5)
    assert send(client, body=body, key=key).status_code == 503
    advance(mock, 0.5)
    assert send(client, body=body, key=key).status_code == 200
    assert send(client, "v2").status_code == 200
    assert deliveries(mock)[ids_of(body)[0]] == 1


# -- token-expiry-mid-run ----------------------------------------------------------------------


def test_token_expiry_mid_run(mock: MockServer) -> None:
    load_scenario(mock, "token-expiry-mid-run")
    client = Client(mock)
    assert statuses(2, lambda: send(client)) == [200, 200]
    assert send(client, "v2").status_code == 200  # v2 requests are not counted
    body, key = make_body(), str(uuid.uuid4())
    third = send(client, body=body, key=key)
    assert error_of(third) == (401, "UnauthorizedError")
    assert third.json()["data"]["details"]["tokenExpired"] is True
    assert third.headers["WWW-Authenticate"] == 'Bearer realm="rokt-mock", error="invalid_token"'
    assert last_request(mock)["fault"]["rule"] == "expire-third"

    again = send(client, body=body, key=key)  # that token stays invalid
    assert error_of(again) == (401, "UnauthorizedError")

    renewed = Client(mock)  # a new token, the same batch and key
    assert send(renewed, body=body, key=key).status_code == 200
    assert statuses(3, lambda: send(renewed)) == [200, 200, 200]
    assert deliveries(mock)[ids_of(body)[0]] == 1


# -- accept-then-fail --------------------------------------------------------------------------


def test_accept_then_fail(mock: MockServer) -> None:
    load_scenario(mock, "accept-then-fail")
    client = Client(mock)
    batches = [(make_body(2), str(uuid.uuid4())) for _ in range(3)]
    (one, key_one), (two, key_two), (three, key_three) = batches

    assert send(client, body=one, key=key_one).status_code == 200
    lost = send(client, body=two, key=key_two)
    assert error_of(lost) == (503, "ServiceUnavailableError")
    committed = last_request(mock)
    assert committed["fault"]["rule"] == "commit-then-503"
    assert committed["fault"]["committed"] is True
    assert error_of(send(client, body=two, key=key_two)) == (409, "IdempotencyKeyReused")

    assert outcome(lambda: send(client, body=three, key=key_three)) == "reset"
    reset_row = last_request(mock, fault="acceptThen")
    assert reset_row["fault"]["rule"] == "commit-then-reset"
    assert (reset_row["status"], reset_row["code"]) == (0, "ConnectionReset")
    assert reset_row["fault"]["committed"] is True
    assert error_of(send(client, body=three, key=key_three)) == (409, "IdempotencyKeyReused")

    everything = [i for body, _ in batches for i in ids_of(body)]
    assert deliveries(mock) == dict.fromkeys(everything, 1)


# -- rate-limited ------------------------------------------------------------------------------


def test_rate_limited(mock: MockServer) -> None:
    freeze(mock)
    load_scenario(mock, "rate-limited")
    client = Client(mock)
    assert statuses(3, lambda: send(client)) == [200, 200, 200]  # the burst
    limited = send(client)
    assert error_of(limited) == (429, "TooManyRequestsError")
    assert limited.headers["Retry-After"] == "1"  # 2 per second, rounded up to whole seconds
    assert statuses(3, lambda: send(client, "v2")) == [200, 200, 200]  # its own bucket

    advance(mock, int(limited.headers["Retry-After"]))  # a sender that waits as told
    assert statuses(3, lambda: send(client)) == [200, 200, 429]
    assert mock.summary()["requests"]["byFault"] == {"rateLimit": 2}


# -- slow-network ------------------------------------------------------------------------------


def test_slow_network(mock: MockServer) -> None:
    load_scenario(mock, "slow-network")
    client = Client(mock)
    started = time.monotonic()
    assert client.token_response().status_code == 200
    token_delay = last_request(mock, endpoint="/auth/oauth2/token")["fault"]["delaySeconds"]
    assert 0.05 <= token_delay <= 0.3
    assert time.monotonic() - started >= token_delay - 0.02

    client.token()
    for attempt in range(1, 6):
        started = time.monotonic()
        response = send(client)
        elapsed = time.monotonic() - started
        assert response.status_code == 200, response.text
        assert response.json()["data"]["details"]["accepted"] == 1
        note = last_request(mock, endpoint="/v1/events")["fault"]
        assert 0 < note["delaySeconds"] <= 2.0, note  # log-normal, capped at 2 s
        assert elapsed >= note["delaySeconds"] - 0.02
        if attempt == 5:
            assert note["kind"] == "dribble"
            assert elapsed >= note["delaySeconds"] + 0.9  # dribbled over one second
        else:
            assert note["kind"] == "delay"
        assert elapsed < note["delaySeconds"] + 5


# -- partial-rejects ---------------------------------------------------------------------------


def rejected_positions(response: requests.Response, body: dict[str, Any]) -> list[int]:
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    ids = ids_of(body)
    return [ids.index(r["record"]["clientEventId"]) for r in data["unprocessedRecords"]]


def partial_run(mock: MockServer) -> dict[int, list[int]]:
    client = Client(mock)
    out = {}
    for attempt in range(1, 7):
        body = make_body(10)
        response = send(client, body=body)
        out[attempt] = rejected_positions(response, body)
        records = response.json()["data"]["unprocessedRecords"]
        for record in records:
            assert record["error"]["code"] == "ValidationError"
            assert [d["rule"] for d in record["error"]["details"]] == ["fault.partial_reject"]
        assert response.json()["data"]["details"]["accepted"] == 10 - len(records)
    return out


def test_partial_rejects(mock: MockServer) -> None:
    load_scenario(mock, "partial-rejects")
    run = partial_run(mock)
    assert all(run[n] == [] for n in (1, 2, 4, 5)), run
    assert run[3] or run[6], run  # every third batch: some events, probability 0.3 each
    rejected = len(run[3]) + len(run[6])
    assert len(deliveries(mock)) == 60 - rejected
    mock.reset()
    load_scenario(mock, "partial-rejects")
    assert partial_run(mock) == run  # seeded


@pytest.mark.parametrize(
    "served", [("partial-rejects", "--exact-bodies")], indirect=True, ids=["exact-bodies"]
)
def test_partial_rejects_with_rokt_exact_bodies(served: MockServer) -> None:
    client = Client(served)
    records = []
    for _ in range(6):
        response = send(client, body=make_body(10))
        assert response.status_code == 200, response.text
        records += response.json()["data"]["unprocessedRecords"]
    assert records
    assert {(r["error"]["code"], r["error"]["message"]) for r in records} == {
        ("ValidationError", "Invalid content")
    }


# -- chaos ---------------------------------------------------------------------------------------


def test_chaos_is_the_same_every_run() -> None:
    runs, summaries = [], []
    for _ in range(2):
        server = start_mock("--scenario", "chaos")
        try:
            runs.append(run_sequence(server, 60))
            summaries.append(server.summary()["requests"]["byFault"])
        finally:
            server.stop()
    assert runs[0] == runs[1]
    assert summaries[0] == summaries[1]
    assert {"status", "reset", "acceptThen", "partialReject"} <= set(summaries[0]), summaries[0]
    assert sum(1 for r in runs[0] if r != (200, ())) >= 6


# -- scenarios with mistakes ---------------------------------------------------------------------

BAD_FILES = {
    "wrong-status": (
        "bad.yaml",
        """\
name: bad
rules:
  - id: fine
    fault: {status: 503}
  - id: wrong
    fault:
      status: 599
""",
        7,
        "/rules/1/fault/status",
    ),
    "unknown-key": (
        "bad.yaml",
        """\
name: bad
rules:
  - id: typo
    fault: {reset: true}
    retries: 3
""",
        5,
        "/rules/0/retries",
    ),
    "negative-stall": (
        "bad.yaml",
        """\
name: bad
seed: 1
rules:
  - fault:
      stall: -1
""",
        5,
        "/rules/0/fault/stall",
    ),
    "two-outcomes": (
        "bad.yaml",
        """\
name: bad
rules:
  - fault:
      status: 503
      reset: true
""",
        4,
        "/rules/0/fault",
    ),
    "toml-status": (
        "bad.toml",
        """\
name = "bad"

[[rules]]
id = "fine"
fault = { reset = true }

[[rules]]
id = "wrong"
[rules.fault]
status = 599
""",
        10,
        "/rules/1/fault/status",
    ),
    "toml-unknown-key": (
        "bad.toml",
        """\
name = "bad"

[[rules]]
id = "typo"
retries = 3
fault = { reset = true }
""",
        5,
        "/rules/0/retries",
    ),
}


def serve_and_fail(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mockserver",
            "serve",
            "--port",
            "0",
            "--journal",
            ":memory:",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_scenario_with_a_mistake_stops_the_start(tmp_path: Path, case: str) -> None:
    name, text, line, pointer = BAD_FILES[case]
    (tmp_path / name).write_text(text, encoding="utf-8")
    result = serve_and_fail("--scenario", name, cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "listening" not in result.stdout
    assert f"{name}:{line}: {pointer}:" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_scenario_name_stops_the_start(tmp_path: Path) -> None:
    result = serve_and_fail("--scenario", "nope", cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "nope" in result.stderr
    assert "flaky-5xx" in result.stderr  # the bundled names are listed
    assert "Traceback" not in result.stderr


def test_admin_api_refuses_an_unknown_scenario(mock: MockServer) -> None:
    response = mock.admin("POST", "faults", json={"scenario": "nope"})
    assert error_of(response) == (400, "BadAdminRequest"), response.text
    message = response.json()["data"]["message"]
    assert "nope" in message
    assert all(name in message for name in NAMES)
    assert listed(mock) == {}


def test_admin_api_loads_every_bundled_scenario(mock: MockServer) -> None:
    for name in sorted(NAMES):
        rules = load_scenario(mock, name)
        assert rules, name
        assert all(r["scope"] == "default" for r in rules)
    assert len(listed(mock)) == sum(
        len(yaml.safe_load((SCENARIOS / f"{n}.yaml").read_text(encoding="utf-8"))["rules"])
        for n in NAMES
    )
