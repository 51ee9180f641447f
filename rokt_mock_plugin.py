"""pytest plugin (entry point ``pytest11``): the ``rokt_mock`` fixture and ``--rokt-*`` options.

Loaded by every pytest run in an environment where rokt-mock is installed, so it imports only
pytest at module level and does nothing until its fixture or options are used. It is a
top-level module with a distinctive name, not ``contract_tests.plugin``, for the reason
hypothesis gives for its own plugin: a partner's repository may well have a package called
``contract_tests``, which would shadow ours and break *every* pytest run if pytest had to
import our package to load the plugin. Now only a test that asks for ``rokt_mock`` imports
the kit. The fixture
starts the real server once per session, through the same CLI partners use, and hands out a
fresh namespace per hypothesis example (``rokt_mock.namespace()``): per-example isolation
without function-scoped fixtures, which hypothesis does not reset between examples.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from contract_tests.mock import MockServer
    from contract_tests.model import Judgement
    from contract_tests.runner import CaseResult


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rokt-mock", "rokt-mock contract kit")
    group.addoption(
        "--rokt-sender",
        default=os.environ.get("ROKT_KIT_SENDER"),
        help="Shell command running your sender (env ROKT_KIT_SENDER).",
    )
    group.addoption(
        "--rokt-api",
        choices=("v1", "v2"),
        default=os.environ.get("ROKT_KIT_API", "v1"),
        help="Event API version your sender speaks (env ROKT_KIT_API).",
    )
    group.addoption(
        "--rokt-profile",
        choices=("dev", "ci", "nightly"),
        default=None,
        help="Kit profile: dev, ci (default when CI is set), nightly.",
    )
    group.addoption(
        "--rokt-mock-url",
        default=os.environ.get("ROKT_MOCK_URL"),
        help="Use a running mock instead of starting one (env ROKT_MOCK_URL).",
    )


def pytest_configure(config: pytest.Config) -> None:
    """``--rokt-profile NAME`` also sets the hypothesis profile of the partner's own tests."""
    name = config.getoption("--rokt-profile", None)
    if name:
        from hypothesis import settings

        from contract_tests.profiles import register_hypothesis_profiles

        register_hypothesis_profiles()
        settings.load_profile(f"rokt-{name}")


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    sender = config.getoption("--rokt-sender", None)
    if not sender:
        return None
    profile = config.getoption("--rokt-profile") or _default_profile()
    return [
        f"rokt-mock: sender {sender!r}, api {config.getoption('--rokt-api')}, profile {profile}"
    ]


def _default_profile() -> str:
    return "ci" if os.environ.get("CI") else "dev"


class RoktMock:
    """What the ``rokt_mock`` fixture gives a test: the mock, namespaces, faults, journal, judge."""

    def __init__(self, url: str, config: pytest.Config, server: MockServer | None) -> None:
        from contract_tests.runner import Mock

        self.url = url
        self.server = server
        self.mock = Mock(url)
        self.sender: str | None = config.getoption("--rokt-sender")
        self.api: str = config.getoption("--rokt-api")
        self.profile: str = config.getoption("--rokt-profile") or _default_profile()

    def namespace(self, prefix: str = "t") -> str:
        """A fresh, empty namespace: use one per hypothesis example."""
        return self.mock.fresh_namespace(f"{prefix}-{uuid.uuid4().hex[:10]}")

    def base_url(self, namespace: str) -> str:
        return f"{self.url}/ns/{namespace}"

    def add_faults(self, namespace: str, *rules: dict[str, Any]) -> None:
        self.mock.add_rules(namespace, list(rules))

    def journal(self, namespace: str) -> list[dict[str, Any]]:
        """Every request of the namespace, oldest first."""
        return self.mock.journal(namespace)

    def run_case(
        self, case: Any, sender: str | None = None, deadline_s: float = 30.0
    ) -> CaseResult:
        """Run one :class:`~contract_tests.model.Case` against the sender and judge it."""
        from contract_tests.judge import judge
        from contract_tests.runner import run_case

        command = sender or self.sender
        if not command:
            pytest.skip("no sender: pass --rokt-sender CMD (or set ROKT_KIT_SENDER)")
        return run_case(case, command, self.mock, deadline_s=deadline_s, judge=judge)

    @staticmethod
    def assert_ok(judgement: Judgement) -> None:
        """Raise the first failed MUST property as its own ContractViolation subclass."""
        from contract_tests.judge import raise_first

        raise_first(judgement)


@pytest.fixture(scope="session")
def rokt_mock(request: pytest.FixtureRequest) -> Iterator[RoktMock]:
    """Session-scoped handle on a real rokt-mock server (started unless --rokt-mock-url)."""
    url = request.config.getoption("--rokt-mock-url")
    server = None
    if not url:
        from contract_tests.mock import MockServer

        server = MockServer(journal=":memory:")
        url = server.url
    handle = RoktMock(url, request.config, server)
    yield handle
    handle.mock.close()
    if server is not None:
        server.stop()
