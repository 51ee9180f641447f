"""Realistic, valid POST events bodies for the load benchmark.

A 100-event batch is about 59 KB of compact JSON (~590 bytes an event: a purchase with the
customer's e-mail and name, order reference, amount and a few more attributes, plus one
metaData entry), close to the 57 KB batches the issue measured with. ``eventTime`` is within
the last hour, in UTC, so the mock's event-time window (548 days back, 5 minutes ahead)
accepts every event.

Bodies are written as *templates*: each ``clientEventId`` is the marker ``__CEID__``, which
bench/wrk/events.lua replaces with a fresh UUID for every request. Every request then carries
new events, as a real sender's traffic does, so the mock's delivery table grows as it would in
production instead of counting the same few events as duplicates over and over.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

MARKER = "__CEID__"
ACCOUNT_ID = "1234567890"

_FIRST = ["Ava", "Liam", "Olivia", "Noah", "Mia", "Lucas", "Zoe", "Ethan", "Chloe", "Mateo"]
_LAST = ["Smith", "Nguyen", "Garcia", "Kowalski", "O'Brien", "Tanaka", "Haddad", "Muller"]
_CURRENCIES = ["USD", "AUD", "GBP", "EUR", "CAD", "JPY"]
_PAYMENTS = ["visa", "mastercard", "amex", "paypal", "applepay"]
_ZIPS = ["94107", "2000", "EC1A 1BB", "10001", "M5V 2T6"]


def _event(rng: random.Random, i: int, now: datetime) -> dict[str, Any]:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    zipcode = rng.choice(_ZIPS)
    when = now - timedelta(seconds=rng.uniform(5, 3600))
    return {
        "clientEventId": MARKER,
        "eventType": "conversion",
        "eventTime": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
        "objectData": [
            {"name": "email", "value": f"{first}.{last}{rng.randrange(10000)}@example.com".lower()},
            {"name": "firstname", "value": first},
            {"name": "lastname", "value": last},
            {"name": "conversiontype", "value": "purchase"},
            {"name": "confirmationref", "value": f"ORD-{rng.randrange(10**8):08d}"},
            {"name": "amount", "value": f"{rng.uniform(5, 900):.2f}"},
            {"name": "currency", "value": rng.choice(_CURRENCIES)},
            {"name": "quantity", "value": str(rng.randrange(1, 9))},
            {"name": "paymenttype", "value": rng.choice(_PAYMENTS)},
            {"name": "billingzipcode", "value": zipcode},
        ],
        "metaData": [
            {"name": "batchindex", "value": str(i)},
        ],
    }


def template(events: int, seed: int, now: datetime | None = None) -> str:
    """A compact JSON body of ``events`` events whose ids are ``__CEID__`` markers."""
    rng = random.Random(seed)
    now = now or datetime.now(timezone.utc)
    body = {"accountId": ACCOUNT_ID, "events": [_event(rng, i, now) for i in range(events)]}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def fill(text: str, seed: int = 0) -> str:
    """The template with real, distinct UUID v4 ids (for one-off requests and checks)."""
    rng = random.Random(seed)
    parts = text.split(MARKER)
    out = [parts[0]]
    for part in parts[1:]:
        out.append(str(uuid.UUID(int=rng.getrandbits(128), version=4)))
        out.append(part)
    return "".join(out)


def write_templates(folder: Path, events: int, variants: int = 8) -> list[Path]:
    """``variants`` different templates of ``events`` events; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc)
    paths = []
    for k in range(variants):
        path = folder / f"body-{events}-{k}.json"
        path.write_text(template(events, seed=events * 1000 + k, now=now), encoding="utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":  # print the size of a filled body for each batch size
    for n in (1, 10, 50, 100):
        print(n, len(fill(template(n, seed=n)).encode()), "bytes")
