"""The dependency audit's policy (.ci/audit.py), on pip-audit reports written by hand.

A vulnerability with a fixed release fails; one without a fix warns; a service that answered
for no package (a closed network) or could not be reached warns loudly and passes, unless
ROKT_AUDIT_STRICT is set. The real audit runs in `make audit`; these tests need no network: the
last two run the real pip-audit against a stand-in vulnerability service on loopback.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def audit() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ci_audit", ROOT / ".ci" / "audit.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def report(*deps: dict) -> dict:
    return {"dependencies": list(deps), "fixes": []}


CLEAN = {"name": "flask", "version": "3.1.3", "vulns": []}
FIXABLE = {
    "name": "werkzeug",
    "version": "3.0.0",
    "vulns": [{"id": "GHSA-xxxx", "fix_versions": ["3.0.6"], "aliases": ["CVE-2024-0001"]}],
}
UNFIXED = {
    "name": "pyyaml",
    "version": "6.0.4",
    "vulns": [{"id": "PYSEC-2099-1", "fix_versions": [], "aliases": []}],
}


def skipped(name: str) -> dict:
    return {
        "name": name,
        "skip_reason": f"Dependency not found on PyPI and could not be audited: {name} (1.0)",
    }


def test_clean_report_passes(audit: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert audit.judge(report(CLEAN), "", strict=False) == 0
    assert "1 of 1 package(s) checked" in capsys.readouterr().out


def test_vulnerability_with_a_fix_fails(
    audit: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert audit.judge(report(CLEAN, FIXABLE), "", strict=False) == 1
    out = capsys.readouterr().out
    assert "FAIL: known vulnerability with a fixed release: werkzeug 3.0.0" in out
    assert "fixed in 3.0.6" in out
    assert "CVE-2024-0001" in out


def test_vulnerability_without_a_fix_warns(
    audit: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert audit.judge(report(CLEAN, UNFIXED), "", strict=True) == 0
    assert "WARNING: known vulnerability without a fix: pyyaml 6.0.4" in capsys.readouterr().out


def test_service_that_knew_no_package_is_a_loud_warning(
    audit: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = report(skipped("flask"), skipped("requests"))
    assert audit.judge(closed, "", strict=False) == 0
    out = capsys.readouterr().out
    assert "!!! DEPENDENCY AUDIT NOT DONE" in out
    assert audit.judge(closed, "", strict=True) == 1


def test_some_unknown_packages_are_listed_not_fatal(
    audit: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert audit.judge(report(CLEAN, skipped("private-lib")), "", strict=True) == 0
    assert "WARNING: not audited: Dependency not found on PyPI" in capsys.readouterr().out


def test_unreachable_service_is_a_loud_warning(
    audit: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    stderr = "Traceback ...\nrequests.exceptions.ConnectionError: Failed to resolve 'api.osv.dev'"
    assert audit.judge(None, stderr, strict=False) == 0
    assert "vulnerability service was out of reach or failed" in capsys.readouterr().out
    assert audit.judge(None, stderr, strict=True) == 1


def test_pip_audit_failing_for_another_reason_fails(audit: ModuleType) -> None:
    assert audit.judge(None, "pip-audit: error: unrecognized arguments: --bogus", strict=False) == 2


# --- end to end: the real pip-audit against a stand-in OSV service on loopback -------------------


class _FakeOsv(BaseHTTPRequestHandler):
    """Answers OSV's /v1/query: `requests` has a fixed vulnerability, `pyyaml` an unfixed one,
    every other package none; with ``broken`` set, every query gets a 500."""

    broken = False

    def do_POST(self) -> None:
        query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.broken:
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        name = query["package"]["name"]
        events: list[dict[str, str]] = [{"introduced": "0"}]
        if name == "requests":
            events.append({"fixed": "99.0"})
        vulns = [
            {
                "id": f"GHSA-test-{name}",
                "aliases": [],
                "summary": "a test advisory",
                "affected": [
                    {
                        "package": {"name": name, "ecosystem": "PyPI"},
                        "ranges": [{"type": "ECOSYSTEM", "events": events}],
                    }
                ],
            }
        ]
        data = json.dumps({"vulns": vulns} if name in ("requests", "pyyaml") else {}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def _audit_against_fake_osv(broken: bool) -> subprocess.CompletedProcess[str]:
    handler = type("Handler", (_FakeOsv,), {"broken": broken})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/query"
        env = {**os.environ, "NO_PROXY": "127.0.0.1", "ROKT_AUDIT_STRICT": ""}
        return subprocess.run(
            [sys.executable, str(ROOT / ".ci" / "audit.py"), "-s", "osv", "--osv-url", url],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        server.shutdown()
        server.server_close()


def test_real_pip_audit_output_goes_through_the_policy() -> None:
    done = _audit_against_fake_osv(broken=False)
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "FAIL: known vulnerability with a fixed release: requests" in out
    assert "(fixed in 99.0)" in out
    assert "WARNING: known vulnerability without a fix: pyyaml" in out
    assert "not audited" not in out  # rokt-mock itself, editable, is skipped silently


def test_a_failing_service_is_a_loud_warning_not_a_failure() -> None:
    done = _audit_against_fake_osv(broken=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "!!! DEPENDENCY AUDIT NOT DONE" in done.stdout
