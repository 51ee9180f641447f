"""Load generation and journal reconciliation for the load, crash and worker-race tests.

Each simulated client is a thread with its own keep-alive ``requests.Session`` and its own log:
one :class:`Sent` per request, holding what it sent (kind, endpoint, Idempotency-Key, event
ids, the fault it asked for) and what it saw (status, ``data.code``,
``X-Rokt-Mock-Request-Id``, the event ids the answer accepted, latency). Every request carries
``X-Load-Seq: <client>-<n>``, a header the journal stores verbatim, so each journal row maps to
exactly one client request and back, socket-faulted requests (no HTTP answer) included.

Threads rather than processes: on the 2-core machine of docs/performance.md the 32-thread
client used about half a core while the server used the rest (``client_cpu_share`` in the
figures says it for every run; near 1.0 would mean the client's GIL is the bottleneck).

:func:`reconcile` then compares the clients' logs with what the mock says through its admin API
(``/__admin/journal/export``, ``/__admin/requests`` paging, ``/__admin/events`` paging,
``/__admin/summary``, ``/__admin/faults``) and with the SQLite file opened read-only, and
returns the figures and a list of problems (empty when nothing was lost or duplicated).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import resource
import signal
import sqlite3
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from contract_tests.mock import MockServer
from tests.conftest import ACCOUNT, APP_ID, APP_SECRET, ROOT, RPUB, RSEC, basic, make_event

SEQ_HEADER = "X-Load-Seq"
REQUEST_ID = "X-Rokt-Mock-Request-Id"
FAULT_HEADER = "X-Rokt-Mock-Fault"
ARTIFACT = ROOT / ".rokt-mock" / "artifacts" / "load.json"
#: Every request is bounded: an answer slower than this is a hang, reported as a problem.
REQUEST_TIMEOUT = 30.0

# -- the traffic mix -------------------------------------------------------------------------

#: kind -> weight. Each kind is one op of :class:`LoadClient`; see its ``op_*`` methods.
MIX: dict[str, int] = {
    "v1_valid": 20,
    "v2_valid": 12,
    "v2_resend": 4,  # the same v2 body again: every event a duplicate delivery
    "v1_retry": 8,  # an earlier v1 request again, same key and body: 409 once committed
    "v1_race": 8,  # same key and body as 3 other clients, released together by a barrier
    "event_invalid": 7,  # one event not in UTC: 200 with it in unprocessedRecords
    "empty_events": 2,  # 400 RequestValidationError
    "bad_json": 2,  # 400 RequestJsonUnmarshalError
    "no_key": 2,  # v1 without Idempotency-Key: 400
    "bad_secret": 2,  # v2 with a wrong secret: 401
    "unknown_path": 1,  # 404, journaled too
    "fault_503": 4,  # X-Rokt-Mock-Fault: status=503 (commits nothing)
    "fault_delay": 4,  # delay=0.05 (a normal 200, later)
    "fault_accept_then": 4,  # accept-then=500 (committed, then 500)
    "fault_reset": 3,  # reset (no HTTP answer; commits nothing)
    "fault_accept_reset": 2,  # accept-then=reset (committed, then no HTTP answer)
    "fault_empty": 1,  # empty (the connection closes without an answer)
    "fault_stall": 1,  # stall=0.3 (nothing for 0.3 s, then the connection closes)
    "client_abandons": 2,  # delay=0.4, the client gives up after 0.1 s: committed all the same
    "read_back": 3,  # a v1 200, then at once GET /__admin/requests?idempotencyKey= (any worker)
    "rule_every3": 5,  # rule load-every3: every 3rd such request gets 503
    "rule_accept": 4,  # rule load-accept-then: every 2nd is committed, then 503
    "rule_partial": 4,  # rule load-partial: event 0 of each batch is rejected
    "rule_rate": 2,  # rule load-rate: a leaky bucket, 429 when full
}
#: Header faults only, no admin rules, no abandoned requests (whose commit comes after the
#: client has moved on, so a kill could fall in between): the mix of the crash test.
CRASH_MIX: dict[str, int] = {
    k: w for k, w in MIX.items() if not k.startswith("rule_") and k != "client_abandons"
}

#: Fault rules installed through POST /__admin/faults. Each matches only batches of its own
#: eventType, which only its kind sends, so the clients know which requests a rule may touch
#: and its counters can be checked exactly.
RULES: list[dict[str, Any]] = [
    {
        "id": "load-every3",
        "match": {"eventType": "rule_every3"},
        "when": {"every": 3},
        "fault": {"status": 503},
    },
    {
        "id": "load-accept-then",
        "match": {"eventType": "rule_accept", "version": "v1"},
        "when": {"every": 2},
        "fault": {"acceptThen": 503},
    },
    {
        "id": "load-partial",
        "match": {"eventType": "rule_partial"},
        "fault": {"partialReject": {"indexes": [0]}},
    },
    {
        "id": "load-rate",
        "match": {"eventType": "rule_rate"},
        "fault": {"rateLimit": {"rate": 5, "burst": 3}},
    },
]
#: eventType -> the rule that matches it (retries of such batches count as attempts too)
RULE_OF_TYPE = {
    "rule_every3": "load-every3",
    "rule_accept": "load-accept-then",
    "rule_partial": "load-partial",
    "rule_rate": "load-rate",
}
#: Kinds whose request is expected to get no HTTP answer.
NO_ANSWER = {"fault_reset", "fault_accept_reset", "fault_empty", "fault_stall", "client_abandons"}
#: Journal codes of a request that got no HTTP answer.
NO_ANSWER_CODES = ("ConnectionReset", "EmptyReply", "Stalled")
#: Same-key racers per race slot.
RACE_FANOUT = 4
RACE_WAIT = 2.0


@dataclass
class Sent:
    """One request, as its client sent and saw it."""

    seq: str
    kind: str
    endpoint: str
    key: str | None = None
    events: list[str] = field(default_factory=list)
    expect: tuple[int | None, ...] = (200,)
    #: The event ids the client predicts are committed although it cannot see an acceptance
    #: (accept-then-fail faults).
    unseen: list[str] = field(default_factory=list)
    status: int | None = None
    code: str | None = None
    request_id: int | None = None
    error: str | None = None
    #: Ids the answer accepted: the batch minus data.unprocessedRecords (200 only).
    accepted: list[str] = field(default_factory=list)
    unprocessed: list[str] = field(default_factory=list)
    fault: dict[str, Any] | None = None  # data.details.fault of an error answer
    original: int | None = None  # data.details.originalRequestId of a 409
    body_request_id: int | None = None  # data.details.requestId
    race: str | None = None
    #: eventType of the batch: the fault rules match on it
    event_type: str | None = None
    started: float = 0.0
    elapsed: float = 0.0
    #: The server was being killed when this request failed: it may or may not be journaled.
    in_flight: bool = False
    #: The client gave up waiting: the request is journaled, but whether it committed (or a
    #: retry of its key overtook it) only the journal knows.
    doubtful: bool = False


class RaceBoard:
    """Hands out race slots: one Idempotency-Key and body shared by RACE_FANOUT clients, who
    wait at a barrier so their requests leave together (a broken barrier lets them go)."""

    def __init__(self, fanout: int = RACE_FANOUT) -> None:
        self.fanout = fanout
        self._lock = threading.Lock()
        self._slot: tuple[str, bytes, list[str], threading.Barrier] | None = None
        self._takers = 0
        self.closed = False

    def take(self) -> tuple[str, bytes, list[str], threading.Barrier]:
        with self._lock:
            if self._slot is None or self._takers >= self.fanout:
                body = batch(2)
                ids = [e["clientEventId"] for e in body["events"]]
                barrier = threading.Barrier(self.fanout, timeout=RACE_WAIT)
                if self.closed:
                    barrier.abort()
                self._slot = (str(uuid.uuid4()), json.dumps(body).encode(), ids, barrier)
                self._takers = 0
            self._takers += 1
            return self._slot

    def close(self) -> None:
        with self._lock:
            self.closed = True
            if self._slot is not None:
                self._slot[3].abort()


def batch(n: int, event_type: str = "conversion") -> dict[str, Any]:
    return {"accountId": ACCOUNT, "events": [make_event(eventType=event_type) for _ in range(n)]}


def _ids(body: dict[str, Any]) -> list[str]:
    return [e["clientEventId"] for e in body["events"]]


class LoadRun:
    """Shared state of one load run: the stop and kill flags, the race board, the deadline."""

    def __init__(
        self, url: str, *, seconds: float, max_requests: int, mix: dict[str, int], seed: int
    ) -> None:
        self.url = url
        self.seconds = seconds
        self.max_requests = max_requests
        self.mix = mix
        self.seed = seed
        self.stop = threading.Event()
        self.killed = threading.Event()
        self.board = RaceBoard()
        self.count = 0
        self._count_lock = threading.Lock()

    def next_request(self) -> bool:
        with self._count_lock:
            if self.count >= self.max_requests:
                return False
            self.count += 1
            return True


class LoadClient:
    """One simulated sender with its own connection pool, token, keys and log."""

    def __init__(self, run: LoadRun, name: str) -> None:
        self.run = run
        self.name = name
        self.rng = random.Random(f"{run.seed}-{name}")
        self.http = requests.Session()
        self.log: list[Sent] = []
        self.problems: list[str] = []
        self.token: str | None = None
        self.n = 0
        #: v1 requests that may be retried: (key, raw body, event ids)
        self.v1_sent: list[tuple[str, bytes, list[str], str]] = []
        #: keys this client knows are committed -> request id (None: committed without an id)
        self.committed: dict[str, int | None] = {}
        #: keys of abandoned requests: committed by them or by a retry, exactly once
        self.doubtful_keys: set[str] = set()
        self.v2_sent: list[tuple[bytes, list[str]]] = []
        self.kinds = list(run.mix)
        self.weights = [run.mix[k] for k in self.kinds]

    # -- plumbing ----------------------------------------------------------------------------

    def _seq(self) -> str:
        self.n += 1
        return f"{self.name}-{self.n}"

    def _v1_headers(self, key: str | None) -> dict[str, str]:
        if self.token is None:
            self.fetch_token()
        h = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/json",
            "Charset": "utf-8",
            "Rokt-Version": "2020-05-21",
        }
        if key is not None:
            h["Idempotency-Key"] = key
        return h

    @staticmethod
    def _v2_headers(secret: str = RSEC) -> dict[str, str]:
        return {
            "Authorization": basic(RPUB, secret),
            "Content-Type": "application/json",
            "Charset": "utf-8",
            "Rokt-Version": "2020-05-21",
        }

    def send(
        self,
        kind: str,
        path: str,
        raw: bytes,
        headers: dict[str, str],
        *,
        key: str | None = None,
        events: list[str] | None = None,
        expect: tuple[int | None, ...] = (200,),
        commits: bool = False,
        race: str | None = None,
        event_type: str | None = "conversion",
        timeout: float = REQUEST_TIMEOUT,
        doubtful: bool = False,
    ) -> Sent:
        """POST one request and log it. ``commits``: the request asks for accept-then-fail, so
        its (valid) batch is committed although the client sees no acceptance."""
        s = Sent(self._seq(), kind, path, key, list(events or []), expect, race=race)
        s.event_type = event_type if events else None
        self.last_payload: Any = None
        headers = {**headers, SEQ_HEADER: s.seq}
        s.started = time.monotonic()
        try:
            response = self.http.post(
                f"{self.run.url}{path}", data=raw, headers=headers, timeout=timeout
            )
        except requests.RequestException as exc:
            s.elapsed = time.monotonic() - s.started
            s.error = f"{type(exc).__name__}: {exc}"
            if self.run.killed.is_set():
                s.in_flight = True  # journaled or not: reconcile() looks it up
            elif doubtful:
                s.doubtful = True
                if key is not None:
                    self.doubtful_keys.add(key)
            else:
                if None not in expect:
                    self.problems.append(f"{s.seq} {kind}: no answer ({s.error})")
                if commits:
                    s.unseen = list(s.events)
                    if key is not None:
                        self.committed[key] = None
            self.log.append(s)
            return s
        s.elapsed = time.monotonic() - s.started
        s.status = response.status_code
        rid = response.headers.get(REQUEST_ID)
        s.request_id = int(rid) if rid and rid.isdigit() else None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        self.last_payload = payload
        data = payload.get("data") if isinstance(payload, dict) else None
        if isinstance(data, dict):
            s.code = data.get("code")
            details = data.get("details") or {}
            s.fault = details.get("fault")
            s.original = details.get("originalRequestId")
            s.body_request_id = details.get("requestId")
            if s.status == 200:
                s.unprocessed = [
                    r["record"]["clientEventId"] for r in data.get("unprocessedRecords", [])
                ]
                s.accepted = [e for e in s.events if e not in set(s.unprocessed)]
        if s.status not in expect:
            self.problems.append(
                f"{s.seq} {kind}: {s.status} {s.code} (expected {expect}); {response.text[:300]}"
            )
        if s.request_id is None:
            self.problems.append(f"{s.seq} {kind}: answer {s.status} without {REQUEST_ID}")
        # The body names the same journal row as the header (else it describes another request)
        if isinstance(data, dict) and s.body_request_id != s.request_id:
            self.problems.append(
                f"{s.seq} {kind}: details.requestId {s.body_request_id}, header {s.request_id}"
            )
        if s.status != 200 and s.fault and s.fault.get("committed"):
            s.unseen = list(s.events)  # accept-then-fail: committed, answered with an error
        if key is not None and (s.status == 200 or s.unseen):
            self.committed[key] = s.request_id
        elif key is not None and s.status == 409 and key in self.doubtful_keys:
            self.committed[key] = s.original
        self.log.append(s)
        return s

    def fetch_token(self) -> None:
        s = self.send(
            "token",
            "/auth/oauth2/token",
            b"grant_type=client_credentials",
            {
                "Authorization": basic(APP_ID, APP_SECRET),
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        payload = self.last_payload
        if s.status == 200 and isinstance(payload, dict):
            self.token = str(payload["access_token"])
        else:
            self.token = "unavailable"  # v1 requests then get 401, reported as problems

    # -- ops ---------------------------------------------------------------------------------

    def op_v1_valid(self) -> None:
        body = batch(self.rng.randint(1, 5))
        key, raw = str(uuid.uuid4()), json.dumps(body).encode()
        self.send("v1_valid", "/v1/events", raw, self._v1_headers(key), key=key, events=_ids(body))
        self.v1_sent.append((key, raw, _ids(body), "conversion"))

    def op_v2_valid(self) -> None:
        body = batch(self.rng.randint(1, 5))
        raw = json.dumps(body).encode()
        self.send("v2_valid", "/v2/events", raw, self._v2_headers(), events=_ids(body))
        self.v2_sent.append((raw, _ids(body)))

    def op_v2_resend(self) -> None:
        if not self.v2_sent:
            return self.op_v2_valid()
        raw, ids = self.rng.choice(self.v2_sent[-20:])
        self.send("v2_resend", "/v2/events", raw, self._v2_headers(), events=ids)
        return None

    def op_v1_retry(self) -> None:
        if not self.v1_sent:
            return self.op_v1_valid()
        key, raw, ids, event_type = self.rng.choice(self.v1_sent[-20:])
        expect: tuple[int | None, ...] = (
            (409,) if key in self.committed else (200, 409) if key in self.doubtful_keys else (200,)
        )
        self.send(
            "v1_retry",
            "/v1/events",
            raw,
            self._v1_headers(key),
            key=key,
            events=ids,
            expect=expect,
            event_type=event_type,
        )
        return None

    def op_v1_race(self) -> None:
        key, raw, ids, barrier = self.run.board.take()
        headers = self._v1_headers(key)
        # a broken barrier (the run is ending, or the other racers are slow): send anyway
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()
        s = self.send(
            "v1_race", "/v1/events", raw, headers, key=key, events=ids, expect=(200, 409), race=key
        )
        if s.status == 200:  # the winner may retry it later, like any key it committed
            self.v1_sent.append((key, raw, ids, "conversion"))

    def op_event_invalid(self) -> None:
        body = batch(3)
        # a UTC instant written with a +10:00 offset: breaks eventTime.utc, only this event
        body["events"][1]["eventTime"] = body["events"][1]["eventTime"].replace("Z", "+10:00")
        raw = json.dumps(body).encode()
        if self.rng.random() < 0.5:
            key = str(uuid.uuid4())
            self.send(
                "event_invalid",
                "/v1/events",
                raw,
                self._v1_headers(key),
                key=key,
                events=_ids(body),
            )
            self.v1_sent.append((key, raw, _ids(body), "conversion"))
        else:
            self.send("event_invalid", "/v2/events", raw, self._v2_headers(), events=_ids(body))

    def op_empty_events(self) -> None:
        raw = json.dumps({"accountId": ACCOUNT, "events": []}).encode()
        self.send("empty_events", "/v2/events", raw, self._v2_headers(), expect=(400,))

    def op_bad_json(self) -> None:
        self.send(
            "bad_json",
            "/v2/events",
            b'{"accountId": "1234567890", "events": [',
            self._v2_headers(),
            expect=(400,),
        )

    def op_no_key(self) -> None:
        body = batch(1)
        self.send(
            "no_key",
            "/v1/events",
            json.dumps(body).encode(),
            self._v1_headers(None),
            events=_ids(body),
            expect=(400,),
        )

    def op_bad_secret(self) -> None:
        body = batch(1)
        self.send(
            "bad_secret",
            "/v2/events",
            json.dumps(body).encode(),
            self._v2_headers("rsec-wrong"),
            events=_ids(body),
            expect=(401,),
        )

    def op_unknown_path(self) -> None:
        self.send("unknown_path", "/v9/events", b"{}", self._v2_headers(), expect=(404,))

    def _header_fault(
        self,
        kind: str,
        fault: str,
        expect: tuple[int | None, ...],
        commits: bool,
        timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        body = batch(self.rng.randint(1, 3))
        key, raw = str(uuid.uuid4()), json.dumps(body).encode()
        headers = {**self._v1_headers(key), FAULT_HEADER: fault}
        self.send(
            kind,
            "/v1/events",
            raw,
            headers,
            key=key,
            events=_ids(body),
            expect=expect,
            commits=commits,
            timeout=timeout,
            doubtful=kind == "client_abandons",
        )
        self.v1_sent.append((key, raw, _ids(body), "conversion"))

    def op_fault_503(self) -> None:
        self._header_fault("fault_503", "status=503", (503,), False)

    def op_fault_delay(self) -> None:
        self._header_fault("fault_delay", "delay=0.05", (200,), False)

    def op_fault_accept_then(self) -> None:
        self._header_fault("fault_accept_then", "accept-then=500", (500,), True)

    def op_fault_reset(self) -> None:
        self._header_fault("fault_reset", "reset", (None,), False)

    def op_fault_accept_reset(self) -> None:
        self._header_fault("fault_accept_reset", "accept-then=reset", (None,), True)

    def op_fault_empty(self) -> None:
        self._header_fault("fault_empty", "empty", (None,), False)

    def op_fault_stall(self) -> None:
        self._header_fault("fault_stall", "stall=0.3", (None,), False)

    def op_client_abandons(self) -> None:
        # "delay only: processed and committed as normal (even if the client gave up meanwhile)"
        self._header_fault("client_abandons", "delay=0.4", (None,), False, timeout=0.1)

    def op_read_back(self) -> None:
        """Read your write: the row of a 200 is listed by the admin API at once, whichever
        worker answers the admin call ("reads are consistent as soon as the Event API response
        has been sent", docs/api.md section 7)."""
        body = batch(self.rng.randint(1, 3))
        key, raw = str(uuid.uuid4()), json.dumps(body).encode()
        s = self.send(
            "read_back", "/v1/events", raw, self._v1_headers(key), key=key, events=_ids(body)
        )
        self.v1_sent.append((key, raw, _ids(body), "conversion"))
        if s.status != 200:
            return
        try:
            listing = self.http.get(
                f"{self.run.url}/__admin/requests",
                params={"idempotencyKey": key, "limit": 5},
                timeout=REQUEST_TIMEOUT,
            )
            ids = [row["id"] for row in listing.json()["requests"]]
        except (requests.RequestException, ValueError, KeyError) as exc:
            if not self.run.killed.is_set():
                self.problems.append(f"{s.seq} read_back: admin lookup failed: {exc}")
            return
        if ids != [s.request_id]:
            self.problems.append(
                f"{s.seq} read_back: request {s.request_id} answered 200, the admin API right "
                f"after lists {ids} for its key ({listing.status_code})"
            )

    def op_rule_every3(self) -> None:
        body = batch(2, "rule_every3")
        self.send(
            "rule_every3",
            "/v2/events",
            json.dumps(body).encode(),
            self._v2_headers(),
            events=_ids(body),
            expect=(200, 503),
            event_type="rule_every3",
        )

    def op_rule_accept(self) -> None:
        body = batch(2, "rule_accept")
        key, raw = str(uuid.uuid4()), json.dumps(body).encode()
        self.send(
            "rule_accept",
            "/v1/events",
            raw,
            self._v1_headers(key),
            key=key,
            events=_ids(body),
            expect=(200, 503),
            event_type="rule_accept",
        )
        self.v1_sent.append((key, raw, _ids(body), "rule_accept"))

    def op_rule_partial(self) -> None:
        body = batch(3, "rule_partial")
        self.send(
            "rule_partial",
            "/v2/events",
            json.dumps(body).encode(),
            self._v2_headers(),
            events=_ids(body),
            event_type="rule_partial",
        )

    def op_rule_rate(self) -> None:
        body = batch(1, "rule_rate")
        self.send(
            "rule_rate",
            "/v2/events",
            json.dumps(body).encode(),
            self._v2_headers(),
            events=_ids(body),
            expect=(200, 429),
            event_type="rule_rate",
        )

    # -- the loop ----------------------------------------------------------------------------

    def loop(self, deadline: float) -> None:
        try:
            self.fetch_token()
            while (
                not self.run.stop.is_set()
                and time.monotonic() < deadline
                and self.run.next_request()
            ):
                before = len(self.log)
                kind = self.rng.choices(self.kinds, self.weights)[0]
                getattr(self, f"op_{kind}")()
                last = self.log[before:]
                if any(s.in_flight for s in last):
                    return  # the server was killed under us
                if any(s.status == 401 and s.endpoint == "/v1/events" for s in last):
                    self.token = None  # refresh (a soak outlives the token's 3600 s)
        except Exception as exc:  # a bug in the client must not look like a quiet run
            self.problems.append(f"{self.name}: client crashed: {type(exc).__name__}: {exc}")
        finally:
            self.http.close()


# -- running a load ----------------------------------------------------------------------------


@dataclass
class LoadResult:
    clients: list[LoadClient]
    seconds: float  # wall time from the first request to the last answer
    cpu: float  # CPU seconds this (client) process used meanwhile
    hung: list[str]  # clients still running after the deadline and every timeout

    @property
    def log(self) -> list[Sent]:
        return [s for c in self.clients for s in c.log]

    @property
    def problems(self) -> list[str]:
        return [p for c in self.clients for p in c.problems] + [
            f"client {name} still running long after the deadline (a hang)" for name in self.hung
        ]


class Load:
    """``clients`` threads running ``run``'s mix until its deadline (or its stop flag)."""

    def __init__(self, run: LoadRun, clients: int, prefix: str = "c") -> None:
        self.run = run
        self.clients = [LoadClient(run, f"{prefix}{i:02d}") for i in range(clients)]
        self.threads: list[threading.Thread] = []

    def start(self) -> Load:
        self._cpu0 = _cpu()
        self._t0 = time.monotonic()
        self.deadline = self._t0 + self.run.seconds
        for client in self.clients:
            thread = threading.Thread(
                target=client.loop, args=(self.deadline,), name=client.name, daemon=True
            )
            self.threads.append(thread)
            thread.start()
        return self

    def answered(self) -> int:
        return sum(len(c.log) for c in self.clients)

    def finish(self) -> LoadResult:
        # Until the deadline (or the stop flag), then release any racers still at a barrier.
        while time.monotonic() < self.deadline and not self.run.stop.is_set():
            self.run.stop.wait(min(1.0, max(0.0, self.deadline - time.monotonic())))
        self.run.board.close()
        # Each client finishes its request in flight: bounded by the request timeout.
        limit = time.monotonic() + REQUEST_TIMEOUT + RACE_WAIT + 10
        for thread in self.threads:
            thread.join(max(0.0, limit - time.monotonic()))
        ended = max((s.started + s.elapsed for c in self.clients for s in c.log), default=0)
        return LoadResult(
            self.clients,
            max(ended, self._t0) - self._t0,
            _cpu() - self._cpu0,
            [t.name for t in self.threads if t.is_alive()],
        )


def run_load(
    url: str,
    *,
    clients: int,
    seconds: float,
    mix: dict[str, int] = MIX,
    seed: int = 0,
    max_requests: int = 10_000_000,
) -> LoadResult:
    run = LoadRun(url, seconds=seconds, max_requests=max_requests, mix=mix, seed=seed)
    return Load(run, clients).start().finish()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- what the mock says ----------------------------------------------------------------------


def export_rows(mock: MockServer, namespace: str = "default") -> list[dict[str, Any]]:
    """Every journal row, oldest first, from ``GET /__admin/journal/export``."""
    response = mock.session.get(
        f"{mock.url}/__admin/journal/export",
        params={"namespace": namespace},
        stream=True,
        timeout=600,
    )
    response.raise_for_status()
    return [json.loads(line) for line in response.iter_lines() if line]


def wait_for_rows(mock: MockServer, rows: int, timeout: float = REQUEST_TIMEOUT) -> int:
    """Poll /__admin/health until the journal holds ``rows`` requests (an abandoned request is
    committed after its client moved on); returns the count seen last."""
    deadline = time.monotonic() + timeout
    while True:
        count = int(mock.admin("GET", "health").json()["journal"]["requests"])
        if count >= rows or time.monotonic() > deadline:
            return count
        time.sleep(0.05)  # polling interval


def paged_request_ids(mock: MockServer, namespace: str = "default") -> list[int]:
    """The ids ``GET /__admin/requests`` lists, following ``next`` page by page."""
    ids: list[int] = []
    params: dict[str, Any] = {"namespace": namespace, "limit": 1000}
    while True:
        page = mock.admin("GET", "requests", params=params)
        page.raise_for_status()
        body = page.json()
        ids += [row["id"] for row in body["requests"]]
        if body["next"] is None:
            return ids
        params["before"] = body["next"]


def paged_deliveries(mock: MockServer, namespace: str = "default") -> Counter[str]:
    """Deliveries per clientEventId from ``GET /__admin/events``, page by page."""
    out: Counter[str] = Counter()
    offset = 0
    while True:
        page = mock.admin(
            "GET", "events", params={"namespace": namespace, "limit": 1000, "offset": offset}
        )
        page.raise_for_status()
        body = page.json()
        for event in body["events"]:
            out[event["clientEventId"]] += event["deliveries"]
        offset += len(body["events"])
        if not body["events"] or offset >= body["total"]:
            return out


def read_only(path: Path) -> sqlite3.Connection:
    """The journal file opened read-only (the server may be running, or dead)."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)


def integrity_check(path: Path) -> list[str]:
    with closing(read_only(path)) as db:
        return [row[0] for row in db.execute("PRAGMA integrity_check")]


def sqlite_figures(path: Path, namespace: str = "default") -> dict[str, Any]:
    """Counts straight from the file, plus the invariants a torn write would break: every
    delivered event id has exactly one first delivery ("accepted") and no duplicate before it,
    and every remembered Idempotency-Key points at a committed request with that key."""
    with closing(read_only(path)) as db:
        requests_ = db.execute(
            "SELECT count(*) FROM requests WHERE namespace=?", (namespace,)
        ).fetchone()[0]
        deliveries = db.execute(
            "SELECT count(*), count(DISTINCT coalesce(account_id, '') || '|' || client_event_id)"
            " FROM events WHERE namespace=? AND outcome IN ('accepted', 'duplicate')",
            (namespace,),
        ).fetchone()
        # each delivered id has exactly one "accepted" row: its first delivery
        mismatched = db.execute(
            "SELECT client_event_id, account_id, sum(outcome = 'accepted') FROM events"
            " WHERE namespace=? AND outcome IN ('accepted', 'duplicate')"
            " GROUP BY client_event_id, account_id HAVING sum(outcome = 'accepted') != 1 LIMIT 20",
            (namespace,),
        ).fetchall()
        # ... and no "duplicate" row comes before it
        orphans = db.execute(
            "SELECT count(*) FROM events d WHERE d.namespace=? AND d.outcome = 'duplicate'"
            " AND NOT EXISTS (SELECT 1 FROM events a WHERE a.namespace = d.namespace"
            " AND a.client_event_id = d.client_event_id AND a.account_id IS d.account_id"
            " AND a.outcome = 'accepted' AND (a.request_id < d.request_id"
            " OR (a.request_id = d.request_id AND a.idx < d.idx)))",
            (namespace,),
        ).fetchone()[0]
        bad_keys = db.execute(
            "SELECT i.key, i.request_id, r.status, r.idempotency_key FROM idempotency i"
            " LEFT JOIN requests r ON r.id = i.request_id WHERE i.namespace=? AND"
            " (r.id IS NULL OR r.idempotency_key IS NOT i.key"
            "  OR NOT (r.status = 200 OR json_extract(r.fault, '$.committed') = 1)) LIMIT 20",
            (namespace,),
        ).fetchall()
        forgotten = db.execute(
            "SELECT r.id, r.idempotency_key FROM requests r WHERE r.namespace=?"
            " AND r.endpoint = '/v1/events' AND r.idempotency_key IS NOT NULL"
            " AND (r.status = 200 OR json_extract(r.fault, '$.committed') = 1)"
            " AND NOT EXISTS (SELECT 1 FROM idempotency i WHERE i.namespace = r.namespace"
            " AND i.credential = coalesce(r.credential, '') AND i.key = r.idempotency_key"
            " AND i.request_id = r.id) LIMIT 20",
            (namespace,),
        ).fetchall()
        keys = db.execute(
            "SELECT count(*) FROM idempotency WHERE namespace=?", (namespace,)
        ).fetchone()[0]
    return {
        "requests": requests_,
        "deliveries": deliveries[0],
        "uniqueEvents": deliveries[1],
        "idempotencyKeys": keys,
        "deliveryCountMismatches": mismatched,
        "deliveriesMissingForEvents": orphans,
        "keysNotPointingAtACommit": bad_keys,
        "committedKeysNotRemembered": forgotten,
    }


_TEXT_LINE = re.compile(r"\[(\d+)\] rokt_mock\.request: .* request_id=(\d+)")


def pids_by_request_id(output: Iterable[str]) -> dict[int, int]:
    """Journal id -> pid of the worker that answered, from the server's request log lines
    (text or JSON format). Empty if the server logs no request lines."""
    out: dict[int, int] = {}
    for line in list(output):
        if "rokt_mock.request" not in line:
            continue
        match = _TEXT_LINE.search(line)
        if match:
            out[int(match.group(2))] = int(match.group(1))
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get("request_id") is not None and doc.get("pid"):
            out[int(doc["request_id"])] = int(doc["pid"])
    return out


# -- processes and sockets, from /proc ---------------------------------------------------------


def _stat(pid: str) -> tuple[str, int, int] | None:
    """(state, ppid, pgrp) of a process, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[2])


def _live(select: Callable[[tuple[str, int, int]], bool]) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(entry)
            if stat is not None and stat[0] != "Z" and select(stat):
                out.append(int(entry))
    return out


def worker_pids(arbiter: int) -> list[int]:
    """The gunicorn workers: live children of the arbiter (``rokt-mock serve``'s process)."""
    return sorted(_live(lambda stat: stat[1] == arbiter))


def group_members(pgid: int) -> list[int]:
    return _live(lambda stat: stat[2] == pgid)


def kill_group(mock: MockServer, timeout: float = 10.0) -> list[int]:
    """SIGKILL the arbiter and every worker at once, and wait until none of them is left.
    Returns the pids that were killed."""
    pgid = mock.proc.pid  # start_new_session=True: the arbiter leads its own process group
    members = group_members(pgid)
    os.killpg(pgid, signal.SIGKILL)
    mock.proc.wait(timeout)
    deadline = time.monotonic() + timeout
    while group_members(pgid):
        if time.monotonic() > deadline:
            raise AssertionError(f"processes of group {pgid} survived SIGKILL")
        time.sleep(0.01)  # polling interval while the kernel tears the workers down
    mock.kill()  # closes the output pump (the process is already gone)
    return members


def connection_owners(
    server_port: int, client_ports: Iterable[int], pids: Iterable[int]
) -> dict[int, int]:
    """client port -> pid of the worker holding the server side of that (open) connection.

    Reads the kernel's socket table (``/proc/net/tcp``) for the accepted socket whose peer is
    the client port, then finds which worker has that socket inode among its descriptors.
    """
    wanted = set(client_ports)
    inode_of: dict[int, str] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, remote, inode = parts[1], parts[2], parts[9]
            if inode == "0":
                continue
            if int(local.rsplit(":", 1)[1], 16) != server_port:
                continue
            peer = int(remote.rsplit(":", 1)[1], 16)
            if peer in wanted:
                inode_of[peer] = inode
    owner: dict[str, int] = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                owner[target[8:-1]] = pid
    return {port: owner[inode] for port, inode in inode_of.items() if inode in owner}


# -- figures -----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def record_figures(section: str, data: dict[str, Any]) -> Path:
    """Merge ``data`` under ``section`` into .rokt-mock/artifacts/load.json."""
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    try:
        doc = json.loads(ARTIFACT.read_text())
        if not isinstance(doc, dict):
            doc = {}
    except (OSError, ValueError):
        doc = {}
    doc[section] = {**data, "recordedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    tmp = ARTIFACT.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    tmp.replace(ARTIFACT)
    return ARTIFACT


# -- reconciliation ----------------------------------------------------------------------------


def _committed(row: dict[str, Any]) -> bool:
    fault = row.get("fault") or {}
    return row["status"] == 200 or bool(fault.get("committed"))


@dataclass
class Report:
    figures: dict[str, Any]
    problems: list[str]


def reconcile(
    mock: MockServer,
    log: list[Sent],
    *,
    journal: Path,
    rules: list[dict[str, Any]] | None = None,
    namespace: str = "default",
) -> Report:
    """Compare the clients' logs with the journal, through the admin API and the file."""
    problems: list[str] = []

    def problem(text: str) -> None:
        if len(problems) < 200:
            problems.append(text)
        elif len(problems) == 200:
            problems.append("... (more problems left out)")

    rows = export_rows(mock, namespace)
    row_ids = [row["id"] for row in rows]
    paged = paged_request_ids(mock, namespace)
    if sorted(paged) != sorted(row_ids):
        problem(
            f"/__admin/requests paging lists {len(paged)} rows, the export {len(rows)}: "
            f"only paged {sorted(set(paged) - set(row_ids))[:10]}, "
            f"only exported {sorted(set(row_ids) - set(paged))[:10]}"
        )
    if len(set(row_ids)) != len(row_ids):
        problem("the export repeats a journal id")

    by_seq: dict[str, dict[str, Any]] = {}
    for row in rows:
        seq = (row.get("headers") or {}).get(SEQ_HEADER)
        if seq is None:
            problem(f"journal row {row['id']} ({row['method']} {row['path']}) was never sent")
        elif seq in by_seq:
            problem(f"two journal rows for one request {seq}: {by_seq[seq]['id']}, {row['id']}")
        else:
            by_seq[seq] = row
    sent = {s.seq: s for s in log}
    for seq in sorted(set(by_seq) - set(sent)):
        problem(f"journal row {by_seq[seq]['id']} carries {SEQ_HEADER} {seq}, never sent")

    in_flight = [s for s in log if s.in_flight]
    missing = []
    for s in log:
        row = by_seq.get(s.seq)
        if row is None:
            if not s.in_flight:
                missing.append(s)
            continue
        if s.status is not None:
            if row["id"] != s.request_id or row["status"] != s.status:
                problem(
                    f"{s.seq} {s.kind}: answered {s.status} as request {s.request_id}, "
                    f"journal has id {row['id']} status {row['status']}"
                )
            if s.status == 200 and s.endpoint.endswith("/events"):
                outcomes = {e["clientEventId"]: e["outcome"] for e in row["events"]}
                for ceid in s.accepted:
                    if outcomes.get(ceid) not in ("accepted", "duplicate"):
                        problem(
                            f"{s.seq}: event {ceid} answered accepted, journal says "
                            f"{outcomes.get(ceid)}"
                        )
                for ceid in s.unprocessed:
                    if outcomes.get(ceid) != "rejected":
                        problem(
                            f"{s.seq}: event {ceid} in unprocessedRecords, journal says "
                            f"{outcomes.get(ceid)}"
                        )
        elif s.doubtful:
            if row["status"] not in (200, 409):
                problem(f"{s.seq} {s.kind}: abandoned, journal has {row['status']} {row['code']}")
        elif not s.in_flight:
            if row["status"] != 0 or row["code"] not in NO_ANSWER_CODES:
                problem(f"{s.seq} {s.kind}: no answer, journal has {row['status']} {row['code']}")
            if s.unseen and not (row.get("fault") or {}).get("committed"):
                problem(f"{s.seq} {s.kind}: expected committed, journal fault {row.get('fault')}")
    for s in missing[:50]:
        problem(
            f"LOST: {s.seq} {s.kind} {s.endpoint} answered {s.status} (request id "
            f"{s.request_id}, error {s.error}) has no journal row"
        )
    if len(missing) > 50:
        problem(f"... {len(missing) - 50} more requests without a journal row")

    # -- events: what the clients saw (or know was committed) against the journal
    expected: Counter[str] = Counter()
    for s in log:
        expected.update(s.accepted)
        expected.update(s.unseen)
    in_flight_journaled = [by_seq[s.seq] for s in in_flight if s.seq in by_seq]
    doubtful = [by_seq[s.seq] for s in log if s.doubtful and s.seq in by_seq]
    for row in in_flight_journaled + doubtful:
        expected.update(
            e["clientEventId"] for e in row["events"] if e["outcome"] in ("accepted", "duplicate")
        )
    journaled: Counter[str] = Counter(
        e["clientEventId"]
        for row in rows
        for e in row["events"]
        if e["outcome"] in ("accepted", "duplicate")
    )
    if journaled != expected:
        more = journaled - expected
        fewer = expected - journaled
        problem(
            f"deliveries differ: journal {sum(journaled.values())}, clients "
            f"{sum(expected.values())}; extra in journal {list(more.items())[:5]}, "
            f"missing from journal {list(fewer.items())[:5]}"
        )
    listed = paged_deliveries(mock, namespace)
    if listed != journaled:
        problem(
            f"/__admin/events counts {sum(listed.values())} deliveries of {len(listed)} ids, "
            f"the journal's events {sum(journaled.values())} of {len(journaled)}"
        )
    summary = mock.summary(namespace)
    if summary["requests"]["total"] != len(rows):
        problem(f"summary counts {summary['requests']['total']} requests, export {len(rows)}")
    if summary["events"]["accepted"] != len(journaled) or summary["events"]["duplicates"] != (
        sum(journaled.values()) - len(journaled)
    ):
        problem(f"summary events {summary['events']} disagree with the journal's deliveries")

    # -- idempotency: at most one commit per key, every 409 points at it
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row.get("idempotencyKey") and row["endpoint"] == "/v1/events":
            by_key[row["idempotencyKey"]].append(row)
    for key, key_rows in by_key.items():
        commits = [r for r in key_rows if _committed(r)]
        if len(commits) > 1:
            problem(f"DUPLICATE DELIVERY: key {key} committed by {[r['id'] for r in commits]}")
        for r in key_rows:
            if r["status"] == 409:
                original = (r.get("note") or {}).get("idempotency", {}).get("originalRequestId")
                if not commits or original != commits[0]["id"] or original >= r["id"]:
                    problem(
                        f"409 row {r['id']} for key {key} points at {original}, "
                        f"commits {[c['id'] for c in commits]}"
                    )
    for s in log:
        if s.status == 409 and s.key is not None:
            commits = [r for r in by_key.get(s.key, []) if _committed(r)]
            if not commits or s.original != commits[0]["id"]:
                problem(
                    f"{s.seq}: 409 names original {s.original}, journal commits "
                    f"{[r['id'] for r in commits]}"
                )
    races: dict[str, list[Sent]] = defaultdict(list)
    for s in log:
        if s.race is not None:
            races[s.race].append(s)
    race_ok = 0
    race_concurrent = 0
    for key, racers in races.items():
        if any(s.in_flight for s in racers):
            continue
        statuses = Counter(s.status for s in racers)
        if statuses[200] != 1 or statuses[200] + statuses[409] != len(racers):
            problem(f"race on key {key}: {dict(statuses)} (exactly one 200 expected)")
        else:
            race_ok += 1
        if len(racers) > 1:
            last_start = max(s.started for s in racers)
            first_end = min(s.started + s.elapsed for s in racers)
            race_concurrent += last_start < first_end

    # -- fault rules: counters shared by the workers match what the clients saw
    rule_figures: dict[str, Any] = {}
    if rules:
        listing = mock.admin("GET", "faults", params={"namespace": namespace})
        listing.raise_for_status()
        counters = {
            r["id"]: r.get("counters", {}).get(namespace, {"matched": 0, "fired": 0})
            for r in listing.json()["rules"]
        }
        for event_type, rule_id in RULE_OF_TYPE.items():
            mine = [s for s in log if s.event_type == event_type]
            seen = [
                s
                for s in mine
                if (s.fault or {}).get("rule") == rule_id
                or (rule_id == "load-partial" and s.status == 200 and s.unprocessed)
            ]
            # A rule that fires on a request refused by a later check (a retry's 409) leaves
            # the answer alone; the journal names the rule all the same (docs/faults.md 1.2).
            naming = [row for row in rows if (row.get("fault") or {}).get("rule") == rule_id]
            changed = [row for row in naming if row["status"] != 409]
            got = counters.get(rule_id, {})
            rule_figures[rule_id] = {
                "sent": len(mine),
                "seenFaulted": len(seen),
                "journalRowsNamingIt": len(naming),
                **got,
            }
            if got.get("matched") != len(mine) or got.get("fired") != len(naming):
                problem(
                    f"rule {rule_id}: counters {got}, clients sent {len(mine)}, "
                    f"{len(naming)} journal rows name it"
                )
            if len(changed) != len(seen):
                problem(
                    f"rule {rule_id}: clients saw {len(seen)} faulted answers, the journal "
                    f"has {len(changed)}"
                )
            every = {"load-every3": 3, "load-accept-then": 2}.get(rule_id)
            if every and got.get("fired") != len(mine) // every:
                problem(f"rule {rule_id}: fired {got.get('fired')} of {len(mine)}, every {every}")

    # -- the file itself
    disk = sqlite_figures(journal, namespace)
    if disk["requests"] != len(rows):
        problem(f"the file holds {disk['requests']} request rows, the export {len(rows)}")
    if disk["deliveries"] != sum(journaled.values()):
        expected = sum(journaled.values())
        problem(f"the file holds {disk['deliveries']} deliveries, {expected} expected")
    for name in (
        "deliveryCountMismatches",
        "keysNotPointingAtACommit",
        "committedKeysNotRemembered",
    ):
        if disk[name]:
            problem(f"{name}: {disk[name]}")
    if disk["deliveriesMissingForEvents"]:
        problem(f"{disk['deliveriesMissingForEvents']} duplicates come before a first delivery")

    answered = [s for s in log if s.status is not None]
    latencies = [s.elapsed for s in answered]
    figures = {
        "requestsSent": len(log),
        "journalRows": len(rows),
        "journalRowsMatchedToRequests": len(set(by_seq) & set(sent)),
        "lostRows": len(missing),
        "inFlightAtKill": len(in_flight),
        "inFlightJournaled": len(in_flight_journaled),
        "answered": len(answered),
        "noAnswerByFault": sum(
            1 for s in log if s.status is None and not s.in_flight and not s.doubtful
        ),
        "abandonedByClient": sum(1 for s in log if s.doubtful),
        "abandonedCommitted": sum(1 for row in doubtful if _committed(row)),
        "eventsCommittedByAbandoned": sum(
            1
            for row in doubtful
            for e in row["events"]
            if e["outcome"] in ("accepted", "duplicate")
        ),
        "byKind": dict(sorted(Counter(s.kind for s in log).items())),
        "byStatus": {str(k): v for k, v in sorted(Counter(s.status or 0 for s in log).items())},
        "eventsSeenAccepted": sum(len(s.accepted) for s in log),
        "eventsCommittedUnseen": sum(len(s.unseen) for s in log),
        "deliveriesJournaled": sum(journaled.values()),
        "eventsAccepted": summary["events"]["accepted"],
        "eventsDuplicate": summary["events"]["duplicates"],
        "eventsRejected": summary["events"]["rejected"],
        "idempotencyKeys": len(by_key),
        "raceSlots": len(races),
        "raceSlotsExactlyOne200": race_ok,
        "raceSlotsOverlapping": race_concurrent,
        "latencyMs": {
            "p50": round(percentile(latencies, 0.50) * 1000, 1),
            "p99": round(percentile(latencies, 0.99) * 1000, 1),
            "max": round(max(latencies, default=0) * 1000, 1),
        },
        "rules": rule_figures,
        "sqlite": {k: v for k, v in disk.items() if isinstance(v, int)},
    }
    return Report(figures, problems)
