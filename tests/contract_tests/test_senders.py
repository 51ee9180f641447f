"""The kit against the reference senders: every good one passes, every broken one is caught.

Broken senders are each run on a case built to exercise their bug (a property-based run may
take many examples to stumble on, say, a 429), and must trip exactly the property that
fixtures/senders/README.md names; good senders run the same cases and a short property-based
run, and must trip nothing (no false alarms).
"""

from __future__ import annotations

import io
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contract_tests import kit
from contract_tests.judge import judge
from contract_tests.mock import MockServer
from contract_tests.model import Case
from contract_tests.runner import Mock, run_case
from contract_tests.strategies import _filler
from tests.conftest import FIXTURES

SENDERS = FIXTURES / "senders"
PY = "python3"


def events(n: int, *, meta: bool = False) -> list[dict[str, Any]]:
    import random

    out = _filler(random.Random(n), n, time.time(), set())
    if meta:
        for e in out:
            e["metaData"] = [{"name": "sessionid", "value": uuid.uuid4().hex}]
    return out


#: broken sender -> (api, events, schedule, property that must fire, level)
BROKEN: dict[str, tuple[str, int, list[str], str]] = {
    "no_retry_on_5xx.py": ("v1", 5, ["503"], "retry.on_transient"),
    "new_key_on_retry.py": ("v1", 5, ["503"], "idempotency.key_reused_on_retry"),
    "one_key_for_all_batches.py": ("v1", 150, [], "idempotency.key_unique_per_batch"),
    "no_batch_split.py": ("v1", 150, [], "request.batch_limit"),
    "ignores_retry_after.py": ("v1", 5, ["429"], "retry.honours_retry_after"),
    "token_per_request.py": ("v1", 250, [], "auth.token_reused"),
    "gives_up_on_401.py": ("v1", 5, ["expire-token"], "auth.refresh_on_401"),
    "resends_whole_batch_on_partial.py": (
        "v1",
        5,
        ["partial-reject"],
        "partial.resend_only_failed",
    ),
    "exit_zero_on_failure.py": ("v1", 5, ["503"] * 6, "delivery.report_truthful"),
    "amount_as_number.py": ("v1", 5, [], "request.schema"),
    "retries_client_errors.py": ("v1", 5, ["400"], "retry.not_on_client_error"),
    "retry_storm.py": ("v1", 5, ["503"] * 12, "retry.bounded"),
    "drops_metadata.py": ("v1", 5, [], "delivery.content_faithful"),
    "no_timeout.py": ("v1", 5, ["stall"], "liveness.terminates"),
    "sends_twice.py": ("v1", 5, [], "delivery.no_duplicate"),
    "treats_409_as_error.py": ("v1", 5, ["accept-then-500"], "ambiguous.accept_then_fail"),
    "v2_resends_after_200.py": ("v2", 5, [], "delivery.no_duplicate"),
    "constant_backoff.py": ("v1", 5, ["503", "503", "503"], "retry.backoff_grows"),
}

#: Cases every good sender must pass without a single MUST finding.
GOOD_CASES: list[tuple[int, list[str]]] = [
    (1, []),
    (150, []),
    (5, ["503", "accept-then-reset", "429"]),
    (120, ["ok", "expire-token", "partial-reject"]),
    (5, ["429-date", "reset", "empty"]),
    (5, ["accept-then-500", "500", "504"]),
    (5, ["stall"]),
]


@pytest.fixture(scope="module")
def kit_mock() -> Iterator[Mock]:
    server = MockServer(journal=":memory:")
    yield Mock(server.url)
    server.stop()


def command_for(path: Path) -> str:
    if path.suffix == ".py":
        return f"{PY} {path}"
    if path.suffix == ".mjs":
        return f"node {path}"
    return f"bash {path}"


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"LOUD SKIP: {tool} is not installed, so this reference sender cannot run")


def run(
    mock: Mock,
    path: Path,
    api: str,
    evs: list[dict[str, Any]],
    schedule: list[str],
    deadline: float = 30.0,
) -> Any:
    case = Case(
        api=api, events=evs, schedule=schedule, case_id=f"{path.stem[:12]}-{uuid.uuid4().hex[:4]}"
    )  # type: ignore[arg-type]
    return run_case(case, command_for(path), mock, deadline_s=deadline, judge=judge)


def test_readme_lists_every_sender() -> None:
    readme = (SENDERS / "README.md").read_text(encoding="utf-8")
    for path in sorted((SENDERS / "good").iterdir()) + sorted((SENDERS / "broken").iterdir()):
        assert path.name in readme, path.name
    for name, (_, _, _, prop) in BROKEN.items():
        assert prop in readme, (name, prop)
    assert len(BROKEN) >= 12


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_sender_is_caught_by_its_property(kit_mock: Mock, name: str) -> None:
    api, n, schedule, prop = BROKEN[name]
    deadline = 8.0 if prop == "liveness.terminates" else 45.0
    result = run(kit_mock, SENDERS / "broken" / name, api, events(n, meta=True), schedule, deadline)
    fired = {f.property for f in result.judgement.findings} | {
        w.property for w in result.judgement.warnings
    }
    assert prop in fired, (result.judgement, result.run.stderr[-2000:])


# Single-file scripts only: compiled senders (java_v1/, go_v1/) live in folders and are
# built and run by test_other_languages.py.
GOOD = (
    sorted(p for p in (SENDERS / "good").iterdir() if p.is_file())
    if (SENDERS / "good").is_dir()
    else []
)


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.name)
@pytest.mark.parametrize(("n", "schedule"), GOOD_CASES, ids=lambda v: str(v))
def test_good_sender_passes_targeted_cases(
    kit_mock: Mock, path: Path, n: int, schedule: list[str]
) -> None:
    api = "v2" if "v2" in path.name else "v1"
    if path.suffix == ".mjs":
        _need("node")
    if path.suffix == ".sh":
        _need("curl")
        _need("jq")
    schedule = [k for k in schedule if not (api == "v2" and k == "expire-token")]
    result = run(kit_mock, path, api, events(n, meta=True), schedule)
    assert result.judgement.failed == [], (result.judgement.failed, result.run.stderr[-3000:])
    assert result.run.exit_code == 0


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_good_python_sender_passes_a_property_based_run(
    kit_mock: Mock, api: str, tmp_path: Path
) -> None:
    out = io.StringIO()
    report = kit.run_contract(
        f"{PY} {SENDERS / 'good' / f'python_{api}.py'}",
        kit_mock,
        api=api,
        profile_name="dev",
        seed_value=12345,
        max_examples=6,
        workers=1,
        out=out,
        failure_dir=tmp_path,
    )
    assert report.failure is None, out.getvalue()
    assert report.cases >= 6
    assert "seed 12345" in out.getvalue()


def test_property_based_run_finds_and_shrinks_a_bug(kit_mock: Mock, tmp_path: Path) -> None:
    out = io.StringIO()
    report = kit.run_contract(
        f"{PY} {SENDERS / 'broken' / 'sends_twice.py'}",
        kit_mock,
        api="v1",
        profile_name="dev",
        seed_value=7,
        max_examples=10,
        workers=1,
        out=out,
        failure_dir=tmp_path,
    )
    text = out.getvalue()
    assert report.failure is not None, text
    assert "delivery.no_duplicate" in report.property_failures
    assert report.failure_file is not None
    assert report.failure_file.exists()
    assert "rokt-mock contract replay" in text
    # the shrunk case is small: one event, no faults needed for this bug
    assert len(report.failure.case.events) == 1, text
    assert [k for k in report.failure.case.schedule if k != "ok"] == []
