"""Fault rules as plain data: what to break, for which requests, and for how long.

A rule is a JSON object (the same in scenario files, ``POST /__admin/faults`` and, in a
compact text form, the ``X-Rokt-Mock-Fault`` header). It is checked against
``schemas/scenario.schema.json`` and then turned into these frozen dataclasses; nothing here
touches Flask, SQLite or sockets, so the rules can be reasoned about and tested alone.
"""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass, field
from typing import Any

from ..errors import Violation

#: Faults that decide the answer instead of the normal processing (at most one per rule).
OUTCOMES = (
    "status",
    "reset",
    "stall",
    "empty",
    "truncate",
    "malformed",
    "dribble",
    "acceptThen",
    "expireToken",
    "partialReject",
    "rateLimit",
)
#: Outcomes applied to the answer of a request that was processed normally (and committed).
AFTER_PROCESSING = ("truncate", "malformed", "dribble", "acceptThen", "partialReject")
#: Outcomes that act on the connection rather than sending an HTTP answer.
NETWORK = ("reset", "stall", "empty")
EVENTS_ONLY = ("acceptThen", "partialReject", "expireToken")


@dataclass(frozen=True, slots=True)
class Fault:
    """What happens to a selected request. ``spec`` keeps the JSON form for the journal."""

    spec: dict[str, Any]

    @property
    def outcome(self) -> str | None:
        return next((k for k in OUTCOMES if k in self.spec), None)

    @property
    def after_processing(self) -> bool:
        return self.outcome in AFTER_PROCESSING

    def get(self, key: str, default: Any = None) -> Any:
        return self.spec.get(key, default)


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    fault: Fault
    priority: int = 0
    match: dict[str, str] = field(default_factory=dict)
    when: dict[str, Any] = field(default_factory=dict)
    times: int | None = None
    ttl: float | None = None
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "priority": self.priority}
        if self.match:
            out["match"] = dict(self.match)
        if self.when:
            out["when"] = dict(self.when)
        if self.times is not None:
            out["times"] = self.times
        if self.ttl is not None:
            out["ttl"] = self.ttl
        out["seed"] = self.seed
        out["fault"] = dict(self.fault.spec)
        return out


def check_rule(raw: dict[str, Any], base: str = "") -> list[Violation]:
    """Cross-field rules the JSON Schema cannot say clearly (run after schema validation)."""
    out: list[Violation] = []
    fault = raw.get("fault", {})
    outcomes = [k for k in OUTCOMES if k in fault]
    if len(outcomes) > 1:
        out.append(
            Violation(
                f"{base}/fault",
                "fault.one_outcome",
                f"a rule has one outcome, this one has {', '.join(outcomes)}; "
                "use two rules (latency may be combined with any)",
            )
        )
    if ("retryAfter" in fault or "retryAfterFormat" in fault) and fault.get("status") not in (
        429,
        503,
    ):
        out.append(
            Violation(
                f"{base}/fault/retryAfter",
                "fault.retry_after",
                "retryAfter goes with status 429 or 503",
            )
        )
    endpoint = raw.get("match", {}).get("endpoint", "events")
    if endpoint != "events":
        for key in EVENTS_ONLY:
            if key in fault:
                out.append(
                    Violation(
                        f"{base}/fault/{key}",
                        "fault.events_only",
                        f"{key} only applies to the events endpoints",
                    )
                )
    when = raw.get("when", {})
    if len([k for k in ("first", "attempts", "every") if k in when]) > 1:
        out.append(
            Violation(f"{base}/when", "when.one_selector", "use one of first, attempts or every")
        )
    attempts = when.get("attempts")
    if isinstance(attempts, list) and len(attempts) == 2 and attempts[0] > attempts[1]:
        out.append(
            Violation(f"{base}/when/attempts", "when.attempts", "attempts must be [from, to]")
        )
    window = when.get("window", {})
    if ("from" in window or "to" in window) and (
        "afterSeconds" in window or "forSeconds" in window
    ):
        out.append(
            Violation(
                f"{base}/when/window",
                "when.window",
                "give the window as from/to or as afterSeconds/forSeconds, not both",
            )
        )
    delay = fault.get("delay")
    if isinstance(delay, dict) and "uniform" in delay:
        lo, hi = delay["uniform"]
        if lo > hi:
            out.append(Violation(f"{base}/fault/delay", "fault.delay", "uniform needs [low, high]"))
    return out


def rule_from_json(raw: dict[str, Any], rule_id: str, default_seed: int) -> Rule:
    return Rule(
        id=rule_id,
        fault=Fault(dict(raw["fault"])),
        priority=int(raw.get("priority", 0)),
        match=dict(raw.get("match", {})),
        when=dict(raw.get("when", {})),
        times=raw.get("times"),
        ttl=raw.get("ttl"),
        seed=int(raw.get("seed", default_seed)),
    )


# -- deterministic randomness -----------------------------------------------------------------


def draw(seed: int, rule_id: str, attempt: int, salt: str) -> float:
    """A uniform number in [0, 1) fixed by (seed, rule, attempt, purpose).

    Hashing instead of a shared random generator is what makes faults reproducible across
    restarts and across worker processes: the n-th matching attempt always draws the same.
    """
    digest = hashlib.sha256(f"{seed}:{rule_id}:{attempt}:{salt}".encode()).digest()
    return struct.unpack(">Q", digest[:8])[0] / 2**64


def delay_seconds(delay: Any, u: float, v: float) -> float:
    """Seconds to wait for a ``delay`` spec, from two uniform draws ``u`` and ``v``."""
    if delay is None:
        return 0.0
    if isinstance(delay, (int, float)):
        return float(delay)
    if "uniform" in delay:
        lo, hi = delay["uniform"]
        return float(lo + (hi - lo) * u)
    params = delay["lognormal"]
    # Box-Muller from the two draws; median m means mu = ln(m).
    z = math.sqrt(-2.0 * math.log(max(u, 1e-12))) * math.cos(2 * math.pi * v)
    value = params["median"] * math.exp(params.get("sigma", 0.5) * z)
    return float(min(value, params.get("cap", 30.0)))


# -- the X-Rokt-Mock-Fault header --------------------------------------------------------------


class HeaderError(ValueError):
    pass


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise HeaderError(f"{what} must be a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise HeaderError(f"{what} must be a non-negative number, got {text!r}")
    return value


def parse_header(text: str) -> dict[str, Any]:
    """``status=429;retry-after=2``, ``reset``, ``delay=0.3, status=503`` ... -> a fault spec.

    Faults are separated by commas, a fault's parameters by semicolons. The result is checked
    against the schema like any rule, so the header cannot do anything a rule cannot.
    """
    spec: dict[str, Any] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        head, *params = (p.strip() for p in part.split(";"))
        name, _, value = head.partition("=")
        name = name.strip().lower()
        value = value.strip()
        extra = {}
        for param in params:
            key, _, pvalue = param.partition("=")
            extra[key.strip().lower()] = pvalue.strip()
        if name == "status":
            try:
                spec["status"] = int(value)
            except ValueError:
                raise HeaderError(f"status must be an integer, got {value!r}") from None
            if "retry-after" in extra:
                raw = extra["retry-after"]
                if raw.lower() == "http-date":
                    spec["retryAfterFormat"] = "http-date"
                    spec["retryAfter"] = 1
                else:
                    spec["retryAfter"] = _number(raw, "retry-after")
            if extra.get("format") in ("http-date", "seconds"):
                spec["retryAfterFormat"] = extra["format"]
                spec.setdefault("retryAfter", 1)
        elif name == "delay":
            if "-" in value:
                lo, _, hi = value.partition("-")
                spec["delay"] = {"uniform": [_number(lo, "delay"), _number(hi, "delay")]}
            else:
                spec["delay"] = _number(value, "delay")
        elif name in ("reset", "empty", "malformed"):
            spec[name] = True
        elif name == "stall":
            spec["stall"] = _number(value, "stall") if value else 30.0
        elif name == "truncate":
            spec["truncate"] = _number(value, "truncate") if value else 0.5
        elif name == "dribble":
            spec["dribble"] = {"seconds": _number(value, "dribble") if value else 2.0}
            if "chunks" in extra:
                spec["dribble"]["chunks"] = int(_number(extra["chunks"], "chunks"))
        elif name == "accept-then":
            if value in ("reset", "stall", "empty"):
                spec["acceptThen"] = value
            else:
                try:
                    spec["acceptThen"] = int(value)
                except ValueError:
                    raise HeaderError(
                        f"accept-then takes a status, reset, stall or empty, got {value!r}"
                    ) from None
        elif name == "expire-token":
            spec["expireToken"] = True
        elif name == "partial":
            try:
                spec["partialReject"] = {"indexes": [int(i) for i in value.split("+") if i]}
            except ValueError:
                raise HeaderError(f"partial takes event indexes like 0+2, got {value!r}") from None
        else:
            raise HeaderError(
                f"unknown fault {name!r}: use status, delay, reset, stall, empty, truncate, "
                "malformed, dribble, accept-then, expire-token or partial"
            )
    if not spec:
        raise HeaderError("the header names no fault")
    return spec
