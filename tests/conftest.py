"""Shared fixtures: a real mock process per session, reset before each test, and a client.

Tests talk HTTP to a ``rokt-mock serve`` subprocess (started through the same CLI partners
use); nothing of ours is mocked. Tests needing other settings start their own with
:func:`start_mock`.
"""

from __future__ import annotations

import base64
import json
import os
import random
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from contract_tests.mock import MockServer

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
#: The instant the payload fixtures were written for (fixtures/payloads/README.md).
FIXTURE_EPOCH = "2026-11-20T12:00:00Z"

ACCOUNT = "1234567890"
APP_ID, APP_SECRET = "demo-app-id", "demo-app-secret"
RPUB, RSEC = "rpub-demo-0001", "rsec-demo-0001"

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    print_blob=True,
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=30, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Every run uses a known hypothesis seed (random unless given), printed at start and end."""
    if config.getoption("hypothesis_seed", None) is None:
        chosen = os.environ.get("HYPOTHESIS_SEED") or str(random.randrange(2**32))
        config.option.hypothesis_seed = chosen


def _seed_line(config: pytest.Config) -> str:
    seed = config.getoption("hypothesis_seed", None)
    return f"hypothesis seed: {seed} (reproduce with --hypothesis-seed={seed})"


def pytest_report_header(config: pytest.Config) -> str:
    return _seed_line(config)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    terminalreporter.write_line(_seed_line(config))


@pytest.fixture(autouse=True)
def _scrub_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The host's ROKT_MOCK_* variables must not leak into what tests start."""
    for key in list(os.environ):
        if key.startswith("ROKT_MOCK_"):
            monkeypatch.delenv(key)


def now_iso(offset: float = 0.0) -> str:
    moment = datetime.fromtimestamp(time.time() + offset, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def make_event(**overrides: Any) -> dict[str, Any]:
    event = {
        "clientEventId": str(uuid.uuid4()),
        "eventType": "conversion",
        "eventTime": now_iso(-60),
        "objectData": [
            {"name": "email", "value": "jane@example.com"},
            {"name": "conversiontype", "value": "purchase"},
            {"name": "amount", "value": "300.50"},
            {"name": "currency", "value": "AUD"},
        ],
    }
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not None}


def make_body(n: int = 1, **event_overrides: Any) -> dict[str, Any]:
    return {"accountId": ACCOUNT, "events": [make_event(**event_overrides) for _ in range(n)]}


def arbitrary_json(*, max_size: int, max_leaves: int) -> st.SearchStrategy[Any]:
    """Any JSON value without NaN or Infinity (which JSON has not); containers hold at most
    ``max_size`` items. The bad-input and hostile suites size it each for their own budget."""
    return st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=max_size)
            | st.dictionaries(st.text(max_size=10), children, max_size=max_size)
        ),
        max_leaves=max_leaves,
    )


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Client:
    """Speaks the Event API to one mock the way a well-behaved sender does, with overrides."""

    def __init__(self, mock: MockServer, namespace: str | None = None) -> None:
        self.mock = mock
        self.base = mock.url + (f"/ns/{namespace}" if namespace else "")
        self.http = requests.Session()
        self._token: str | None = None

    def token_response(
        self,
        user: str = APP_ID,
        password: str = APP_SECRET,
        data: Any = "grant_type=client_credentials",
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        h = {
            "Authorization": basic(user, password),
            "Content-Type": "application/x-www-form-urlencoded",
        }
        h.update(headers or {})
        return self.http.post(
            f"{self.base}/auth/oauth2/token",
            data=data,
            headers={k: v for k, v in h.items() if v is not None},
            timeout=30,
        )

    def token(self) -> str:
        if self._token is None:
            response = self.token_response()
            assert response.status_code == 200, response.text
            self._token = response.json()["access_token"]
        return self._token

    def v1(
        self,
        body: Any = None,
        *,
        key: str | None = "new",
        headers: dict[str, str | None] | None = None,
        raw: bytes | None = None,
    ) -> requests.Response:
        h: dict[str, str | None] = {
            "Authorization": f"Bearer {self.token()}",
            "Content-Type": "application/json",
            "Charset": "utf-8",
            "Rokt-Version": "2020-05-21",
            "Idempotency-Key": str(uuid.uuid4()) if key == "new" else key,
        }
        h.update(headers or {})
        return self._post("/v1/events", body, raw, h)

    def v2(
        self,
        body: Any = None,
        *,
        headers: dict[str, str | None] | None = None,
        raw: bytes | None = None,
    ) -> requests.Response:
        h: dict[str, str | None] = {
            "Authorization": basic(RPUB, RSEC),
            "Content-Type": "application/json",
            "Charset": "utf-8",
            "Rokt-Version": "2020-05-21",
        }
        h.update(headers or {})
        return self._post("/v2/events", body, raw, h)

    def _post(
        self, path: str, body: Any, raw: bytes | None, headers: dict[str, str | None]
    ) -> requests.Response:
        data = (
            raw if raw is not None else json.dumps(make_body() if body is None else body).encode()
        )
        return self.http.post(
            f"{self.base}{path}",
            data=data,
            headers={k: v for k, v in headers.items() if v is not None},
            timeout=30,
        )


def start_mock(*args: str, tmp_path: Path | None = None, **kwargs: Any) -> MockServer:
    journal = kwargs.pop("journal", None)
    if journal is None:
        journal = tmp_path / "journal.sqlite3" if tmp_path else ":memory:"
    return MockServer(list(args), journal=journal, **kwargs)


@pytest.fixture(scope="session")
def mock_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockServer]:
    """One default mock for the session, on a file journal (as partners run it)."""
    journal = tmp_path_factory.mktemp("journal") / "journal.sqlite3"
    server = MockServer(journal=journal)
    yield server
    server.stop()


@pytest.fixture
def mock(mock_server: MockServer) -> MockServer:
    mock_server.reset()
    return mock_server


@pytest.fixture
def client(mock: MockServer) -> Client:
    return Client(mock)


def set_clock(mock: MockServer, **body: Any) -> dict[str, Any]:
    response = mock.admin("POST", "clock", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def error_of(response: requests.Response) -> tuple[int, str]:
    """(status, data.code) of an error answer, checking the envelope on the way."""
    payload = response.json()
    assert set(payload) == {"data"}, payload
    assert isinstance(payload["data"]["message"], str)
    return response.status_code, payload["data"]["code"]


def rules_of(response: requests.Response) -> list[str]:
    return [v["rule"] for v in response.json()["data"].get("details", {}).get("violations", [])]
