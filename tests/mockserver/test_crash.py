"""A ``kill -9`` mid-stream loses nothing that was answered: every 200 is in the journal with its
events after a restart, the file is intact, and accepted keys are still remembered."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

import requests

from tests.conftest import Client, error_of, make_body, start_mock


def test_kill_9_mid_stream_loses_no_answered_request(tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite3"
    mock = start_mock(journal=journal)
    try:
        token = Client(mock).token()
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Charset": "utf-8",
            "Rokt-Version": "2020-05-21",
        }
        answered: list[dict[str, Any]] = []  # every request that got a 200
        failures: list[BaseException] = []
        enough = threading.Event()
        stop = threading.Event()

        def stream() -> None:
            with requests.Session() as http:
                while not stop.is_set():
                    key = str(uuid.uuid4())
                    body = make_body(3)
                    raw = json.dumps(body)
                    try:
                        response = http.post(
                            f"{mock.url}/v1/events",
                            data=raw,
                            headers={**headers, "Idempotency-Key": key},
                            timeout=10,
                        )
                    except requests.RequestException:
                        return  # the server is gone
                    if response.status_code != 200:
                        failures.append(AssertionError(f"{response.status_code} {response.text}"))
                        return
                    answered.append(
                        {
                            "key": key,
                            "raw": raw,
                            "id": int(response.headers["X-Rokt-Mock-Request-Id"]),
                            "events": [e["clientEventId"] for e in body["events"]],
                        }
                    )
                    if len(answered) >= 150:
                        enough.set()

        sender = threading.Thread(target=stream, daemon=True)
        sender.start()
        assert enough.wait(30), f"only {len(answered)} batches answered; {failures}"
        os.killpg(mock.proc.pid, signal.SIGKILL)  # arbiter and workers, mid-stream
        mock.proc.wait(10)
        stop.set()
        sender.join(15)
        assert not sender.is_alive()
    finally:
        stop.set()
        mock.kill()
    assert failures == []
    assert len(answered) >= 150

    with start_mock(journal=journal) as again:
        rows: dict[int, dict[str, Any]] = {}
        params: dict[str, Any] = {"endpoint": "/v1/events", "limit": 1000}
        while True:
            page = again.admin("GET", "requests", params=params).json()
            rows.update({row["id"]: row for row in page["requests"]})
            if page["next"] is None:
                break
            params["before"] = page["next"]
        missing = [a["id"] for a in answered if a["id"] not in rows]
        assert missing == []
        for sent in answered:
            row = rows[sent["id"]]
            assert (row["status"], row["idempotencyKey"]) == (200, sent["key"])
            assert row["body"] == sent["raw"]
            assert [e["clientEventId"] for e in row["events"]] == sent["events"]
            assert {e["outcome"] for e in row["events"]} == {"accepted"}
        accepted = again.summary()["events"]["accepted"]
        assert accepted >= 3 * len(answered)

        with closing(sqlite3.connect(journal)) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)

        # keys accepted before the crash are still remembered (and the token still works)
        with requests.Session() as http:
            for sent in (answered[0], answered[len(answered) // 2], answered[-1]):
                retry = http.post(
                    f"{again.url}/v1/events",
                    data=sent["raw"],
                    headers={**headers, "Idempotency-Key": sent["key"], "Connection": "close"},
                    timeout=10,
                )
                assert error_of(retry) == (409, "IdempotencyKeyReused")
                assert retry.json()["data"]["details"]["originalRequestId"] == sent["id"]
