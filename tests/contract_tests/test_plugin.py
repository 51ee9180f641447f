"""The kit's pytest plugin as a partner uses it: a test file of theirs, run by a real pytest.

Each test writes a partner-style test module with ``pytester`` and runs it in a subprocess
(``runpytest_subprocess``), where the plugin is loaded through its ``pytest11`` entry point,
exactly as in a partner's environment. The inner tests use the ``rokt_mock`` fixture, our
hypothesis strategies and the ``--rokt-*`` options.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.conftest import FIXTURES

pytest_plugins = ["pytester"]

GOOD_V1 = f"python3 {FIXTURES / 'senders' / 'good' / 'python_v1.py'}"
DROPS_METADATA = f"python3 {FIXTURES / 'senders' / 'broken' / 'drops_metadata.py'}"

#: Shared by the inner test files: the mock servers this pytest process started (children).
PROC_HELPERS = '''
import os


def mock_server_children():
    """Command lines of `rokt-mock serve` processes whose parent is this pytest process."""
    me = str(os.getpid())
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = f.read().rsplit(")", 1)[1].split()[1]
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\\0")
        except (OSError, IndexError):
            continue
        if ppid == me and b"mockserver" in argv and b"serve" in argv:
            found.append((int(pid), b" ".join(argv).decode()))
    return found
'''

#: Events a sender is handed in the run_case tests: metaData, so dropping it is visible.
CASE_HELPERS = """
import time
import uuid
from datetime import datetime, timezone

from contract_tests.model import Case


def iso(ts):
    moment = datetime.fromtimestamp(ts, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def make_case(n=3):
    events = [
        {
            "clientEventId": str(uuid.uuid4()),
            "eventType": "conversion",
            "eventTime": iso(time.time() - 60 * i),
            "objectData": [
                {"name": "email", "value": f"plugin{i}@example.com"},
                {"name": "conversiontype", "value": "purchase"},
                {"name": "amount", "value": "20.00"},
            ],
            "metaData": [{"name": "sessionid", "value": uuid.uuid4().hex}],
        }
        for i in range(n)
    ]
    return Case(api="v1", events=events, case_id=f"plugin-{uuid.uuid4().hex[:6]}")
"""

needs_proc = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="needs /proc to see the mock's process"
)


@pytest.fixture(autouse=True)
def _partner_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The inner pytest must see only the options each test passes, not the host's settings."""
    for key in ("ROKT_KIT_SENDER", "ROKT_KIT_API", "ROKT_MOCK_URL", "CI"):
        monkeypatch.delenv(key, raising=False)


def run_inner(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rsfE", *args, timeout=120)


def output(result: pytest.RunResult) -> str:
    return "\n".join(result.outlines + result.errlines)


@needs_proc
def test_hypothesis_test_with_fixture_namespaces_and_strategies(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        helpers=PROC_HELPERS,
        test_partner=textwrap.dedent(
            """
            import json

            import requests
            from hypothesis import given, settings

            from contract_tests import strategies
            from helpers import mock_server_children

            HEADERS = {
                "Content-Type": "application/json",
                "Charset": "utf-8",
                "Rokt-Version": "2020-05-21",
            }
            NAMESPACES = []


            @settings(max_examples=5, deadline=None, database=None)
            @given(events=strategies.event_lists(max_size=3))
            def test_every_event_arrives_once(rokt_mock, events):
                ns = rokt_mock.namespace()
                assert rokt_mock.journal(ns) == []  # fresh and empty
                response = requests.post(
                    rokt_mock.base_url(ns) + "/v2/events",
                    auth=("rpub-demo-0001", "rsec-demo-0001"),
                    headers=HEADERS,
                    data=json.dumps({"accountId": "1234567890", "events": events}),
                    timeout=30,
                )
                assert response.status_code == 200, response.text
                journal = rokt_mock.journal(ns)
                assert len(journal) == 1
                assert journal[0]["namespace"] == ns
                assert journal[0]["endpoint"] == "/v2/events"
                arrived = [(e["clientEventId"], e["outcome"]) for e in journal[0]["events"]]
                assert arrived == [(e["clientEventId"], "accepted") for e in events]
                NAMESPACES.append(ns)


            def test_each_example_had_its_own_namespace():
                assert len(NAMESPACES) >= 2
                assert len(set(NAMESPACES)) == len(NAMESPACES)


            def test_the_fixture_runs_one_real_server(rokt_mock):
                assert rokt_mock.server is not None
                assert rokt_mock.url == rokt_mock.server.url
                children = mock_server_children()
                assert [pid for pid, _ in children] == [rokt_mock.server.proc.pid], children
            """
        ),
    )
    result = run_inner(pytester)
    result.assert_outcomes(passed=3)
    assert result.ret == pytest.ExitCode.OK


RUN_CASE_TEST = """
from helpers import make_case


def test_my_sender_keeps_the_contract(rokt_mock):
    result = rokt_mock.run_case(make_case())
    assert result.namespace.startswith("kit-plugin-")
    assert rokt_mock.journal(result.namespace), "the sender sent nothing"
    rokt_mock.assert_ok(result.judgement)
"""


def test_run_case_with_a_good_sender_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(helpers=CASE_HELPERS, test_sender=RUN_CASE_TEST)
    result = run_inner(pytester, "--rokt-sender", GOOD_V1)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"rokt-mock: sender '{GOOD_V1}', api v1, profile dev"])


def test_run_case_with_a_broken_sender_fails_with_the_property_exception(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(helpers=CASE_HELPERS, test_sender=RUN_CASE_TEST)
    result = run_inner(pytester, "--rokt-sender", DROPS_METADATA)
    result.assert_outcomes(failed=1)
    text = output(result)
    assert "DeliveryContentFaithful" in text, text
    assert "delivery.content_faithful (MUST)" in text, text


def test_run_case_without_a_sender_skips_with_the_reason(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(helpers=CASE_HELPERS, test_sender=RUN_CASE_TEST)
    result = run_inner(pytester)
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        ["SKIPPED*no sender: pass --rokt-sender CMD (or set ROKT_KIT_SENDER)*"]
    )
    # no sender, no header line about one
    assert "rokt-mock: sender" not in output(result)


@pytest.mark.parametrize(
    ("args", "env", "api", "profile"),
    [
        (["--rokt-api", "v2", "--rokt-profile", "nightly"], {}, "v2", "nightly"),
        (["--rokt-profile", "ci"], {}, "v1", "ci"),
        ([], {"CI": "1"}, "v1", "ci"),
    ],
    ids=["explicit", "ci-option", "ci-variable"],
)
def test_api_and_profile_options_reach_the_fixture_and_the_header(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    api: str,
    profile: str,
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    pytester.makepyfile(
        test_options=f"""
        def test_options(rokt_mock):
            assert rokt_mock.sender == "my-sender --flag"
            assert rokt_mock.api == {api!r}
            assert rokt_mock.profile == {profile!r}
        """
    )
    result = run_inner(pytester, "--rokt-sender", "my-sender --flag", *args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [f"rokt-mock: sender 'my-sender --flag', api {api}, profile {profile}"]
    )


def test_an_unknown_profile_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = run_inner(pytester, "--rokt-profile", "weekly")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--rokt-profile" in output(result)
    assert "invalid choice: 'weekly'" in output(result)


@needs_proc
def test_no_server_is_started_when_the_fixture_is_not_used(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        helpers=PROC_HELPERS,
        test_plain=textwrap.dedent(
            """
            from helpers import mock_server_children


            def test_plain_arithmetic(request):
                # the plugin is loaded (its options exist) ...
                assert request.config.pluginmanager.has_plugin("rokt_mock")
                assert request.config.getoption("--rokt-api") == "v1"
                # ... yet it started nothing
                assert mock_server_children() == []
                assert 1 + 1 == 2
            """
        ),
    )
    result = run_inner(pytester, "-s")
    result.assert_outcomes(passed=1)
    text = output(result)
    assert "rokt-mock listening" not in text
    assert "rokt-mock: sender" not in text
