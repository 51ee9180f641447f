"""Logs on real servers: ``--log-format json`` gives one JSON object per stderr line and one
request line per API request with its fields; text lines carry the same fields; the level
silences request lines (info) and admin lines (debug)."""

from __future__ import annotations

import json
import re
import signal
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from contract_tests.mock import MockServer
from tests.conftest import Client, make_body
from tests.mockserver.test_cli import ANNOUNCE, Served, wait_healthy

FIELDS = {
    "time",
    "level",
    "logger",
    "pid",
    "message",
    "namespace",
    "method",
    "path",
    "status",
    "code",
    "fault",
    "latency_ms",
    "request_id",
    "events",
}
TEXT_LINE = re.compile(
    r"(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (?P<level>[A-Z]+) \[(?P<pid>\d+)\] "
    r"(?P<logger>[\w.]+): (?P<rest>.*)"
)


class Logged:
    """``rokt-mock serve`` with its stderr kept apart; ``stop()`` returns every stderr line."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.server = Served("--port", "0", "--journal", ":memory:", *args, cwd=tmp_path)
        match = ANNOUNCE.fullmatch(self.server.first_line())
        assert match, self.server.stderr
        self.url = f"http://127.0.0.1:{match.group(1)}"
        wait_healthy(self.url)
        self.mock = _Handle(self.url)

    def stop(self) -> list[str]:
        self.mock.close()
        self.server.proc.send_signal(signal.SIGTERM)
        assert self.server.wait() == 0
        return "".join(self.server.stderr).splitlines()


class _Handle(MockServer):
    """Just enough of MockServer for :class:`Client` (it only reads ``url``)."""

    def __init__(self, url: str) -> None:  # no process of its own
        self.url = url
        self.session = requests.Session()

    def close(self) -> None:
        self.session.close()


@pytest.fixture
def logged(tmp_path: Path) -> Iterator[list[Logged]]:
    started: list[Logged] = []
    yield started
    for item in started:
        item.server.kill()


def traffic(url: str) -> dict[str, dict[str, Any]]:
    """A bit of everything; returns what each request's log line must say, by request id."""
    mock = _Handle(url)
    client = Client(mock)
    client.http.headers["Connection"] = "close"  # no idle connection delays the stop
    expected: dict[str, dict[str, Any]] = {}

    def note(response: requests.Response, **fields: Any) -> None:
        expected[response.headers["X-Rokt-Mock-Request-Id"]] = fields

    token = client.token_response()
    note(token, method="POST", path="/auth/oauth2/token", status=200)
    client._token = token.json()["access_token"]
    note(client.v1(make_body(2)), path="/v1/events", status=200, events=2, code=None)
    note(
        client.v2(headers={"Authorization": None}),
        path="/v2/events",
        status=401,
        code="UnauthorizedError",
    )
    note(
        client.v2(make_body(3), headers={"X-Rokt-Mock-Fault": "status=503"}),
        status=503,
        code="ServiceUnavailableError",
        fault="status",
    )
    delayed = client.v2(headers={"X-Rokt-Mock-Fault": "delay=0.25"})
    note(delayed, status=200, fault="delay", latency_at_least=250)
    ns = Client(mock, namespace="ci-7")
    ns.http.headers["Connection"] = "close"  # v2 only: no token request of its own
    note(ns.v2(), namespace="ci-7", path="/ns/ci-7/v2/events", status=200, events=1)
    note(
        requests.get(f"{url}/nope?page=2", timeout=30, headers={"Connection": "close"}),
        path="/nope?page=2",
        status=404,
        code="NotFound",
        method="GET",
    )
    with pytest.raises(requests.ConnectionError):
        client.v2(headers={"X-Rokt-Mock-Fault": "reset"})
    admin = requests.get(f"{url}/__admin/summary", timeout=30, headers={"Connection": "close"})
    assert admin.status_code == 200
    mock.close()
    return expected


def check_line(line: dict[str, Any], want: dict[str, Any]) -> None:
    want = dict(want)
    at_least = want.pop("latency_at_least", 0)
    want.setdefault("namespace", "default")
    want.setdefault("method", "POST")
    for key, value in want.items():
        assert line[key] == value, (key, line)
    assert isinstance(line["latency_ms"], float)
    assert line["latency_ms"] >= at_least


def test_json_lines_one_per_request_with_every_field(logged: list[Logged], tmp_path: Path) -> None:
    server = Logged(tmp_path, "--log-format", "json")
    logged.append(server)
    expected = traffic(server.url)
    arbiter = server.server.proc.pid
    lines = server.stop()

    parsed = [json.loads(line) for line in lines]  # every stderr line is one JSON object
    assert all(isinstance(p, dict) for p in parsed)
    for entry in parsed:
        datetime.strptime(entry["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
        assert entry["level"] in ("debug", "info", "warning", "error")
    requests_logged = [p for p in parsed if p["logger"] == "rokt_mock.request"]
    assert all(set(p) == FIELDS for p in requests_logged), requests_logged[0]
    by_id = {str(p["request_id"]): p for p in requests_logged if p["request_id"] is not None}
    assert len(by_id) == len([p for p in requests_logged if p["request_id"] is not None])
    for request_id, want in expected.items():
        check_line(by_id[request_id], want)
    # the reset: answered with no response at all, still one line, status 0
    resets = [p for p in requests_logged if p["fault"] == "reset"]
    assert [(p["status"], p["code"]) for p in resets] == [(0, "ConnectionReset")]
    # one line per API request (the reset included), none for the admin API at info
    assert len(requests_logged) == len(expected) + 1
    assert not [p for p in requests_logged if p["path"].startswith("/__admin")]
    assert {p["level"] for p in requests_logged} == {"info"}
    assert {p["pid"] for p in requests_logged} != {arbiter}  # a worker wrote them
    assert parsed[-1]["message"] == "rokt-mock stopped"


def test_json_debug_logs_admin_calls_and_gunicorn_as_json(
    logged: list[Logged], tmp_path: Path
) -> None:
    server = Logged(tmp_path, "--log-format", "json", "--log-level", "debug")
    logged.append(server)
    response = requests.get(
        f"{server.url}/__admin/requests",
        params={"namespace": "ci-9", "idempotencyKey": "k"},
        headers={"Connection": "close"},
        timeout=30,
    )
    assert response.status_code == 200
    parsed = [json.loads(line) for line in server.stop()]
    admin = [
        p
        for p in parsed
        if p["logger"] == "rokt_mock.request" and p["path"].startswith("/__admin/requests")
    ]
    assert len(admin) == 1
    assert admin[0]["level"] == "debug"
    assert admin[0]["namespace"] == "ci-9"
    assert admin[0]["status"] == 200
    assert admin[0]["request_id"] is None  # the admin API is not journaled
    assert any(p["logger"].startswith("gunicorn") for p in parsed)


def test_text_lines_carry_the_same_fields(logged: list[Logged], tmp_path: Path) -> None:
    server = Logged(tmp_path)  # the default: text, info
    logged.append(server)
    expected = traffic(server.url)
    lines = server.stop()
    request_lines = {}
    for line in lines:
        match = TEXT_LINE.fullmatch(line)
        if match and match["logger"] == "rokt_mock.request":
            fields = dict(re.findall(r" (\w+)=(\S+)", " " + match["rest"]))
            method, path, status = match["rest"].split(" ", 3)[:3]
            request_lines[fields["request_id"]] = {
                **fields,
                "method": method,
                "path": path,
                "status": int(status),
                "level": match["level"],
            }
    for request_id, want in expected.items():
        line = request_lines[request_id]
        assert line["level"] == "INFO"
        assert line["status"] == want["status"]
        assert line["namespace"] == want.get("namespace", "default")
        assert line["code"] == (want.get("code") or "-")
        assert line["fault"] == (want.get("fault") or "-")
        assert float(line["latency_ms"]) >= want.get("latency_at_least", 0)
        if "events" in want:
            assert line["events"] == str(want["events"])
    assert set(request_lines) >= set(expected)
    assert lines[-1] == "rokt-mock stopped"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_warning_level_silences_request_lines(
    logged: list[Logged], tmp_path: Path, fmt: str
) -> None:
    server = Logged(tmp_path, "--log-level", "warning", "--log-format", fmt)
    logged.append(server)
    traffic(server.url)
    lines = server.stop()
    assert not [line for line in lines if "rokt_mock.request" in line], lines
    assert not [line for line in lines if "/v1/events" in line]


def test_log_settings_from_the_environment(tmp_path: Path) -> None:
    """ROKT_MOCK_LOG_FORMAT / ROKT_MOCK_LOG_LEVEL, through the kit's MockServer (stdout and
    stderr merged: the announce line is the only line that is not JSON)."""
    env = {"ROKT_MOCK_LOG_FORMAT": "json", "ROKT_MOCK_LOG_LEVEL": "info"}
    with MockServer(journal=":memory:", env=env) as mock:
        key = str(uuid.uuid4())
        client = Client(mock)
        client.http.headers["Connection"] = "close"
        assert client.v1(key=key).status_code == 200
    lines = [line for line in mock.output if not line.startswith("rokt-mock listening on ")]
    parsed = [json.loads(line) for line in lines]
    assert [p["path"] for p in parsed if p["logger"] == "rokt_mock.request"] == [
        "/auth/oauth2/token",
        "/v1/events",
    ]


@pytest.mark.parametrize(
    ("args", "culprit"),
    [(["--log-format", "yaml"], "log_format"), (["--log-level", "loud"], "log_level")],
)
def test_bad_log_settings_exit_2(tmp_path: Path, args: list[str], culprit: str) -> None:
    from tests.mockserver.test_cli import cli

    result = cli("serve", "--port", "0", "--journal", ":memory:", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert culprit in result.stderr
