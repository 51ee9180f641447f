"""The Java and Go reference senders (the docs/ci.md recipes) pass the contract kit.

Each is compiled once (javac / go build, into a temporary folder), then must pass the same
targeted cases as the other good senders (tests/contract_tests/test_senders.py) and a short
property-based run through the `rokt-mock contract run` command a partner's CI would use.
Without the toolchain the tests are skipped, loudly: the sender is then NOT tested.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from contract_tests.judge import judge
from contract_tests.mock import MockServer
from contract_tests.model import Case
from contract_tests.runner import Mock, run_case
from tests.conftest import FIXTURES
from tests.contract_tests.test_senders import GOOD_CASES, events

GOOD = FIXTURES / "senders" / "good"


def _need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(
            f"LOUD SKIP: {', '.join(missing)} not installed, so this reference sender is NOT "
            "tested (install a JDK 17+ / Go 1.19+ to run it)"
        )


@pytest.fixture(scope="module")
def java_sender(tmp_path_factory: pytest.TempPathFactory) -> str:
    _need("javac", "java")
    out = tmp_path_factory.mktemp("java_v1")
    subprocess.run(
        ["javac", "-Xlint:all", "-Werror", "-d", str(out), str(GOOD / "java_v1" / "Sender.java")],
        check=True,
        timeout=120,
    )
    return f"java -cp {out} Sender"


@pytest.fixture(scope="module")
def go_sender(tmp_path_factory: pytest.TempPathFactory) -> str:
    _need("go")
    binary = tmp_path_factory.mktemp("go_v1") / "go_v1"
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
    subprocess.run(["go", "vet", "."], cwd=GOOD / "go_v1", env=env, check=True, timeout=300)
    subprocess.run(
        ["go", "build", "-o", str(binary), "."],
        cwd=GOOD / "go_v1",
        env=env,
        check=True,
        timeout=300,
    )
    return str(binary)


@pytest.fixture(params=["java", "go"])
def sender(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_sender"))


@pytest.fixture(scope="module")
def kit_mock() -> Iterator[Mock]:
    server = MockServer(journal=":memory:")
    yield Mock(server.url)
    server.stop()


@pytest.mark.parametrize(("n", "schedule"), GOOD_CASES, ids=lambda v: str(v))
def test_sender_passes_targeted_cases(
    kit_mock: Mock, sender: str, n: int, schedule: list[str]
) -> None:
    case = Case(
        api="v1",
        events=events(n, meta=True),
        schedule=schedule,
        case_id=f"lang-{uuid.uuid4().hex[:6]}",
    )  # type: ignore[arg-type]
    result = run_case(case, sender, kit_mock, deadline_s=30.0, judge=judge)
    assert result.judgement.failed == [], (result.judgement.failed, result.run.stderr[-3000:])
    assert result.run.exit_code == 0, result.run.stderr[-3000:]


def test_sender_reports_abandoned_batches_and_exits_1(kit_mock: Mock, sender: str) -> None:
    case = Case(api="v1", events=events(5), schedule=["503"] * 6, case_id="lang-giveup")  # type: ignore[arg-type]
    result = run_case(case, sender, kit_mock, deadline_s=30.0, judge=judge)
    assert result.run.exit_code == 1, result.run.stderr[-3000:]
    assert result.judgement.failed == [], result.judgement.failed  # an honest give-up


def test_sender_passes_a_property_based_run_of_the_cli(sender: str, tmp_path: Path) -> None:
    junit = tmp_path / "kit.xml"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "mockserver",
            "contract",
            "run",
            "--sender",
            sender,
            "--api",
            "v1",
            "--profile",
            "dev",
            "--max-examples",
            "6",
            "--seed",
            "20261127",
            "--junit-xml",
            str(junit),
        ],
        cwd=tmp_path,  # failure files, if any, land here and not in the checkout
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
    assert "PASSED: seed 20261127" in run.stdout
    assert 'name="delivery.no_loss"' in junit.read_text(encoding="utf-8")
