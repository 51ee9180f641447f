"""The kit's commands end to end, as a partner runs them: `rokt-mock contract run|replay|verify|
doctor` in a real subprocess, against real mock processes and the reference senders.

Every CLI run gets a scrubbed environment (no ROKT_MOCK_*, ROKT_KIT_* or CI unless a test sets
them) and ``cwd=tmp_path``, so failure files land in the test's own directory. Runs are kept
small (a few examples, a handful of events) so the whole module stays well under a minute or so.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import requests

from contract_tests import kit, profiles
from contract_tests.judge import judge
from contract_tests.mock import MockServer
from contract_tests.model import Case
from contract_tests.properties import PROPERTIES
from contract_tests.runner import KitError, Mock, load_callable, run_case
from tests.conftest import FIXTURES

GOOD = FIXTURES / "senders" / "good"
BROKEN = FIXTURES / "senders" / "broken"
PY = "python3"
GOOD_V1 = f"{PY} {GOOD / 'python_v1.py'}"
SENDS_TWICE = f"{PY} {BROKEN / 'sends_twice.py'}"

ACCOUNT = "1234567890"
APP_ID, APP_SECRET = "demo-app-id", "demo-app-secret"
RPUB, RSEC = "rpub-demo-0001", "rsec-demo-0001"
HEADERS = {"Content-Type": "application/json", "Charset": "utf-8", "Rokt-Version": "2020-05-21"}

#: The kit's own start-up is a mock start plus a few cases; nothing here should take longer.
CLI_TIMEOUT_S = 180


# -- helpers ----------------------------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    """The test process' environment without anything that would steer the kit."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ROKT_MOCK_", "ROKT_KIT_")) and k != "CI"
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def contract(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``rokt-mock contract ARGS`` as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "mockserver", "contract", *args],
        cwd=cwd,
        env=env if env is not None else clean_env(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def explain(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


def property_table(stdout: str) -> dict[str, tuple[str, str]]:
    """``{property id: (level, mark)}`` from the summary table the run prints."""
    table: dict[str, tuple[str, str]] = {}
    for line in stdout.splitlines():
        m = re.match(r"^\s+(MUST|SHOULD)\s+(\S+)\s+(\S.*)$", line)
        if m and m.group(2) in PROPERTIES:
            table[m.group(2)] = (m.group(1), m.group(3).strip())
    return table


def case_lines(stdout: str) -> list[str]:
    """Case ids of the one-line-per-case progress output (no terminal: one line per case)."""
    return re.findall(r"^case\s+\d+ (?:of \d+|shrinking) (\S+?):", stdout, flags=re.MULTILINE)


def junit_cases(path: Path) -> tuple[ET.Element, dict[str, ET.Element]]:
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None, ET.tostring(root)
    return suite, {tc.get("name", ""): tc for tc in suite.iter("testcase")}


def now_iso(offset: float = 0.0) -> str:
    moment = datetime.fromtimestamp(time.time() + offset, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def make_events(n: int) -> list[dict[str, Any]]:
    return [
        {
            "clientEventId": str(uuid.uuid4()),
            "eventType": "conversion",
            "eventTime": now_iso(-30 * i),
            "objectData": [
                {"name": "email", "value": f"verify{i}@example.com"},
                {"name": "conversiontype", "value": "purchase"},
                {"name": "amount", "value": "12.50"},
                {"name": "currency", "value": "AUD"},
            ],
        }
        for i in range(n)
    ]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def post_v2(base: str, events: list[dict[str, Any]]) -> requests.Response:
    response = requests.post(
        f"{base}/v2/events",
        auth=(RPUB, RSEC),
        headers=HEADERS,
        data=json.dumps({"accountId": ACCOUNT, "events": events}),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["unprocessedRecords"] == []
    return response


def v1_token(base: str) -> str:
    response = requests.post(
        f"{base}/auth/oauth2/token",
        auth=(APP_ID, APP_SECRET),
        data={"grant_type": "client_credentials"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def post_v1(base: str, token: str, events: list[dict[str, Any]], key: str) -> requests.Response:
    response = requests.post(
        f"{base}/v1/events",
        headers={**HEADERS, "Authorization": f"Bearer {token}", "Idempotency-Key": key},
        data=json.dumps({"accountId": ACCOUNT, "events": events}),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response


def free_port_nobody_listens_on() -> tuple[socket.socket, int]:
    """A port bound but never listened on: connections are refused, and no one can take it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


@pytest.fixture(scope="module")
def mock_server() -> Iterator[MockServer]:
    server = MockServer(journal=":memory:")
    yield server
    server.stop()


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"LOUD SKIP: {tool} is not installed, so this reference sender cannot run")


# -- contract run: a good sender --------------------------------------------------------------


def test_run_good_sender_passes_prints_seed_table_and_junit(tmp_path: Path) -> None:
    junit = tmp_path / "reports" / "kit.xml"
    proc = contract(
        "run",
        "--sender",
        GOOD_V1,
        "--api",
        "v1",
        "--profile",
        "dev",
        "--max-examples",
        "4",
        "--seed",
        "11",
        "--junit-xml",
        str(junit),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, explain(proc)
    lines = proc.stdout.splitlines()
    # the seed at the start (before any case runs) and at the end
    assert lines[0].startswith("rokt-mock contract run:"), explain(proc)
    assert "api v1" in lines[0]
    assert "profile dev" in lines[0]
    assert re.search(r"\bseed 11\b", lines[0]), lines[0]
    assert lines[-1] == "PASSED: seed 11", explain(proc)
    assert "(rerun: --seed 11 --profile dev)" in proc.stdout
    assert len(case_lines(proc.stdout)) >= 4, explain(proc)
    # the property table: every property, at its level, none failed
    table = property_table(proc.stdout)
    assert set(table) == set(PROPERTIES), explain(proc)
    for pid, (level, mark) in table.items():
        assert level == PROPERTIES[pid].level, (pid, level)
        assert "FAIL" not in mark, (pid, mark)
    assert "FAILED" not in proc.stdout
    assert "Failure file:" not in proc.stdout
    assert not (tmp_path / kit.FAILURE_DIR).exists() or not any(
        (tmp_path / kit.FAILURE_DIR).iterdir()
    )
    # the JUnit report: one testcase per property id, in registry order, no failure
    suite, cases = junit_cases(junit)
    names = [tc.get("name") for tc in suite.iter("testcase")]
    assert names == list(PROPERTIES)
    assert suite.get("tests") == str(len(PROPERTIES))
    assert suite.get("failures") == "0"
    assert list(suite.iter("failure")) == []
    # a property the run checked is a plain pass (no skipped element)
    assert table["request.schema"][1] == "ok"
    assert cases["request.schema"].find("skipped") is None


def test_ci_variable_selects_the_ci_profile_and_its_fixed_seed(tmp_path: Path) -> None:
    proc = contract(
        "run", "--sender", GOOD_V1, "--max-examples", "2", cwd=tmp_path, env=clean_env(CI="1")
    )
    assert proc.returncode == 0, explain(proc)
    first = proc.stdout.splitlines()[0]
    assert "profile ci" in first, first
    assert f"seed {profiles.CI_SEED}" in first, first
    assert proc.stdout.splitlines()[-1] == f"PASSED: seed {profiles.CI_SEED}"
    assert f"--seed {profiles.CI_SEED} --profile ci" in proc.stdout


def test_two_workers_run_every_case_in_its_own_namespace(tmp_path: Path) -> None:
    server = MockServer(journal=":memory:")
    try:
        proc = contract(
            "run",
            "--sender",
            GOOD_V1,
            "--profile",
            "dev",
            "--seed",
            "5",
            "--max-examples",
            "4",
            "--workers",
            "2",
            "--mock-url",
            server.url,
            cwd=tmp_path,
        )
        assert proc.returncode == 0, explain(proc)
        assert proc.stdout.splitlines()[-1] == "PASSED: seed 5"
        ids = case_lines(proc.stdout)
        # two streams of two examples each; their first (simplest) examples may coincide, and
        # the kit then runs that case once (results are memoised by case)
        assert len(ids) >= 3, explain(proc)
        assert len(set(ids)) == len(ids), ids
        namespaces = {row["namespace"] for row in Mock(server.url).journal("*")}
        assert all(ns.startswith("kit-") for ns in namespaces), namespaces
        # one namespace per case, named after it
        for case_id in set(ids):
            mine = [ns for ns in namespaces if ns.startswith(f"kit-{case_id}-")]
            assert len(mine) == 1, (case_id, sorted(namespaces))
        assert len(namespaces) == len(ids), (ids, sorted(namespaces))
    finally:
        server.stop()


# -- contract run: a broken sender, its failure file, and replay -------------------------------


@pytest.fixture(scope="module")
def broken_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """One property-based run of broken/sends_twice.py, shared by the tests that read it."""
    cwd = tmp_path_factory.mktemp("broken-run")
    proc = contract(
        "run",
        "--sender",
        SENDS_TWICE,
        "--api",
        "v1",
        "--profile",
        "dev",
        "--max-examples",
        "4",
        "--seed",
        "11",
        "--junit-xml",
        "kit.xml",
        cwd=cwd,
    )
    return cwd, proc


def _failure_file(proc: subprocess.CompletedProcess[str]) -> str:
    m = re.search(r"^Failure file: (\S+)$", proc.stdout, flags=re.MULTILINE)
    assert m, explain(proc)
    return m.group(1)


def _reproduce(proc: subprocess.CompletedProcess[str]) -> list[str]:
    m = re.search(r"^Reproduce:\s+(rokt-mock contract replay .+)$", proc.stdout, re.MULTILINE)
    assert m, explain(proc)
    return shlex.split(m.group(1))


def test_broken_sender_fails_on_its_property_with_timeline_and_replay_line(
    broken_run: tuple[Path, Any],
) -> None:
    cwd, proc = broken_run
    assert proc.returncode == 1, explain(proc)
    assert "delivery.no_duplicate" in proc.stdout
    assert re.search(r"^\s+FAIL delivery\.no_duplicate: ", proc.stdout, re.MULTILINE), proc.stdout
    assert proc.stdout.splitlines()[-1] == "FAILED: seed 11"
    assert re.search(r"\bseed 11\b", proc.stdout.splitlines()[0])
    # a timeline: its header row, then the attempts (a token request, the batch twice)
    assert re.search(r"^t ms\s+#\s+id\s+batch\s+key\s+events\s+mock", proc.stdout, re.MULTILINE)
    assert "token request" in proc.stdout
    assert "findings:" in proc.stdout
    assert property_table(proc.stdout)["delivery.no_duplicate"][1] == "FAIL"
    # the failure file, relative to the working directory, under .rokt-mock/failures/
    ref = _failure_file(proc)
    path = cwd / ref
    assert path.is_file(), (ref, list(cwd.rglob("*")))
    assert path.resolve().parent == (cwd / ".rokt-mock" / "failures").resolve()
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["seed"] == 11
    assert data["sender"] == SENDS_TWICE
    assert data["case"]["events"], data["case"]
    assert "delivery.no_duplicate" in {f["property"] for f in data["findings"]}
    # the replay line names the file and the sender, quoted for a shell
    argv = _reproduce(proc)
    assert argv[:4] == ["rokt-mock", "contract", "replay", ref], argv
    assert argv[4:] == ["--sender", SENDS_TWICE], argv


def test_broken_sender_junit_has_a_failure_on_the_property(
    broken_run: tuple[Path, Any],
) -> None:
    cwd, proc = broken_run
    suite, cases = junit_cases(cwd / "kit.xml")
    assert list(cases) == list(PROPERTIES)
    failure = cases["delivery.no_duplicate"].find("failure")
    assert failure is not None, ET.tostring(suite, encoding="unicode")
    assert "delivered 2 times" in (failure.get("message") or "")
    assert f"rokt-mock contract replay {_failure_file(proc)}" in (failure.text or "")
    assert int(suite.get("failures", "0")) >= 1
    # the bug does not spill into unrelated properties
    for pid in ("request.schema", "request.batch_limit", "delivery.no_loss"):
        assert cases[pid].find("failure") is None, pid


def test_printed_replay_command_fails_again_then_good_sender_is_fixed(
    broken_run: tuple[Path, Any],
) -> None:
    cwd, proc = broken_run
    argv = _reproduce(proc)
    again = contract(*argv[2:], cwd=cwd)  # argv[0:2] is "rokt-mock contract"
    assert again.returncode == 1, explain(again)
    assert re.search(r"^FAILED delivery\.no_duplicate: ", again.stdout, re.MULTILINE), explain(
        again
    )
    assert "FIXED" not in again.stdout

    fixed = contract("replay", _failure_file(proc), "--sender", GOOD_V1, cwd=cwd)
    assert fixed.returncode == 0, explain(fixed)
    case_id = json.loads((cwd / _failure_file(proc)).read_text("utf-8"))["case"]["case_id"]
    assert f"FIXED: case {case_id} now passes every MUST property" in fixed.stdout
    assert "FAILED" not in fixed.stdout


def test_replay_by_case_id_finds_the_file_in_the_failure_dir(
    broken_run: tuple[Path, Any], mock_server: MockServer
) -> None:
    cwd, proc = broken_run
    case_id = Path(_failure_file(proc)).stem
    again = contract(
        "replay", case_id, "--sender", SENDS_TWICE, "--mock-url", mock_server.url, cwd=cwd
    )
    assert again.returncode == 1, explain(again)
    assert "FAILED delivery.no_duplicate" in again.stdout


# -- --mock-url --------------------------------------------------------------------------------


def test_mock_url_is_used_and_left_running(tmp_path: Path) -> None:
    server = MockServer(journal=":memory:")
    try:
        proc = contract(
            "run",
            "--sender",
            GOOD_V1,
            "--max-examples",
            "1",
            "--seed",
            "3",
            "--mock-url",
            server.url,
            cwd=tmp_path,
        )
        assert proc.returncode == 0, explain(proc)
        assert f"mock {server.url}" in proc.stdout.splitlines()[0]
        namespaces = {row["namespace"] for row in Mock(server.url).journal("*")}
        assert namespaces, "the kit sent nothing to the mock it was given"
        assert all(ns.startswith("kit-") for ns in namespaces), namespaces
        # the kit did not stop a mock it did not start
        assert server.proc.poll() is None
        assert requests.get(f"{server.url}/__admin/health", timeout=10).status_code == 200
    finally:
        server.stop()


def test_mock_url_nobody_listens_on_is_a_wiring_error(tmp_path: Path) -> None:
    sock, port = free_port_nobody_listens_on()
    try:
        proc = contract(
            "run",
            "--sender",
            GOOD_V1,
            "--max-examples",
            "1",
            "--mock-url",
            f"http://127.0.0.1:{port}",
            cwd=tmp_path,
        )
    finally:
        sock.close()
    assert proc.returncode == 2, explain(proc)
    assert f"cannot reach the mock at http://127.0.0.1:{port}" in proc.stderr, explain(proc)
    assert "Traceback" not in proc.stderr


# -- usage errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--api", "v1"], "Missing option '--sender'"),
        (["run", "--sender", "true", "--api", "v3"], "'v3' is not one of 'v1', 'v2'"),
        (["replay", "no-such-case", "--sender", "true"], "no failure file 'no-such-case'"),
        (["doctor"], "Missing option '--sender'"),
    ],
    ids=["run-without-sender", "run-api-v3", "replay-missing-case", "doctor-without-sender"],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    proc = contract(*args, cwd=tmp_path)
    assert proc.returncode == 2, explain(proc)
    assert message in proc.stderr, explain(proc)
    assert "Traceback" not in proc.stderr


# -- contract doctor ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sender", "api"),
    [
        ("python_v1.py", "v1"),
        ("python_v2.py", "v2"),
        ("node_v1.mjs", "v1"),
    ],
)
def test_doctor_passes_good_senders(
    mock_server: MockServer, tmp_path: Path, sender: str, api: str
) -> None:
    if sender.endswith(".mjs"):
        _need("node")
        command = f"node {GOOD / sender}"
    else:
        command = f"{PY} {GOOD / sender}"
    proc = contract(
        "doctor", "--sender", command, "--api", api, "--mock-url", mock_server.url, cwd=tmp_path
    )
    assert proc.returncode == 0, explain(proc)
    assert "events accepted: 3 of 3" in proc.stdout
    assert "PROBLEM" not in proc.stdout
    assert "OK: the sender is wired correctly" in proc.stdout


def test_doctor_on_a_sender_that_sends_nothing_names_rokt_api_url(tmp_path: Path) -> None:
    proc = contract("doctor", "--sender", "true", cwd=tmp_path)
    assert proc.returncode == 2, explain(proc)
    problems = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("PROBLEM:")]
    assert any("ROKT_API_URL" in p for p in problems), explain(proc)
    assert "requests seen: 0" in proc.stdout
    assert "NOT OK" in proc.stdout


def test_doctor_on_a_sender_exiting_64_says_protocol(
    mock_server: MockServer, tmp_path: Path
) -> None:
    script = tmp_path / "old_protocol.sh"
    script.write_text('echo "unknown ROKT_KIT_PROTOCOL" >&2\nexit 64\n', encoding="utf-8")
    proc = contract(
        "doctor", "--sender", f"sh {script}", "--mock-url", mock_server.url, cwd=tmp_path
    )
    assert proc.returncode == 2, explain(proc)
    problems = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("PROBLEM:")]
    assert any("exited 64" in p and "ROKT_KIT_PROTOCOL=1" in p for p in problems), explain(proc)
    assert "unknown ROKT_KIT_PROTOCOL" in proc.stdout  # the sender's stderr is shown
    assert "NOT OK" in proc.stdout


# -- contract verify (observer mode) ------------------------------------------------------------


def _verify(
    mock_server: MockServer, tmp_path: Path, ns: str, intended: list[dict[str, Any]], api: str
) -> subprocess.CompletedProcess[str]:
    path = write_jsonl(tmp_path / "intended.jsonl", intended)
    return contract(
        "verify",
        "--namespace",
        ns,
        "--intended",
        str(path),
        "--api",
        api,
        "--mock-url",
        mock_server.url,
        cwd=tmp_path,
    )


def test_verify_passes_when_every_intended_event_arrived_once(
    mock_server: MockServer, tmp_path: Path
) -> None:
    ns = f"obs-{uuid.uuid4().hex[:8]}"
    events = make_events(4)
    post_v2(f"{mock_server.url}/ns/{ns}", events[:2])
    post_v2(f"{mock_server.url}/ns/{ns}", events[2:])
    proc = _verify(mock_server, tmp_path, ns, events, "v2")
    assert proc.returncode == 0, explain(proc)
    assert proc.stdout.splitlines()[-1] == "PASSED"
    assert "FAILED" not in proc.stdout
    assert f"case {ns} (v2" in proc.stdout  # the timeline of what arrived


def test_verify_names_no_loss_when_an_intended_event_never_arrived(
    mock_server: MockServer, tmp_path: Path
) -> None:
    ns = f"obs-{uuid.uuid4().hex[:8]}"
    events = make_events(3)
    post_v2(f"{mock_server.url}/ns/{ns}", events[:2])  # the third is never sent
    proc = _verify(mock_server, tmp_path, ns, events, "v2")
    assert proc.returncode == 1, explain(proc)
    failed = re.findall(r"^FAILED (\S+):(.*)$", proc.stdout, re.MULTILINE)
    assert "delivery.no_loss" in {p for p, _ in failed}, explain(proc)
    assert events[2]["clientEventId"] in proc.stdout
    assert proc.stdout.splitlines()[-1] == "FAILED"


def test_verify_names_no_duplicate_for_a_v1_event_sent_twice(
    mock_server: MockServer, tmp_path: Path
) -> None:
    ns = f"obs-{uuid.uuid4().hex[:8]}"
    base = f"{mock_server.url}/ns/{ns}"
    events = make_events(3)
    token = v1_token(base)
    post_v1(base, token, events, str(uuid.uuid4()))
    post_v1(base, token, events[:1], str(uuid.uuid4()))  # a new key: accepted a second time
    proc = _verify(mock_server, tmp_path, ns, events, "v1")
    assert proc.returncode == 1, explain(proc)
    failed = {p for p, _ in re.findall(r"^FAILED (\S+):(.*)$", proc.stdout, re.MULTILINE)}
    assert "delivery.no_duplicate" in failed, explain(proc)
    assert "delivery.no_loss" not in failed


def test_verify_names_no_duplicate_for_an_unambiguous_v2_resend(
    mock_server: MockServer, tmp_path: Path
) -> None:
    ns = f"obs-{uuid.uuid4().hex[:8]}"
    base = f"{mock_server.url}/ns/{ns}"
    events = make_events(2)
    post_v2(base, events)
    post_v2(base, events)  # answered 200 the first time: nothing explains the resend
    proc = _verify(mock_server, tmp_path, ns, events, "v2")
    assert proc.returncode == 1, explain(proc)
    failed = {p for p, _ in re.findall(r"^FAILED (\S+):(.*)$", proc.stdout, re.MULTILINE)}
    assert "delivery.no_duplicate" in failed, explain(proc)


# -- the Python callable adapter ----------------------------------------------------------------


def test_python_callable_sender_passes_through_the_cli(tmp_path: Path) -> None:
    path = [str(GOOD), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = clean_env(PYTHONPATH=os.pathsep.join(path))
    proc = contract(
        "run",
        "--sender",
        "python:python_v1:run",
        "--max-examples",
        "2",
        "--seed",
        "21",
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, explain(proc)
    assert proc.stdout.splitlines()[-1] == "PASSED: seed 21"
    assert len(case_lines(proc.stdout)) >= 2


def test_python_callable_that_raises_is_judged_as_exit_1_with_its_traceback(
    mock_server: MockServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"crashing_sender_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        "def run(environ):\n"
        "    assert environ['ROKT_KIT_PROTOCOL'] == '1'\n"
        "    raise RuntimeError('sender blew up before sending')\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    case = Case(api="v1", events=make_events(2), case_id=f"crash-{uuid.uuid4().hex[:4]}")
    result = run_case(
        case,
        f"python:{module}:run",
        Mock(mock_server.url),
        deadline_s=20,
        judge=judge,
        workroot=tmp_path / "work",
    )
    assert result.run.exit_code == 1
    assert not result.run.timed_out
    assert "Traceback (most recent call last)" in result.run.stderr
    assert "RuntimeError: sender blew up before sending" in result.run.stderr
    assert result.journal == []
    # judged like any sender that admitted failure without a result file
    assert "delivery.no_loss" in {w.property for w in result.judgement.warnings}
    assert "delivery.report_truthful" not in {f.property for f in result.judgement.failed}


def test_python_callable_gets_the_case_variables_as_a_dict(
    mock_server: MockServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"echo_sender_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        "SEEN = []\ndef run(environ):\n    SEEN.append(dict(environ))\n    return 3\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    case = Case(api="v2", events=make_events(1), case_id="echo")
    result = run_case(
        case,
        f"python:{module}:run",
        Mock(mock_server.url),
        deadline_s=20,
        judge=judge,
        workroot=tmp_path / "work",
    )
    assert result.run.exit_code == 3
    seen = sys.modules[module].SEEN
    assert len(seen) == 1
    assert seen[0]["ROKT_API_URL"] == f"{mock_server.url}/ns/{result.namespace}"
    assert seen[0]["ROKT_KIT_PROTOCOL"] == "1"
    assert Path(seen[0]["ROKT_KIT_EVENTS_FILE"]).read_text("utf-8").count("\n") == 1


def test_python_callable_that_cannot_be_loaded_is_a_usage_error(
    mock_server: MockServer, tmp_path: Path
) -> None:
    with pytest.raises(KitError, match="cannot load it"):
        load_callable("no_such_module_xyz:x")
    with pytest.raises(KitError, match=re.escape("expected python:package.module:function")):
        load_callable("just_a_module")
    proc = contract(
        "run",
        "--sender",
        "python:nope:x",
        "--max-examples",
        "1",
        "--mock-url",
        mock_server.url,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, explain(proc)
    assert "python:nope:x" in proc.stderr
    assert "cannot load it" in proc.stderr
    assert "Traceback" not in proc.stderr
