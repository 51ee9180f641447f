"""The kit's generators: every event is valid, schedules shrink towards no faults."""

from __future__ import annotations

import time

from hypothesis import given, settings

from contract_tests.model import FAULT_KINDS, Case
from contract_tests.runner import FAULT_SPECS, schedule_rules
from contract_tests.strategies import (
    MAX_CONSECUTIVE_FAULTS,
    cases,
    event_lists,
    events,
    fault_kinds,
    fault_schedules,
)
from mockserver.schemas import load_schemas
from mockserver.validation import Contract

NOW = time.time()
SCHEMAS = load_schemas()
CONTRACT = Contract(SCHEMAS)
RULE_VALIDATOR = SCHEMAS.validators["rule"]


@given(events(now=NOW))
@settings(max_examples=300)
def test_every_generated_event_is_valid_and_warning_free(event: dict) -> None:
    body = {"accountId": "1234567890", "events": [event]}
    # valid by the JSON Schema itself (jsonschema), then by the server's rules at NOW
    assert SCHEMAS.validators["events"].is_valid(body), event
    verdict = CONTRACT.check(body, NOW)
    assert verdict.ok, [v.to_dict() for v in verdict.request + verdict.event_violations]
    assert verdict.warnings == [], [v.to_dict() for v in verdict.warnings]


@given(event_lists(now=NOW))
@settings(max_examples=30)
def test_event_lists_have_unique_ids_and_span_batches(evs: list[dict]) -> None:
    assert 1 <= len(evs) <= 250
    assert len({e["clientEventId"] for e in evs}) == len(evs)


def test_event_lists_reach_past_one_batch() -> None:
    from hypothesis import find

    big = find(event_lists(now=NOW), lambda evs: len(evs) > 100)
    assert 100 < len(big) <= 250


@given(fault_schedules("v1"))
def test_schedules_never_hold_long_fault_runs(schedule: list[str]) -> None:
    run = 0
    for kind in schedule:
        run = run + 1 if kind != "ok" else 0
        assert run <= MAX_CONSECUTIVE_FAULTS


def test_v2_schedules_never_expire_tokens() -> None:
    assert "expire-token" not in fault_kinds("v2")
    assert "expire-token" in fault_kinds("v1")


def test_schedules_shrink_to_no_faults() -> None:
    from hypothesis import find

    minimal = find(fault_schedules("v1"), lambda s: True)
    assert minimal == []
    minimal_case = find(cases("v1", now=NOW), lambda c: True)
    assert len(minimal_case.events) == 1
    assert minimal_case.schedule == []


def test_every_fault_kind_becomes_a_valid_mock_rule() -> None:
    kinds = [k for k in FAULT_KINDS if k != "ok"]
    assert set(kinds) <= set(FAULT_SPECS)
    case = Case(api="v1", events=[], schedule=["ok", *kinds])
    rules = schedule_rules(case)
    assert len(rules) == len(kinds)
    for rule in rules:
        errors = list(RULE_VALIDATOR.iter_errors(rule))
        assert not errors, (rule, [e.message for e in errors])
    assert rules[0]["when"] == {"attempts": [2, 2]}
