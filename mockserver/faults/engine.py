"""Which fault, if any, a request gets: rules stored in the journal, selected atomically.

Rules, their per-namespace counters and the rate-limit buckets live in the journal's SQLite
file, and selection runs in one write transaction, so "the third matching attempt" means the
same thing on every thread and every worker process, and survives a restart.

Order (documented in docs/faults.md): a request carrying ``X-Rokt-Mock-Fault`` gets that
fault and no rule is consulted or counted. Otherwise every rule of the request's namespace and
of scope ``*`` is considered, higher ``priority`` first, then oldest first. Each rule whose
``match`` fits counts the request as its next attempt; among the rules whose ``when`` then
selects it, latencies add up and the first one with an outcome supplies the outcome.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator

from ..errors import AdminError, RequestValidationError, Violation
from ..journal import Journal
from ..timefmt import parse_rfc3339
from .model import Fault, Rule, check_rule, delay_seconds, draw, rule_from_json

ALL = "*"


@dataclass
class Facts:
    """What rules can match on. Account and event types come from a best-effort parse."""

    namespace: str
    endpoint: str  # "events" or "token"
    version: str | None
    credential: str | None
    now: float
    body: Callable[[], Any] = lambda: None

    _doc: Any = field(default=None, init=False)
    _parsed: bool = field(default=False, init=False)

    def doc(self) -> Any:
        if not self._parsed:
            self._parsed = True
            try:
                self._doc = self.body()
            except Exception:  # an unparseable body simply matches no account rule
                self._doc = None
        return self._doc

    def account(self) -> str | None:
        doc = self.doc()
        value = doc.get("accountId") if isinstance(doc, dict) else None
        return value if isinstance(value, str) else None

    def event_types(self) -> set[str]:
        doc = self.doc()
        events = doc.get("events") if isinstance(doc, dict) else None
        if not isinstance(events, list):
            return set()
        return {
            e["eventType"]
            for e in events
            if isinstance(e, dict) and isinstance(e.get("eventType"), str)
        }


@dataclass
class Selection:
    """The fault a request gets: total latency and at most one outcome."""

    delay: float = 0.0
    fault: Fault | None = None
    rule_id: str | None = None
    source: str | None = None
    attempt: int | None = None
    retry_after: float | None = None
    seed: int = 0
    delays: list[str] = field(default_factory=list)

    @property
    def outcome(self) -> str | None:
        return self.fault.outcome if self.fault else None

    def note(self) -> dict[str, Any] | None:
        if self.fault is None and not self.delay:
            return None
        out: dict[str, Any] = {"source": self.source}
        if self.fault is not None:
            out.update(rule=self.rule_id, kind=self.outcome, fault=self.fault.spec)
            if self.attempt is not None:
                out["attempt"] = self.attempt
        else:
            out["kind"] = "delay"
        if self.delay:
            out["delaySeconds"] = round(self.delay, 6)
            if self.delays:
                out["delayRules"] = self.delays
        if self.retry_after is not None:
            out["retryAfter"] = self.retry_after
        return out

    def u(self, attempt_salt: str) -> float:
        return draw(self.seed, self.rule_id or "header", self.attempt or 0, attempt_salt)


def _matches(rule: Rule, facts: Facts) -> bool:
    m = rule.match
    endpoint = m.get("endpoint", "events")
    if endpoint != "any" and endpoint != facts.endpoint:
        return False
    if "version" in m and m["version"] != facts.version:
        return False
    if "credential" in m and m["credential"] != facts.credential:
        return False
    if "account" in m and m["account"] != facts.account():
        return False
    return not ("eventType" in m and m["eventType"] not in facts.event_types())


def _selects(rule: Rule, attempt: int, now: float, created_at: float) -> bool:
    w = rule.when
    if "first" in w and attempt > w["first"]:
        return False
    if "attempts" in w and not w["attempts"][0] <= attempt <= w["attempts"][1]:
        return False
    if "every" in w and attempt % w["every"] != 0:
        return False
    window = w.get("window")
    if window:
        start = parse_rfc3339(window["from"]) if "from" in window else None
        end = parse_rfc3339(window["to"]) if "to" in window else None
        if "afterSeconds" in window or "forSeconds" in window:
            start = created_at + float(window.get("afterSeconds", 0))
            end = start + float(window["forSeconds"]) if "forSeconds" in window else None
        if start is not None and now < start:
            return False
        if end is not None and now >= end:
            return False
    return not (
        "probability" in w and draw(rule.seed, rule.id, attempt, "when") >= w["probability"]
    )


class FaultEngine:
    """Stores rules and picks the fault for each request."""

    def __init__(
        self, journal: Journal, rule_validator: Draft202012Validator, default_seed: int = 0
    ) -> None:
        self.journal = journal
        self.validator = rule_validator
        self.default_seed = default_seed

    # -- rules ----------------------------------------------------------------------------

    def check(self, raw: Any, base: str = "") -> list[Violation]:
        """Schema and cross-field violations of one rule object, with JSON pointers."""
        from ..validation import pointer

        out = [
            Violation(
                base + pointer(list(err.absolute_path)),
                f"rule.{err.validator}",
                err.message if len(err.message) < 300 else err.message[:300] + "...",
            )
            for err in self.validator.iter_errors(raw)
        ]
        if not out and isinstance(raw, dict):
            out += check_rule(raw, base)
        return sorted(out, key=lambda v: v.pointer)

    def add(
        self,
        scope: str,
        raws: list[Any],
        now: float,
        seed: int | None = None,
        source: str = "api",
        single: bool = False,
    ) -> list[dict[str, Any]]:
        """Store rules (``now`` on the scope's clock anchors windows and TTLs); all or none."""
        violations = [
            v
            for i, raw in enumerate(raws)
            for v in self.check(raw, "" if single else f"/rules/{i}")
        ]
        if violations:
            raise AdminError(violations=violations)
        added = []
        with self.journal.transaction() as db:
            seq = db.execute("SELECT coalesce(max(seq), 0) FROM fault_rules").fetchone()[0]
            for raw in raws:
                seq += 1
                rule_id = raw.get("id") or f"rule-{seq}"
                rule = rule_from_json(raw, rule_id, self.default_seed if seed is None else seed)
                expires = now + rule.ttl if rule.ttl is not None else None
                db.execute("DELETE FROM fault_rules WHERE scope=? AND id=?", (scope, rule_id))
                db.execute("DELETE FROM fault_state WHERE scope=? AND id=?", (scope, rule_id))
                db.execute(
                    "INSERT INTO fault_rules VALUES (?,?,?,?,?,?,?)",
                    (scope, rule_id, seq, json.dumps(rule.to_json()), now, expires, source),
                )
                added.append({**rule.to_json(), "scope": scope})
        return added

    def list(self, scope: str, now: float) -> list[dict[str, Any]]:
        self._expire(now)
        where, params = ("1", []) if scope == ALL else ("scope IN (?, '*')", [scope])
        rules = self.journal.query(f"SELECT * FROM fault_rules WHERE {where} ORDER BY seq", params)
        out = []
        for row in rules:
            spec = json.loads(row["spec"])
            counters = {
                r["namespace"]: {"matched": r["matched"], "fired": r["fired"]}
                for r in self.journal.query(
                    "SELECT namespace, matched, fired FROM fault_state WHERE scope=? AND id=?",
                    (row["scope"], row["id"]),
                )
            }
            item = {**spec, "scope": row["scope"], "source": row["source"], "counters": counters}
            if row["expires_at"] is not None:
                item["expiresIn"] = round(max(0.0, row["expires_at"] - now), 3)
            if spec.get("times") is not None:
                item["timesLeft"] = {
                    ns: max(0, spec["times"] - c["fired"]) for ns, c in counters.items()
                }
            out.append(item)
        return out

    def delete(self, scope: str | None, rule_id: str | None = None) -> int:
        with self.journal.transaction() as db:
            clauses, params = [], []
            if scope not in (None, ALL):
                clauses.append("scope = ?")
                params.append(scope)
            if rule_id is not None:
                clauses.append("id = ?")
                params.append(rule_id)
            where = " AND ".join(clauses) or "1"
            count = db.execute(f"DELETE FROM fault_rules WHERE {where}", params).rowcount
            db.execute(f"DELETE FROM fault_state WHERE {where}", params)
            db.execute(f"DELETE FROM rate_buckets WHERE {where}", params)
        return int(count)

    def forget_namespace(self, namespace: str) -> None:
        """Counters and buckets a namespace accumulated, including under ``*`` rules."""
        with self.journal.transaction() as db:
            db.execute("DELETE FROM fault_state WHERE namespace=?", (namespace,))
            db.execute("DELETE FROM rate_buckets WHERE namespace=?", (namespace,))

    def _expire(self, now: float) -> None:
        # A read first: listing rules (the dashboard polls it) takes the write lock only when
        # a rule has actually expired.
        if not self.journal.query(
            "SELECT 1 FROM fault_rules WHERE expires_at IS NOT NULL AND expires_at <= ? LIMIT 1",
            (now,),
        ):
            return
        with self.journal.transaction() as db:
            expired = db.execute(
                "SELECT scope, id FROM fault_rules"
                " WHERE expires_at IS NOT NULL AND expires_at <= ?",
                (now,),
            ).fetchall()
            for scope, rule_id in expired:
                for table in ("fault_rules", "fault_state", "rate_buckets"):
                    db.execute(f"DELETE FROM {table} WHERE scope=? AND id=?", (scope, rule_id))

    # -- selection ------------------------------------------------------------------------

    def header(self, text: str, endpoint: str) -> Selection:
        """The selection forced by ``X-Rokt-Mock-Fault`` (raises 400 when it is wrong)."""
        from .model import HeaderError, parse_header

        try:
            spec = parse_header(text)
        except HeaderError as exc:
            raise RequestValidationError(
                violations=[Violation("/X-Rokt-Mock-Fault", "header.fault", str(exc), "header")]
            ) from None
        problems = self.check({"fault": spec, "match": {"endpoint": endpoint}})
        if problems:
            raise RequestValidationError(
                violations=[
                    Violation(
                        "/X-Rokt-Mock-Fault", "header.fault", f"{v.pointer}: {v.message}", "header"
                    )
                    for v in problems
                ]
            )
        fault = Fault(spec)
        # A header fault is a one-off experiment, not part of a seeded schedule: fresh draws.
        selection = Selection(
            source="header",
            rule_id="header",
            attempt=random.randrange(2**31),
            seed=self.default_seed,
        )
        selection.delay = delay_seconds(
            spec.get("delay"), selection.u("delay-u"), selection.u("delay-v")
        )
        if fault.outcome is not None:
            selection.fault = fault
            if fault.outcome == "status":
                selection.retry_after = spec.get("retryAfter")
                if selection.retry_after is None and spec["status"] == 429:
                    selection.retry_after = 1.0  # a 429 always says when to come back
        return selection

    def select(self, facts: Facts) -> Selection:
        scopes = (facts.namespace, ALL)
        if not self.journal.query(
            "SELECT 1 FROM fault_rules WHERE scope IN (?, ?) LIMIT 1", scopes
        ):
            return Selection()
        selection = Selection(source="rule")
        with self.journal.transaction() as db:
            rows = db.execute(
                "SELECT scope, id, spec, created_at, expires_at FROM fault_rules"
                " WHERE scope IN (?, ?) ORDER BY seq",
                scopes,
            ).fetchall()
            candidates = []
            for scope, rule_id, spec, created_at, expires_at in rows:
                if expires_at is not None and expires_at <= facts.now:
                    continue
                raw = json.loads(spec)
                candidates.append(
                    (scope, rule_from_json(raw, rule_id, raw.get("seed", 0)), created_at)
                )
            candidates.sort(key=lambda c: -c[1].priority)  # stable: oldest first within a priority
            for scope, rule, created_at in candidates:
                if not _matches(rule, facts):
                    continue
                row = db.execute(
                    "INSERT INTO fault_state VALUES (?,?,?,1,0) ON CONFLICT DO UPDATE"
                    " SET matched = matched + 1 RETURNING matched, fired",
                    (scope, rule.id, facts.namespace),
                ).fetchone()
                attempt, fired = int(row[0]), int(row[1])
                if rule.times is not None and fired >= rule.times:
                    continue
                if not _selects(rule, attempt, facts.now, created_at):
                    continue
                outcome = rule.fault.outcome
                takes_outcome = outcome is not None and selection.fault is None
                retry_after = None
                if outcome == "rateLimit":
                    if not takes_outcome:
                        continue
                    retry_after = self._bucket(db, scope, rule, facts)
                    if retry_after is None:
                        continue
                elif outcome is not None and not takes_outcome:
                    continue  # an earlier rule already decided the outcome
                spec = rule.fault.spec
                if "delay" in spec:
                    u = draw(rule.seed, rule.id, attempt, "delay-u")
                    v = draw(rule.seed, rule.id, attempt, "delay-v")
                    selection.delay += delay_seconds(spec["delay"], u, v)
                    selection.delays.append(rule.id)
                if takes_outcome:
                    selection.fault = rule.fault
                    selection.rule_id = rule.id
                    selection.attempt = attempt
                    selection.seed = rule.seed
                    selection.retry_after = (
                        retry_after if retry_after is not None else spec.get("retryAfter")
                    )
                    if selection.retry_after is None and spec.get("status") == 429:
                        selection.retry_after = 1.0  # a 429 always says when to come back
                db.execute(
                    "UPDATE fault_state SET fired = fired + 1"
                    " WHERE scope=? AND id=? AND namespace=?",
                    (scope, rule.id, facts.namespace),
                )
        return selection

    def _bucket(self, db: Any, scope: str, rule: Rule, facts: Facts) -> float | None:
        """Leaky bucket per credential: ``None`` if the request fits, else seconds to wait."""
        params = rule.fault.spec["rateLimit"]
        rate, burst = float(params["rate"]), int(params.get("burst", 1))
        key = (scope, rule.id, facts.namespace, facts.credential or "")
        row = db.execute(
            "SELECT level, at FROM rate_buckets"
            " WHERE scope=? AND id=? AND namespace=? AND credential=?",
            key,
        ).fetchone()
        level = 0.0 if row is None else max(0.0, row[0] - (facts.now - row[1]) * rate)
        if level + 1 > burst:
            db.execute(
                "INSERT OR REPLACE INTO rate_buckets VALUES (?,?,?,?,?,?)", (*key, level, facts.now)
            )
            return max(0.001, (level + 1 - burst) / rate)
        db.execute(
            "INSERT OR REPLACE INTO rate_buckets VALUES (?,?,?,?,?,?)", (*key, level + 1, facts.now)
        )
        return None


def retry_after_header(seconds: float, fmt: str) -> str:
    """``Retry-After`` in whole seconds (rounded up) or as an HTTP-date.

    The date is on real time, not the mock's clock: the client compares it with its own clock
    (and with the ``Date`` header), so a frozen or shifted mock clock must not move it.
    """
    if fmt == "http-date":
        from email.utils import formatdate

        # Whole seconds only in an HTTP-date: round up so the date is never early.
        return formatdate(math.ceil(time.time()) + math.ceil(seconds), usegmt=True)
    return str(math.ceil(seconds))
