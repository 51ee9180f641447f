"""The journal: a durable SQLite record of every API request, and the state derived from it.

It is the mock's evidence ("what arrived, and what did the mock answer?") and also its
shared state (idempotency keys, delivery counts, the clock, the token-signing key), so that
several worker processes on one file agree with each other without any other coordination.

Every write that decides an answer runs in one ``BEGIN IMMEDIATE`` transaction and is
committed before the view returns, which is what "committed before the response is sent"
means here. WAL with ``synchronous=NORMAL`` keeps a committed transaction through a ``kill -9``
of the process (the data is in the WAL file, not in our memory); only an OS crash or power
loss could lose the last commits, a trade documented in docs/configuration.md.

What a commit costs (docs/performance.md has the numbers):

- Writers of several worker processes queue on an ``flock`` of ``<journal>-lock`` before
  ``BEGIN IMMEDIATE``. The kernel wakes the next writer the moment the lock is free, where
  SQLite's own busy handler would sleep 1, 2, 5, 10... ms between tries and leave the CPU idle.
- Checkpoints (copying the WAL back into the database file) run on a background thread with its
  own connection, not inside the commit of whichever request crossed SQLite's 1000-page
  threshold; a commit is durable once it is in the WAL, so this changes no guarantee. A large
  ``wal_autocheckpoint`` stays as a backstop for when the WAL cannot start over under load.
- One B-tree only is keyed by the sender's event ids (``events_by_id``). Such keys are random,
  so each event of a batch dirties a leaf page of its own, and every dirty page is written to
  the WAL at commit and copied again at checkpoint: per-id delivery counts are read from that
  index rather than kept in a second random-keyed table (which doubled a batch's commit).
  Earlier deliveries of a batch's ids are read in one query.
- Indexes serve the admin lookups by clientEventId and Idempotency-Key at a million events
  (``events_by_id``, ``requests_key``); the summary reads running ``tallies`` that each commit
  updates in its own transaction.
- Writes of one process that meet go through :meth:`Journal.write` as one group commit.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

try:  # POSIX; elsewhere writers fall back to SQLite's own busy handler
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

SCHEMA_VERSION = "3"
#: Older schemas this version upgrades in place (by the DDL below) when it opens them.
_UPGRADES_FROM = ("2",)

#: The background checkpointer runs every _CHECKPOINT_INTERVAL s while there are new commits,
#: and at once after _CHECKPOINT_COMMITS of them.
_CHECKPOINT_INTERVAL = 0.1
_CHECKPOINT_COMMITS = 32
#: Backstop: a committing connection checkpoints by itself past this many WAL pages (SQLite's
#: default is 1000), should the background thread ever fall behind.
_AUTOCHECKPOINT_PAGES = 16000
#: After a checkpoint resets the WAL, the file is truncated to at most this size.
_WAL_SIZE_LIMIT = 64 * 1024 * 1024

_DDL = """
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    wall REAL NOT NULL,
    namespace TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    api_version TEXT,
    credential TEXT,
    account_id TEXT,
    status INTEGER NOT NULL,
    code TEXT,
    idempotency_key TEXT,
    body_sha256 TEXT,
    body_size INTEGER NOT NULL DEFAULT 0,
    event_count INTEGER,
    headers TEXT NOT NULL,
    body BLOB,
    response TEXT,
    violations TEXT,
    warnings TEXT,
    note TEXT,
    fault TEXT,
    duration_ms REAL
);
CREATE INDEX IF NOT EXISTS requests_ns ON requests(namespace, id);
CREATE INDEX IF NOT EXISTS requests_key ON requests(idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
    request_id INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    namespace TEXT NOT NULL,
    account_id TEXT,
    client_event_id TEXT,
    event_type TEXT,
    outcome TEXT NOT NULL,
    rule TEXT,
    PRIMARY KEY (request_id, idx)
) WITHOUT ROWID;
-- The one index keyed by the sender's event id, so the one B-tree whose pages a batch dirties
-- at random (one leaf page per event): it finds the requests that carried an id, and it is
-- the delivery record (outcome accepted or duplicate) that duplicate detection reads.
CREATE INDEX IF NOT EXISTS events_by_id ON events(client_event_id, namespace, account_id, outcome);
-- Schema 2 kept a second random-keyed B-tree, a deliveries table of running counts per id,
-- which doubled what each commit wrote. Its counts are now read from events_by_id.
DROP INDEX IF EXISTS events_ceid;
DROP TABLE IF EXISTS deliveries;
-- Served the summary's outcome counts before the tallies below. Dropped (also from journals
-- that have it) because nothing reads it any more and every commit paid for it.
DROP INDEX IF EXISTS events_outcome;
-- Running counts behind /__admin/summary, kept in the same transaction as the rows they count
-- (kind 'req': "status|code", 'fault': fault kind, 'ev': "outcome|rule"), so a summary reads a
-- few dozen rows instead of scanning a million (a dashboard polls it every 2 s).
CREATE TABLE IF NOT EXISTS tallies (
    namespace TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (namespace, kind, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fault_rules (
    scope TEXT NOT NULL,
    id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    spec TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL,
    source TEXT NOT NULL,
    PRIMARY KEY (scope, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fault_state (
    scope TEXT NOT NULL,
    id TEXT NOT NULL,
    namespace TEXT NOT NULL,
    matched INTEGER NOT NULL,
    fired INTEGER NOT NULL,
    PRIMARY KEY (scope, id, namespace)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rate_buckets (
    scope TEXT NOT NULL,
    id TEXT NOT NULL,
    namespace TEXT NOT NULL,
    credential TEXT NOT NULL,
    level REAL NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (scope, id, namespace, credential)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idempotency (
    namespace TEXT NOT NULL,
    credential TEXT NOT NULL,
    key TEXT NOT NULL,
    request_id INTEGER NOT NULL,
    body_sha256 TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (namespace, credential, key)
) WITHOUT ROWID;
"""

#: Event outcomes. ``refused``: the whole request was answered with an error, so the event
#: was never judged on its own; ``rejected``: it broke a per-event rule.
OUTCOMES = ("accepted", "duplicate", "rejected", "refused")


class JournalError(Exception):
    """The journal file cannot be opened or was written by an incompatible version."""


@dataclass(slots=True)
class RequestRecord:
    """One row of ``requests``, as the views fill it before committing."""

    at: float
    wall: float
    namespace: str
    method: str
    path: str
    endpoint: str
    status: int = 0
    code: str | None = None
    api_version: str | None = None
    credential: str | None = None
    account_id: str | None = None
    idempotency_key: str | None = None
    body_sha256: str | None = None
    body_size: int = 0
    event_count: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    response: Any = None
    violations: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    note: dict[str, Any] = field(default_factory=dict)
    fault: dict[str, Any] | None = None
    duration_ms: float | None = None


@dataclass(frozen=True, slots=True)
class EventRecord:
    idx: int
    client_event_id: str | None
    event_type: str | None
    rule: str | None = None  # set when the event broke a per-event rule


@dataclass(slots=True)
class BatchResult:
    request_id: int
    #: Set when the Idempotency-Key was already accepted: (original request id, body differs).
    reused: tuple[int, bool] | None = None
    outcomes: list[str] = field(default_factory=list)


class _WriterLock:
    """An exclusive ``flock`` on ``<journal>-lock``, taken around every write transaction.

    It only orders this module's writers (other processes that open the file without it are
    still kept apart by SQLite's locking). The descriptor is reopened after a ``fork`` so that
    parent and child never share one lock.
    """

    def __init__(self, path: str) -> None:
        self.path = f"{path}-lock"
        self._fd: int | None = None
        self._pid = 0

    def acquire(self) -> None:
        if fcntl is None:
            return
        if self._pid != os.getpid():
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError:  # read-only folder: SQLite's busy handler alone keeps writers apart
                self._fd = None
            self._pid = os.getpid()
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        if self._fd is not None and fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None


class _Checkpointer:
    """A daemon thread that copies the WAL back into the database off the request path.

    Every ``_CHECKPOINT_INTERVAL`` s while there were commits (sooner after
    ``_CHECKPOINT_COMMITS`` of them) it runs ``PRAGMA wal_checkpoint(PASSIVE)`` on its own
    connection, which waits for no reader or writer and holds none of the journal's locks. The
    next commit that finds the WAL entirely copied starts it over from its beginning. Under
    load without a pause that may not happen; then the first commit past
    ``_AUTOCHECKPOINT_PAGES`` checkpoints the (by then short) rest itself, which bounds the WAL.
    The thread holds no reference to its :class:`Journal`, so a dropped journal is collected.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pending = 0
        self._thread = threading.Thread(target=self._run, name="journal-checkpoint", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        self._pending += 1
        if self._pending >= _CHECKPOINT_COMMITS:
            self._wake.set()

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:  # the backstop autocheckpoint does the work instead
            return
        try:
            while not self._stop.is_set():
                self._wake.wait(_CHECKPOINT_INTERVAL)
                self._wake.clear()
                if self._pending and not self._stop.is_set():
                    self._pending = 0
                    # busy or closing: the next round (or the backstop) catches up
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            db.close()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)


def _dumps(value: Any) -> str | None:
    if value is None or value == [] or value == {}:
        return None
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


T = TypeVar("T")

_TALLY = "INSERT INTO tallies VALUES (?,?,?,?) ON CONFLICT DO UPDATE SET n = n + excluded.n"


def _backfill_tallies(db: sqlite3.Connection) -> None:
    """Count what a journal already holds (once, when it is first opened by this version)."""
    db.execute("DELETE FROM tallies")
    db.execute(
        "INSERT INTO tallies SELECT namespace, 'req', status || '|' || coalesce(code, ''),"
        " count(*) FROM requests GROUP BY 1, 3"
    )
    db.execute(
        "INSERT INTO tallies SELECT namespace, 'fault',"
        " coalesce(json_extract(fault, '$.kind'), 'delay'), count(*) FROM requests"
        " WHERE fault IS NOT NULL GROUP BY 1, 3"
    )
    db.execute(
        "INSERT INTO tallies SELECT namespace, 'ev', outcome || '|' || coalesce(rule, ''),"
        " count(*) FROM events GROUP BY 1, 3"
    )
    db.execute("INSERT OR REPLACE INTO state VALUES ('tallies', '1')")


class _RollBack(Exception):
    """Internal: undo a one-piece group whose work raised (its error goes to its caller)."""


class _Pending:
    """One thread's piece of a group commit."""

    __slots__ = ("done", "error", "result", "work")

    def __init__(self, work: Callable[[sqlite3.Connection], Any]) -> None:
        self.work = work
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = False


class Journal:
    """The SQLite store behind one mock process; thread-safe.

    Writes go through one connection under a lock (SQLite serialises writers anyway). Reads
    of a file journal go through a connection per thread instead: in WAL mode they see the
    last committed state without waiting for a writer, so a request's reads (clock, fault
    rules, revoked tokens) never queue behind another request's commit. A thread inside a
    write transaction reads through the writer, so it sees its own uncommitted rows, and a
    ``:memory:`` journal has only the one connection. Separate processes on the same file
    coordinate through the writer lock and SQLite's own locking.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._writer: _WriterLock | None = None
        #: Thread id holding the write transaction (its reads must see its own writes).
        self._tx_owner: int | None = None
        self._readers = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_pid = os.getpid()
        #: Writes waiting for the next group commit (see :meth:`write`).
        self._queue: list[_Pending] = []
        self._queue_lock = threading.Lock()
        self._checkpointer: _Checkpointer | None = None
        memory = path == ":memory:"
        if not memory:
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise JournalError(
                    f"cannot create the journal's folder for {path}: {exc}"
                ) from None
        target = f"file:rokt-mock-{uuid.uuid4().hex}?mode=memory" if memory else path
        try:
            self._db = sqlite3.connect(
                target,
                uri=memory,
                check_same_thread=False,
                isolation_level=None,
                timeout=30.0,
            )
            if not memory:
                self._writer = _WriterLock(path)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute(f"PRAGMA wal_autocheckpoint={_AUTOCHECKPOINT_PAGES}")
                self._db.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT}")
            self._db.execute("PRAGMA foreign_keys=OFF")
            with self.transaction() as db:
                for statement in _DDL.split(";"):
                    if statement.strip():
                        db.execute(statement)
                row = db.execute("SELECT value FROM state WHERE key='schema_version'").fetchone()
                if row is None or row[0] in _UPGRADES_FROM:
                    db.execute(
                        "INSERT OR REPLACE INTO state VALUES ('schema_version', ?)",
                        (SCHEMA_VERSION,),
                    )
                elif row[0] != SCHEMA_VERSION:
                    raise JournalError(
                        f"{path} was written by journal schema {row[0]}, this version uses "
                        f"{SCHEMA_VERSION}: move it away or pass another --journal"
                    )
                if db.execute("SELECT 1 FROM state WHERE key='tallies'").fetchone() is None:
                    _backfill_tallies(db)  # a journal written before the tallies existed
        except sqlite3.DatabaseError as exc:
            if self._writer is not None:
                self._writer.close()
            raise JournalError(f"cannot open journal {path}: {exc}") from None
        except BaseException:
            if self._writer is not None:
                self._writer.close()
            raise
        if not memory:
            self._checkpointer = _Checkpointer(path)
            # A journal dropped without close() still stops its thread.
            weakref.finalize(self, self._checkpointer.stop)

    # -- plumbing ---------------------------------------------------------------------------

    class _Tx:
        def __init__(self, journal: Journal) -> None:
            self.journal = journal

        def __enter__(self) -> sqlite3.Connection:
            journal = self.journal
            journal._lock.acquire()
            try:
                if journal._writer is not None:
                    journal._writer.acquire()
                try:
                    journal._db.execute("BEGIN IMMEDIATE")
                    journal._tx_owner = threading.get_ident()
                except BaseException:
                    if journal._writer is not None:
                        journal._writer.release()
                    raise
            except BaseException:
                journal._lock.release()
                raise
            return journal._db

        def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
            journal = self.journal
            journal._tx_owner = None
            try:
                if exc_type is None:
                    journal._db.execute("COMMIT")
                    if journal._checkpointer is not None:
                        journal._checkpointer.committed()
                else:
                    journal._db.execute("ROLLBACK")
            finally:
                try:
                    if journal._writer is not None:
                        journal._writer.release()
                finally:
                    journal._lock.release()

    def transaction(self) -> Journal._Tx:
        """A write transaction (``BEGIN IMMEDIATE``), committed on normal exit."""
        return Journal._Tx(self)

    def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work(db)`` in a write transaction, committed before this returns.

        Group commit: threads that arrive while another thread's transaction is open queue
        their work; the next thread to get the write lock runs every queued piece in one
        transaction (each under its own savepoint, so one failing piece rolls back alone) and
        commits once. Each caller still returns only after the commit that holds its rows,
        so "journaled before the answer" holds; under load a commit (and the cross-process
        lock) is paid per group instead of per request. Pieces run in arrival order, so an
        idempotency key checked by a later piece sees an earlier piece's insert.
        """
        if self._tx_owner == threading.get_ident():  # already inside a transaction
            return work(self._db)
        item: _Pending = _Pending(work)
        with self._queue_lock:
            self._queue.append(item)
        with self._lock:
            if not item.done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._run_group(batch)
        if item.error is not None:
            raise item.error
        return item.result  # type: ignore[no-any-return]

    def _run_group(self, batch: list[_Pending]) -> None:
        try:
            with self.transaction() as db:
                if len(batch) == 1:  # alone: the transaction itself is its savepoint
                    if not self._run_one(batch[0], db):
                        raise _RollBack
                else:
                    for item in batch:
                        db.execute("SAVEPOINT piece")
                        if not self._run_one(item, db):
                            db.execute("ROLLBACK TO piece")
                        db.execute("RELEASE piece")
        except _RollBack:
            pass
        except BaseException as exc:  # the commit itself failed: nothing of the group holds
            for item in batch:
                if item.error is None:
                    item.error = exc
        finally:
            for item in batch:
                item.done = True

    @staticmethod
    def _run_one(item: _Pending, db: sqlite3.Connection) -> bool:
        try:
            item.result = item.work(db)
            return True
        except BaseException as exc:
            item.error = exc
            return False

    def _reader(self) -> sqlite3.Connection | None:
        """This thread's read connection, or ``None`` when reads must use the writer."""
        if self._writer is None or self._tx_owner == threading.get_ident():
            return None
        db: sqlite3.Connection | None = getattr(self._readers, "db", None)
        if db is None or self._reader_pid != os.getpid():
            if self._reader_pid != os.getpid():  # forked: the parent's connections are not ours
                self._readers = threading.local()
                self._reader_conns = []
                self._reader_pid = os.getpid()
            db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=30.0
            )
            db.execute("PRAGMA query_only=ON")
            self._readers.db = db
            with self._lock:
                self._reader_conns.append(db)
        return db

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        reader = self._reader()
        if reader is not None:
            cur = reader.execute(sql, params)
            cur.row_factory = sqlite3.Row
            return cur.fetchall()
        with self._lock:
            cur = self._db.execute(sql, params)
            cur.row_factory = sqlite3.Row
            return cur.fetchall()

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        with self._lock:
            self._db.close()
            if self._reader_pid == os.getpid():
                for db in self._reader_conns:
                    db.close()
            self._reader_conns = []
            self._readers = threading.local()
            if self._writer is not None:
                self._writer.close()

    # -- state ------------------------------------------------------------------------------

    def get_state(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM state WHERE key=?", (key,))
        return rows[0][0] if rows else None

    def set_state(self, key: str, value: str | None) -> None:
        with self.transaction() as db:
            if value is None:
                db.execute("DELETE FROM state WHERE key=?", (key,))
            else:
                db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, value))

    def state_default(self, key: str, make: Any) -> str:
        """Read ``key``, creating it with ``make()`` atomically when absent."""
        with self.transaction() as db:
            row = db.execute("SELECT value FROM state WHERE key=?", (key,)).fetchone()
            if row:
                return str(row[0])
            value = str(make())
            db.execute("INSERT INTO state VALUES (?, ?)", (key, value))
            return value

    # -- writes -----------------------------------------------------------------------------

    def _insert_request(self, db: sqlite3.Connection, rec: RequestRecord) -> int:
        cur = db.execute(
            "INSERT INTO requests (at, wall, namespace, method, path, endpoint, api_version,"
            " credential, account_id, status, code, idempotency_key, body_sha256, body_size,"
            " event_count, headers, body, response, violations, warnings, note, fault,"
            " duration_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                rec.at,
                rec.wall,
                rec.namespace,
                rec.method,
                rec.path,
                rec.endpoint,
                rec.api_version,
                rec.credential,
                rec.account_id,
                rec.status,
                rec.code,
                rec.idempotency_key,
                rec.body_sha256,
                rec.body_size,
                rec.event_count,
                json.dumps(rec.headers, ensure_ascii=False),
                rec.body,
                _dumps(rec.response),
                _dumps(rec.violations),
                _dumps(rec.warnings),
                _dumps(rec.note),
                _dumps(rec.fault),
                rec.duration_ms,
            ),
        )
        tallies = [(rec.namespace, "req", f"{rec.status}|{rec.code or ''}", 1)]
        if rec.fault:
            kind = rec.fault.get("kind")
            tallies.append((rec.namespace, "fault", kind if isinstance(kind, str) else "delay", 1))
        db.executemany(_TALLY, tallies)
        return int(cur.lastrowid or 0)

    def _insert_events(
        self,
        db: sqlite3.Connection,
        request_id: int,
        rec: RequestRecord,
        events: Sequence[EventRecord],
        outcomes: Sequence[str],
    ) -> None:
        db.executemany(
            "INSERT INTO events VALUES (?,?,?,?,?,?,?,?)",
            [
                (
                    request_id,
                    ev.idx,
                    rec.namespace,
                    rec.account_id,
                    ev.client_event_id,
                    ev.event_type,
                    outcome,
                    ev.rule,
                )
                for ev, outcome in zip(events, outcomes, strict=True)
            ],
        )
        counts: dict[str, int] = {}
        for ev, outcome in zip(events, outcomes, strict=True):
            key = f"{outcome}|{ev.rule or ''}"
            counts[key] = counts.get(key, 0) + 1
        db.executemany(_TALLY, [(rec.namespace, "ev", k, n) for k, n in counts.items()])

    def record(self, rec: RequestRecord, events: Sequence[EventRecord] = ()) -> int:
        """Commit a request that was refused as a whole; its events are ``refused``."""

        def work(db: sqlite3.Connection) -> int:
            request_id = self._insert_request(db, rec)
            if events:
                self._insert_events(db, request_id, rec, events, ["refused"] * len(events))
            return request_id

        return self.write(work)

    def commit_batch(
        self,
        rec: RequestRecord,
        events: Sequence[EventRecord],
        *,
        retention: float,
        reject_invalid: bool,
        answer: tuple[int, str] | None = None,
        refusal: Callable[[int, str], Any] | None = None,
    ) -> BatchResult:
        """Stages 6 to 8 of POST events, atomically: idempotency, per-event outcomes, commit.

        The key check and the insert share one transaction, so two requests racing with the
        same key (on threads or on worker processes) see exactly one acceptance. A key is
        remembered only when the request is accepted (200), so a refused request never burns
        it. ``rec.status`` and ``rec.code`` are filled in here; ``answer`` overrides them for an
        accept-then-fail fault, which commits exactly like a 200 but answers something else.
        ``refusal(status, code)`` gives the body journaled when the batch is refused instead.
        """

        def work(db: sqlite3.Connection) -> BatchResult:
            key = rec.idempotency_key
            if key is not None:
                row = db.execute(
                    "SELECT request_id, body_sha256, at FROM idempotency"
                    " WHERE namespace=? AND credential=? AND key=?",
                    (rec.namespace, rec.credential or "", key),
                ).fetchone()
                if row is not None and rec.at - row[2] < retention:
                    differs = row[1] != rec.body_sha256
                    rec.status, rec.code = 409, "IdempotencyKeyReused"
                    rec.response = refusal(409, rec.code) if refusal else None
                    rec.note["idempotency"] = {"originalRequestId": row[0], "bodyDiffers": differs}
                    request_id = self._insert_request(db, rec)
                    self._insert_events(db, request_id, rec, events, ["refused"] * len(events))
                    return BatchResult(request_id, reused=(row[0], differs))
            invalid = any(ev.rule for ev in events)
            if reject_invalid and invalid:
                rec.status, rec.code = 400, "RequestValidationError"
                rec.response = refusal(400, rec.code) if refusal else None
                outcomes = ["rejected" if ev.rule else "refused" for ev in events]
                request_id = self._insert_request(db, rec)
                self._insert_events(db, request_id, rec, events, outcomes)
                return BatchResult(request_id, outcomes=outcomes)
            rec.status, rec.code = answer or (200, None)
            if rec.fault is not None:
                rec.fault["committed"] = True
            request_id = self._insert_request(db, rec)
            # An event is a duplicate when its id was delivered before, in an earlier request
            # or earlier in this one: one query over events_by_id finds the earlier requests'.
            seen = self._delivered(
                db, rec.namespace, rec.account_id, {ev.client_event_id for ev in events}
            )
            outcomes = []
            for ev in events:
                if ev.rule:
                    outcomes.append("rejected")
                    continue
                outcomes.append("duplicate" if ev.client_event_id in seen else "accepted")
                seen.add(ev.client_event_id)
            self._insert_events(db, request_id, rec, events, outcomes)
            if key is not None:
                db.execute(
                    "INSERT OR REPLACE INTO idempotency VALUES (?,?,?,?,?,?)",
                    (rec.namespace, rec.credential or "", key, request_id, rec.body_sha256, rec.at),
                )
            return BatchResult(request_id, outcomes=outcomes)

        return self.write(work)

    @staticmethod
    def _delivered(
        db: sqlite3.Connection, namespace: str, account: str | None, ids: set[str | None]
    ) -> set[str | None]:
        """The ``ids`` already delivered (accepted or duplicate) to ``namespace``/``account``."""
        found: set[str | None] = set()
        ordered = sorted(i for i in ids if i is not None)
        for start in range(0, len(ordered), 500):
            chunk = ordered[start : start + 500]
            found.update(
                row[0]
                for row in db.execute(
                    "SELECT DISTINCT client_event_id FROM events"
                    f" WHERE client_event_id IN ({','.join('?' * len(chunk))}) AND namespace=?"
                    " AND account_id IS ? AND outcome IN ('accepted', 'duplicate')",
                    [*chunk, namespace, account],
                )
            )
        return found

    def clear(self, namespace: str | None = None, *, state: bool = False) -> None:
        """Forget requests and deliveries (and, with ``state``, idempotency keys too)."""
        tables = ["requests", "events", "tallies"]
        if state:
            tables += ["idempotency", "fault_state", "rate_buckets"]
        with self.transaction() as db:
            for table in tables:
                if namespace is None:
                    db.execute(f"DELETE FROM {table}")
                else:
                    db.execute(f"DELETE FROM {table} WHERE namespace=?", (namespace,))

    # -- reads ------------------------------------------------------------------------------

    def tallies(self, namespace: str | None) -> list[tuple[str, str, int]]:
        """``(kind, key, n)`` summed over ``namespace`` (``None``: every namespace)."""
        where, params = ("1", []) if namespace is None else ("namespace = ?", [namespace])
        return [
            (r[0], r[1], int(r[2]))
            for r in self.query(
                f"SELECT kind, key, sum(n) FROM tallies WHERE {where} GROUP BY kind, key", params
            )
        ]

    def counts(self) -> dict[str, int]:
        """Rows journaled, from the running tallies: constant time for a health probe that
        polls a million-event journal (counting the rows took 19 ms there), one snapshot."""
        row = self.query(
            "SELECT (SELECT coalesce(sum(n), 0) FROM tallies WHERE kind = 'req'),"
            " (SELECT coalesce(sum(n), 0) FROM tallies WHERE kind = 'ev'),"
            " (SELECT max(id) FROM requests)"
        )[0]
        return {"requests": int(row[0]), "events": int(row[1]), "lastRequestId": row[2] or 0}

    def events_of(self, request_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        out: dict[int, list[dict[str, Any]]] = {rid: [] for rid in request_ids}
        if not request_ids:
            return out
        marks = ",".join("?" * len(request_ids))
        for row in self.query(
            f"SELECT request_id, idx, client_event_id, event_type, outcome, rule FROM events"
            f" WHERE request_id IN ({marks}) ORDER BY request_id, idx",
            list(request_ids),
        ):
            item = {
                "index": row["idx"],
                "clientEventId": row["client_event_id"],
                "eventType": row["event_type"],
                "outcome": row["outcome"],
            }
            if row["rule"]:
                item["rule"] = row["rule"]
            out[row["request_id"]].append(item)
        return out

    def iter_requests(
        self, where: str, params: Sequence[Any], *, newest_first: bool, limit: int | None
    ) -> Iterator[sqlite3.Row]:
        """Rows of ``requests`` matching ``where``, fetched in pages so the lock is brief."""
        page = 200
        last: int | None = None
        sent = 0
        order = "DESC" if newest_first else "ASC"
        while limit is None or sent < limit:
            size = page if limit is None else min(page, limit - sent)
            clause = where
            args = list(params)
            if last is not None:
                clause = f"({where}) AND id {'<' if newest_first else '>'} ?"
                args.append(last)
            rows = self.query(
                f"SELECT * FROM requests WHERE {clause} ORDER BY id {order} LIMIT ?",
                [*args, size],
            )
            if not rows:
                return
            yield from rows
            sent += len(rows)
            last = rows[-1]["id"]
            if len(rows) < size:
                return
