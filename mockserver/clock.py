"""The mock's clock: real time by default, frozen, set or advanced through the admin API.

Token expiry, idempotency retention and the event-time window all read this clock, so a test
can cross a three-hour retention or an 18-month window in one call instead of waiting. The
state lives in the journal's ``state`` table, so every worker process on one journal file sees
the same time.
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
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class Clock:
    """``now()`` = frozen instant if frozen, else real time plus an offset."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    def _state(self) -> dict[str, Any]:
        raw = self._journal.get_state(_KEY)
        return json.loads(raw) if raw else {"offset": 0.0, "frozen_at": None}

    def now(self) -> float:
        state = self._state()
        if state["frozen_at"] is not None:
            return float(state["frozen_at"])
        return time.time() + float(state["offset"])

    def describe(self) -> dict[str, Any]:
        state = self._state()
        now = self.now()
        return {
            "now": iso(now),
            "epoch": now,
            "frozen": state["frozen_at"] is not None,
            "offsetSeconds": round(now - time.time(), 6),
            "real": state["frozen_at"] is None and state["offset"] == 0,
        }

    def update(
        self,
        *,
        set_to: float | None = None,
        advance: float = 0.0,
        frozen: bool | None = None,
        reset: bool = False,
    ) -> dict[str, Any]:
        """Apply, in this order: reset, set, advance, freeze/unfreeze. Returns the new state.

        Setting or advancing a running clock keeps it running from the new instant; freezing
        holds the current (possibly just set) instant until unfrozen.
        """
        with self._journal.transaction() as db:
            row = db.execute("SELECT value FROM state WHERE key=?", (_KEY,)).fetchone()
            state = json.loads(row[0]) if row else {"offset": 0.0, "frozen_at": None}
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
            db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (_KEY, json.dumps(state)))
        return self.describe()
