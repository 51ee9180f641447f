"""The judge: a pure function from (case, journal, sender run) to a verdict per property.

Nothing here talks HTTP or starts processes: a saved run (a failure file) is judged again by
calling :func:`judge` with the same data. Verdicts come only from the mock's journal, the
final case and what the sender reported, never from what a generator intended, so a label
cannot go stale while Hypothesis shrinks.

Vocabulary used throughout:

* an *attempt* is a journal row whose ``endpoint`` is ``/v1/events`` or ``/v2/events``;
* an attempt's *batch* is the set of clientEventIds it carried; a *retry* of a batch is a later
  attempt with the same set;
* an event is *delivered* by an attempt when its outcome there is ``accepted`` or
  ``duplicate``;
* an attempt is *ambiguous* when the mock committed it (``fault.committed``) but the sender
  could not learn that: any status but 200, no answer, a truncated/malformed 200, or a 200
  delayed by an injected latency (or dribble) that the sender resent before the answer was
  complete (it had timed out: such an attempt is *late*, and is ordered by arrival);
* a delivery is *confirmed* to the sender by a clean 200 that accepted the event, or by a 409
  to an attempt carrying it (the key was already accepted).

The semantics of each property are written in :mod:`contract_tests.properties`.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .model import Case, Finding, Judgement, SenderRun
from .properties import ORDER, PROPERTIES, ContractViolation, exception_for

__all__ = [
    "DEMO_SECRETS",
    "ContractViolation",
    "format_timeline",
    "judge",
    "raise_first",
]

EVENTS_ENDPOINTS = ("/v1/events", "/v2/events")
TOKEN_ENDPOINT = "/auth/oauth2/token"
#: 200 answers the sender could not read (the mock committed the batch first).
UNREADABLE_CODES = ("TruncatedBody", "MalformedBody")
#: Client errors after which the same payload must not be sent again (409 is separate).
CLIENT_ERRORS = frozenset({400, 403, 404, 405, 413, 415, 422})
#: Statuses that mean "try again" (plus every 5xx, and 0 for no answer).
TRANSIENT_STATUSES = frozenset({0, 408, 429})
BATCH_RULES = frozenset({"events.max_items", "events.min_items"})
MAX_BATCH = 100
#: Over a run of failures, the last wait must be at least this many times the first (a
#: constant pause with +-10% jitter can look like it grows from one retry to the next).
BACKOFF_GROWTH = 1.5
#: An event attempted this many times may be given up on (and reported abandoned).
MAY_GIVE_UP_AT = 6
#: The mock's demo credentials (docs/api.md); a sender under test normally uses them.
DEMO_SECRETS = ("demo-app-secret", "rsec-demo-0001")
_SECRET_PARAMS = frozenset(
    {
        "access_token",
        "client_secret",
        "app_secret",
        "secret",
        "secret_key",
        "password",
        "token",
        "api_key",
        "apikey",
        "authorization",
    }
)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}")
_DELIVERED = ("accepted", "duplicate")
_OUTCOMES = ("delivered", "rejected", "abandoned")
_LIST_CAP = 5


# -- reading the journal ---------------------------------------------------------------------


def _epoch(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp()


def _parse_body(row: dict[str, Any]) -> Any:
    body = row.get("body")
    if not isinstance(body, str):
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _message(row: dict[str, Any]) -> str:
    """The error message (or OAuth2 description) of a journaled answer."""
    response = row.get("response")
    if not isinstance(response, dict):
        return ""
    data = response.get("data")
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])
    for key in ("error_description", "error"):
        if isinstance(response.get(key), str):
            return str(response[key])
    return ""


def _is_expiry(row: dict[str, Any]) -> bool:
    fault = row.get("fault") or {}
    if fault.get("kind") == "expireToken":
        return True
    response = row.get("response")
    data = response.get("data") if isinstance(response, dict) else None
    details = data.get("details") if isinstance(data, dict) else None
    if isinstance(details, dict) and details.get("tokenExpired") is True:
        return True
    return "expired" in _message(row).lower()


@dataclass
class Attempt:
    """One POST events request as the judge sees it."""

    pos: int  # index in the journal list
    n: int  # 1-based ordinal among attempts
    row: dict[str, Any]
    id: int
    wall: float  # when the mock answered (wallTime), seconds
    start: float  # when it arrived: wallTime - durationMs
    status: int
    code: str | None
    key: str | None
    ids: tuple[str, ...]  # clientEventIds in body order (may repeat)
    outcomes: dict[str, list[str]]  # clientEventId -> outcomes in this attempt
    doc: Any
    count: int | None
    injected: str | None  # the fault kind (outcome) the mock injected, if any
    committed: bool
    retry_after: float | None
    cls: str = ""
    batch: str = "-"
    #: A delayed or dribbled 200 that the sender resent before the answer was complete: it
    #: had given up on it (timed out), so for the sender the outcome was unknown.
    late: bool = False

    @property
    def idset(self) -> frozenset[str]:
        return frozenset(self.ids)

    @property
    def ref(self) -> str:
        return f"attempt {self.n} [id {self.id}]"

    def sent_event(self, index: int) -> Any:
        events = self.doc.get("events") if isinstance(self.doc, dict) else None
        if isinstance(events, list) and 0 <= index < len(events):
            return events[index]
        return None

    def fingerprint(self) -> Any:
        sha = self.row.get("bodySha256")
        if sha:
            return ("sha256", sha)
        size = self.row.get("bodySize")
        return ("size", size) if size else None

    def answer(self) -> str:
        """What the mock did, in a few words."""
        text = f"{self.status} {self.code or ('OK' if self.status == 200 else '')}".strip()
        if self.status == 0:
            text = f"no answer ({self.code or 'network fault'})"
        if self.late:
            text += " too late (the sender had already resent)"
        return text

    def after(self, other: Attempt) -> bool:
        """This attempt came after ``other``: journal order, or arrival when one was late."""
        if self.late or other.late:
            return self.start > other.start
        return self.pos > other.pos


@dataclass
class _Run:
    """Everything the checks share: parsed attempts, deliveries, the report."""

    case: Case
    journal: list[dict[str, Any]]
    run: SenderRun
    max_attempts: int
    tolerance: float
    secrets: tuple[str, ...]
    attempts: list[Attempt] = field(default_factory=list)
    tokens: list[dict[str, Any]] = field(default_factory=list)
    by_pos: dict[int, Attempt] = field(default_factory=dict)
    intended: list[str] = field(default_factory=list)
    intended_events: dict[str, Any] = field(default_factory=dict)
    #: clientEventId -> [(attempt, outcome)] for accepted/duplicate outcomes, oldest first.
    deliveries: dict[str, list[tuple[Attempt, str]]] = field(default_factory=dict)
    #: clientEventId -> attempts that carried it, oldest first.
    carried: dict[str, list[Attempt]] = field(default_factory=dict)
    results: dict[str, str] | None = None
    result_problems: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)

    # -- shared questions ------------------------------------------------------------------

    def delivered(self, ceid: str) -> bool:
        return bool(self.deliveries.get(ceid))

    def delivered_before(self, ceid: str, a: Attempt) -> bool:
        return any(d.pos < a.pos for d, _ in self.deliveries.get(ceid, ()))

    def confirmed(self, ceid: str, before: Attempt | None = None) -> list[Attempt]:
        """Attempts whose answer told the sender the event was delivered."""
        out = []
        for a in self.carried.get(ceid, ()):
            if before is not None and a.pos >= before.pos:
                continue
            if a.cls == "ok" and any(o in _DELIVERED for o in a.outcomes.get(ceid, ())):
                out.append(a)
            elif a.cls == "conflict" and self.delivered_before(ceid, a):
                out.append(a)  # 409: the key, and so this event, was already accepted
        return out

    def first_delivery_ambiguous(self, ceid: str, by: Attempt | None = None) -> bool:
        """The event was first committed by an ambiguous attempt (``by``, if given)."""
        deliveries = self.deliveries.get(ceid)
        if not deliveries:
            return False
        first = deliveries[0][0]
        return first.cls == "ambiguous" and (by is None or first is by)

    def rejected_by_server(self, ceid: str) -> bool:
        for a in self.carried.get(ceid, ()):
            if "rejected" in a.outcomes.get(ceid, ()):
                return True
            if a.cls in ("client", "auth"):
                return True
        return False

    def later(self, a: Attempt) -> list[Attempt]:
        return [b for b in self.attempts if b is not a and b.after(a)]

    def attempts_of(self, ceid: str, upto: Attempt) -> int:
        return sum(1 for b in self.carried.get(ceid, ()) if b.pos <= upto.pos)

    def trailing(self, a: Attempt) -> bool:
        """The run was killed and nothing followed ``a``: a missing retry is not judgeable."""
        return self.run.timed_out and not self.later(a)

    def fail(self, prop: str, message: str, **kw: Any) -> None:
        self.findings.append(_finding(prop, PROPERTIES[prop].level, message, **kw))

    def warn(self, prop: str, message: str, **kw: Any) -> None:
        self.warnings.append(_finding(prop, "SHOULD", message, **kw))


def _finding(
    prop: str,
    level: Any,
    message: str,
    *,
    attempts: Iterable[Attempt | int] = (),
    events: Iterable[str] = (),
    expected: Any = None,
    observed: Any = None,
) -> Finding:
    ids = []
    for a in attempts:
        ident = a.id if isinstance(a, Attempt) else a
        if ident not in ids:
            ids.append(ident)
    evs = list(dict.fromkeys(events))
    return Finding(
        property=prop,
        level=level,
        message=message,
        expected=expected,
        observed=observed,
        attempts=tuple(ids),
        events=tuple(evs),
    )


def _names(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= _LIST_CAP:
        return ", ".join(items)
    return ", ".join(items[:_LIST_CAP]) + f" and {len(items) - _LIST_CAP} more"


def _refs(attempts: Iterable[Attempt]) -> str:
    return _names([a.ref for a in attempts])


def _classify(a: Attempt) -> str:
    if a.committed and (a.status != 200 or a.code in UNREADABLE_CODES):
        return "ambiguous"
    if a.status == 200:
        return "transient" if a.code in UNREADABLE_CODES else "ok"
    if a.status == 401:
        return "expired" if _is_expiry(a.row) else "auth"
    if a.status == 409:
        return "conflict"
    if a.status in TRANSIENT_STATUSES or a.status >= 500:
        return "transient"
    if 400 <= a.status < 500:
        return "client"
    return "other"


def _attempt(pos: int, n: int, row: dict[str, Any], first_wall: float) -> Attempt:
    wall = _epoch(row.get("wallTime"))
    if wall is None:
        wall = _epoch(row.get("at"))
    if wall is None:
        wall = first_wall
    duration = row.get("durationMs")
    start = wall - duration / 1000.0 if isinstance(duration, (int, float)) else wall
    doc = _parse_body(row)
    ids: list[str] = []
    outcomes: dict[str, list[str]] = defaultdict(list)
    for ev in row.get("events") or []:
        ceid = ev.get("clientEventId")
        if isinstance(ceid, str):
            ids.append(ceid)
            outcomes[ceid].append(str(ev.get("outcome")))
    body_events = doc.get("events") if isinstance(doc, dict) else None
    if not ids and isinstance(body_events, list):
        ids = [
            e["clientEventId"]
            for e in body_events
            if isinstance(e, dict) and isinstance(e.get("clientEventId"), str)
        ]
    count = row.get("eventCount")
    if not isinstance(count, int):
        if isinstance(body_events, list):
            count = len(body_events)
        elif row.get("events"):
            count = len(row["events"])
        else:
            count = None
    fault = row.get("fault") or {}
    retry_after = fault.get("retryAfter")
    status = row.get("status")
    return Attempt(
        pos=pos,
        n=n,
        row=row,
        id=int(row.get("id") or 0),
        wall=wall,
        start=min(start, wall),
        status=int(status) if isinstance(status, int) else 0,
        code=row.get("code"),
        key=row.get("idempotencyKey"),
        ids=tuple(ids),
        outcomes=dict(outcomes),
        doc=doc,
        count=count,
        injected=fault.get("kind"),
        committed=bool(fault.get("committed")),
        retry_after=float(retry_after) if isinstance(retry_after, (int, float)) else None,
    )


def _prepare(
    case: Case,
    journal: list[dict[str, Any]],
    run: SenderRun,
    max_attempts: int,
    tolerance: float,
    secrets: Collection[str],
) -> _Run:
    # oldest first, as documented; sorting by id also accepts /__admin/requests' newest-first
    rows = sorted(journal, key=lambda r: r.get("id") if isinstance(r.get("id"), int) else 0)
    ctx = _Run(case, rows, run, max_attempts, tolerance, tuple(s for s in secrets if s))
    walls = [w for w in (_epoch(r.get("wallTime")) for r in journal) if w is not None]
    first_wall = min(walls) if walls else 0.0
    labels: dict[frozenset[str], str] = {}
    for pos, row in enumerate(ctx.journal):
        endpoint = row.get("endpoint")
        if endpoint in EVENTS_ENDPOINTS:
            a = _attempt(pos, len(ctx.attempts) + 1, row, first_wall)
            a.cls = _classify(a)
            if a.ids:
                a.batch = labels.setdefault(a.idset, f"b{len(labels) + 1}")
            ctx.attempts.append(a)
            ctx.by_pos[pos] = a
            for ceid in dict.fromkeys(a.ids):
                ctx.carried.setdefault(ceid, []).append(a)
                for outcome in a.outcomes.get(ceid, ()):
                    if outcome in _DELIVERED:
                        ctx.deliveries.setdefault(ceid, []).append((a, outcome))
        elif endpoint == TOKEN_ENDPOINT:
            ctx.tokens.append(row)
    _mark_late(ctx)
    for event in case.events:
        ceid = event.get("clientEventId") if isinstance(event, dict) else None
        if isinstance(ceid, str):
            ctx.intended.append(ceid)
            ctx.intended_events[ceid] = event
    if run.results is not None:
        ctx.results = {}
        for i, item in enumerate(run.results, 1):
            if not isinstance(item, dict) or not isinstance(item.get("clientEventId"), str):
                ctx.result_problems.append(f"result line {i} has no clientEventId: {item!r}")
                continue
            outcome = item.get("outcome")
            if outcome not in _OUTCOMES:
                ctx.result_problems.append(
                    f"result line {i} has outcome {outcome!r}; expected one of "
                    + ", ".join(_OUTCOMES)
                )
                continue
            ctx.results[item["clientEventId"]] = outcome
    return ctx


def _mark_late(ctx: _Run) -> None:
    """Committed 200s the sender never got: delayed (or dribbled) past its timeout.

    The mock waits an injected latency before processing and commits even if the client has
    gone; the journal cannot show the client's timeout. When another attempt carrying the same
    events arrived while this one was still being answered, the sender had given up on it, so
    it is treated as ambiguous (and ordered by arrival, not by journal id).
    """
    for a in ctx.attempts:
        fault = a.row.get("fault") or {}
        slow = bool(fault.get("delaySeconds")) or a.injected == "dribble"
        if not (slow and a.committed and a.status == 200 and a.code is None):
            continue
        end = a.wall
        if a.injected == "dribble":
            dribble = (fault.get("fault") or {}).get("dribble") or {}
            end += float(dribble.get("seconds", 0.0) or 0.0)
        if any(b is not a and b.idset & a.idset and a.start < b.start < end for b in ctx.attempts):
            a.late = True
            a.cls = "ambiguous"


def _token_ok(row: dict[str, Any]) -> bool:
    return row.get("status") == 200


def _pos_of(ctx: _Run, row: dict[str, Any]) -> int:
    for pos, r in enumerate(ctx.journal):
        if r is row:
            return pos
    return -1


# -- request.* -----------------------------------------------------------------------------


def _excused(ctx: _Run, a: Attempt, index: Any) -> bool:
    """A violation inside an event the sender passed on unchanged is the case's doing."""
    if not isinstance(index, int):
        return False
    sent = a.sent_event(index)
    if not isinstance(sent, dict):
        return False
    ceid = sent.get("clientEventId")
    return isinstance(ceid, str) and ctx.intended_events.get(ceid) == sent


def _violation_text(v: dict[str, Any]) -> str:
    where = v.get("pointer") or ""
    if v.get("in") == "header":
        where = f"header {where.lstrip('/')}"
    return f"{v.get('rule')} at {where or '(body)'}: {v.get('message', '')}".strip()


def _check_request(ctx: _Run) -> None:
    api_path = f"/{ctx.case.api}/events"
    wrong_api = [a for a in ctx.attempts if a.row.get("endpoint") != api_path]
    if wrong_api:
        ctx.fail(
            "request.schema",
            f"the case uses the {ctx.case.api} API but {_refs(wrong_api)} went to "
            f"{wrong_api[0].row.get('endpoint')}; post to ROKT_API_URL + {api_path}",
            attempts=wrong_api,
            expected=api_path,
            observed=wrong_api[0].row.get("endpoint"),
        )
    for a in ctx.attempts:
        violations = [v for v in a.row.get("violations") or [] if isinstance(v, dict)]
        if a.row.get("method", "POST") != "POST":
            ctx.fail(
                "request.schema",
                f"{a.ref} used {a.row.get('method')} {a.row.get('path')} and was answered "
                f"{a.answer()}; events must be sent with POST",
                attempts=[a],
                expected="POST",
                observed=a.row.get("method"),
            )
            continue
        # batch size
        batch_rules = sorted({str(v.get("rule")) for v in violations} & BATCH_RULES)
        if (a.count is not None and a.count > MAX_BATCH) or a.count == 0 or batch_rules:
            ctx.fail(
                "request.batch_limit",
                f"{a.ref} carried {a.count if a.count is not None else 'an unknown number of'} "
                f"events (allowed: 1 to {MAX_BATCH})"
                + (
                    f"; the mock answered {a.answer()} ({', '.join(batch_rules)})"
                    if batch_rules
                    else ""
                ),
                attempts=[a],
                events=a.ids[:_LIST_CAP],
                expected=f"1..{MAX_BATCH} events",
                observed=a.count,
            )
        if a.injected is None and a.status in CLIENT_ERRORS:
            relevant = [
                v
                for v in violations
                if v.get("rule") not in BATCH_RULES and not _excused(ctx, a, v.get("eventIndex"))
            ]
            if relevant or not violations:
                detail = "; ".join(_violation_text(v) for v in relevant[:_LIST_CAP])
                if not detail:
                    detail = _message(a.row) or "no details"
                ctx.fail(
                    "request.schema",
                    f"{a.ref} was refused with {a.status} {a.code}: {detail}",
                    attempts=[a],
                    events=[
                        a.sent_event(v["eventIndex"]).get("clientEventId", "")
                        for v in relevant
                        if isinstance(v.get("eventIndex"), int)
                        and isinstance(a.sent_event(v["eventIndex"]), dict)
                    ],
                    expected="a request the mock accepts",
                    observed=[v.get("rule") for v in relevant] or a.code,
                )
        if a.injected is None and a.cls == "auth":
            ctx.fail(
                "request.schema",
                f"{a.ref} was refused with 401 {a.code}: {_message(a.row) or 'bad credentials'}"
                " (not a token expiry); send the credentials the kit provides",
                attempts=[a],
                expected="valid credentials",
                observed=_message(a.row),
            )
        # per-event rejections by a rule (not by an injected partialReject)
        by_index = {
            v.get("eventIndex"): v for v in violations if isinstance(v.get("eventIndex"), int)
        }
        for ev in a.row.get("events") or [] if a.status == 200 or a.committed else []:
            rule = ev.get("rule")
            if ev.get("outcome") != "rejected" or not rule or str(rule).startswith("fault."):
                continue
            if _excused(ctx, a, ev.get("index")):
                continue
            v = by_index.get(ev.get("index"))
            ctx.fail(
                "request.schema",
                f"{a.ref}: the mock rejected event {ev.get('clientEventId')} (events/"
                f"{ev.get('index')}) by rule {rule}"
                + (f": {_violation_text(v)}" if v else "")
                + "; the event as sent differs from the event handed over",
                attempts=[a],
                events=[str(ev.get("clientEventId"))],
                expected="the event exactly as handed over",
                observed=rule,
            )
    for row in ctx.tokens:
        fault = row.get("fault") or {}
        if row.get("status") in (400, 401) and not fault.get("kind"):
            ctx.fail(
                "request.schema",
                f"token request [id {row.get('id')}] was refused with {row.get('status')} "
                f"{row.get('code') or ''}: {_message(row) or 'no details'}; POST "
                "grant_type=client_credentials form-encoded, with Basic app_id:app_secret",
                attempts=[int(row.get("id") or 0)],
                expected="200 with an access token",
                observed=row.get("status"),
            )
    for row in ctx.journal:
        if row.get("endpoint") in (*EVENTS_ENDPOINTS, TOKEN_ENDPOINT):
            continue
        if row.get("status") in (404, 405):
            ctx.fail(
                "request.schema",
                f"request [id {row.get('id')}] {row.get('method')} {row.get('path')} was "
                f"answered {row.get('status')} {row.get('code') or ''}: no such endpoint; use "
                f"ROKT_API_URL + {TOKEN_ENDPOINT} or /{ctx.case.api}/events",
                attempts=[int(row.get("id") or 0)],
                expected="a known endpoint",
                observed=row.get("path"),
            )
    # contract warnings (SHOULD)
    seen: dict[str, tuple[list[Attempt], str]] = {}
    for a in ctx.attempts:
        for w in a.row.get("warnings") or []:
            if not isinstance(w, dict):
                continue
            rule = str(w.get("rule"))
            if rule != "clientEventId.duplicate_in_batch" and _excused(ctx, a, w.get("eventIndex")):
                continue
            entry = seen.setdefault(rule, ([], _violation_text(w)))
            if a not in entry[0]:
                entry[0].append(a)
    for rule, (attempts, text) in seen.items():
        ctx.warn(
            "request.contract_warnings",
            f"the mock warned {text} on {_refs(attempts)}",
            attempts=attempts,
            observed=rule,
        )


# -- auth.* ---------------------------------------------------------------------------------


def _check_secret_leak(ctx: _Run) -> None:
    for row in ctx.journal:
        path = str(row.get("path") or "")
        decoded = unquote(path)
        problems = []
        for secret in ctx.secrets:
            if secret in decoded:
                problems.append("a credential secret")
        query = urlsplit(path).query
        if _JWT.search(unquote(query)):
            problems.append("an access token")
        for name, value in parse_qsl(query, keep_blank_values=True):
            if name.lower().replace("-", "_") in _SECRET_PARAMS:
                problems.append(f"a query parameter named {name!r}")
            elif value == "<redacted>":  # the mock blanked a secret it recognised there
                problems.append(f"a secret in the query parameter {name!r}")
        if problems:
            ctx.fail(
                "auth.no_secret_leak",
                f"request [id {row.get('id')}] put {', '.join(dict.fromkeys(problems))} in its "
                f"URL ({row.get('method')} {row.get('endpoint')}); credentials belong in the "
                "Authorization header only",
                attempts=[int(row.get("id") or 0)],
                expected="no credentials in the URL",
                observed="credentials in the URL",
            )


def _pending(ctx: _Run, a: Attempt) -> list[str]:
    """Events of ``a`` that still needed sending after ``a`` failed (and may not be given up).

    An event whose delivery an earlier answer confirmed needs no resend; one that an earlier
    ambiguous attempt committed does, since the sender could not know.
    """
    out = []
    for ceid in dict.fromkeys(a.ids):
        if ctx.confirmed(ceid, a):
            continue
        if ctx.attempts_of(ceid, a) >= MAY_GIVE_UP_AT:
            continue
        out.append(ceid)
    return out


def _resent(ctx: _Run, a: Attempt, ceid: str, key: str | None = None) -> list[Attempt]:
    return [
        b
        for b in ctx.carried.get(ceid, ())
        if b is not a and b.after(a) and (key is None or b.key == key)
    ]


def _check_auth(ctx: _Run) -> None:
    expiries = [a for a in ctx.attempts if a.cls == "expired"]
    failed_tokens = [t for t in ctx.tokens if not _token_ok(t)]
    allowed = 2 + len(expiries) + len(failed_tokens)
    if len(ctx.tokens) > allowed:
        ctx.warn(
            "auth.token_reused",
            f"the sender requested {len(ctx.tokens)} tokens for {len(ctx.attempts)} events "
            f"requests ({len(expiries)} token expiries, {len(failed_tokens)} failed token "
            f"requests): at most {allowed} were needed; cache the token until it expires",
            attempts=[int(t.get("id") or 0) for t in ctx.tokens],
            expected=f"at most {allowed} token requests",
            observed=len(ctx.tokens),
        )
    for a in expiries:
        pending = _pending(ctx, a)
        if not pending or ctx.trailing(a):
            continue
        missing = [c for c in pending if not _resent(ctx, a, c)]
        if missing:
            ctx.fail(
                "auth.refresh_on_401",
                f"{a.ref} was answered 401 (token expired) and events {_names(missing)} were "
                "never sent again; get a new token and retry the batch",
                attempts=[a],
                events=missing,
                expected="a new token, then a retry of the batch",
                observed="no retry",
            )
            continue
        nxt = min((_resent(ctx, a, c)[0] for c in pending), key=lambda b: b.pos)
        new_token = [t for t in ctx.tokens if _token_ok(t) and a.pos < _pos_of(ctx, t) < nxt.pos]
        if not new_token:
            ctx.fail(
                "auth.refresh_on_401",
                f"{a.ref} was answered 401 (token expired) and the sender retried in {nxt.ref} "
                "without getting a new token first",
                attempts=[a, nxt],
                events=pending,
                expected="a successful token request between the 401 and the retry",
                observed="no new token",
            )
        elif nxt.cls == "expired" and nxt.injected is None:
            ctx.fail(
                "auth.refresh_on_401",
                f"{a.ref} was answered 401 (token expired); the sender got a new token but "
                f"{nxt.ref} still used the expired one and was refused again",
                attempts=[a, nxt],
                events=pending,
                expected="the retry uses the new token",
                observed="the expired token",
            )


# -- idempotency.* --------------------------------------------------------------------------


def _canonical(a: Attempt) -> Any:
    if a.doc is not None:
        return ("json", json.dumps(a.doc, sort_keys=True))
    return a.fingerprint()


def _check_idempotency(ctx: _Run) -> None:
    for a in ctx.attempts:
        if a.cls not in ("transient", "ambiguous", "expired") or not a.ids or a.key is None:
            continue
        retry = next((b for b in ctx.later(a) if b.idset == a.idset), None)
        if retry is not None and retry.key != a.key:
            ctx.fail(
                "idempotency.key_reused_on_retry",
                f"{a.ref} failed ({a.answer()}) and its retry {retry.ref} used a new "
                f"Idempotency-Key ({retry.key} instead of {a.key}); a retry must reuse the "
                "key so the API can deduplicate it",
                attempts=[a, retry],
                events=a.ids[:_LIST_CAP],
                expected=a.key,
                observed=retry.key,
            )
    by_key: dict[str, list[Attempt]] = {}
    for a in ctx.attempts:
        if a.key and a.ids:
            by_key.setdefault(a.key, []).append(a)
    for key, attempts in by_key.items():
        first = attempts[0]
        for b in attempts[1:]:
            if b.idset != first.idset:
                ctx.fail(
                    "idempotency.key_unique_per_batch",
                    f"Idempotency-Key {key} was used by {first.ref} (batch {first.batch}) and "
                    f"by {b.ref} (batch {b.batch}) carrying other events; use one key per batch",
                    attempts=[first, b],
                    events=sorted(first.idset ^ b.idset)[:_LIST_CAP],
                    expected="one batch per key",
                    observed=[first.batch, b.batch],
                )
                break
            if _canonical(b) != _canonical(first):
                ctx.fail(
                    "idempotency.key_unique_per_batch",
                    f"Idempotency-Key {key} was sent with two different payloads ({first.ref} "
                    f"and {b.ref}) for the same events; a retry must resend the same body",
                    attempts=[first, b],
                    events=b.ids[:_LIST_CAP],
                    expected="the same payload under one key",
                    observed="a different payload",
                )
                break


# -- retry.* --------------------------------------------------------------------------------


def _check_retry(ctx: _Run) -> None:
    for a in ctx.attempts:
        if a.cls != "transient" or ctx.trailing(a):
            continue
        missing = [c for c in _pending(ctx, a) if not _resent(ctx, a, c)]
        if missing:
            ctx.fail(
                "retry.on_transient",
                f"{a.ref} failed transiently ({a.answer()}"
                + (f", injected {a.injected}" if a.injected else "")
                + f") and events {_names(missing)} were never sent again; retry them",
                attempts=[a],
                events=missing,
                expected="a retry",
                observed="no retry",
            )
    undelivered = [c for c in ctx.intended if not ctx.delivered(c)]
    if ctx.tokens and undelivered and not ctx.run.timed_out:
        last = ctx.journal[-1] if ctx.journal else None
        t = ctx.tokens[-1]
        status = t.get("status")
        transient = isinstance(status, int) and (status in TRANSIENT_STATUSES or status >= 500)
        if t is last and transient:
            ctx.fail(
                "retry.on_transient",
                f"token request [id {t.get('id')}] failed transiently ({status} "
                f"{t.get('code') or ''}) and the sender made no request after it, with "
                f"{len(undelivered)} events undelivered; retry the token request",
                attempts=[int(t.get("id") or 0)],
                events=undelivered,
                expected="a retry of the token request",
                observed="no retry",
            )
    for a in ctx.attempts:
        later = ctx.later(a)
        if a.cls == "client":
            fp = a.fingerprint()
            again = next((b for b in later if fp is not None and b.fingerprint() == fp), None)
            if again is not None:
                ctx.fail(
                    "retry.not_on_client_error",
                    f"{a.ref} was refused with {a.answer()} and {again.ref} sent the same "
                    "payload again; a client error is permanent for that payload",
                    attempts=[a, again],
                    events=a.ids[:_LIST_CAP],
                    expected="no resend of the same payload",
                    observed="the same payload again",
                )
        elif a.cls == "conflict" and a.key:
            again = next((b for b in later if b.key == a.key), None)
            if again is not None:
                ctx.fail(
                    "retry.not_on_client_error",
                    f"{a.ref} was answered 409 IdempotencyKeyReused (the batch was already "
                    f"accepted) and {again.ref} sent key {a.key} again; treat 409 as delivered",
                    attempts=[a, again],
                    events=a.ids[:_LIST_CAP],
                    expected="no resend after 409",
                    observed="the same key again",
                )
    for a in ctx.attempts:
        if a.retry_after is None:
            continue
        wait = float(math.ceil(a.retry_after))
        spec = (a.row.get("fault") or {}).get("fault") or {}
        fmt = spec.get("retryAfterFormat") or (spec.get("rateLimit") or {}).get("retryAfterFormat")
        # The mock writes an HTTP-date on real time, rounded up so it is never early: both
        # forms ask for at least ceil(seconds) after the answer.
        nxt = next((b for b in ctx.later(a) if b.start >= a.wall - 0.001), None)
        if nxt is None:
            continue
        gap = nxt.start - a.wall
        if gap < wait - ctx.tolerance:
            ctx.fail(
                "retry.honours_retry_after",
                f"{a.ref} was answered {a.answer()} with Retry-After "
                f"{'(HTTP-date) ' if fmt == 'http-date' else ''}{math.ceil(a.retry_after)}s, "
                f"but {nxt.ref} came {gap * 1000:.0f} ms later (expected at least "
                f"{wait * 1000:.0f} ms)",
                attempts=[a, nxt],
                events=nxt.ids[:_LIST_CAP],
                expected=f">= {wait:.3f}s",
                observed=f"{gap:.3f}s",
            )
    worst: tuple[int, str] | None = None
    for ceid, attempts in ctx.carried.items():
        if len(attempts) > ctx.max_attempts and (worst is None or len(attempts) > worst[0]):
            worst = (len(attempts), ceid)
    if worst is not None:
        count, ceid = worst
        storm = [c for c, atts in ctx.carried.items() if len(atts) > ctx.max_attempts]
        ctx.fail(
            "retry.bounded",
            f"event {ceid} was sent {count} times (limit {ctx.max_attempts})"
            + (f"; {len(storm)} events exceeded the limit" if len(storm) > 1 else "")
            + "; cap the retries, then report the events abandoned",
            attempts=ctx.carried[ceid],
            events=storm,
            expected=f"<= {ctx.max_attempts} attempts",
            observed=count,
        )
    _check_backoff(ctx)


def _check_backoff(ctx: _Run) -> None:
    batches: dict[frozenset[str], list[Attempt]] = {}
    for a in ctx.attempts:
        if a.ids:
            batches.setdefault(a.idset, []).append(a)
    for attempts in batches.values():
        run: list[Attempt] = []
        runs: list[tuple[list[Attempt], Attempt | None]] = []
        for a in attempts:
            failed = a.cls in ("transient", "ambiguous") and a.retry_after is None
            if failed and a.code != "Stalled":
                run.append(a)
                continue
            if run:
                runs.append((run, a))
            run = []
        if run:
            runs.append((run, None))
        for failures, after in runs:
            if len(failures) < 3:
                continue
            chain = [*failures, after] if after is not None else failures
            gaps = [max(0.0, b.start - a.wall) for a, b in pairwise(chain)]
            if len(gaps) < 2:
                continue
            shrank = any(g < 0.9 * p for p, g in pairwise(gaps))
            if shrank or gaps[-1] < BACKOFF_GROWTH * gaps[0]:
                ctx.warn(
                    "retry.backoff_grows",
                    f"batch {failures[0].batch} failed {len(failures)} times in a row and the "
                    "waits before its retries did not grow: "
                    + ", ".join(f"{g * 1000:.0f} ms" for g in gaps)
                    + "; use exponential backoff",
                    attempts=chain,
                    events=failures[0].ids[:_LIST_CAP],
                    expected="growing waits",
                    observed=[round(g, 3) for g in gaps],
                )


# -- partial.*, ambiguous.* -----------------------------------------------------------------


def _check_partial(ctx: _Run) -> None:
    for a in ctx.attempts:
        if a.cls != "ok":
            continue
        rejected = [c for c in dict.fromkeys(a.ids) if "rejected" in a.outcomes.get(c, ())]
        if not rejected:
            # A clean 200 resent is a plain duplicate (delivery.no_duplicate); this property is
            # about the partial success case: some events rejected, the rest accepted.
            continue
        accepted = [c for c in dict.fromkeys(a.ids) if set(a.outcomes.get(c, ())) & set(_DELIVERED)]
        resends: list[Attempt] = []
        events: list[str] = []
        for ceid in accepted:
            for b in _resent(ctx, a, ceid):
                if ctx.case.api == "v1" and b.key is not None and b.key == a.key:
                    continue
                events.append(ceid)
                if b not in resends:
                    resends.append(b)
        if events:
            ctx.fail(
                "partial.resend_only_failed",
                f"{a.ref} was answered 200 and accepted {_names(list(dict.fromkeys(events)))}"
                + f" (rejecting {_names(rejected)})"
                + f", yet {_refs(resends)} sent them again; resend only the unprocessed records",
                attempts=[a, *resends],
                events=events,
                expected="only failed events resent",
                observed="accepted events resent",
            )


def _check_ambiguous(ctx: _Run) -> None:
    v1 = ctx.case.api == "v1"
    reported: set[str] = set()
    for a in ctx.attempts:
        if a.cls != "ambiguous":
            continue
        pending = [] if ctx.trailing(a) else _pending(ctx, a)
        missing = [c for c in pending if not _resent(ctx, a, c, a.key if v1 else None)]
        if missing:
            other_keys = [c for c in missing if _resent(ctx, a, c)]
            how = (
                f"were sent again only under another Idempotency-Key than {a.key}, so the API "
                "could not deduplicate them"
                if v1 and other_keys
                else "were never sent again"
            )
            ctx.fail(
                "ambiguous.accept_then_fail",
                f"{a.ref} was committed by the mock but answered {a.answer()} (injected "
                f"{_fault_label(a) or a.injected}); events {_names(missing)} {how}. The outcome "
                "was unknown, so the batch must be retried" + (" with the same key" if v1 else ""),
                attempts=[a, *{b.id: b for c in other_keys for b in _resent(ctx, a, c)}.values()],
                events=missing,
                expected="a retry" + (" with the same key" if v1 else ""),
                observed="another key" if v1 and other_keys else "no retry",
            )
        if ctx.results is None:
            continue
        baseless, denied = [], []
        for c in dict.fromkeys(a.ids):
            if c in reported or not ctx.first_delivery_ambiguous(c, a):
                continue
            outcome = ctx.results.get(c)
            if outcome in ("rejected", "abandoned") and ctx.confirmed(c):
                denied.append(c)
            elif outcome == "rejected" and not ctx.rejected_by_server(c):
                baseless.append(c)
        reported.update(baseless + denied)
        if denied:
            proof = [ctx.confirmed(c)[0] for c in denied]
            ctx.fail(
                "ambiguous.accept_then_fail",
                f"{a.ref} committed {_names(denied)} but answered {a.answer()}; the retry "
                f"{_refs(proof)} confirmed the delivery"
                + (" (409: the key was already accepted)" if proof[0].cls == "conflict" else "")
                + f", yet the result file reports them {ctx.results[denied[0]]}; a 409 on a "
                "retry means 'already delivered'",
                attempts=[a, *proof],
                events=denied,
                expected="delivered",
                observed=ctx.results[denied[0]],
            )
        if baseless:
            ctx.fail(
                "ambiguous.accept_then_fail",
                f"the result file reports {_names(baseless)} rejected, but no answer rejected "
                f"them and {a.ref} committed them (answered {a.answer()}); an unknown "
                "outcome is not a rejection",
                attempts=[a],
                events=baseless,
                expected="delivered or abandoned",
                observed="rejected",
            )


# -- delivery.*, liveness.* -----------------------------------------------------------------


def _check_delivery(ctx: _Run) -> None:
    intended = set(ctx.intended)
    # content_faithful
    changed: list[tuple[str, Attempt, Any]] = []
    for ceid in ctx.intended:
        deliveries = ctx.deliveries.get(ceid)
        if not deliveries:
            continue
        a = deliveries[0][0]
        index = next(
            (
                ev.get("index")
                for ev in a.row.get("events") or []
                if ev.get("clientEventId") == ceid and ev.get("outcome") in _DELIVERED
            ),
            None,
        )
        sent = a.sent_event(index) if isinstance(index, int) else None
        if sent is None and a.doc is None:
            continue  # no body to compare with
        if sent != ctx.intended_events[ceid]:
            changed.append((ceid, a, sent))
    if changed:
        ceid, a, sent = changed[0]
        ctx.fail(
            "delivery.content_faithful",
            f"event {ceid} arrived changed in {a.ref}: {_diff(ctx.intended_events[ceid], sent)}"
            + (f"; {len(changed) - 1} more events differ" if len(changed) > 1 else ""),
            attempts=[x[1] for x in changed],
            events=[x[0] for x in changed],
            expected=ctx.intended_events[ceid],
            observed=sent,
        )
    invented = [c for c in ctx.deliveries if c not in intended]
    if invented:
        ctx.fail(
            "delivery.content_faithful",
            f"the mock accepted events the kit never handed over: {_names(invented)}",
            attempts=[ctx.deliveries[c][0][0] for c in invented],
            events=invented,
            expected="only the handed-over events",
            observed=invented,
        )
    # no_duplicate
    failures: list[tuple[str, list[Attempt]]] = []
    for ceid in ctx.intended:
        deliveries = ctx.deliveries.get(ceid, [])
        if len(deliveries) < 2:
            continue
        attempts = [d for d, _ in deliveries]
        if any(b.late for b in attempts):
            attempts.sort(key=lambda b: (b.start, b.pos))
        unexplained = [
            b for prev, b in pairwise(attempts) if ctx.case.api == "v1" or prev.cls != "ambiguous"
        ]
        if unexplained:
            failures.append((ceid, attempts))
        else:
            causes = [p for p in attempts[:-1]]
            ctx.warn(
                "delivery.no_duplicate",
                f"event {ceid} was delivered {len(attempts)} times ({_refs(attempts)}): "
                f"{_refs(causes)} committed it but answered "
                + ", ".join(f"{p.answer()} ({_fault_label(p) or p.injected})" for p in causes)
                + "; the sender had to retry and v2 has no idempotency key, so this duplicate "
                "is a limitation of the API, not a sender bug",
                attempts=attempts,
                events=[ceid],
                observed=len(attempts),
            )
    if failures:
        ceid, attempts = failures[0]
        ctx.fail(
            "delivery.no_duplicate",
            f"event {ceid} was delivered {len(attempts)} times ({_refs(attempts)})"
            + (
                f"; {len(failures) - 1} more events were delivered twice"
                if len(failures) > 1
                else ""
            )
            + (
                ""
                if ctx.case.api == "v1"
                else "; no ambiguous failure explains it (the delivery before was answered 200)"
            ),
            attempts=[b for _, atts in failures for b in atts],
            events=[c for c, _ in failures],
            expected="1 delivery",
            observed=len(attempts),
        )
    # no_loss and report_truthful
    results = ctx.results
    exit_code = ctx.run.exit_code
    undelivered = [c for c in ctx.intended if not ctx.delivered(c)]
    if results is None:
        if undelivered and exit_code == 0:
            ctx.fail(
                "delivery.no_loss",
                f"{len(undelivered)} of {len(ctx.intended)} events were never delivered "
                f"({_names(undelivered)}) and the sender wrote no result file",
                events=undelivered,
                expected="delivered or reported",
                observed="lost",
            )
            ctx.fail(
                "delivery.report_truthful",
                f"the sender exited 0 but {len(undelivered)} events were never delivered "
                f"({_names(undelivered)}); exit non-zero when events are not delivered",
                events=undelivered,
                expected="a non-zero exit status",
                observed=0,
            )
        elif undelivered:
            ctx.warn(
                "delivery.no_loss",
                f"{len(undelivered)} events were never delivered ({_names(undelivered)}); the "
                f"sender admitted failure ("
                + ("killed at the deadline" if exit_code is None else f"exit status {exit_code}")
                + ") but wrote no result file naming them",
                events=undelivered,
            )
        return
    lost = [c for c in undelivered if results.get(c) not in ("rejected", "abandoned")]
    if lost:
        ctx.fail(
            "delivery.no_loss",
            f"{len(lost)} of {len(ctx.intended)} events were never delivered and not reported "
            f"rejected or abandoned: {_names(lost)}",
            events=lost,
            expected="delivered or reported rejected/abandoned",
            observed={c: results.get(c, "(absent)") for c in lost[:_LIST_CAP]},
        )
    problems: list[str] = []
    events: list[str] = []
    attempts: list[Attempt] = []
    if exit_code == 0:
        silent = [c for c in undelivered if results.get(c) != "rejected"]
        if silent:
            problems.append(
                f"exit status 0 although {_names(silent)} "
                + ("was" if len(silent) == 1 else "were")
                + " neither delivered nor reported rejected"
            )
            events += silent
    claimed = [c for c in undelivered if results.get(c) == "delivered"]
    if claimed:
        problems.append(f"reports {_names(claimed)} delivered but no attempt delivered them")
        events += claimed
    denied = [
        c
        for c in ctx.intended
        if ctx.delivered(c)
        and results.get(c) in ("rejected", "abandoned")
        and ctx.confirmed(c)
        and not ctx.first_delivery_ambiguous(c)
    ]
    if denied:
        proof = [ctx.confirmed(c)[0] for c in denied]
        problems.append(
            f"reports {_names(denied)} {results[denied[0]]} although {_refs(proof)} confirmed "
            "delivery"
        )
        events += denied
        attempts += proof
    baseless = [
        c for c in undelivered if results.get(c) == "rejected" and not ctx.rejected_by_server(c)
    ]
    if baseless:
        problems.append(
            f"reports {_names(baseless)} rejected but no answer rejected them (use 'abandoned' "
            "for events given up on)"
        )
        events += baseless
    unknown = [c for c in results if c not in set(ctx.intended)]
    if unknown:
        problems.append(f"names events the kit never handed over: {_names(unknown)}")
    problems += ctx.result_problems + list(ctx.run.result_errors)
    if problems:
        ctx.fail(
            "delivery.report_truthful",
            "the sender's report disagrees with the journal: " + "; ".join(problems),
            attempts=attempts,
            events=events,
            expected="a report matching the journal",
            observed={c: results.get(c, "(absent)") for c in events[:_LIST_CAP]},
        )
    if (
        exit_code not in (0, None)
        and ctx.intended
        and all(ctx.confirmed(c) for c in ctx.intended)
        and not ctx.run.timed_out
    ):
        ctx.warn(
            "delivery.report_truthful",
            f"the sender exited {exit_code} although the mock confirmed the delivery of every "
            "event",
            expected=0,
            observed=exit_code,
        )


def _check_liveness(ctx: _Run) -> None:
    if ctx.run.timed_out:
        undelivered = [c for c in ctx.intended if not ctx.delivered(c)]
        ctx.fail(
            "liveness.terminates",
            f"the sender was still running after {ctx.run.duration_s:.1f}s and was killed at "
            "the deadline"
            + (f" with {len(undelivered)} events undelivered" if undelivered else "")
            + "; bound every timeout and the total retry time",
            attempts=ctx.attempts[-1:],
            events=undelivered,
            expected="exit before the deadline",
            observed=f"killed after {ctx.run.duration_s:.1f}s",
        )


def _diff(expected: Any, observed: Any) -> str:
    if not isinstance(expected, dict) or not isinstance(observed, dict):
        return f"expected {json.dumps(expected)[:200]}, got {json.dumps(observed)[:200]}"
    parts = []
    for key in sorted(set(expected) | set(observed)):
        if key not in observed:
            parts.append(f"{key} missing")
        elif key not in expected:
            parts.append(f"{key} added ({json.dumps(observed[key])[:80]})")
        elif expected[key] != observed[key]:
            parts.append(
                f"{key} {json.dumps(expected[key])[:80]} became {json.dumps(observed[key])[:80]}"
            )
    return "; ".join(parts) or "differs"


def _fault_label(a: Attempt | dict[str, Any]) -> str:
    """A fault as the schedule vocabulary would name it: 503, accept-then-500, reset..."""
    row = a.row if isinstance(a, Attempt) else a
    fault = row.get("fault") or {}
    kind = fault.get("kind")
    spec = fault.get("fault") or {}
    if not kind:
        delay = fault.get("delaySeconds")
        return f"delay {float(delay):g}s" if delay else ""
    if kind == "status":
        text = str(spec.get("status", row.get("status")))
        if fault.get("retryAfter") is not None:
            ra = math.ceil(float(fault["retryAfter"]))
            date = spec.get("retryAfterFormat") == "http-date"
            text += f" Retry-After {'date +' if date else ''}{ra}s"
        return text
    if kind == "rateLimit":
        return f"429 rate limit Retry-After {math.ceil(float(fault.get('retryAfter') or 0))}s"
    if kind == "acceptThen":
        return f"accept-then-{spec.get('acceptThen')}"
    if kind == "expireToken":
        return "expire-token"
    if kind == "partialReject":
        indexes = fault.get("rejectedIndexes")
        return "partial-reject" + (f" {','.join(map(str, indexes))}" if indexes else "")
    return str(kind)


# -- the entry points -----------------------------------------------------------------------


def judge(
    case: Case,
    journal: list[dict[str, Any]],
    run: SenderRun,
    *,
    max_attempts_per_batch: int = 10,
    retry_after_tolerance_s: float = 0.1,
    secrets: Collection[str] = DEMO_SECRETS,
) -> Judgement:
    """Judge one case from the journal rows of its namespace (oldest first) and the run.

    ``secrets`` are the credential secrets that must never appear in a URL (the demo
    credentials by default). Returns failures (MUST), warnings (SHOULD and advisory notes),
    coverage notes, and which properties were checked or skipped.
    """
    ctx = _prepare(case, journal, run, max_attempts_per_batch, retry_after_tolerance_s, secrets)
    _check_request(ctx)
    _check_secret_leak(ctx)
    if case.api == "v1":
        _check_auth(ctx)
        _check_idempotency(ctx)
    _check_retry(ctx)
    _check_partial(ctx)
    _check_ambiguous(ctx)
    _check_delivery(ctx)
    _check_liveness(ctx)

    judgement = Judgement()
    rank = {p: i for i, p in enumerate(ORDER)}
    judgement.findings = sorted(ctx.findings, key=lambda f: rank.get(f.property, len(rank)))
    judgement.warnings = sorted(ctx.warnings, key=lambda f: rank.get(f.property, len(rank)))
    for prop in ORDER:
        applies = PROPERTIES[prop].apis
        if case.api not in applies:
            judgement.skipped[prop] = f"applies to {', '.join(applies)} only"
        else:
            judgement.checked.append(prop)
    if run.results is None:
        judgement.skipped["delivery.report_truthful"] = (
            "no result file: only the exit status was judged against the journal"
        )
        judgement.coverage.append("no result file: report-based checks skipped")
    if not any((r.get("fault") or {}).get("kind") for r in journal):
        judgement.coverage.append("no fault was served")
    if ctx.attempts and not any(len(atts) > 1 for atts in ctx.carried.values()):
        judgement.coverage.append("the sender never retried")
    if not ctx.attempts:
        judgement.coverage.append("the sender made no events request")
    else:
        blamed = {
            i
            for f in ctx.findings
            if f.property in ("request.schema", "request.batch_limit")
            for i in f.attempts
        }
        if all(a.id in blamed and a.status != 200 for a in ctx.attempts):
            judgement.coverage.append(
                "every attempt was refused by request.schema, delivery properties are vacuous"
            )
    return judgement


def raise_first(judgement: Judgement, *, strict: bool = False, detail: str = "") -> None:
    """Raise the exception of the first failed MUST property in root-cause order.

    ``strict`` also raises for SHOULD properties (their warnings). ``detail`` (e.g. the
    timeline) is appended to the message. Does nothing when the judgement holds.
    """
    candidates = list(judgement.failed)
    if strict:
        candidates += [w for w in judgement.warnings if PROPERTIES[w.property].level == "SHOULD"]
    if not candidates:
        return
    rank = {p: i for i, p in enumerate(ORDER)}
    first = min(candidates, key=lambda f: rank.get(f.property, len(rank)))
    raise exception_for(first.property)(first, detail)


# -- the timeline ----------------------------------------------------------------------------


def _start(row: dict[str, Any]) -> float | None:
    """When a request arrived: its wallTime minus its duration."""
    wall = _epoch(row.get("wallTime"))
    duration = row.get("durationMs")
    if wall is not None and isinstance(duration, (int, float)) and duration > 0:
        return wall - duration / 1000.0
    return wall


def _short(text: str | None, n: int = 8) -> str:
    if not text:
        return "-"
    return text if len(text) <= n else text[:n]


def _events_cell(ids: Sequence[str]) -> str:
    if not ids:
        return "-"
    head = " ".join(_short(c) for c in ids[:3])
    more = f" +{len(ids) - 3}" if len(ids) > 3 else ""
    return f"{head}{more} ({len(ids)})"


def _mock_cell(a: Attempt) -> str:
    text = a.answer()
    if a.row.get("events") and (a.status == 200 or a.committed):
        counts = defaultdict(int)
        for ev in a.row["events"]:
            counts[str(ev.get("outcome"))] += 1
        text += " " + " ".join(
            f"{k}={counts[k]}" for k in ("accepted", "duplicate", "rejected") if counts[k]
        )
    label = _fault_label(a)
    if label:
        text += f" [fault {label}" + (", committed" if a.committed else "") + "]"
    return text


def _relation(a: Attempt, earlier: list[Attempt], api: str) -> str:
    if not a.ids:
        return "-"
    same = [b for b in earlier if b.idset == a.idset]
    if same:
        prev = same[-1]
        if api == "v2" or a.key is None:
            return f"retry of {prev.batch}"
        return f"retry of {prev.batch} " + ("same key" if a.key == prev.key else "NEW KEY")
    batches: dict[str, frozenset[str]] = {}
    for b in earlier:
        batches.setdefault(b.batch, b.idset)
    overlap = {label: len(a.idset & ids) for label, ids in batches.items() if a.idset & ids}
    if overlap:
        return "new batch (resends " + ", ".join(f"{n} of {k}" for k, n in overlap.items()) + ")"
    return "new batch"


def format_timeline(case: Case, journal: list[dict[str, Any]], judgement: Judgement) -> str:
    """A table of the attempts (and token requests) of a case, then its findings.

    Columns: time in ms since the first request, attempt number, journal id, batch label (b1,
    b2... by set of event ids), Idempotency-Key (first 8 characters), events (first 3 ids
    shortened, then the count), what the mock did, and how the attempt relates to earlier ones.
    """
    ctx = _prepare(case, journal, SenderRun(0, False, 0.0, None), 10, 0.1, ())
    journal = ctx.journal
    starts = [s for s in (_start(r) for r in journal) if s is not None]
    t0 = min(starts) if starts else 0.0
    header = (
        f"case {case.case_id or '-'} ({case.api}, seed {case.seed}): {len(case.events)} events; "
        f"schedule: {', '.join(case.schedule) or '-'}"
        + (f"; token schedule: {', '.join(case.token_schedule)}" if case.token_schedule else "")
    )
    rows: list[tuple[str, ...]] = [
        ("t ms", "#", "id", "batch", "key", "events", "mock", "relation")
    ]
    earlier: list[Attempt] = []
    for pos, row in enumerate(journal):
        start = _start(row)
        t = f"{(start - t0) * 1000:.0f}" if start is not None else "?"
        a = ctx.by_pos.get(pos)
        if a is not None:
            rows.append(
                (
                    t,
                    str(a.n),
                    str(a.id),
                    a.batch,
                    _short(a.key),
                    _events_cell(a.ids),
                    _mock_cell(a),
                    _relation(a, earlier, case.api),
                )
            )
            earlier.append(a)
            continue
        status = row.get("status")
        if row.get("endpoint") == TOKEN_ENDPOINT:
            what = "token issued" if status == 200 else f"{status} {row.get('code') or ''}".strip()
            label = _fault_label(row)
            if label:
                what += f" [fault {label}]"
            rows.append((t, "tok", str(row.get("id")), "-", "-", "-", what, "token request"))
        else:
            rows.append(
                (
                    t,
                    "-",
                    str(row.get("id")),
                    "-",
                    "-",
                    "-",
                    f"{status} {row.get('code') or ''}".strip(),
                    f"{row.get('method')} {row.get('path')}",
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [header]
    for r in rows:
        cells = [c.rjust(widths[i]) if i < 3 else c.ljust(widths[i]) for i, c in enumerate(r)]
        lines.append("  ".join(cells).rstrip())
    if not ctx.attempts and not ctx.tokens:
        lines.append("(the mock received no request)")
    if judgement.failed:
        lines.append("findings:")
        lines += [f"  FAIL {f.property}: {f.message}" for f in judgement.failed]
    if judgement.warnings:
        lines.append("warnings:")
        lines += [f"  WARN {f.property}: {f.message}" for f in judgement.warnings]
    if judgement.coverage:
        lines.append("coverage: " + "; ".join(judgement.coverage))
    if not judgement.failed:
        lines.append("verdict: every MUST property held")
    return "\n".join(lines)
