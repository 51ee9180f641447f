"""Secrets and exposure, end to end on real servers.

The grep test sends the demo credentials every way a sender might leak them (Authorization
headers good and bad, form bodies, query strings, custom headers, cookies, the admin token sent
to the wrong place), then searches *every* output the mock has for the secrets, the access
tokens it issued and the admin token: the stderr log (json and text, at debug), every admin
read, the dashboard's reads, the journal's SQLite files byte by byte, the journal commands, and
a contract-kit failure file. The journal also keeps the token-signing key; the needles are the
secrets and tokens, never that key. Also here: request size limits and safe parsing of scenario
and config files.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from contract_tests.judge import judge
from contract_tests.kit import write_failure
from contract_tests.model import Case
from contract_tests.runner import Mock, run_case
from tests.conftest import ACCOUNT, APP_ID, APP_SECRET, RPUB, RSEC, basic, make_body, start_mock
from tests.mockserver.test_cli import ANNOUNCE, clean_env, cli, free_port, wait_healthy

ADMIN = "adm-Zq81-token-9c4e"
#: A second app whose secret needs percent-encoding in a URL.
ODD_ID, ODD_SECRET = "odd-app", "Sp3c+al/s3cr=t&x"
JSON_HEADERS = {"Content-Type": "application/json", "Charset": "utf-8"}
FORM = "application/x-www-form-urlencoded"


class Server:
    """``rokt-mock serve`` on a journal file, stderr going straight to a file."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.journal = tmp_path / "journal" / "journal.sqlite3"
        self.log = tmp_path / "stderr.log"
        self._err = self.log.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mockserver",
                "serve",
                "--port",
                "0",
                "--journal",
                str(self.journal),
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=self._err,
            stdin=subprocess.DEVNULL,
            env=clean_env(ROKT_MOCK_ADMIN_TOKEN=ADMIN),
            cwd=tmp_path,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = ANNOUNCE.fullmatch(line.strip())
        assert match, (line, self.log.read_text(errors="replace"))
        self.url = f"http://127.0.0.1:{match.group(1)}"
        wait_healthy(self.url)

    def admin(self, path: str, **params: str) -> requests.Response:
        response = requests.get(
            f"{self.url}/__admin/{path}",
            params=params,
            headers={"X-Rokt-Mock-Admin-Token": ADMIN, "Connection": "close"},
            timeout=30,
        )
        return response

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self._err.close()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
        server.stop()


def post(url: str, path: str, data: Any = None, **headers: str) -> requests.Response:
    return requests.post(
        f"{url}{path}", data=data, headers={"Connection": "close", **headers}, timeout=30
    )


def leak_everything(url: str) -> list[str]:
    """Every way a careless sender hands the mock a credential; returns the tokens issued."""
    tokens = []
    form = "grant_type=client_credentials"
    good = post(
        url,
        "/auth/oauth2/token",
        form,
        **{"Content-Type": FORM},
        Authorization=basic(APP_ID, APP_SECRET),
    )
    assert good.status_code == 200, good.text
    tokens.append(good.json()["access_token"])
    odd = post(
        url,
        "/auth/oauth2/token",
        form,
        **{"Content-Type": FORM},
        Authorization=basic(ODD_ID, ODD_SECRET),
    )
    assert odd.status_code == 200, odd.text
    tokens.append(odd.json()["access_token"])
    # client credentials in the form body, in the query, in both, in a namespace
    body = f"{form}&client_id={APP_ID}&client_secret={APP_SECRET}"
    assert post(url, "/auth/oauth2/token", body, **{"Content-Type": FORM}).status_code == 401
    query = f"?client_id={APP_ID}&client_secret={APP_SECRET}&app_secret={quote(ODD_SECRET)}"
    assert (
        post(url, f"/auth/oauth2/token{query}", form, **{"Content-Type": FORM}).status_code == 401
    )
    ns = post(
        url,
        f"/ns/leaky/auth/oauth2/token?password={APP_SECRET}",
        form,
        **{"Content-Type": FORM},
        Authorization=basic(APP_ID, APP_SECRET),
    )
    assert ns.status_code == 200
    tokens.append(ns.json()["access_token"])
    # wrong secrets and broken Authorization headers that still carry the real ones
    for header in (
        basic(APP_ID, APP_SECRET + "-typo"),
        f"Basic {APP_ID}:{APP_SECRET}",
        APP_SECRET,
        f"Bearer {APP_SECRET}",
        f"Token {RSEC}",
    ):
        assert (
            post(
                url, "/auth/oauth2/token", form, **{"Content-Type": FORM}, Authorization=header
            ).status_code
            == 401
        )
    events = json.dumps(make_body(2))
    v1 = {**JSON_HEADERS, "Rokt-Version": "2020-05-21"}
    for token in tokens:
        ok = post(
            url,
            "/v1/events",
            events,
            **v1,
            Authorization=f"Bearer {token}",
            **{"Idempotency-Key": str(uuid.uuid4())},
        )
        assert ok.status_code == 200, ok.text
    token = tokens[0]
    # tokens and secrets in the URL, in custom headers and cookies
    leaky_paths = [
        f"/v1/events?access_token={token}",
        f"/v1/events?jwt={token}",
        f"/ns/leaky/v1/events?x={quote(ODD_SECRET, safe='')}&page=1",
        f"/v1/events?key={RSEC}&api_key={RSEC}&apiKey={APP_SECRET}",
    ]
    for path in leaky_paths:
        post(
            url,
            path,
            events,
            **v1,
            Authorization=f"Bearer {token}",
            **{"Idempotency-Key": str(uuid.uuid4())},
        )
    v2_headers = {
        **JSON_HEADERS,
        "X-Api-Key": RSEC,
        "X-Client-Secret": APP_SECRET,
        "X-Auth-Token": token,
        "Cookie": f"session={token}; secret={RSEC}",
    }
    assert (
        post(url, "/v2/events", events, **v2_headers, Authorization=basic(RPUB, RSEC)).status_code
        == 200
    )
    for header in (
        basic(RPUB, RSEC + "x"),
        f"Basic {RPUB}:{RSEC}",
        RSEC,
        f"Bearer {RSEC}",
        f"Bearer {token}",
    ):
        assert (
            post(url, "/v2/events", events, **JSON_HEADERS, Authorization=header).status_code == 401
        )
    assert (
        post(
            url,
            f"/v2/events?secret_key={RSEC}",
            events,
            **JSON_HEADERS,
            Authorization=basic(RPUB, RSEC),
        ).status_code
        == 200
    )
    # the admin token sent to the Event API instead of the admin API
    post(url, "/v2/events", events, **JSON_HEADERS, Authorization=f"Bearer {ADMIN}")
    post(url, "/v2/events", events, **JSON_HEADERS, **{"X-Rokt-Mock-Admin-Token": ADMIN})
    post(url, f"/nope?admin_token={ADMIN}")
    # and to the admin API, in every form, also where it does not belong
    for headers in ({"X-Rokt-Mock-Admin-Token": ADMIN}, {"Authorization": f"Bearer {ADMIN}"}):
        assert requests.get(f"{url}/__admin/summary", headers=headers, timeout=30).ok
    requests.get(f"{url}/__admin/requests?token={ADMIN}", timeout=30)
    requests.get(
        f"{url}/__admin/requests", headers={"X-Rokt-Mock-Admin-Token": ADMIN + "x"}, timeout=30
    )
    return tokens


def leaky_sender(env: dict[str, str]) -> int:
    """A kit sender (Python callable adapter) that puts its secret in the token URL."""
    base = env["ROKT_API_URL"]
    token = post(
        base,
        f"/auth/oauth2/token?client_secret={env['ROKT_APP_SECRET']}",
        "grant_type=client_credentials",
        **{"Content-Type": FORM},
        Authorization=basic(env["ROKT_APP_ID"], env["ROKT_APP_SECRET"]),
    ).json()["access_token"]
    events = [
        json.loads(line) for line in Path(env["ROKT_KIT_EVENTS_FILE"]).read_text().splitlines()
    ]
    post(
        base,
        "/v1/events",
        json.dumps({"accountId": env["ROKT_ACCOUNT_ID"], "events": events}),
        **JSON_HEADERS,
        Authorization=f"Bearer {token}",
        **{"Idempotency-Key": str(uuid.uuid4())},
    )
    return 0


def needles(tokens: list[str]) -> dict[str, bytes]:
    """What must appear nowhere: raw, percent-encoded and JSON-escaped where they differ."""
    found: dict[str, bytes] = {}
    for name, value in [
        ("app secret", APP_SECRET),
        ("key secret", RSEC),
        ("odd secret", ODD_SECRET),
        ("odd secret, encoded", quote(ODD_SECRET, safe="")),
        ("odd secret, encoded but /", quote(ODD_SECRET)),
        ("admin token", ADMIN),
    ]:
        found[name] = value.encode()
    for i, token in enumerate(tokens):
        found[f"token {i}"] = token.encode()
        found[f"token {i} signature"] = token.rsplit(".", 1)[1].encode()
    return found


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_no_output_holds_a_secret_or_a_token(
    servers: list[Server], tmp_path: Path, fmt: str
) -> None:
    server = Server(
        tmp_path,
        "--log-format",
        fmt,
        "--log-level",
        "debug",
        "--app",
        f"{APP_ID}:{APP_SECRET}",
        "--app",
        f"{ODD_ID}:{ODD_SECRET}",
    )
    servers.append(server)
    tokens = leak_everything(server.url)

    outputs: dict[str, bytes] = {}
    everywhere = {"namespace": "*"}
    for path, params in [
        ("requests", {**everywhere, "limit": "1000"}),
        ("events", everywhere),
        ("summary", everywhere),
        ("journal/export", everywhere),
        ("health", {}),
        ("clock", {}),
        ("faults", everywhere),
        ("dashboard/requests", everywhere),
        ("dashboard/funnel", everywhere),
        ("dashboard/namespaces", {}),
        ("", {}),  # the dashboard page itself
    ]:
        response = server.admin(path, **params)
        assert response.status_code == 200, (path, response.text[:300])
        outputs[f"GET /__admin/{path}"] = response.content
    rows = server.admin("requests", **everywhere, limit="1000").json()["requests"]
    assert len(rows) >= 27  # every API request above was journaled, none dropped

    env = clean_env(ROKT_MOCK_ADMIN_TOKEN=ADMIN)
    for command in (["export"], ["summary"], ["summary", "--json"]):
        result = cli("journal", *command, "--url", server.url, "--namespace", "*", env=env)
        assert result.returncode == 0, result.stderr
        outputs[f"rokt-mock journal {' '.join(command)}"] = (result.stdout + result.stderr).encode()

    # a contract-kit failure file, from a sender that leaks its secret in the token URL
    kit_mock = Mock(server.url, admin_token=ADMIN)
    case = Case(api="v1", events=make_body(1)["events"], seed=1, case_id="leaky")
    result = run_case(
        case,
        "python:tests.mockserver.test_secrets:leaky_sender",
        kit_mock,
        deadline_s=20,
        judge=judge,
    )
    kit_mock.close()
    assert "auth.no_secret_leak" in {f.property for f in result.judgement.failed}
    failure = write_failure(result, "python:leaky", 1, tmp_path / "failures")
    outputs["contract kit failure file"] = failure.read_bytes()

    server.stop()
    outputs["stderr log"] = server.log.read_bytes()
    journal_files = sorted(server.journal.parent.iterdir())
    assert server.journal in journal_files
    for path in journal_files:
        outputs[f"journal file {path.name}"] = path.read_bytes()
    assert len(outputs["stderr log"].splitlines()) > 50  # debug: there was plenty to leak into

    hits = []
    for where, data in outputs.items():
        for what, needle in needles(tokens).items():
            at = data.find(needle)
            if at >= 0:
                hits.append(f"{what} in {where}: ...{data[max(0, at - 80) : at + 40]!r}...")
    print(
        f"\n{fmt}: {len(outputs)} outputs checked for {len(needles(tokens))} needles "
        f"({sum(len(d) for d in outputs.values())} bytes): {len(hits)} hit(s)"
    )
    assert hits == [], "\n".join(hits)
    # the redaction left evidence: names and schemes stay, values go
    paths = [row["path"] for row in rows]
    assert "/v1/events?access_token=<redacted>" in paths
    assert "/v1/events?key=<redacted>&api_key=<redacted>&apiKey=<redacted>" in paths
    assert "/ns/leaky/v1/events?x=<redacted>&page=1" in paths
    assert any(row["headers"].get("Authorization") == "Bearer <redacted>" for row in rows)


def test_swapped_app_id_and_secret_stay_out_of_the_journal() -> None:
    with start_mock() as mock:
        response = post(
            mock.url,
            "/auth/oauth2/token",
            "grant_type=client_credentials",
            **{"Content-Type": FORM},
            Authorization=basic(APP_SECRET, APP_ID),
        )
        assert response.status_code == 401
        assert APP_SECRET not in json.dumps(mock.requests())


def test_json_credentials_posted_to_the_token_endpoint_stay_out_of_the_journal() -> None:
    with start_mock() as mock:
        body = json.dumps({"grant_type": "client_credentials", "client_secret": APP_SECRET})
        assert post(mock.url, "/auth/oauth2/token", body, **JSON_HEADERS).status_code == 400
        assert APP_SECRET not in json.dumps(mock.requests())


# -- request size limits ------------------------------------------------------------------------
# (a Content-Length over the limit on POST events: tests/mockserver/test_bad_input.py)


@pytest.fixture(scope="module")
def small() -> Iterator[Any]:
    server = start_mock("--max-body-bytes", "2000")
    yield server
    server.stop()


def test_admin_bodies_over_the_limit_get_413(small: Any) -> None:
    response = small.admin("POST", "faults", json={"status": 503, "pad": "x" * 5000})
    assert response.status_code == 413
    assert response.json()["data"]["code"] == "RequestEntityTooLarge"
    assert small.admin("GET", "faults").json()["rules"] == []


def test_token_form_over_the_limit_is_refused_unread(small: Any) -> None:
    form = "grant_type=client_credentials&pad=" + "x" * 5000
    response = post(
        small.url,
        "/auth/oauth2/token",
        form,
        **{"Content-Type": FORM},
        Authorization=basic(APP_ID, APP_SECRET),
    )
    assert response.status_code in (400, 413), response.text
    assert "access_token" not in response.text
    row = small.requests(endpoint="/auth/oauth2/token")[0]
    assert row["body"] is None
    assert row["bodySize"] > 2000


def test_chunked_events_body_over_the_limit_gets_413(small: Any) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"accountId": "' + ACCOUNT.encode() + b'", "events": ['
        for _ in range(50):
            yield b'{"pad": "' + b"x" * 100 + b'"},'
        yield b"{}]}"

    response = requests.post(
        f"{small.url}/v2/events",
        data=chunks(),
        headers={**JSON_HEADERS, "Authorization": basic(RPUB, RSEC)},
        timeout=30,
    )
    assert response.status_code == 413, response.text[:300]


@pytest.mark.parametrize(
    ("headers", "path", "status", "code"),
    [
        ({}, "/v2/events?q=" + "a" * 9000, 414, "URITooLong"),
        ({f"X-H{i}": "v" for i in range(250)}, "/v2/events", 431, "RequestHeaderFieldsTooLarge"),
        ({"X-Big": "v" * 20000}, "/v2/events", 431, "RequestHeaderFieldsTooLarge"),
    ],
    ids=["request-line", "header-count", "header-size"],
)
def test_request_line_and_header_limits_answer_json(
    small: Any, headers: dict[str, str], path: str, status: int, code: str
) -> None:
    response = requests.post(f"{small.url}{path}", data=b"{}", headers=headers, timeout=30)
    assert response.status_code == status
    assert response.json()["data"]["code"] == code
    assert requests.get(f"{small.url}/__admin/health", timeout=30).ok


# -- safe parsing -------------------------------------------------------------------------------

EVIL_YAML = """\
description: looks like a scenario
rules:
  - fault: !!python/object/apply:os.system ["touch {marker}"]
"""


@pytest.mark.parametrize(
    "tag",
    [
        "!!python/object/apply:os.system",
        "!!python/object/new:os.system",
        "!!python/name:os.system",
    ],
)
def test_yaml_scenario_with_python_tags_is_refused_and_runs_nothing(
    tmp_path: Path, tag: str
) -> None:
    marker = tmp_path / "pwned"
    scenario = tmp_path / "evil.yaml"
    scenario.write_text(
        EVIL_YAML.replace("!!python/object/apply:os.system", tag).format(marker=marker),
        encoding="utf-8",
    )
    port = free_port()
    result = cli(
        "serve",
        "--port",
        str(port),
        "--journal",
        ":memory:",
        "--scenario",
        str(scenario),
        cwd=tmp_path,
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "evil.yaml" in result.stderr
    assert "not valid YAML" in result.stderr
    assert "Traceback" not in result.stderr
    assert not marker.exists()


def test_admin_api_scenarios_are_parsed_safely_and_read_no_other_file(tmp_path: Path) -> None:
    """``{"scenario": ...}`` names a bundled scenario only: no file the caller names is read,
    so none is executed (YAML tags) or quoted back in an error (``/etc/passwd``, a ``.env``)."""
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.yaml"
    evil.write_text(EVIL_YAML.format(marker=marker), encoding="utf-8")
    private = tmp_path / ".env"
    private.write_text(f"DB_PASSWORD={APP_SECRET}\n", encoding="utf-8")
    with start_mock() as mock:
        for path in (evil, private, Path("/etc/passwd")):
            response = mock.admin("POST", "faults", json={"scenario": str(path)})
            assert response.status_code == 400
            data = response.json()["data"]
            assert "is not a bundled scenario" in data["message"]
            assert data["details"]["violations"][0]["pointer"] == "/scenario"
            assert APP_SECRET not in response.text
            assert "root:" not in response.text
            assert "python/object" not in response.text
        assert mock.admin("GET", "faults").json()["rules"] == []
        # a bundled name still works
        assert mock.admin("POST", "faults", json={"scenario": "flaky-5xx"}).status_code == 201
    assert not marker.exists()


def test_toml_config_is_data_only(tmp_path: Path) -> None:
    """TOML has no tags or code: a value that looks like code is just a (wrong) string."""
    marker = tmp_path / "pwned"
    config = tmp_path / "rokt-mock.toml"
    config.write_text(
        f"token_ttl = \"__import__('os').system('touch {marker}')\"\n", encoding="utf-8"
    )
    result = cli("serve", "--config", str(config), "--journal", ":memory:", cwd=tmp_path)
    assert result.returncode == 2
    assert "token_ttl" in result.stderr
    assert not marker.exists()
    config.write_text(f"[python]\nexec = 'touch {marker}'\n", encoding="utf-8")
    result = cli("serve", "--config", str(config), "--journal", ":memory:", cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown setting 'python'" in result.stderr
    assert not marker.exists()
