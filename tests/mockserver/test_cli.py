"""The ``rokt-mock`` command line, run as real subprocesses: serve (options, precedence of
settings, start-up failures, signals, workers), validate, and the journal commands."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import requests

import mockserver
from contract_tests.mock import MockServer
from mockserver.settings import FIELDS
from tests.conftest import (
    ACCOUNT,
    FIXTURE_EPOCH,
    FIXTURES,
    ROOT,
    Client,
    basic,
    error_of,
    make_body,
    start_mock,
)

VALID = sorted((FIXTURES / "payloads" / "valid").glob("*.json"))
INVALID = sorted((FIXTURES / "payloads" / "invalid").glob("*.json"))
ANNOUNCE = re.compile(r"rokt-mock listening on http://127\.0\.0\.1:(\d+)")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROKT_MOCK_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mockserver", *args],
        capture_output=True,
        text=True,
        env=env if env is not None else clean_env(),
        timeout=timeout,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        check=False,
    )


class Served:
    """``serve`` as a subprocess with stdout and stderr kept apart (MockServer merges them)."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mockserver", "serve", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env if env is not None else clean_env(),
            cwd=cwd,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.stdout, True)),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr, False)),
        ]
        for thread in self._threads:
            thread.daemon = True
            thread.start()

    def _pump(self, stream: Any, sink: list[str], announce: bool) -> None:
        for line in stream:
            sink.append(line)
            if announce:
                self.lines.put(line)
        if announce:
            self.lines.put(None)

    def first_line(self, timeout: float = 20) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            line = None
        assert line is not None, f"no stdout line; stderr: {''.join(self.stderr)}"
        return line.rstrip("\n")

    def wait(self, timeout: float = 20) -> int:
        code = self.proc.wait(timeout)
        for thread in self._threads:
            thread.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.wait()


@pytest.fixture
def served() -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for server in started:
        server.kill()


def wait_healthy(url: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/__admin/health", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
    raise AssertionError(f"{url} never became healthy")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def one_shot(mock: MockServer) -> Client:
    """A client whose connections close after each answer: an idle keep-alive connection would
    hold up the server's graceful stop at the end of the test by a couple of seconds."""
    client = Client(mock)
    client.http.headers["Connection"] = "close"
    return client


def flat(text: str) -> str:
    return " ".join(text.split())


# -- help and version -----------------------------------------------------------------------


def test_serve_help_lists_every_option_and_variable() -> None:
    result = cli("serve", "--help")
    assert result.returncode == 0, result.stderr
    text = flat(result.stdout)
    assert "--config" in text
    assert "[env: ROKT_MOCK_CONFIG]" in text
    for spec in FIELDS:
        assert re.search(rf"(^| ){re.escape(spec.flag)}[ /=]", text), spec.flag
        assert f"[env: {spec.env}]" in text, spec.env


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "mockserver", "--version"],
        [str(Path(sys.executable).parent / "rokt-mock"), "--version"],
    ],
    ids=["python -m mockserver", "rokt-mock"],
)
def test_version(command: list[str]) -> None:
    result = subprocess.run(
        command, capture_output=True, text=True, env=clean_env(), timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"rokt-mock, version {mockserver.__version__}"


# -- serving and stopping -------------------------------------------------------------------


def test_port_zero_announces_the_url_first(served: list[Served], tmp_path: Path) -> None:
    server = Served("--port", "0", "--journal", ":memory:", cwd=tmp_path)
    served.append(server)
    line = server.first_line()
    match = ANNOUNCE.fullmatch(line)
    assert match, line
    port = int(match.group(1))
    assert port != 0
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url)
    assert requests.get(f"{url}/__admin/health", timeout=5).json()["journal"]["path"] == ":memory:"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signals_stop_cleanly_and_keep_the_journal(
    served: list[Served], tmp_path: Path, sig: signal.Signals
) -> None:
    journal = tmp_path / "journal.sqlite3"
    server = Served("--port", "0", "--journal", str(journal))
    served.append(server)
    match = ANNOUNCE.fullmatch(server.first_line())
    assert match
    url = f"http://127.0.0.1:{match.group(1)}"
    wait_healthy(url)
    key = str(uuid.uuid4())
    with requests.Session() as http:
        token = http.post(
            f"{url}/auth/oauth2/token",
            data="grant_type=client_credentials",
            headers={
                "Authorization": basic("demo-app-id", "demo-app-secret"),
                "Content-Type": "application/x-www-form-urlencoded",
                "Connection": "close",
            },
            timeout=10,
        ).json()["access_token"]
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Charset": "utf-8",
            "Idempotency-Key": key,
            "Connection": "close",
        }
        body = json.dumps(make_body(2))
        accepted = http.post(f"{url}/v1/events", data=body, headers=headers, timeout=10)
    assert accepted.status_code == 200
    request_id = int(accepted.headers["X-Rokt-Mock-Request-Id"])

    server.proc.send_signal(sig)
    assert server.wait() == 0
    assert "rokt-mock stopped" in "".join(server.stderr)
    assert "rokt-mock stopped" not in "".join(server.stdout)
    assert "Traceback" not in "".join(server.stderr)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/__admin/health", timeout=2)

    with closing(sqlite3.connect(journal)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with start_mock(journal=journal) as again:
        rows = again.requests(idempotencyKey=key)
        assert [(r["id"], r["status"]) for r in rows] == [(request_id, 200)]
        assert [e["outcome"] for e in rows[0]["events"]] == ["accepted", "accepted"]
        retry = requests.post(f"{again.url}/v1/events", data=body, headers=headers, timeout=10)
        assert error_of(retry) == (409, "IdempotencyKeyReused")  # token and key both survived


def test_ctrl_c_to_the_process_group_stops_with_code_0(served: list[Served]) -> None:
    """A terminal's Ctrl-C signals the whole group: arbiter and workers at once."""
    server = Served("--port", "0", "--journal", ":memory:", "--workers", "1")
    served.append(server)
    assert ANNOUNCE.fullmatch(server.first_line())
    os.killpg(server.proc.pid, signal.SIGINT)
    assert server.wait() == 0
    assert "rokt-mock stopped" in "".join(server.stderr)


# -- precedence: defaults < config file < environment < flags --------------------------------

CONFIG = """
token_ttl = 111

[[apps]]
id = "cfg-app"
secret = "cfg-secret"
accounts = ["acct-cfg"]

[[keys]]
public = "rpub-cfg"
secret = "rsec-cfg"
accounts = ["acct-cfg"]
"""

LAYERS = {
    "defaults": (
        3600,
        ("demo-app-id", "demo-app-secret", ACCOUNT),
        ("rpub-demo-0001", "rsec-demo-0001", ACCOUNT),
    ),
    "config": (111, ("cfg-app", "cfg-secret", "acct-cfg"), ("rpub-cfg", "rsec-cfg", "acct-cfg")),
    "env": (222, ("env-app", "env-secret", "acct-env"), ("rpub-env", "rsec-env", "acct-env")),
    "flags": (
        333,
        ("flag-app", "flag-secret", "acct-flag"),
        ("rpub-flag", "rsec-flag", "acct-flag"),
    ),
}


def token_of(mock: MockServer, app_id: str, secret: str) -> requests.Response:
    return one_shot(mock).token_response(user=app_id, password=secret)


def v1_with(mock: MockServer, app: tuple[str, str, str]) -> requests.Response:
    client = one_shot(mock)
    response = client.token_response(user=app[0], password=app[1])
    assert response.status_code == 200, response.text
    client._token = response.json()["access_token"]
    return client.v1({"accountId": app[2], "events": make_body(1)["events"]})


def v2_with(
    mock: MockServer, key: tuple[str, str, str], account: str | None = None
) -> requests.Response:
    return one_shot(mock).v2(
        {"accountId": account or key[2], "events": make_body(1)["events"]},
        headers={"Authorization": basic(key[0], key[1])},
    )


@pytest.mark.parametrize("top", list(LAYERS))
def test_settings_precedence(tmp_path: Path, top: str) -> None:
    order = list(LAYERS)
    used = order[: order.index(top) + 1]
    args: list[str] = []
    env: dict[str, str] = {}
    if "config" in used:
        config = tmp_path / "rokt-mock.toml"
        config.write_text(CONFIG, encoding="utf-8")
        args += ["--config", str(config)]
    if "env" in used:
        env.update(
            ROKT_MOCK_TOKEN_TTL="222",
            ROKT_MOCK_APPS="env-app:env-secret:acct-env",
            ROKT_MOCK_KEYS="rpub-env:rsec-env:acct-env",
        )
    if "flags" in used:
        args += ["--token-ttl", "333", "--app", "flag-app:flag-secret:acct-flag"]
        args += ["--key", "rpub-flag:rsec-flag:acct-flag"]
    ttl, app, key = LAYERS[top]
    with start_mock(*args, env=env) as mock:
        token = token_of(mock, app[0], app[1])
        assert token.status_code == 200, token.text
        assert token.json()["expires_in"] == ttl
        assert v1_with(mock, app).status_code == 200
        assert v2_with(mock, key).status_code == 200
        # the credential is bound to its own account only
        assert error_of(v2_with(mock, key, account="9999999999")) == (403, "Forbidden")
        for layer in order:
            if layer == top:
                continue
            _, lost_app, lost_key = LAYERS[layer]
            assert token_of(mock, lost_app[0], lost_app[1]).status_code == 401, layer
            assert error_of(v2_with(mock, lost_key)) == (401, "UnauthorizedError"), layer


def test_config_file_from_the_environment_and_dashed_keys(tmp_path: Path) -> None:
    config = tmp_path / "mock.toml"
    config.write_text("token-ttl = 444\n", encoding="utf-8")
    with start_mock(env={"ROKT_MOCK_CONFIG": str(config)}) as mock:
        assert token_of(mock, "demo-app-id", "demo-app-secret").json()["expires_in"] == 444


def test_several_credentials_from_flags(tmp_path: Path) -> None:
    args = ["--app", "a1:s1:acc1,acc2", "--app", "a2:s2", "--key", "rpub-1:rsec-1"]
    with start_mock(*args) as mock:
        assert v1_with(mock, ("a1", "s1", "acc2")).status_code == 200
        assert v1_with(mock, ("a2", "s2", ACCOUNT)).status_code == 200  # demo account default
        assert v2_with(mock, ("rpub-1", "rsec-1", ACCOUNT)).status_code == 200


# -- configuration errors stop the start ----------------------------------------------------


@pytest.mark.parametrize(
    ("case", "culprits"),
    [
        ("toml-unknown-key", ["bogus_setting", "rokt-mock.toml"]),
        ("toml-wrong-type", ["token_ttl", "rokt-mock.toml"]),
        ("env-port", ["ROKT_MOCK_PORT", "abc"]),
        ("env-bool", ["ROKT_MOCK_STRICT", "maybe"]),
        ("flag-invalid-events", ["invalid", "maybe"]),
        ("flag-bad-app", ["only-an-id"]),
        ("workers-memory", ["--workers", ":memory:"]),
        ("missing-config", ["nowhere.toml"]),
    ],
)
def test_bad_configuration_exits_2(tmp_path: Path, case: str, culprits: list[str]) -> None:
    port = free_port()
    args = ["serve", "--port", str(port), "--journal", str(tmp_path / "j.sqlite3")]
    env = clean_env()
    config = tmp_path / "rokt-mock.toml"
    if case == "toml-unknown-key":
        config.write_text("token_ttl = 5\nbogus_setting = 1\n", encoding="utf-8")
        args += ["--config", str(config)]
    elif case == "toml-wrong-type":
        config.write_text('token_ttl = "soon"\n', encoding="utf-8")
        args += ["--config", str(config)]
    elif case == "env-port":
        env["ROKT_MOCK_PORT"] = "abc"
        args = ["serve", "--journal", str(tmp_path / "j.sqlite3")]
    elif case == "env-bool":
        env["ROKT_MOCK_STRICT"] = "maybe"
    elif case == "flag-invalid-events":
        args += ["--invalid-events", "maybe"]
    elif case == "flag-bad-app":
        args += ["--app", "only-an-id"]
    elif case == "workers-memory":
        args = ["serve", "--port", str(port), "--workers", "2", "--journal", ":memory:"]
    elif case == "missing-config":
        args += ["--config", str(tmp_path / "nowhere.toml")]
    result = cli(*args, env=env, cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "listening" not in result.stdout
    for culprit in culprits:
        assert culprit in result.stderr, (culprit, result.stderr)
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0  # nothing listening
    assert not (tmp_path / ".rokt-mock").exists()


@pytest.mark.parametrize(
    ("broken", "hint"),
    [
        ('{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": 5}', "JSON Schema"),
        ('{"type": "object", ', "JSON"),
    ],
    ids=["invalid-schema", "invalid-json"],
)
def test_broken_schema_stops_the_start(tmp_path: Path, broken: str, hint: str) -> None:
    schemas = tmp_path / "schemas"
    shutil.copytree(ROOT / "schemas", schemas)
    (schemas / "events.schema.json").write_text(broken, encoding="utf-8")
    port = free_port()
    result = cli(
        "serve", "--port", str(port), "--journal", ":memory:", "--schema-dir", str(schemas)
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "listening" not in result.stdout
    assert "events.schema.json" in result.stderr
    assert hint in result.stderr
    assert "Traceback" not in result.stderr
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_copied_schemas_start_fine(tmp_path: Path) -> None:
    """The control for the test above: an intact copy of the folder serves."""
    schemas = tmp_path / "schemas"
    shutil.copytree(ROOT / "schemas", schemas)
    with start_mock("--schema-dir", str(schemas)) as mock:
        assert one_shot(mock).v2().status_code == 200


# -- validate -------------------------------------------------------------------------------


def test_fixture_folders_are_not_empty() -> None:
    assert VALID
    assert INVALID


def test_validate_accepts_every_valid_fixture() -> None:
    result = cli("validate", "--now", FIXTURE_EPOCH, *map(str, VALID))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if not line.startswith(" ")]
    assert len(lines) == len(VALID)
    assert all(": ok (" in line for line in lines), result.stdout


def test_validate_strict_accepts_every_valid_fixture() -> None:
    result = cli("validate", "--strict", "--now", FIXTURE_EPOCH, *map(str, VALID))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_validate_rejects_each_invalid_fixture(path: Path) -> None:
    result = cli("validate", "--now", FIXTURE_EPOCH, str(path))
    assert result.returncode == 1, result.stdout + result.stderr
    rule = path.stem
    output = result.stdout.replace(str(path), "")
    assert re.search(rf"(^|\s){re.escape(rule)}(\s|$)", output), result.stdout


def test_validate_json_output() -> None:
    files = [*VALID, *INVALID]
    result = cli("validate", "--json", "--now", FIXTURE_EPOCH, *map(str, files))
    assert result.returncode == 1
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["file"]) for r in reports] == files
    for report in reports:
        name = Path(report["file"])
        assert report["ok"] is (name in VALID), report
        assert isinstance(report["status"], int)
        if name in INVALID:
            assert name.stem in {v["rule"] for v in report["violations"]}, report
            assert all({"pointer", "rule", "message"} <= set(v) for v in report["violations"])
        else:
            assert (report["status"], report["violations"]) == (200, [])


def test_validate_strict_turns_a_warning_into_a_failure(tmp_path: Path) -> None:
    doc = json.loads((FIXTURES / "payloads" / "valid" / "conversion-purchase.json").read_text())
    for event in doc["events"]:
        event["objectData"] = [a for a in event["objectData"] if a["name"] != "conversiontype"]
    path = tmp_path / "no-conversiontype.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    lenient = cli("validate", "--now", FIXTURE_EPOCH, str(path))
    assert lenient.returncode == 0, lenient.stdout
    assert "warning" in lenient.stdout
    assert "conversion.conversiontype" in lenient.stdout
    strict = cli("validate", "--strict", "--now", FIXTURE_EPOCH, str(path))
    assert strict.returncode == 1, strict.stdout
    assert "conversion.conversiontype" in strict.stdout
    as_json = json.loads(cli("validate", "--json", "--now", FIXTURE_EPOCH, str(path)).stdout)
    assert as_json["ok"] is True
    assert [w["rule"] for w in as_json["warnings"]] == ["conversion.conversiontype"]


def test_validate_judges_time_against_now(tmp_path: Path) -> None:
    valid = str(FIXTURES / "payloads" / "valid" / "conversion-purchase.json")
    far = cli("validate", "--now", "2035-01-01T00:00:00Z", valid)
    assert far.returncode == 1
    assert "eventTime.too_old" in far.stdout


def test_validate_usage_errors_exit_2(tmp_path: Path) -> None:
    valid = str(VALID[0])
    assert cli("validate", "--now", "tomorrow", valid).returncode == 2
    missing = cli("validate", str(tmp_path / "missing.json"))
    assert missing.returncode == 2  # a usage error; 1 means "not accepted"
    assert "missing.json" in missing.stderr
    assert cli("validate").returncode == 2


# -- journal commands -----------------------------------------------------------------------


@pytest.fixture
def busy_mock(mock: MockServer) -> MockServer:
    client = Client(mock)
    assert client.v1(make_body(2)).status_code == 200
    assert client.v1(headers={"Authorization": None}).status_code == 401
    assert client.v2({"accountId": ACCOUNT, "events": []}).status_code == 400
    return mock


def test_journal_summary(busy_mock: MockServer) -> None:
    result = cli("journal", "summary", "--url", busy_mock.url)
    assert result.returncode == 0, result.stderr
    assert "namespace default: 4 request(s)" in result.stdout
    assert "UnauthorizedError: 1" in result.stdout
    assert "2 accepted" in result.stdout
    raw = cli("journal", "summary", "--url", busy_mock.url, "--json")
    assert raw.returncode == 0
    assert json.loads(raw.stdout) == busy_mock.summary()


def test_journal_export_to_a_file(busy_mock: MockServer, tmp_path: Path) -> None:
    out = tmp_path / "journal.jsonl"
    result = cli("journal", "export", "--url", busy_mock.url, "-o", str(out))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows == list(reversed(busy_mock.requests()))
    to_stdout = cli("journal", "export", "--url", busy_mock.url)
    assert to_stdout.stdout == out.read_text(encoding="utf-8")


def test_journal_url_from_the_environment(busy_mock: MockServer) -> None:
    result = cli("journal", "summary", "--json", env=clean_env(ROKT_MOCK_URL=busy_mock.url))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["requests"]["total"] == 4


@pytest.mark.parametrize("command", ["summary", "export"])
def test_journal_unreachable_url_exits_1(command: str, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = cli("journal", command, "--url", url, cwd=tmp_path)
    assert result.returncode == 1
    assert "cannot reach the mock" in result.stderr
    assert url in result.stderr
    assert "Traceback" not in result.stderr


# -- several workers ------------------------------------------------------------------------


def test_two_workers_share_the_journal(tmp_path: Path) -> None:
    with start_mock("--workers", "2", tmp_path=tmp_path) as mock:
        token = one_shot(mock).token()
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Charset": "utf-8",
            "Connection": "close",
        }

        def post(key: str, body: str) -> requests.Response:
            # a fresh connection each time, so the kernel spreads them over both workers
            return requests.post(
                f"{mock.url}/v1/events",
                data=body,
                headers={**headers, "Idempotency-Key": key},
                timeout=30,
            )

        sent = [post(str(uuid.uuid4()), json.dumps(make_body())) for _ in range(20)]
        assert [r.status_code for r in sent] == [200] * 20
        ids = {int(r.headers["X-Rokt-Mock-Request-Id"]) for r in sent}
        assert len(ids) == 20
        listed = {r["id"] for r in mock.requests(endpoint="/v1/events", limit=100)}
        assert listed == ids

        for _ in range(5):
            key, body = str(uuid.uuid4()), json.dumps(make_body())
            pair = [post(key, body), post(key, body)]
            assert sorted(r.status_code for r in pair) == [200, 409]
        assert mock.summary()["requests"]["byStatus"] == {"200": 26, "409": 5}
