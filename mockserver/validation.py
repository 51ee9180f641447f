"""Judging a POST events body: parse it, check it against ``schemas/``, sort what broke by stage.

The real API answers the first failing *stage* (decisions.md): unmarshalling (wrong JSON or
wrong types, 400 ``RequestJsonUnmarshalError``), request-level validation (400
``RequestValidationError``), then per-event rules (the event goes to ``unprocessedRecords``).
The JSON Schema says *what* is wrong; this module says *which stage* each violation belongs
to, adds the clock-dependent time window that a schema cannot express, and adds contract
warnings (things Rokt's docs ask for but the API does not enforce) that ``--strict`` promotes
to rejections. No Flask here: the ``validate`` CLI and the contract kit use it offline.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from jsonschema import Draft202012Validator

from .errors import JsonUnmarshalError, Violation
from .fastcheck import FastChecker, UnsupportedSchema
from .schemas import SchemaSet
from .timefmt import is_utc, parse_rfc3339

log = logging.getLogger("rokt_mock")

UNMARSHAL, REQUEST, EVENT = "unmarshal", "request", "event"
MAX_EVENTS = 100
_STAGE_RANK = {UNMARSHAL: 0, REQUEST: 1, EVENT: 2}

EVENT_FIELDS = frozenset({"clientEventId", "eventType", "eventTime", "metaData", "objectData"})
BODY_FIELDS = frozenset({"accountId", "events"})
ATTRIBUTE_FIELDS = frozenset({"name", "value"})
IDENTIFIERS = frozenset({"email", "emailsha256", "passbackconversiontrackingid", "rokttrackingid"})
_EMPTY: frozenset[str] = frozenset()
_HEX64 = re.compile(r"[0-9A-Fa-f]{64}\Z")
_JSON_TYPES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    type(None): "null",
}


def _escape(token: Any) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def pointer(path: list[Any] | tuple[Any, ...]) -> str:
    return "".join("/" + _escape(p) for p in path)


def _order(violation: Violation) -> tuple[tuple[int, int | str], ...]:
    """Document order: ``/events/2`` before ``/events/10`` (numbers compare as numbers)."""
    return tuple(
        (0, int(part)) if part.isascii() and part.isdigit() else (1, part)
        for part in violation.pointer.split("/")
    )


def _describe(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


@dataclass
class Verdict:
    """Everything wrong with one body, by stage. Lists are sorted by pointer."""

    unmarshal: list[Violation] = field(default_factory=list)
    request: list[Violation] = field(default_factory=list)
    #: event index -> the per-event rules it broke (after --strict promotion).
    events: dict[int, list[Violation]] = field(default_factory=dict)
    warnings: list[Violation] = field(default_factory=list)

    @property
    def event_violations(self) -> list[Violation]:
        return [v for idx in sorted(self.events) for v in self.events[idx]]

    @property
    def ok(self) -> bool:
        return not (self.unmarshal or self.request or self.events)


# -- parsing --------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _has_lone_surrogate(doc: Any) -> bool:
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def parse_json(raw: bytes) -> Any:
    """Decode a body as strict UTF-8 JSON, or raise :class:`JsonUnmarshalError` saying why.

    Stricter than Python's defaults on purpose: no BOM, no ``NaN``/``Infinity``, no unpaired
    surrogates. Each would be mangled or refused somewhere between a sender and Rokt.
    """

    def fail(rule: str, message: str) -> JsonUnmarshalError:
        return JsonUnmarshalError(violations=[Violation("", rule, message)])

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(
            "json.utf8", f"body is not valid UTF-8 (bad byte at offset {exc.start})"
        ) from None
    if not text.strip():
        raise fail("json.syntax", "body is empty")
    if text.startswith("\ufeff"):
        raise fail("json.syntax", "body starts with a byte-order mark")
    try:
        doc = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise fail(
            "json.syntax", f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise fail("json.syntax", "JSON nested too deeply") from None
    except ValueError as exc:  # NaN/Infinity, or an integer with too many digits
        raise fail("json.syntax", f"invalid JSON: {exc}") from None
    if "\\u" in text and _has_lone_surrogate(doc):
        raise fail("json.utf8", "a string escapes an unpaired UTF-16 surrogate")
    return doc


# -- schema violations to staged rules --------------------------------------------------------


def _field_name(path: list[Any]) -> str:
    if not path:
        return "body"
    last = path[-1]
    if isinstance(last, int):
        parent = path[-2] if len(path) > 1 else ""
        return "event" if parent == "events" else "attribute"
    return str(last)


_REQUIRED_MESSAGE = re.compile(r"^'(.+)' is a required property$", re.S)


class SchemaFailure(Protocol):
    """What :func:`_classify` reads of an error: a ``jsonschema.ValidationError`` (slow path)
    or a :class:`mockserver.fastcheck.Failure` (fast path), which mimics it."""

    @property
    def absolute_path(self) -> Iterable[Any]: ...
    @property
    def validator(self) -> Any: ...
    @property
    def validator_value(self) -> Any: ...
    @property
    def instance(self) -> Any: ...
    @property
    def message(self) -> str: ...


def _classify(err: SchemaFailure) -> tuple[str, Violation]:
    path = list(err.absolute_path)
    index = path[1] if len(path) > 1 and path[0] == "events" and isinstance(path[1], int) else None
    name = _field_name(path)
    kw = err.validator
    where = pointer(path)
    if kw == "type":
        expected = err.validator_value
        return UNMARSHAL, Violation(
            where,
            f"{name}.type",
            f"must be {expected}, got {_describe(err.instance)}",
            "body",
            index,
        )
    if kw == "required":
        match = _REQUIRED_MESSAGE.match(err.message)
        missing = match.group(1) if match else "?"
        return REQUEST, Violation(
            pointer([*path, missing]), f"{missing}.required", "is required", "body", index
        )
    if kw == "minLength":
        return REQUEST, Violation(where, f"{name}.required", "must not be empty", "body", index)
    if kw == "minItems":
        return REQUEST, Violation(where, f"{name}.min_items", "must hold at least 1 item", "body")
    if kw == "maxItems":
        return REQUEST, Violation(
            where,
            f"{name}.max_items",
            f"holds {len(err.instance)} items, at most {err.validator_value} allowed",
            "body",
        )
    if kw == "maxLength":
        message = f"is {len(err.instance)} characters long, at most {err.validator_value} allowed"
        stage = REQUEST if index is None else EVENT
        return stage, Violation(where, f"{name}.max_length", message, "body", index)
    if kw == "format":
        return EVENT, Violation(
            where,
            f"{name}.format",
            f"{err.instance!r} is not an RFC 3339 date-time (YYYY-MM-DDThh:mm:ss[.fff]Z)",
            "body",
            index,
        )
    if kw == "pattern" and name == "eventTime":
        return EVENT, Violation(
            where, "eventTime.utc", f"{err.instance!r} is not UTC (end it in Z)", "body", index
        )
    if kw == "not" and name == "name":
        return EVENT, Violation(
            where,
            "name.reserved_prefix",
            f"{err.instance!r} starts with 'rokt.', which is reserved for Rokt",
            "body",
            index,
        )
    return REQUEST, Violation(where, f"{name}.{kw}", err.message, "body", index)


class Contract:
    """The compiled rules of POST events, built once per app from a :class:`SchemaSet`.

    Two engines find the schema errors; everything after that (stages, merging, time window,
    warnings, ``--strict``) is shared code. :meth:`check` uses :class:`FastChecker`, compiled
    from the same loaded events schema; :meth:`check_slow` asks jsonschema, the reference. Both
    give identical verdicts (tests/mockserver/test_fastcheck.py). If the schema uses something
    the fast checker does not implement, :meth:`check` uses jsonschema too (``engine`` says
    which one is in use).
    """

    def __init__(
        self,
        schemas: SchemaSet,
        *,
        max_age_days: int = 548,
        max_future_seconds: int = 300,
    ) -> None:
        self._validator = schemas.validators["events"]
        self.max_age = max_age_days * 86400.0
        self.max_future = float(max_future_seconds)
        self._fast: FastChecker | None = None
        try:
            if type(self._validator) is not Draft202012Validator:
                raise UnsupportedSchema(f"validator is {type(self._validator).__name__}")
            if self._validator.schema is not schemas.documents["events"]:
                raise UnsupportedSchema("the events validator was not built from the document")
            self._fast = FastChecker(
                schemas.documents["events"], format_checker=self._validator.format_checker
            )
        except UnsupportedSchema as exc:
            log.warning("fast event validation is off, using jsonschema for every body: %s", exc)

    @property
    def engine(self) -> str:
        """``"fast"`` or ``"jsonschema"``: what :meth:`check` finds schema errors with."""
        return "fast" if self._fast is not None else "jsonschema"

    def check(self, doc: Any, now: float, *, strict: bool = False) -> Verdict:
        """Judge a parsed body at ``now`` (epoch seconds on the mock's clock)."""
        if self._fast is None:
            return self._judge(doc, now, strict, self._validator.iter_errors)
        return self._judge(doc, now, strict, self._fast.iter_errors)

    def check_slow(self, doc: Any, now: float, *, strict: bool = False) -> Verdict:
        """:meth:`check` with jsonschema finding the schema errors: the reference verdict."""
        return self._judge(doc, now, strict, self._validator.iter_errors)

    def _judge(
        self,
        doc: Any,
        now: float,
        strict: bool,
        schema_errors: Callable[[Any], Iterable[SchemaFailure]],
    ) -> Verdict:
        verdict = Verdict()
        events = doc.get("events") if isinstance(doc, dict) else None
        if isinstance(events, list) and len(events) > 10 * MAX_EVENTS:
            # Far over the limit: say so without judging every item (100,000 events would
            # otherwise take seconds to check). Item type errors go unreported here.
            verdict.request.append(
                Violation(
                    "/events",
                    "events.max_items",
                    f"holds {len(events)} items, at most {MAX_EVENTS} allowed",
                )
            )
            return verdict
        best: dict[str, tuple[int, list[Violation]]] = {}
        for err in schema_errors(doc):
            stage, violation = _classify(err)
            rank = _STAGE_RANK[stage]
            # One stage per location: the earliest wins (an empty eventTime is "required",
            # not also "not RFC 3339"); a format error makes the UTC pattern moot.
            held = best.get(violation.pointer)
            if held is None or rank < held[0]:
                best[violation.pointer] = (rank, [violation])
            elif rank == held[0]:
                held[1].append(violation)
        for rank, found in best.values():
            if any(v.rule == "eventTime.format" for v in found):
                found = [v for v in found if v.rule != "eventTime.utc"]
            for violation in found:
                if rank == 0:
                    verdict.unmarshal.append(violation)
                elif rank == 1:
                    verdict.request.append(violation)
                else:
                    verdict.events.setdefault(violation.event_index or 0, []).append(violation)
        if verdict.unmarshal or not isinstance(doc, dict):
            verdict.unmarshal.sort(key=_order)
            return verdict
        events = doc.get("events")
        if isinstance(events, list):
            self._time_window(events, now, verdict)
            self._warnings(doc, events, verdict)
        if strict:
            for warning in verdict.warnings:
                if warning.event_index is None:
                    verdict.request.append(warning)
                else:
                    verdict.events.setdefault(warning.event_index, []).append(warning)
        verdict.request.sort(key=_order)
        for items in verdict.events.values():
            items.sort(key=_order)
        verdict.warnings.sort(key=_order)
        return verdict

    def _time_window(self, events: list[Any], now: float, verdict: Verdict) -> None:
        for i, event in enumerate(events):
            if not isinstance(event, dict):
                continue
            text = event.get("eventTime")
            if not isinstance(text, str) or not is_utc(text):
                continue
            at = parse_rfc3339(text)
            if at is None:
                continue
            where = f"/events/{i}/eventTime"
            if at < now - self.max_age:
                verdict.events.setdefault(i, []).append(
                    Violation(
                        where,
                        "eventTime.too_old",
                        f"{text} is more than {self.max_age / 86400:.0f} days before the "
                        "mock's clock",
                        "body",
                        i,
                    )
                )
            elif at > now + self.max_future:
                verdict.events.setdefault(i, []).append(
                    Violation(
                        where,
                        "eventTime.in_future",
                        f"{text} is more than {self.max_future:.0f} s after the mock's clock",
                        "body",
                        i,
                    )
                )

    def _warnings(self, doc: dict[str, Any], events: list[Any], verdict: Verdict) -> None:
        out = verdict.warnings
        for key in doc:
            if key not in BODY_FIELDS:
                out.append(
                    Violation(pointer([key]), "body.unknown_field", "is not an Event API field")
                )
        seen: dict[str, int] = {}
        for i, event in enumerate(events):
            if not isinstance(event, dict):
                continue
            base = ["events", i]
            for key in () if event.keys() <= EVENT_FIELDS else event:
                if key not in EVENT_FIELDS:
                    out.append(
                        Violation(
                            pointer([*base, key]),
                            "event.unknown_field",
                            "is not an EventObject field; Rokt ignores it",
                            "body",
                            i,
                        )
                    )
            ceid = event.get("clientEventId")
            if isinstance(ceid, str) and ceid:
                if ceid in seen:
                    out.append(
                        Violation(
                            pointer([*base, "clientEventId"]),
                            "clientEventId.duplicate_in_batch",
                            f"repeats the clientEventId of event {seen[ceid]}",
                            "body",
                            i,
                        )
                    )
                else:
                    seen[ceid] = i
            for list_name in ("metaData", "objectData"):
                items = event.get(list_name)
                if not isinstance(items, list):
                    continue
                # The common case in C: the union of every attribute's keys is within
                # {name, value}. Items that are not objects (a schema error already) make
                # the union fail or look wrong; the loop below then judges item by item.
                try:
                    if ATTRIBUTE_FIELDS.issuperset(_EMPTY.union(*items)):
                        continue
                except TypeError:
                    pass
                for j, item in enumerate(items):
                    if not isinstance(item, dict):
                        continue
                    for key in item:
                        if key not in ATTRIBUTE_FIELDS:
                            out.append(
                                Violation(
                                    pointer([*base, list_name, j, key]),
                                    "attribute.unknown_field",
                                    "attributes hold only name and value",
                                    "body",
                                    i,
                                )
                            )
            object_data = event.get("objectData")
            # name (lower-cased) -> (index, value) of its first occurrence
            names: dict[str, Any] = {}
            if isinstance(object_data, list):
                for j, item in enumerate(object_data):
                    if type(item) is dict:
                        name = item.get("name")
                        if type(name) is str:
                            lowered = name.lower()
                            if lowered not in names:
                                names[lowered] = (j, item.get("value"))
            sha = names.get("emailsha256")
            if sha is not None and not (isinstance(sha[1], str) and _HEX64.match(sha[1])):
                out.append(
                    Violation(
                        pointer([*base, "objectData", sha[0], "value"]),
                        "emailsha256.format",
                        "emailsha256 must be the 64 hex digits of SHA-256 of the lower-cased email",
                        "body",
                        i,
                    )
                )
            if event.get("eventType") == "conversion":
                if not IDENTIFIERS & names.keys():
                    out.append(
                        Violation(
                            pointer([*base, "objectData"]),
                            "conversion.identifier",
                            "a conversion needs email, emailsha256 or "
                            "passbackconversiontrackingid for attribution",
                            "body",
                            i,
                        )
                    )
                if "conversiontype" not in names:
                    out.append(
                        Violation(
                            pointer([*base, "objectData"]),
                            "conversion.conversiontype",
                            "Rokt asks conversions to carry a conversiontype",
                            "body",
                            i,
                        )
                    )
