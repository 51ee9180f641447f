"""The built wheel carries schemas/ and works from outside the checkout, installed on its own.

The wheel is built once per module; the fresh-venv test installs it the way a partner's CI does
(`pip install rokt_mock-*.whl`, dependencies from the index, pip's cache reused) and runs
`rokt-mock serve` and `rokt-mock contract doctor` from that venv, in a folder outside the
checkout, so nothing of the checkout can be imported by accident.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import pytest
import requests

from contract_tests.mock import ANNOUNCE, MockServer
from tests.conftest import APP_ID, APP_SECRET, FIXTURES, ROOT, make_body


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        check=True,
        timeout=300,
    )
    (built,) = out.glob("rokt_mock-*.whl")
    return built


def test_wheel_contents(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for schema in (ROOT / "schemas").iterdir():
        assert f"mockserver/_schemas/{schema.name}" in names
    assert "mockserver/py.typed" in names
    assert "contract_tests/mock.py" in names
    assert (
        "rokt_mock_plugin.py" in names
    )  # top level, so a partner's contract_tests can't shadow it
    assert not any(name.startswith(("tests/", "fixtures/")) for name in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    declared = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "rokt-mock = mockserver.cli:main" in declared
    assert "rokt_mock = rokt_mock_plugin" in declared


def test_installed_wheel_serves_from_outside_the_checkout(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "-t",
            str(target),
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROKT_MOCK_")}
    env["PYTHONPATH"] = str(target)
    where = subprocess.run(
        [sys.executable, "-c", "import mockserver.schemas as s; print(s.schema_dir())"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert where == str(target / "mockserver" / "_schemas")
    server = MockServer(
        journal=tmp_path / "j.sqlite3", env={"PYTHONPATH": str(target)}, cwd=tmp_path
    )
    try:
        health = requests.get(f"{server.url}/__admin/health", timeout=10).json()
        assert health["schemaVersion"]
        assert requests.get(f"{server.url}/openapi.json", timeout=10).json()["openapi"] == "3.1.0"
    finally:
        assert server.stop() == 0


def _outside_env() -> dict[str, str]:
    """The environment without anything that could point back into the checkout or its venv."""
    drop = ("ROKT_MOCK_", "PYTHON", "VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


@pytest.fixture(scope="module")
def fresh_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment, outside the checkout, with only the wheel (and its
    dependencies from the index) installed."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    assert ROOT not in venv.parents
    env = _outside_env()
    subprocess.run(
        [sys.executable, "-m", "venv", str(venv)], check=True, timeout=120, cwd=venv.parent
    )
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
        check=True,
        timeout=300,
        cwd=venv.parent,
        env=env,
    )
    return venv


def test_fresh_venv_from_the_wheel_serves_and_runs_the_kit(
    fresh_venv: Path, tmp_path: Path
) -> None:
    bin_dir = fresh_venv / "bin"
    env = _outside_env()
    where = subprocess.run(
        [
            str(bin_dir / "python"),
            "-c",
            "import mockserver, contract_tests; print(mockserver.__file__)",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(fresh_venv), where  # not the checkout's copy

    # rokt-mock serve, from the venv's console script, with its default journal location.
    server = subprocess.Popen(
        [str(bin_dir / "rokt-mock"), "serve", "--port", "0"],
        cwd=tmp_path,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # the one line it prints when it listens
        assert line.startswith(ANNOUNCE), (line, server.stderr and server.stderr.read())
        url = line[len(ANNOUNCE) :].strip()
        deadline = time.monotonic() + 30
        while True:  # poll the health probe until it answers 200
            try:
                health = requests.get(f"{url}/__admin/health", timeout=2)
                if health.status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "rokt-mock never became healthy"
            time.sleep(0.05)
        token = requests.post(
            f"{url}/auth/oauth2/token",
            auth=(APP_ID, APP_SECRET),
            data={"grant_type": "client_credentials"},
            timeout=10,
        ).json()["access_token"]
        body = make_body(2)
        sent = requests.post(
            f"{url}/v1/events",
            json=body,
            headers={
                "Authorization": f"Bearer {token}",
                "Idempotency-Key": str(uuid.uuid4()),
                "Charset": "utf-8",
                "Rokt-Version": "2020-05-21",
            },
            timeout=10,
        )
        assert sent.status_code == 200, sent.text
        assert not sent.json()["data"].get("unprocessedRecords")
        ids = {e["clientEventId"] for e in body["events"]}
        arrived = requests.get(f"{url}/__admin/events", timeout=10).json()
        assert ids <= {e["clientEventId"] for e in arrived["events"]}, arrived
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            _, err = server.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            _, err = server.communicate()
    assert server.returncode == 0, err
    assert "rokt-mock stopped" in err
    assert (tmp_path / ".rokt-mock" / "journal.sqlite3").is_file()  # relative to its cwd

    # rokt-mock contract doctor, from the venv, against a good reference sender run by the
    # venv's own Python (the sender needs `requests`, a dependency of rokt-mock).
    sender = f"{bin_dir / 'python'} {FIXTURES / 'senders' / 'good' / 'python_v1.py'}"
    doctor = subprocess.run(
        [str(bin_dir / "rokt-mock"), "contract", "doctor", "--sender", sender, "--api", "v1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "OK: the sender is wired correctly" in doctor.stdout
