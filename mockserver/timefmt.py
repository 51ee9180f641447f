"""Strict RFC 3339 parsing, shared by the schema's ``date-time`` format and the time window.

Strict on purpose: upper-case ``T`` and ``Z``, a two-digit offset, seconds 00..59 and at most
nine fractional digits, which is what Go's ``time.RFC3339`` parser (very likely behind the
real API) accepts. A sender that passes here does not depend on a lenient server.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from functools import lru_cache

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})\Z",
    re.ASCII,
)


@lru_cache(maxsize=4096)
def parse_rfc3339(text: str) -> float | None:
    """Epoch seconds for a valid RFC 3339 date-time, else ``None``.

    Cached: a request parses each ``eventTime`` twice (the schema's ``date-time`` format,
    then the time window), and retries of a batch carry the same strings again.
    """
    match = _RFC3339.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction, offset = match.group(7), match.group(8)
    try:
        if offset == "Z":
            tz = timezone.utc
        else:
            hours, minutes = int(offset[1:3]), int(offset[4:6])
            if hours > 23 or minutes > 59:
                return None
            delta = timedelta(hours=hours, minutes=minutes)
            tz = timezone(delta if offset[0] == "+" else -delta)
        moment = datetime(year, month, day, hour, minute, second, tzinfo=tz)
    except ValueError:
        return None
    return moment.timestamp() + (float("0." + fraction) if fraction else 0.0)


def is_utc(text: str) -> bool:
    return text.endswith("Z") or text.endswith("+00:00")
