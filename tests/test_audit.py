"""The dependency audit's policy (.ci/audit.py), on pip-audit reports written by hand.

A vulnerability with a fixed release fails; one without a fix warns; a service that answered
for no package (a closed network) or could not be reached warns loudly and passes, unless
ROKT_AUDIT_STRICT is set. The real audit runs in `make audit`; these tests need no network.
"""

from __future__ import annotations

import importlib.util
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
    assert "could not reach its vulnerability service" in capsys.readouterr().out
    assert audit.judge(None, stderr, strict=True) == 1


def test_pip_audit_failing_for_another_reason_fails(audit: ModuleType) -> None:
    assert audit.judge(None, "pip-audit: error: unrecognized arguments: --bogus", strict=False) == 2
