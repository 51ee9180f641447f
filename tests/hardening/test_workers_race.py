"""Same-key races across worker processes (issue 5.2), and rule counters under racing.

One ``rokt-mock serve --workers 2`` on a journal file. Each round opens a fresh connection per
racer (so the kernel hands them to both workers' accept loops), holds every racer at a
``threading.Barrier`` and then lets all of them send at once.

Which process answered is read from the kernel, not from the server: after the answer, while
the keep-alive connection is still open, the server side of the connection is looked up in
``/proc/net/tcp`` and its socket inode found among the workers' descriptors
(``loadgen.connection_owners``). The server's own request log lines carry the worker pid and
the journal id too; when present they must agree with the kernel.

- Same Idempotency-Key, 16 racers, 12 rounds with a new key each (same body in even rounds,
  a different body per racer in odd ones): exactly one 200 per key, 15 409
  ``IdempotencyKeyReused`` naming it, the winner's events delivered exactly once and the
  losers' never, and answers for one key from both workers.
- ``when: {first: 3}`` and ``when: {every: 4}`` rules, 24 racers per namespace: exactly 3 (and
  6) faulted, at attempts 1-3 (and 4, 8, ..., 24), whichever worker answered.
- A leaky bucket (``rateLimit`` burst 5) on a namespace clock that is frozen: exactly 5 of 24
  racers pass; after advancing the clock 3 s, exactly 3 of 12 more.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.client import HTTPConnection
from typing import Any
from urllib.parse import urlsplit

import pytest

from contract_tests.mock import MockServer
from tests.conftest import ACCOUNT, RPUB, RSEC, Client, basic, make_event, start_mock
from tests.hardening.loadgen import (
    connection_owners,
    pids_by_request_id,
    record_figures,
    worker_pids,
)

WORKERS = 2
RACERS = 16
ROUNDS = 12
RULE_RACERS = 24
RULE_ROUNDS = 3
FIGURES: dict[str, Any] = {"workers": WORKERS}


@dataclass
class Answer:
    status: int
    payload: Any
    headers: dict[str, str]
    request_id: int | None
    port: int
    started: float
    ended: float
    pid: int | None = None

    @property
    def data(self) -> dict[str, Any]:
        data = self.payload.get("data") if isinstance(self.payload, dict) else None
        return data if isinstance(data, dict) else {}

    @property
    def details(self) -> dict[str, Any]:
        return dict(self.data.get("details") or {})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockServer]:
    journal = tmp_path_factory.mktemp("race") / "journal.sqlite3"
    with start_mock("--workers", str(WORKERS), journal=journal) as mock:
        # /__admin/health answers as soon as the first worker does; the others may still be
        # forking, so wait until every one of them exists
        deadline = time.monotonic() + 20
        while len(worker_pids(mock.proc.pid)) < WORKERS and time.monotonic() < deadline:
            time.sleep(0.05)  # polling interval
        yield mock
    record_figures("race", FIGURES)


def race(mock: MockServer, sends: list[tuple[str, bytes, dict[str, str]]]) -> list[Answer]:
    """Send every (path, body, headers) at once, each on its own fresh connection."""
    url = urlsplit(mock.url)
    assert url.hostname is not None
    assert url.port is not None
    conns = [HTTPConnection(url.hostname, url.port, timeout=30) for _ in sends]
    for conn in conns:
        conn.connect()
    barrier = threading.Barrier(len(sends), timeout=30)
    answers: list[Answer | None] = [None] * len(sends)
    errors: list[BaseException] = []

    def go(i: int) -> None:
        path, body, headers = sends[i]
        conn = conns[i]
        try:
            barrier.wait()
            started = time.monotonic()
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            raw = response.read()
            ended = time.monotonic()
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = None
            rid = response.getheader("X-Rokt-Mock-Request-Id")
            answers[i] = Answer(
                response.status,
                payload,
                dict(response.getheaders()),
                int(rid) if rid else None,
                conn.sock.getsockname()[1],
                started,
                ended,
            )
        except BaseException as exc:  # reported below, with the others
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(sends))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert not errors, errors
        assert all(a is not None for a in answers)
        done = [a for a in answers if a is not None]
        # the connections are still open (keep-alive): ask the kernel who holds them
        owners = connection_owners(url.port, [a.port for a in done], worker_pids(mock.proc.pid))
        for a in done:
            a.pid = owners.get(a.port)
        return done
    finally:
        for conn in conns:
            conn.close()


def overlapped(answers: list[Answer]) -> bool:
    """Were all requests of the round in the server at one time?"""
    return max(a.started for a in answers) < min(a.ended for a in answers)


def check_log_pids(mock: MockServer, answers: list[Answer]) -> str:
    """Cross-check the kernel's answer with the server's request log (pid, journal id)."""
    wanted = {a.request_id for a in answers}
    deadline = time.monotonic() + 5
    logged = pids_by_request_id(mock.output)
    while not wanted <= set(logged) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the output pump
        logged = pids_by_request_id(mock.output)
    if not logged:
        return "no request log lines: not cross-checked"
    disagree = [
        (a.request_id, a.pid, logged.get(a.request_id))
        for a in answers
        if a.request_id in logged and a.pid is not None and logged[a.request_id] != a.pid
    ]
    assert not disagree, f"kernel and log disagree on (request id, pid, logged pid): {disagree}"
    return f"{sum(1 for a in answers if a.request_id in logged)} of {len(answers)} agree"


def v2_headers() -> dict[str, str]:
    return {
        "Authorization": basic(RPUB, RSEC),
        "Content-Type": "application/json",
        "Charset": "utf-8",
        "Rokt-Version": "2020-05-21",
    }


def v1_headers(token: str, key: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Charset": "utf-8",
        "Rokt-Version": "2020-05-21",
        "Idempotency-Key": key,
    }


def body_of(n: int) -> dict[str, Any]:
    return {"accountId": ACCOUNT, "events": [make_event() for _ in range(n)]}


def test_same_key_racing_on_two_workers_gives_exactly_one_200(server: MockServer) -> None:
    namespace = "race-idem"
    token = Client(server).token()
    assert len(worker_pids(server.proc.pid)) == WORKERS
    rounds: list[dict[str, Any]] = []
    winners_events: list[str] = []
    losers_events: list[str] = []
    every_answer: list[Answer] = []
    for r in range(ROUNDS):
        key = str(uuid.uuid4())
        same_body = r % 2 == 0
        bodies = [body_of(3)] * RACERS if same_body else [body_of(3) for _ in range(RACERS)]
        headers = v1_headers(token, key)
        answers = race(
            server,
            [(f"/ns/{namespace}/v1/events", json.dumps(b).encode(), headers) for b in bodies],
        )
        every_answer += answers
        statuses = Counter(a.status for a in answers)
        assert statuses == {200: 1, 409: RACERS - 1}, (r, statuses)
        (winner_index,) = [i for i, a in enumerate(answers) if a.status == 200]
        winner = answers[winner_index]
        for i, a in enumerate(answers):
            if a.status == 409:
                assert a.data["code"] == "IdempotencyKeyReused"
                assert a.details["originalRequestId"] == winner.request_id
                assert a.details["bodyDiffers"] is (not same_body)
                if not same_body:
                    losers_events += [e["clientEventId"] for e in bodies[i]["events"]]
        winners_events += [e["clientEventId"] for e in bodies[winner_index]["events"]]
        rows = server.requests(namespace=namespace, idempotencyKey=key, limit=100)
        assert len(rows) == RACERS
        assert Counter(row["status"] for row in rows) == {200: 1, 409: RACERS - 1}
        pids = Counter(a.pid for a in answers)
        rounds.append(
            {
                "round": r + 1,
                "sameBody": same_body,
                "statuses": {str(k): v for k, v in statuses.items()},
                "answersByPid": {str(k): v for k, v in pids.items()},
                "winnerPid": winner.pid,
                "overlapped": overlapped(answers),
            }
        )

    # each winner's event delivered exactly once, no loser's event at all
    events = server.admin("GET", "events", params={"namespace": namespace, "limit": 1000}).json()
    delivered = {e["clientEventId"]: e["deliveries"] for e in events["events"]}
    assert events["total"] == len(winners_events) == ROUNDS * 3
    assert delivered == dict.fromkeys(winners_events, 1)
    assert not set(losers_events) & set(delivered)
    summary = server.summary(namespace)
    assert summary["events"]["accepted"] == ROUNDS * 3
    assert summary["events"]["duplicates"] == 0
    assert summary["requests"]["byStatus"] == {"200": ROUNDS, "409": ROUNDS * (RACERS - 1)}

    # the answers for one key came from different worker processes
    cross = [x for x in rounds if len([p for p in x["answersByPid"] if p != "None"]) > 1]
    winners_by_pid = Counter(x["winnerPid"] for x in rounds)
    log_check = check_log_pids(server, every_answer)
    FIGURES["sameKey"] = {
        "rounds": ROUNDS,
        "racersPerRound": RACERS,
        "roundsWithExactlyOne200": ROUNDS,
        "roundsAnsweredByBothWorkers": len(cross),
        "roundsFullyOverlapped": sum(1 for x in rounds if x["overlapped"]),
        "winnersByPid": {str(k): v for k, v in winners_by_pid.items()},
        "logCrossCheck": log_check,
        "perRound": rounds,
    }
    print(
        f"\nrace same key, --workers {WORKERS}: {ROUNDS} rounds x {RACERS} racers: "
        f"exactly one 200 in {ROUNDS}/{ROUNDS}; answered by both workers in "
        f"{len(cross)}/{ROUNDS}; winners by pid {dict(winners_by_pid)}; "
        f"fully overlapped rounds {FIGURES['sameKey']['roundsFullyOverlapped']}; "
        f"log cross-check: {log_check}"
    )
    assert all(a.pid is not None for a in every_answer), "a connection's worker was not found"
    assert len({a.pid for a in every_answer}) == WORKERS
    assert cross, f"no round was answered by two workers: {rounds}"


def test_same_key_racing_with_accept_then_faults_commits_once(server: MockServer) -> None:
    """Half the racers ask for ``accept-then=500`` (commit, then answer 500): still exactly one
    commit per key, whether the winner is a plain racer (200) or a faulted one (500 with
    ``details.fault.committed``), and every other racer gets 409 naming it."""
    namespace = "race-accept-then"
    token = Client(server).token()
    winners = Counter()
    for _ in range(6):
        key = str(uuid.uuid4())
        body = json.dumps(body_of(2)).encode()
        headers = v1_headers(token, key)
        sends = [
            (
                f"/ns/{namespace}/v1/events",
                body,
                {**headers, "X-Rokt-Mock-Fault": "accept-then=500"} if i % 2 else headers,
            )
            for i in range(RACERS)
        ]
        answers = race(server, sends)
        commits = [
            a for a in answers if a.status == 200 or (a.details.get("fault") or {}).get("committed")
        ]
        assert len(commits) == 1, Counter(a.status for a in answers)
        (commit,) = commits
        winners["faulted" if commit.status == 500 else "plain"] += 1
        others = [a for a in answers if a is not commit]
        assert {a.status for a in others} == {409}
        assert {a.details["originalRequestId"] for a in others} == {commit.request_id}
    events = server.admin("GET", "events", params={"namespace": namespace}).json()
    assert events["total"] == 6 * 2
    assert {e["deliveries"] for e in events["events"]} == {1}
    FIGURES["sameKeyWithAcceptThen"] = {"rounds": 6, "racers": RACERS, "winners": dict(winners)}
    print(f"\nrace same key with accept-then racers: one commit in 6/6 rounds, winners {winners}")


def _post_rule(server: MockServer, namespace: str, rule: dict[str, Any]) -> None:
    response = server.admin("POST", "faults", params={"namespace": namespace}, json=rule)
    assert response.status_code == 201, response.text


def _counters(server: MockServer, namespace: str, rule_id: str) -> dict[str, int]:
    listing = server.admin("GET", "faults", params={"namespace": namespace}).json()
    (rule,) = [r for r in listing["rules"] if r["id"] == rule_id]
    return dict(rule["counters"][namespace])


@pytest.mark.parametrize(
    ("when", "expected_attempts"),
    [
        ({"first": 3}, {1, 2, 3}),
        ({"every": 4}, {4, 8, 12, 16, 20, 24}),
    ],
    ids=["first-3", "every-4"],
)
def test_nth_attempt_rules_count_once_across_workers(
    server: MockServer, when: dict[str, int], expected_attempts: set[int]
) -> None:
    name = "-".join(f"{k}{v}" for k, v in when.items())
    results = []
    for r in range(RULE_ROUNDS):
        namespace = f"race-{name}-{r}"
        rule_id = f"race-{name}"
        _post_rule(server, namespace, {"id": rule_id, "when": when, "fault": {"status": 503}})
        answers = race(
            server,
            [
                (f"/ns/{namespace}/v2/events", json.dumps(body_of(1)).encode(), v2_headers())
                for _ in range(RULE_RACERS)
            ],
        )
        faulted = [a for a in answers if a.status == 503]
        assert Counter(a.status for a in answers) == {
            503: len(expected_attempts),
            200: RULE_RACERS - len(expected_attempts),
        }
        assert all(a.details["fault"]["rule"] == rule_id for a in faulted)
        assert {a.details["fault"]["attempt"] for a in faulted} == expected_attempts
        assert _counters(server, namespace, rule_id) == {
            "matched": RULE_RACERS,
            "fired": len(expected_attempts),
        }
        assert server.summary(namespace)["requests"]["total"] == RULE_RACERS  # one row each
        check_log_pids(server, answers)
        results.append(
            {
                "namespace": namespace,
                "faulted": len(faulted),
                "faultedByPid": dict(Counter(str(a.pid) for a in faulted)),
                "answersByPid": dict(Counter(str(a.pid) for a in answers)),
                "overlapped": overlapped(answers),
            }
        )
    FIGURES[f"rule-{name}"] = {"racers": RULE_RACERS, "rounds": results}
    print(f"\nrace rule when={when}: {results}")
    assert any(len(x["answersByPid"]) > 1 for x in results), results


def test_rate_limiter_is_shared_across_workers(server: MockServer) -> None:
    results = []
    for r in range(RULE_ROUNDS):
        namespace = f"race-rate-{r}"
        clock = server.admin(
            "POST", "clock", params={"namespace": namespace}, json={"frozen": True}
        )
        assert clock.status_code == 200, clock.text
        _post_rule(
            server,
            namespace,
            {"id": "race-bucket", "fault": {"rateLimit": {"rate": 1, "burst": 5}}},
        )

        def wave(n: int, namespace: str = namespace) -> list[Answer]:
            return race(
                server,
                [
                    (f"/ns/{namespace}/v2/events", json.dumps(body_of(1)).encode(), v2_headers())
                    for _ in range(n)
                ],
            )

        first = wave(RULE_RACERS)
        assert Counter(a.status for a in first) == {200: 5, 429: RULE_RACERS - 5}
        assert all(
            a.data["code"] == "TooManyRequestsError" and int(a.headers["Retry-After"]) >= 1
            for a in first
            if a.status == 429
        )
        advanced = server.admin(
            "POST", "clock", params={"namespace": namespace}, json={"advance": 3}
        )
        assert advanced.status_code == 200, advanced.text
        second = wave(12)
        assert Counter(a.status for a in second) == {200: 3, 429: 9}
        assert _counters(server, namespace, "race-bucket") == {
            "matched": RULE_RACERS + 12,
            "fired": RULE_RACERS - 5 + 9,
        }
        assert server.summary(namespace)["requests"]["total"] == RULE_RACERS + 12
        check_log_pids(server, first + second)
        results.append(
            {
                "namespace": namespace,
                "passedByPid": dict(Counter(str(a.pid) for a in first + second if a.status == 200)),
                "answersByPid": dict(Counter(str(a.pid) for a in first + second)),
                "overlapped": overlapped(first) and overlapped(second),
            }
        )
    FIGURES["rateLimit"] = {
        "burst": 5,
        "firstWave": RULE_RACERS,
        "secondWave": 12,
        "rounds": results,
    }
    print(f"\nrace rate limit: {results}")
    assert any(len(x["answersByPid"]) > 1 for x in results), results
