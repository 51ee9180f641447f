"""The fast path (mockserver/fastcheck.py) judges every body exactly as jsonschema does.

``Contract.check`` finds schema errors with :class:`FastChecker`; ``Contract.check_slow`` with
jsonschema, the source of truth. Everything else (stages, merging, time window, warnings,
``--strict``) is shared, so the two verdicts must be equal for every input: realistic bodies
with targeted defects, arbitrary JSON, the payload fixtures, and schemas whose limits were
changed. The raw error streams are compared too (keyword, path, value, instance, message, in
order), which is stronger than the verdicts: the per-pointer merge could hide a difference.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mockserver.errors import JsonUnmarshalError
from mockserver.fastcheck import FastChecker, UnsupportedSchema
from mockserver.schemas import load_schemas
from mockserver.timefmt import parse_rfc3339
from mockserver.validation import Contract, parse_json
from tests.conftest import FIXTURE_EPOCH, FIXTURES, ROOT

EPOCH = parse_rfc3339(FIXTURE_EPOCH) or 0.0
MAX_AGE, MAX_FUTURE = 548 * 86400.0, 300.0
#: Clocks each body is judged at: the epoch bodies are built around, and either side of it.
CLOCKS = (EPOCH, EPOCH + 1.0, EPOCH - MAX_FUTURE - 1.0)
SCHEMAS = load_schemas()
CONTRACT = Contract(SCHEMAS)
EVENTS_SCHEMA = SCHEMAS.documents["events"]


# -- comparing the two paths ------------------------------------------------------------------


def _stream(errors: Any) -> list[tuple[Any, ...]]:
    return [
        (e.validator, list(e.absolute_path), e.validator_value, id(e.instance), e.message)
        for e in errors
    ]


def assert_same(contract: Contract, doc: Any, clocks: tuple[float, ...] = CLOCKS) -> None:
    """Both engines give the same verdict at every clock, strict or not, and the same errors."""
    fast = contract._fast
    assert fast is not None, "the fast path is off"
    slow_errors = list(contract._validator.iter_errors(doc))
    assert _stream(fast.iter_errors(doc)) == _stream(slow_errors)
    assert fast.valid(doc) is (not slow_errors)
    for now in clocks:
        for strict in (False, True):
            quick = contract.check(doc, now, strict=strict)
            reference = contract.check_slow(doc, now, strict=strict)
            assert quick == reference, (now, strict)
            assert list(quick.events) == list(reference.events)


# -- strategies: realistic bodies, then targeted defects ----------------------------------------


def _iso(at: float, digits: int = 3, offset: str = "Z") -> str:
    moment = datetime.fromtimestamp(at, tz=timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + f"{moment.microsecond:06d}{'0' * 3}"[:digits]
    return text + offset


#: Event times around the window's edges (548 days back, 5 minutes ahead of EPOCH).
EDGE_TIMES = [
    _iso(EPOCH + delta, digits)
    for delta in (
        -60.0,
        0.0,
        -MAX_AGE,
        -MAX_AGE - 1.0,
        -MAX_AGE + 1.0,
        -MAX_AGE - 0.001,
        MAX_FUTURE,
        MAX_FUTURE + 1.0,
        MAX_FUTURE - 1.0,
        MAX_FUTURE + 0.001,
    )
    for digits in (0, 3)
] + [_iso(EPOCH - 3600, 9, "+00:00"), _iso(EPOCH - 3600, 9), _iso(EPOCH - 7, 1)]
#: Inside the window at every clock in CLOCKS.
GOOD_TIMES = [_iso(EPOCH - delta, 3) for delta in (60.0, 86400.0, MAX_AGE - 3600.0)] + [
    _iso(EPOCH - 120.0, 9, "+00:00"),
    _iso(EPOCH - 7.0, 0),
]
BAD_TIMES = [
    "2026-11-19 08:15:31.870Z",
    "2026-11-19T19:15:31.870+11:00",
    "2026-11-19T08:15:31-00:00",
    "2026-11-19T08:15:31+01:00",
    "2026-11-19T08:15:31z",
    "2026-11-19t08:15:31Z",
    "2026-13-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-11-19T24:00:00Z",
    "2026-11-19T23:59:60Z",
    "2026-11-19T08:15:31.1234567890Z",
    "2026-11-19T08:15:31Z\n",
    "2026-11-19T08:15:31+00:00\n",
    "2026-11-19T08:15:31+24:00",
    "2026-11-19T08:15Z",
    "2026-11-19",
    "\uff12026-11-19T08:15:31Z",
    "0000-01-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "1795076130123",
    "Z",
    "+00:00",
    " ",
    "",
]
TIMES = st.sampled_from(EDGE_TIMES + BAD_TIMES)
#: What a batch's events are stamped with before any defect: edge times more often.
BASE_TIMES = TIMES | st.sampled_from(EDGE_TIMES)
#: One code point each: ASCII, Latin, CJK, emoji, a combining mark, ZWJ, a skin tone, RLM.
CODE_POINTS = ["a", "Z", "0", "-", ".", "é", "中", "😀", "\u0301", "\u200d", "\U0001f3fd", "\u200f"]
PREFIXES = ["rokt.", "ROKT.", "Rokt.", "rOkT.", "rokt", "roktx.", "rokt_", " rokt.", "xrokt.", "."]
WRONG = [None, True, False, 0, -7, 1.5, 1e300, 10**30, "", "x", [], {}, ["x"], {"a": 1}]
WRONG += [[{"name": "email", "value": "a@b.c"}], {"name": "email", "value": "a@b.c"}]
UNKNOWN_KEYS = ["extra", "EventType", "accountid", "", "a/b~c", "name ", "🙂", "events"]
SCHEMA_KEYS = [
    "accountId",
    "events",
    "clientEventId",
    "eventType",
    "eventTime",
    "metaData",
    "objectData",
    "name",
    "value",
]

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
#: Arbitrary JSON, with keys often borrowed from the schema so that shapes come close to it.
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(SCHEMA_KEYS) | st.text(max_size=4), inner, max_size=5)
    ),
    max_leaves=25,
)


def _resolve(doc: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = doc
        for token in node["$ref"].removeprefix("#/").split("/"):
            target = target[token]
        node = target
    return node


def string_limits(doc: dict[str, Any]) -> dict[str, list[int]]:
    """Property name -> lengths worth probing (each limit -1, exact, +1), read from the schema."""
    out: dict[str, set[int]] = {}
    seen: set[int] = set()

    def walk(node: Any) -> None:
        if not isinstance(node, dict) or id(node) in seen:
            return
        seen.add(id(node))
        node = _resolve(doc, node)
        for name, sub in node.get("properties", {}).items():
            sub = _resolve(doc, sub)
            for key in ("minLength", "maxLength"):
                if key in sub:
                    limit = int(sub[key])
                    out.setdefault(name, set()).update(n for n in (limit - 1, limit, limit + 1))
            walk(sub)
        walk(node.get("items"))

    walk(doc)
    return {name: sorted(n for n in lengths if n >= 0) for name, lengths in out.items()}


def _text(n: int) -> st.SearchStrategy[str]:
    """Exactly ``n`` code points: a short random run of them, repeated."""
    unit = st.lists(st.sampled_from(CODE_POINTS), min_size=1, max_size=6).map("".join)
    return unit.map(lambda u: (u * (n // len(u) + 1))[:n])


def _attributes(i: int, kind: str) -> list[dict[str, str]]:
    if kind == "conversion":
        identity = (
            {"name": "email", "value": f"user{i}@example.com"}
            if i % 3
            else {"name": "emailsha256", "value": "AB" * 32 if i % 2 else "not-hex"}
        )
        return [
            identity,
            {"name": "conversiontype", "value": "purchase"},
            {"name": "amount", "value": f"{i}.50"},
        ]
    return [{"name": "confirmationref", "value": f"ORDER-{i}"}]


def _event(i: int, seed: int, when: str, duplicates: bool) -> dict[str, Any]:
    kind = ("conversion", "confirmation_page_load", "app_download")[(i + seed) % 3]
    ident = i % 2 if duplicates else i
    event: dict[str, Any] = {
        "clientEventId": f"{seed:08x}-0000-4000-8000-{ident:012x}",
        "eventType": kind,
        "eventTime": when,
        "objectData": _attributes(i, kind),
    }
    if (i + seed) % 4 == 0:
        event["metaData"] = [{"name": "sessionid", "value": f"s{seed}"}]
    if (i + seed) % 5 == 0:
        del event["objectData"]
    return event


OPS = ["wrong", "json", "delete", "empty", "length", "length", "prefix", "time", "unknown", "nest"]
OPS += ["length", "wrong"]


def _full_event(i: int) -> dict[str, Any]:
    event = _event(i, 3, EDGE_TIMES[0], False)
    event.setdefault("objectData", _attributes(i, event["eventType"]))
    return event


def _slots(doc: Any) -> dict[str, list[tuple[Any, Any]]]:
    """Every (container, key) in the body by what it holds: a property name, ``event`` for
    an item of ``events``, ``item`` for other array items, ``root`` for the body itself."""
    out: dict[str, list[tuple[Any, Any]]] = {"root": [(None, None)]}
    stack: list[tuple[Any, Any]] = [(doc, None)]
    while stack:
        node, name = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                out.setdefault(key, []).append((node, key))
                stack.append((value, key))
        elif isinstance(node, list):
            label = "event" if name == "events" else "item"
            for index, value in enumerate(node):
                out.setdefault(label, []).append((node, index))
                stack.append((value, None))
    return out


@st.composite
def bodies(
    draw: st.DrawFn,
    schema: dict[str, Any] = EVENTS_SCHEMA,
    sizes: tuple[int, ...] = (0, 1, 1, 1, 2, 3, 4, 50, 51, 100, 101),
    defects: tuple[int, ...] = (0, 1, 1, 1, 2, 2, 3, 4),
    times: st.SearchStrategy[str] = BASE_TIMES,
) -> Any:
    """A realistic batch (0, 1, a few, 50, 51, 100 or 101 events), then up to four defects,
    each aimed at a kind of place first (a field, an event, an attribute, the root) so that
    every kind is hit often, whatever the batch size."""
    count = draw(st.sampled_from(sizes))
    seed = draw(st.integers(0, 2**32 - 1))
    chosen = draw(st.lists(times, min_size=1, max_size=3))
    duplicates = draw(st.booleans())
    doc: Any = {
        "accountId": "1234567890",
        "events": [_event(i, seed, chosen[i % len(chosen)], duplicates) for i in range(count)],
    }
    limits = string_limits(schema)
    for _ in range(draw(st.sampled_from(defects))):
        op = draw(st.sampled_from(OPS))
        slots = _slots(doc)
        labels = sorted(slots)
        if op == "length":
            labels = [name for name in labels if name in limits] or labels
        elif op in ("prefix", "time"):
            wanted = "name" if op == "prefix" else "eventTime"
            labels = [wanted] if wanted in slots else labels
        elif op == "unknown":
            labels = [
                name
                for name in labels
                if any(isinstance(c[k] if c is not None else doc, dict) for c, k in slots[name])
            ] or labels
        label = draw(st.sampled_from(labels))
        container, key = draw(st.sampled_from(slots[label]))
        current = doc if container is None else container[key]
        if op == "wrong":
            new: Any = copy.deepcopy(draw(st.sampled_from(WRONG)))
        elif op == "json":
            new = draw(JSON)
        elif op == "delete" and isinstance(container, dict):
            del container[key]
            continue
        elif op == "empty":
            new = ""
        elif op == "length":
            new = draw(_text(draw(st.sampled_from(limits.get(label, [0, 1, 2])))))
        elif op == "prefix":
            new = draw(st.sampled_from(PREFIXES)) + draw(_text(draw(st.integers(0, 3))))
        elif op == "time":
            new = draw(TIMES)
        elif op == "unknown" and isinstance(current, dict):
            current[draw(st.sampled_from(UNKNOWN_KEYS))] = draw(SCALARS)
            continue
        elif op == "nest":
            new = draw(st.sampled_from([[current], {"value": current}, [[current]]]))
        else:
            new = copy.deepcopy(draw(st.sampled_from(WRONG)))
        if container is None:
            doc = new
        else:
            container[key] = new
    return doc


# -- the properties ------------------------------------------------------------------------------


@given(doc=bodies())
@settings(max_examples=250)
def test_fast_equals_slow_on_near_valid_bodies(doc: Any) -> None:
    assert_same(CONTRACT, doc)


@given(doc=bodies(sizes=(1, 2, 3), defects=(1,), times=st.sampled_from(GOOD_TIMES)))
@settings(max_examples=300)
def test_fast_equals_slow_on_bodies_with_one_defect(doc: Any) -> None:
    """Each defect alone on an otherwise valid body: the case where a fast path that is too
    lenient (or too strict) about a single rule would show."""
    assert_same(CONTRACT, doc)


@given(doc=JSON | st.fixed_dictionaries({"accountId": JSON, "events": JSON}))
@settings(max_examples=200)
def test_fast_equals_slow_on_arbitrary_json(doc: Any) -> None:
    assert_same(CONTRACT, doc)


@given(event=JSON, attribute=JSON, where=st.sampled_from(["event", "metaData", "objectData"]))
@settings(max_examples=150)
def test_fast_equals_slow_with_arbitrary_json_inside_a_valid_body(
    event: Any, attribute: Any, where: str
) -> None:
    good = _event(0, 7, EDGE_TIMES[0], False)
    body: dict[str, Any] = {"accountId": "1234567890", "events": [good, event]}
    if where != "event":
        body["events"][1] = {**good, where: [attribute, *good.get("objectData", [])]}
    assert_same(CONTRACT, body)


def test_valid_bodies_take_no_error_path() -> None:
    body = {"accountId": "1", "events": [_event(i, 1, EDGE_TIMES[0], False) for i in range(100)]}
    fast = CONTRACT._fast
    assert fast is not None
    assert CONTRACT.engine == "fast"
    assert fast.valid(body)
    assert fast.iter_errors(body) == []
    assert_same(CONTRACT, body)


def test_far_too_many_events_take_the_shortcut_on_both_paths() -> None:
    body = {"accountId": 5, "events": [None] * 1001}
    for now in CLOCKS:
        assert CONTRACT.check(body, now) == CONTRACT.check_slow(body, now)
    assert [v.rule for v in CONTRACT.check(body, EPOCH).request] == ["events.max_items"]


PAYLOADS = sorted((FIXTURES / "payloads").glob("*/*.json"))


@pytest.mark.parametrize("path", PAYLOADS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_payload_fixtures_are_judged_alike(path: Path) -> None:
    try:
        doc = parse_json(path.read_bytes())
    except JsonUnmarshalError:
        assert path.name.startswith("json."), path  # neither engine sees unparseable bodies
        return
    assert_same(CONTRACT, doc, clocks=(EPOCH, *CLOCKS))


# -- the schema drives the fast path ------------------------------------------------------------


def _contract_for(folder: Path, events: dict[str, Any]) -> Contract:
    target = folder / "schemas"
    shutil.copytree(ROOT / "schemas", target)
    (target / "events.schema.json").write_text(json.dumps(events), encoding="utf-8")
    return Contract(load_schemas(target))


def _tweaked_schema() -> dict[str, Any]:
    doc = copy.deepcopy(EVENTS_SCHEMA)
    doc["properties"]["events"]["maxItems"] = 50
    doc["properties"]["accountId"]["maxLength"] = 10
    event = doc["$defs"]["event"]
    event["required"] = ["clientEventId", "eventTime", "objectData"]
    event["properties"]["clientEventId"]["maxLength"] = 24
    event["properties"]["eventType"]["minLength"] = 3
    event["properties"]["eventTime"]["pattern"] = "Z$"
    name = doc["$defs"]["attribute"]["properties"]["name"]
    name["not"]["pattern"] = "^(?i:x-)"
    name["maxLength"] = 12
    doc["$defs"]["attribute"]["required"] = ["name"]
    return doc


@pytest.fixture(scope="module")
def tweaked(tmp_path_factory: pytest.TempPathFactory) -> Contract:
    contract = _contract_for(tmp_path_factory.mktemp("tweaked"), _tweaked_schema())
    assert contract.engine == "fast"
    return contract


def test_changed_item_limit_is_honoured_by_both_paths(tweaked: Contract) -> None:
    for count, ok in ((49, True), (50, True), (51, False)):
        body = {
            "accountId": "1234567890",
            "events": [_full_event(i) for i in range(count)],
        }
        assert_same(tweaked, body)
        verdict = tweaked.check(body, EPOCH)
        assert not verdict.request if ok else verdict.request, count
        if not ok:
            assert [(v.rule, v.message) for v in verdict.request] == [
                ("events.max_items", "holds 51 items, at most 50 allowed")
            ]
        assert not CONTRACT.check(body, EPOCH).request  # the stock schema allows 100


def test_changed_length_pattern_and_required_are_honoured(tweaked: Contract) -> None:
    event = _full_event(0)
    event["clientEventId"] = "c" * 25
    event["objectData"] = [{"name": "X-Source", "value": "a"}, {"name": "rokt.ok"}]
    event["eventTime"] = _iso(EPOCH - 60, 3, "+00:00")
    body = {"accountId": "12345678901", "events": [event]}
    assert_same(tweaked, body)
    verdict = tweaked.check(body, EPOCH)
    assert [v.rule for v in verdict.request] == ["accountId.max_length"]
    assert [v.rule for v in verdict.events[0]] == [
        "clientEventId.max_length",
        "eventTime.utc",
        "name.reserved_prefix",
    ]
    assert CONTRACT.check(body, EPOCH).request[0].rule == "value.required"


@given(doc=bodies(_tweaked_schema()))
@settings(max_examples=100)
def test_fast_equals_slow_on_a_changed_schema(tweaked: Contract, doc: Any) -> None:
    assert_same(tweaked, doc)


def test_another_format_uses_the_validators_own_checker(tmp_path: Path) -> None:
    doc = copy.deepcopy(EVENTS_SCHEMA)
    doc["properties"]["accountId"]["format"] = "email"
    contract = _contract_for(tmp_path, doc)
    assert contract.engine == "fast"
    for account in ("1234567890", "ops@example.com", 42):
        assert_same(contract, {"accountId": account, "events": [_event(0, 1, "x", False)]})


UNSUPPORTED = {
    "additionalProperties": lambda d: d["$defs"]["event"].update(additionalProperties=False),
    "enum": lambda d: d["$defs"]["event"]["properties"]["eventType"].update(enum=["conversion"]),
    "const": lambda d: d["properties"]["accountId"].update(const="1"),
    "uniqueItems": lambda d: d["properties"]["events"].update(uniqueItems=True),
    "prefixItems": lambda d: d["properties"]["events"].update(prefixItems=[True]),
    "allOf": lambda d: d.update(allOf=[{"required": ["accountId"]}]),
    "propertyNames": lambda d: d["$defs"]["attribute"].update(propertyNames={"maxLength": 5}),
    "custom keyword": lambda d: d["$defs"]["attribute"].update({"x-rokt": True}),
    "external $ref": lambda d: d["$defs"]["event"]["properties"]["metaData"].update(
        {"$ref": "other.schema.json#/$defs/attributes"}
    ),
    "anchor $ref": lambda d: d["properties"]["events"]["items"].update({"$ref": "#event"}),
    "dangling $ref": lambda d: d["properties"]["events"]["items"].update({"$ref": "#/$defs/x"}),
    "nested $id": lambda d: d["$defs"]["event"].update({"$id": "event.json"}),
    "unknown type": lambda d: d["properties"]["accountId"].update(type="text"),
    "false property": lambda d: d["$defs"]["event"]["properties"].update(extra=False),
}


@pytest.mark.parametrize("change", UNSUPPORTED.values(), ids=UNSUPPORTED.keys())
def test_unsupported_schema_refuses_the_fast_path(change: Any) -> None:
    doc = copy.deepcopy(EVENTS_SCHEMA)
    change(doc)
    with pytest.raises(UnsupportedSchema):
        FastChecker(doc)


def test_contract_falls_back_to_jsonschema_on_an_unsupported_schema(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    doc = copy.deepcopy(EVENTS_SCHEMA)
    UNSUPPORTED["additionalProperties"](doc)
    with caplog.at_level(logging.WARNING, logger="rokt_mock"):
        contract = _contract_for(tmp_path, doc)
    assert contract.engine == "jsonschema"
    assert "additionalProperties" in caplog.text
    body = {"accountId": "1", "events": [{**_event(0, 1, EDGE_TIMES[0], False), "x": 1}]}
    verdict = contract.check(body, EPOCH)
    assert verdict == contract.check_slow(body, EPOCH)
    assert [v.rule for v in verdict.request] == ["event.additionalProperties"]


def test_supported_extras_match_jsonschema() -> None:
    """Keywords the stock schema does not use yet are still exact: type lists, booleans,
    ``items: false``, recursion through ``$ref``, ``minItems``/``maxLength`` of 0 and 1."""
    from jsonschema import Draft202012Validator

    schema = {
        "type": "object",
        "properties": {
            "n": {"type": ["integer", "null"], "minLength": 2},
            "num": {"type": "number"},
            "never": {"$ref": "#/$defs/no"},
            "always": True,
            "empty": {"type": "array", "items": False, "maxItems": 0},
            "tree": {"$ref": "#/$defs/tree"},
            "s": {"type": "string", "maxLength": 0, "minLength": 1, "pattern": "^a"},
        },
        "required": ["n", "it's"],
        "$defs": {
            "no": False,
            "tree": {
                "type": "object",
                "required": ["kids"],
                "properties": {"kids": {"type": "array", "minItems": 1, "items": {"$ref": "#"}}},
            },
        },
    }
    Draft202012Validator.check_schema(schema)
    checker = FastChecker(schema)
    validator = Draft202012Validator(schema)
    samples: list[Any] = [
        {},
        {"n": 1.0, "num": True, "never": 1, "always": 2, "empty": [1, 2], "s": "b"},
        {"n": None, "num": 1.5, "empty": [0], "s": ""},
        {"n": 2.5, "empty": [], "tree": {"kids": [{"n": "x", "tree": {"kids": []}}]}},
        {"n": 1, "it's": 0, "tree": {"kids": [{"n": 1, "it's": 1, "tree": 3}]}},
        [],
    ]
    for sample in samples:
        assert _stream(checker.iter_errors(sample)) == _stream(validator.iter_errors(sample))
        assert checker.valid(sample) is validator.is_valid(sample)
