"""Crash safety under load (issue 7.3): ``kill -9`` the whole server mid-load, three times.

tests/mockserver/test_crash.py kills a one-worker server under one sequential v1 stream, once.
This one is harder on the journal: 32 clients of the load test's mix (valid, invalid, retried,
raced and header-faulted requests, v1 and v2, token requests) run against the server while it
is killed with SIGKILL to its whole process group (the gunicorn arbiter and every worker: the
server is started in its own session, so the group is exactly those processes). It crashes
three times, alternating ``--workers 2`` and the default single worker, and is restarted on
the same journal file each time. After each crash:

- ``PRAGMA integrity_check`` is ``ok`` on the file, opened read-only before the restart;
- after the restart, every request that got an HTTP answer before the kill (any status, not
  only 200) is in the journal under the ``X-Rokt-Mock-Request-Id`` it was given, with that
  status and its events; every request the kill cut off is either journaled whole or absent;
  no row exists that no client sent (tests/hardening/loadgen.py, :func:`reconcile`, run over
  everything sent since the first start);
- the delivery counts, the idempotency table and the events agree (the cross-table checks of
  ``sqlite_figures``);
- every Idempotency-Key committed before the crash still gets 409 naming its original
  request, sent with a token issued before the crash (it stays valid across restarts).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from contract_tests.mock import MockServer
from tests.conftest import start_mock
from tests.hardening.loadgen import (
    CRASH_MIX,
    Load,
    LoadClient,
    LoadRun,
    Sent,
    integrity_check,
    kill_group,
    reconcile,
    record_figures,
)

CRASHES = int(os.environ.get("ROKT_MOCK_CRASHES") or 3)
CLIENTS = 32
#: Kill once the clients have had this many answers (bounded by KILL_DEADLINE seconds): in
#: the middle of the load, a moment after a restart, and deeper in (cycle i uses entry i % 3).
ANSWERS_BEFORE_KILL = (1200, 100, 2500)
KILL_DEADLINE = 30.0
#: Worker count of the server under each crash, then of the server that checks the last one.
MODES = [2, 1]


def _start(journal: Path, workers: int) -> MockServer:
    return start_mock(*(["--workers", str(workers)] if workers > 1 else []), journal=journal)


def _resend_committed_keys(
    mock: MockServer, clients: list[LoadClient], name: str
) -> tuple[list[Sent], list[str]]:
    """Send every key a client saw committed again, with the same body and an old token."""
    run = LoadRun(mock.url, seconds=0, max_requests=0, mix={}, seed=0)
    checker = LoadClient(run, name)
    checker.token = next(c.token for c in clients if c.token)  # issued before the crash
    problems: list[str] = []
    for client in clients:
        bodies = {key: (raw, ids, etype) for key, raw, ids, etype in client.v1_sent}
        for key, request_id in client.committed.items():
            raw, ids, etype = bodies[key]
            s = checker.send(
                "after_crash",
                "/v1/events",
                raw,
                checker._v1_headers(key),
                key=key,
                events=ids,
                expect=(409,),
                event_type=etype,
            )
            if s.status == 409 and request_id is not None and s.original != request_id:
                problems.append(f"{s.seq}: 409 names {s.original}, key {key} was {request_id}")
    problems += checker.problems
    return checker.log, problems


def test_kill_9_under_load_loses_no_answered_request(tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite3"
    log: list[Sent] = []
    client_problems: list[str] = []
    crashes: list[dict[str, Any]] = []
    started = time.monotonic()
    mock = _start(journal, MODES[0])
    try:
        for crash in range(CRASHES):
            workers = MODES[crash % len(MODES)]
            run = LoadRun(
                mock.url,
                seconds=KILL_DEADLINE + 30,
                max_requests=10**7,
                mix=CRASH_MIX,
                seed=100 + crash,
            )
            load = Load(run, CLIENTS, prefix=f"k{crash}c").start()
            deadline = time.monotonic() + KILL_DEADLINE
            threshold = ANSWERS_BEFORE_KILL[crash % len(ANSWERS_BEFORE_KILL)]
            while load.answered() < threshold and time.monotonic() < deadline:
                time.sleep(0.05)  # polling the clients' progress, not a synchronisation
            run.killed.set()
            killed = kill_group(mock)
            run.stop.set()
            result = load.finish()
            log += result.log
            client_problems += result.problems

            integrity = integrity_check(journal)  # every process is gone; before the restart
            assert integrity == ["ok"], f"crash {crash + 1}: {integrity}"

            restarted = MODES[(crash + 1) % len(MODES)]
            mock = _start(journal, restarted)
            resent, problems = _resend_committed_keys(mock, load.clients, f"v{crash}c")
            log += resent
            client_problems += problems
            report = reconcile(mock, log, journal=journal)
            in_cycle = result.log
            crashes.append(
                {
                    "crash": crash + 1,
                    "workersKilled": workers,
                    "processesKilled": len(killed),
                    "restartedWith": restarted,
                    "requestsSent": len(in_cycle),
                    "answeredBeforeKill": sum(1 for s in in_cycle if s.status is not None),
                    "answered200": sum(1 for s in in_cycle if s.status == 200),
                    "inFlightAtKill": sum(1 for s in in_cycle if s.in_flight),
                    "keysResentAfterRestart": len(resent),
                    "keysStill409": sum(1 for s in resent if s.status == 409),
                    "integrityCheck": integrity,
                    "problems": len(report.problems),
                }
            )
            print(f"\ncrash {crash + 1}: {json.dumps(crashes[-1])}")
            assert not report.problems, "\n".join(report.problems[:60])
        # a last graceful stop, and the file is still sound
        assert mock.stop() == 0
        final = integrity_check(journal)
    finally:
        mock.kill()

    figures = {
        "crashesSurvived": len(crashes),
        "clients": CLIENTS,
        "requestsSent": len(log),
        "journalRows": report.figures["journalRows"],
        "inFlightAtKill": report.figures["inFlightAtKill"],
        "inFlightJournaled": report.figures["inFlightJournaled"],
        "deliveriesJournaled": report.figures["deliveriesJournaled"],
        "seconds": round(time.monotonic() - started, 1),
        "crashes": crashes,
        "finalIntegrityCheck": final,
    }
    print(
        f"crash: {len(crashes)} kill -9 survived, {figures['requestsSent']} requests sent, "
        f"{figures['journalRows']} journaled ({figures['inFlightAtKill']} cut off by a kill, "
        f"{figures['inFlightJournaled']} of them journaled), "
        f"{sum(c['keysStill409'] for c in crashes)} keys still 409 after restarts"
    )
    record_figures("crash", figures)
    assert final == ["ok"]
    assert not client_problems, "\n".join(client_problems[:60])
    assert all(c["keysStill409"] == c["keysResentAfterRestart"] > 0 for c in crashes)
    assert all(c["answered200"] > 0 for c in crashes)
