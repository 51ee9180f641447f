"""The bind policy and the admin token, on real servers: a bind outside loopback needs a token;
with one, every ``/__admin/`` call needs it (either header form, compared in constant time) but
the health probe and the dashboard's page; the kit and the journal commands send it."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from contract_tests.mock import MockServer
from contract_tests.runner import KitError, Mock, sender_env
from mockserver.server import is_loopback
from mockserver.settings import FIELDS, ConfigError, Settings
from tests.conftest import FIXTURES, ROOT, Client, error_of, make_body, start_mock
from tests.mockserver.test_cli import clean_env, cli, free_port

TOKEN = "adm-7f3c9e2b5a1d"
HEADER = "X-Rokt-Mock-Admin-Token"

#: Every admin route (method, path) that exposes or changes state.
GUARDED = [
    ("GET", "requests"),
    ("GET", "events"),
    ("GET", "summary"),
    ("GET", "journal/export"),
    ("GET", "clock"),
    ("POST", "clock"),
    ("GET", "faults"),
    ("POST", "faults"),
    ("DELETE", "faults"),
    ("DELETE", "faults/some-rule"),
    ("DELETE", "journal"),
    ("POST", "reset"),
    ("DELETE", "namespaces/ci-1"),
    ("GET", "dashboard/funnel"),
    ("GET", "no-such-admin-path"),  # 401 before 404: the route map is not revealed either
]


@pytest.fixture(scope="module")
def locked() -> Iterator[MockServer]:
    """A mock on loopback started with an admin token (the token applies there too)."""
    server = start_mock(env={"ROKT_MOCK_ADMIN_TOKEN": TOKEN})
    yield server
    server.stop()


def raw(mock: MockServer, method: str, path: str, **headers: str) -> requests.Response:
    """An admin call with exactly these headers (``mock.admin`` would add the token)."""
    return requests.request(
        method, f"{mock.url}/__admin/{path}", headers=headers, json={}, timeout=30
    )


# -- the bind policy --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LocalHost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("10.0.0.1", False),
        ("", False),
        ("mock.internal", False),  # names are not resolved: only "localhost" is trusted
    ],
)
def test_what_counts_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1"])
def test_public_bind_without_a_token_is_refused_before_binding(tmp_path: Path, host: str) -> None:
    port = free_port()
    result = cli(
        "serve", "--host", host, "--port", str(port), "--journal", ":memory:", cwd=tmp_path
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "listening" not in result.stdout
    assert "rokt-mock: cannot start:" in result.stderr
    assert "not a loopback address" in result.stderr
    assert "ROKT_MOCK_ADMIN_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0  # nothing was bound


def test_public_bind_from_the_environment_is_refused_too(tmp_path: Path) -> None:
    result = cli("serve", "--port", "0", env=clean_env(ROKT_MOCK_HOST="0.0.0.0"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "'0.0.0.0' is not a loopback address" in result.stderr


def test_public_bind_with_a_token_serves_and_requires_it() -> None:
    with start_mock("--host", "0.0.0.0", "--admin-token", TOKEN) as mock:
        assert mock.url.startswith("http://127.0.0.1:")  # announced through loopback
        assert raw(mock, "GET", "requests").status_code == 401
        assert mock.admin("GET", "requests").status_code == 200  # MockServer sends the flag's
        assert Client(mock).v2().status_code == 200  # the Event API itself is unchanged


# -- what the token guards --------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), GUARDED, ids=[f"{m} {p}" for m, p in GUARDED])
def test_every_admin_call_needs_the_token(locked: MockServer, method: str, path: str) -> None:
    missing = raw(locked, method, path)
    assert error_of(missing) == (401, "AdminTokenRequired")
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert HEADER in missing.json()["data"]["message"]
    wrong = raw(locked, method, path, **{HEADER: "adm-wrong-token"})
    assert error_of(wrong) == (401, "AdminTokenInvalid")
    assert "adm-wrong-token" not in wrong.text  # never echoed
    assert error_of(raw(locked, method, path, Authorization="Bearer nope")) == (
        401,
        "AdminTokenInvalid",
    )
    # a Basic credential is not a token
    basic = raw(locked, method, path, Authorization="Basic " + TOKEN)
    assert error_of(basic) == (401, "AdminTokenRequired")


@pytest.mark.parametrize(
    "headers",
    [{HEADER: TOKEN}, {"Authorization": f"Bearer {TOKEN}"}, {"Authorization": f"bearer  {TOKEN}"}],
    ids=["x-header", "bearer", "bearer-lowercase"],
)
def test_the_right_token_opens_the_admin_api(locked: MockServer, headers: dict[str, str]) -> None:
    response = requests.get(
        f"{locked.url}/__admin/requests", params={"namespace": "*"}, headers=headers, timeout=30
    )
    assert response.status_code == 200, response.text
    assert "requests" in response.json()
    summary = requests.get(f"{locked.url}/__admin/summary", headers=headers, timeout=30)
    assert summary.status_code == 200


def test_the_token_header_wins_over_an_authorization_header(locked: MockServer) -> None:
    ok = raw(locked, "GET", "summary", **{HEADER: TOKEN, "Authorization": "Basic eDp5"})
    assert ok.status_code == 200
    bad = raw(locked, "GET", "summary", **{HEADER: "nope", "Authorization": f"Bearer {TOKEN}"})
    assert error_of(bad) == (401, "AdminTokenInvalid")


def test_health_stays_open_and_tells_nothing_without_the_token(locked: MockServer) -> None:
    for method in ("GET", "HEAD"):
        assert requests.request(method, f"{locked.url}/__admin/health", timeout=30).ok
    anonymous = requests.get(f"{locked.url}/__admin/health", timeout=30).json()
    assert set(anonymous) == {"status", "version"}
    assert anonymous["status"] == "ok"
    full = locked.admin("GET", "health").json()
    assert {"journal", "clock", "schemaVersion"} <= set(full)
    wrong = requests.get(f"{locked.url}/__admin/health", headers={HEADER: "nope"}, timeout=30)
    assert set(wrong.json()) == {"status", "version"}


def test_dashboard_page_and_assets_are_open(locked: MockServer) -> None:
    """The page holds no data (its reads carry the token); GET only."""
    page = requests.get(f"{locked.url}/__admin/", timeout=30)
    assert page.status_code == 200, page.text[:300]
    assert page.headers["Content-Type"].startswith("text/html")
    assert TOKEN not in page.text
    assets = re.findall(r'(?:src|href)="(/__admin/dashboard/static/[^"]+)"', page.text)
    assert assets
    for asset in assets:
        response = requests.get(f"{locked.url}{asset}", timeout=30)
        assert response.status_code == 200, asset
        assert TOKEN not in response.text
    assert raw(locked, "POST", "").status_code in (401, 405)
    assert error_of(raw(locked, "GET", "dashboard/namespaces")) == (401, "AdminTokenRequired")


def test_the_event_api_and_openapi_need_no_admin_token(locked: MockServer) -> None:
    client = Client(locked)
    assert client.v1(make_body(1)).status_code == 200
    assert client.v2().status_code == 200
    assert requests.get(f"{locked.url}/openapi.json", timeout=30).status_code == 200


def test_without_a_token_nothing_changes_and_headers_are_ignored(mock: MockServer) -> None:
    """Loopback without a token: the admin API is open, a stray token header is harmless."""
    assert requests.get(f"{mock.url}/__admin/summary", timeout=30).status_code == 200
    stray = requests.get(f"{mock.url}/__admin/summary", headers={HEADER: "x"}, timeout=30)
    assert stray.status_code == 200
    assert set(requests.get(f"{mock.url}/__admin/health", timeout=30).json()) > {"journal"}


# -- where the token comes from ----------------------------------------------------------------


def test_token_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "rokt-mock.toml"
    config.write_text(f'admin_token = "{TOKEN}"\n', encoding="utf-8")
    with start_mock("--config", str(config)) as mock:
        assert raw(mock, "GET", "summary").status_code == 401
        assert raw(mock, "GET", "summary", **{HEADER: TOKEN}).status_code == 200


@pytest.mark.parametrize(
    ("env", "args", "culprit"),
    [
        ({"ROKT_MOCK_ADMIN_TOKEN": ""}, [], "admin_token must be"),
        ({"ROKT_MOCK_ADMIN_TOKEN": "two words-secret"}, [], "admin_token must be"),
        ({}, ["--admin-token", "tab\tsecret"], "admin_token must be"),
    ],
    ids=["empty", "space", "control"],
)
def test_unusable_tokens_stop_the_start_without_echoing_them(
    tmp_path: Path, env: dict[str, str], args: list[str], culprit: str
) -> None:
    result = cli("serve", "--port", "0", "--journal", ":memory:", *args, env=clean_env(**env))
    assert result.returncode == 2, result.stderr
    assert culprit in result.stderr
    assert "secret" not in result.stderr.replace("ROKT_MOCK", "")


def test_a_toml_token_of_the_wrong_type_is_not_echoed(tmp_path: Path) -> None:
    config = tmp_path / "rokt-mock.toml"
    config.write_text("admin_token = 73514229\n", encoding="utf-8")
    result = cli("serve", "--config", str(config), "--journal", ":memory:", cwd=tmp_path)
    assert result.returncode == 2
    assert "admin_token" in result.stderr
    assert "73514229" not in result.stderr


def test_settings_repr_hides_the_token() -> None:
    text = repr(Settings(admin_token=TOKEN))
    assert TOKEN not in text
    assert "admin_token='<redacted>'" in text
    with pytest.raises(ConfigError):
        Settings(admin_token="")


def test_serve_help_names_the_new_settings() -> None:
    help_text = " ".join(cli("serve", "--help").stdout.split())
    for flag, env in (
        ("--admin-token", "ROKT_MOCK_ADMIN_TOKEN"),
        ("--log-format", "ROKT_MOCK_LOG_FORMAT"),
        ("--log-level", "ROKT_MOCK_LOG_LEVEL"),
    ):
        assert flag in help_text
        assert f"[env: {env}]" in help_text


def test_configuration_docs_list_every_setting() -> None:
    """docs/configuration.md has a row per FIELDS entry naming its flag and variable."""
    docs = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    rows = [line for line in docs.splitlines() if line.startswith("| `")]
    for spec in FIELDS:
        row = next((r for r in rows if r.startswith(f"| `{spec.name}`")), None)
        assert row is not None, spec.name
        assert f"`{spec.flag}" in row, spec.flag
        assert f"`{spec.env}`" in row, spec.env


# -- the clients: journal commands, the kit --------------------------------------------------


def test_journal_commands_send_the_token_from_the_environment(locked: MockServer) -> None:
    Client(locked).v2()
    ok = cli(
        "journal",
        "summary",
        "--url",
        locked.url,
        "--json",
        env=clean_env(ROKT_MOCK_ADMIN_TOKEN=TOKEN),
    )
    assert ok.returncode == 0, ok.stderr
    assert '"requests"' in ok.stdout
    export = cli(
        "journal", "export", "--url", locked.url, env=clean_env(ROKT_MOCK_ADMIN_TOKEN=TOKEN)
    )
    assert export.returncode == 0, export.stderr
    refused = cli("journal", "summary", "--url", locked.url)
    assert refused.returncode == 1
    assert "401" in refused.stderr
    assert "AdminTokenRequired" in refused.stderr


def test_kit_admin_client_sends_the_token(
    locked: MockServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(KitError, match="AdminTokenRequired"):
        Mock(locked.url).fresh_namespace("kit-no-token")
    Mock(locked.url, admin_token=TOKEN).fresh_namespace("kit-explicit")
    monkeypatch.setenv("ROKT_MOCK_ADMIN_TOKEN", TOKEN)
    kit_mock = Mock(locked.url)
    assert kit_mock.fresh_namespace("kit-from-env") == "kit-from-env"
    assert "journal" in kit_mock.health()
    kit_mock.close()


def test_the_sender_under_test_does_not_get_the_admin_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from contract_tests.model import Case

    monkeypatch.setenv("ROKT_MOCK_ADMIN_TOKEN", TOKEN)
    case = Case(api="v1", events=[], seed=1, case_id="c1")
    env = sender_env(Mock("http://127.0.0.1:1"), "ns", case, tmp_path / "e", tmp_path / "r", 5)
    assert "ROKT_MOCK_ADMIN_TOKEN" not in env
    assert TOKEN not in env.values()


def test_contract_run_against_a_locked_mock(locked: MockServer, tmp_path: Path) -> None:
    sender = f"python3 {FIXTURES / 'senders' / 'good' / 'python_v1.py'}"
    args = ["-m", "mockserver", "contract", "run", "--sender", sender, "--max-examples", "1"]
    args += ["--seed", "5", "--mock-url", locked.url]

    def run(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args],
            cwd=tmp_path,
            env=clean_env(**env),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    without = run()
    assert without.returncode == 2, without.stdout + without.stderr
    assert "AdminTokenRequired" in without.stderr
    with_token = run(ROKT_MOCK_ADMIN_TOKEN=TOKEN)
    assert with_token.returncode == 0, with_token.stdout + with_token.stderr
