"""The built wheel carries schemas/ and works from outside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import requests

from contract_tests.mock import MockServer
from tests.conftest import ROOT


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
