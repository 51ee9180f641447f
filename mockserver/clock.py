"""The mock's clock: real time by default, frozen, set or advanced through the admin API.

Token expiry, idempotency retention and the event-time window all read this clock, so a test
can cross a three-hour retention or an 18-month window in one call instead of waiting. The
state lives in the journal's ``state`` table, so every worker process on one journal file sees
the same time. A namespace may have a clock of its own (``?namespace=`` on the admin API), so
a test freezing time in its namespace does not move anyone else's; namespaces without one
follow the global clock.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any

from .journal import Journal

_KEY = "clock"


def iso(ts: float) -> str:
    """RFC 3339 UTC with milliseconds, the format Rokt's samples use."""
    moment = datetime.fromtimestamp(ts, tz=timezone.utc)
    # four-digit year by hand: strftime's %Y does not pad years before 1000 on glibc
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


_REAL: dict[str, Any] = {"offset": 0.0, "frozen_at": None}


def _key(namespace: str | None) -> str:
    return _KEY if namespace is None else f"{_KEY}:{namespace}"


class Clock:
    """``now()`` = frozen instant if frozen, else real time plus an offset."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    def _state(self, namespace: str | None) -> tuple[dict[str, Any], bool]:
        """The state in force for ``namespace`` and whether it is the namespace's own."""
        keys = [_KEY] if namespace is None else [_KEY, _key(namespace)]
        marks = ",".join("?" * len(keys))
        rows = dict(
            (r["key"], r["value"])
            for r in self._journal.query(
                f"SELECT key, value FROM state WHERE key IN ({marks})", keys
            )
        )
        if namespace is not None and _key(namespace) in rows:
            return json.loads(rows[_key(namespace)]), True
        return (json.loads(rows[_KEY]) if _KEY in rows else dict(_REAL)), False

    def now(self, namespace: str | None = None) -> float:
        state, _ = self._state(namespace)
        if state["frozen_at"] is not None:
            return float(state["frozen_at"])
        return time.time() + float(state["offset"])

    def describe(self, namespace: str | None = None) -> dict[str, Any]:
        state, own = self._state(namespace)
        now = self.now(namespace)
        out = {
            "now": iso(now),
            "epoch": now,
            "frozen": state["frozen_at"] is not None,
            "offsetSeconds": round(now - time.time(), 6),
            "real": state["frozen_at"] is None and state["offset"] == 0,
        }
        if namespace is not None:
            out.update(namespace=namespace, own=own)
        return out

    def forget(self, namespace: str) -> None:
        """Drop a namespace's own clock: it follows the global one again."""
        self._journal.set_state(_key(namespace), None)

    def update(
        self,
        *,
        set_to: float | None = None,
        advance: float = 0.0,
        frozen: bool | None = None,
        reset: bool = False,
        namespace: str | None = None,
    ) -> dict[str, Any]:
        """Apply, in this order: reset, set, advance, freeze/unfreeze. Returns the new state.

        Setting or advancing a running clock keeps it running from the new instant; freezing
        holds the current (possibly just set) instant until unfrozen. With ``namespace`` the
        change applies to that namespace's own clock, which starts from the global one.
        """
        key = _key(namespace)
        with self._journal.transaction() as db:
            row = db.execute("SELECT value FROM state WHERE key=?", (key,)).fetchone()
            if row is None and namespace is not None:
                row = db.execute("SELECT value FROM state WHERE key=?", (_KEY,)).fetchone()
            state = json.loads(row[0]) if row else dict(_REAL)
            if reset:
                state = {"offset": 0.0, "frozen_at": None}
            real = time.time()
            current = (
                state["frozen_at"] if state["frozen_at"] is not None else real + state["offset"]
            )
            if set_to is not None:
                current = set_to
            current += advance
            is_frozen = state["frozen_at"] is not None if frozen is None else frozen
            state = {
                "offset": current - real,
                "frozen_at": current if is_frozen else None,
            }
            db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, json.dumps(state)))
        return self.describe(namespace)
