"""Hypothesis strategies for the kit: realistic events, edge cases senders get wrong, faults.

Public: partners may build their own tests from these (``from contract_tests import
strategies``). Each strategy says what it shrinks towards. Every event generated here is valid
by ``schemas/events.schema.json`` at the instant ``now`` it was generated for (a test checks
it), so a rejection in a kit run is always the sender's doing.
"""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from typing import Any

from hypothesis import strategies as st

from mockserver.clock import iso

from .model import FAULT_KINDS, Api, Case

MAX_WINDOW_BACK_S = 547 * 86400  # a day inside the 548-day window
MAX_WINDOW_AHEAD_S = 240  # inside the 5-minute future limit
MAX_CONSECUTIVE_FAULTS = 3

CURRENCIES = ("AUD", "USD", "EUR", "GBP", "JPY", "NZD", "SGD")
CONVERSION_TYPES = ("purchase", "order", "signup", "booking", "subscription")
TRICKY_TEXT = (
    "Zoë",
    "José Álvarez",
    "e\u0301lodie",  # combining acute accent
    "\u05e9\u05dc\u05d5\u05dd",  # Hebrew, right to left
    "\u0645\u0631\u062d\u0628\u0627",  # Arabic, right to left
    "\U0001f600\U0001f389",  # emoji (astral plane)
    "\u6771\u4eac",  # CJK
    "O'Brien & Sons <b>",
    "line\nbreak",
    "",
)
NUMBERISH = ("00123", "1e5", "300.50", "-0", "0x1F", "NaN", "Infinity", "1,000.00", "  42 ")


_iso = iso  # the mock's own RFC 3339 form (milliseconds, Z), so the two never drift apart


def event_times(*, now: float) -> st.SearchStrategy[str]:
    """RFC 3339 UTC times inside the accepted window around ``now``, edges emphasised.

    Shrinks towards ``now`` itself.
    """
    offsets = st.one_of(
        st.just(0.0),
        st.floats(min_value=-3600.0, max_value=0.0),
        st.sampled_from([-MAX_WINDOW_BACK_S, MAX_WINDOW_AHEAD_S, -86400.0 * 30]),
        st.floats(min_value=-MAX_WINDOW_BACK_S, max_value=MAX_WINDOW_AHEAD_S),
    )
    return offsets.map(lambda off: _iso(now + off))


def _text(max_size: int) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(TRICKY_TEXT),
        st.sampled_from(NUMBERISH),
        st.text(
            st.characters(codec="utf-8", exclude_categories=("Cs",)),
            max_size=min(max_size, 40),
        ),
    ).filter(lambda s: len(s) <= max_size)


def _pair(name: st.SearchStrategy[str], value: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries({"name": name, "value": value})


def _emails() -> st.SearchStrategy[str]:
    local = st.sampled_from(["jane", "j.doe+rokt", "zoë", "o'brien", "user123", "a"])
    domain = st.sampled_from(["example.com", "example.co.uk", "xn--exmple-cua.com"])
    return st.builds(lambda a, b: f"{a}@{b}", local, domain)


def conversion_attributes() -> st.SearchStrategy[list[dict[str, str]]]:
    """objectData of a conversion: an identifier, conversiontype, and optional extras.

    Shrinks towards ``[email, conversiontype]``.
    """
    identifier = st.one_of(
        _emails().map(lambda e: {"name": "email", "value": e}),
        _emails().map(
            lambda e: {
                "name": "emailsha256",
                "value": hashlib.sha256(e.lower().encode()).hexdigest().upper(),
            }
        ),
        st.uuids(version=4).map(lambda u: {"name": "passbackconversiontrackingid", "value": u.hex}),
    )
    extras = st.lists(
        st.one_of(
            st.decimals(min_value=0, max_value=100000, places=2).map(
                lambda d: {"name": "amount", "value": str(d)}
            ),
            st.sampled_from(CURRENCIES).map(lambda c: {"name": "currency", "value": c}),
            st.integers(1, 50).map(lambda q: {"name": "quantity", "value": str(q)}),
            st.text("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", min_size=6, max_size=12).map(
                lambda r: {"name": "confirmationref", "value": r}
            ),
            _text(60).map(lambda t: {"name": "firstname", "value": t}),
            st.sampled_from(NUMBERISH).map(lambda t: {"name": "zipcode", "value": t}),
        ),
        max_size=5,
        unique_by=lambda d: d["name"],
    )
    return st.builds(
        lambda ident, ctype, more: [ident, {"name": "conversiontype", "value": ctype}, *more],
        identifier,
        st.sampled_from(CONVERSION_TYPES),
        extras,
    )


def _meta() -> st.SearchStrategy[list[dict[str, str]]]:
    names = st.one_of(
        st.sampled_from(["sessionid", "pagetitle", "useragent", "source", "Rokt-ish", "roktx"]),
        st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=256),
    )
    return st.lists(_pair(names, _text(200)), max_size=3)


def events(*, now: float | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """One valid EventObject: a conversion, a confirmation-page load, or a custom type.

    Field values include max lengths, unicode (emoji, combining marks, right-to-left text) and
    strings that look like numbers. Shrinks towards a conversion with an email, a
    conversiontype, no metaData and ``eventTime`` = ``now``.
    """
    at = time.time() if now is None else now
    ids = st.one_of(
        st.uuids(version=4).map(str),
        st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=36, max_size=36),
    )
    conversion = st.fixed_dictionaries(
        {
            "clientEventId": ids,
            "eventType": st.just("conversion"),
            "eventTime": event_times(now=at),
            "objectData": conversion_attributes(),
        },
        optional={"metaData": _meta()},
    )
    page_load = st.fixed_dictionaries(
        {
            "clientEventId": ids,
            "eventType": st.just("confirmation_page_load"),
            "eventTime": event_times(now=at),
            "objectData": st.text("0123456789", min_size=4, max_size=10).map(
                lambda r: [{"name": "confirmationref", "value": r}]
            ),
        },
        optional={"metaData": _meta()},
    )
    custom = st.fixed_dictionaries(
        {
            "clientEventId": ids,
            "eventType": st.one_of(
                st.sampled_from(["hotel_booking", "app_download", "newsletter_signup"]),
                st.text("abcdefghijklmnopqrstuvwxyz_", min_size=128, max_size=128),
            ),
            "eventTime": event_times(now=at),
        },
        optional={
            "objectData": st.lists(
                _pair(st.sampled_from(["sku", "productname", "majorcat"]), _text(100)), max_size=3
            ),
            "metaData": _meta(),
        },
    )
    return st.one_of(conversion, page_load, custom)


def _filler(rng: random.Random, n: int, now: float, taken: set[str]) -> list[dict[str, Any]]:
    """``n`` plain, valid conversion events from a seeded generator (cheap in entropy)."""
    out = []
    while len(out) < n:
        ceid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if ceid in taken:
            continue
        taken.add(ceid)
        out.append(
            {
                "clientEventId": ceid,
                "eventType": "conversion",
                "eventTime": _iso(now - rng.uniform(0, 30 * 86400)),
                "objectData": [
                    {"name": "email", "value": f"customer{rng.randrange(10**6)}@example.com"},
                    {"name": "conversiontype", "value": rng.choice(CONVERSION_TYPES)},
                    {"name": "amount", "value": f"{rng.uniform(1, 500):.2f}"},
                    {"name": "currency", "value": rng.choice(CURRENCIES)},
                ],
            }
        )
    return out


def event_lists(
    *, min_size: int = 1, max_size: int = 250, now: float | None = None
) -> st.SearchStrategy[list[dict[str, Any]]]:
    """What a sender is handed: 1..250 events with distinct ids, so batching at 100 is exercised.

    Up to 12 events come from :func:`events` (every edge case), spread among up to 240 plain
    events made by a seeded generator: hypothesis could not draw 250 rich events within its
    per-example budget, and the interesting ones still land anywhere, the 100th included.
    Shrinks towards a single minimal event (the plain ones go first).
    """
    at = time.time() if now is None else now
    head = st.lists(
        events(now=at),
        min_size=min(max(1, min_size), 12),
        max_size=min(12, max_size),
        unique_by=lambda e: e["clientEventId"],
    )
    bands = [st.just(0)]
    if max_size > 95:
        bands.append(st.integers(85, min(100, max_size)))
    if max_size > 180:
        bands.append(st.integers(170, max_size))

    def combine(rich: list[dict[str, Any]], extra: int, seed: int) -> list[dict[str, Any]]:
        rng = random.Random(seed)
        extra = max(0, min(extra, max_size - len(rich)))
        plain = _filler(rng, extra, at, {e["clientEventId"] for e in rich})
        for event in rich:
            plain.insert(rng.randrange(len(plain) + 1), event)
        return plain

    return st.builds(combine, head, st.one_of(*bands), st.integers(0, 2**32 - 1))


def _cap_runs(schedule: list[str]) -> list[str]:
    """No more than three faults in a row, so a sender with a sane retry budget always can
    deliver: a failure then means the sender is wrong, not that the mock never let it through."""
    out: list[str] = []
    run = 0
    for kind in schedule:
        run = run + 1 if kind != "ok" else 0
        if run > MAX_CONSECUTIVE_FAULTS:
            out.append("ok")
            run = 1
        out.append(kind)
    while out and out[-1] == "ok":  # trailing no-ops say nothing: drop them
        out.pop()
    return out


def fault_kinds(api: Api) -> tuple[str, ...]:
    return tuple(k for k in FAULT_KINDS if not (api == "v2" and k == "expire-token"))


def fault_schedules(api: Api = "v1", *, max_size: int = 12) -> st.SearchStrategy[list[str]]:
    """Faults by attempt number (entry k is served to the k+1-th events request).

    Shrinks towards the empty schedule, then towards ``ok`` entries: no faults at all.
    """
    return st.lists(st.sampled_from(fault_kinds(api)), max_size=max_size).map(_cap_runs)


def cases(
    api: Api = "v1",
    *,
    max_events: int = 250,
    max_faults: int = 12,
    now: float | None = None,
) -> st.SearchStrategy[Case]:
    """A whole kit case: events and a fault schedule. Shrinks towards one event, no faults."""
    return st.builds(
        lambda evs, sched: Case(api=api, events=evs, schedule=sched, case_id=_case_id(evs, sched)),
        event_lists(max_size=max_events, now=now),
        fault_schedules(api, max_size=max_faults),
    )


def _case_id(events: list[dict[str, Any]], schedule: list[str]) -> str:
    digest = hashlib.sha256(repr((events, schedule)).encode()).hexdigest()
    return str(uuid.UUID(digest[:32]))[:8]
