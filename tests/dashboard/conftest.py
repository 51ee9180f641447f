"""Browser fixtures for the dashboard: Debian's headless Chromium, driven by Playwright.

Playwright is told where the system Chromium is (``executable_path``); ``playwright install``
is never needed and never run (it downloads browsers, and CI cannot). When Chromium or
Playwright is missing, every browser test is skipped with the reason, and the run ends with a
banner saying so: a skipped browser test must never look like a passed one.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contract_tests.mock import MockServer
from tests.conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
#: Screenshots of every view land here (gitignored with the rest of .rokt-mock/).
ARTIFACTS = ROOT / ".rokt-mock" / "artifacts" / "dashboard"
WIDE = {"width": 1280, "height": 800}
NARROW = {"width": 390, "height": 844}
#: Chromium stalls on closed network connections without these; a fresh profile comes from
#: Playwright's launch(), which makes a temporary user-data-dir for every browser.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: The page polls this often in tests (ms), so a change shows within a fraction of a second.
POLL_MS = 300

_skipped: list[str] = []


def browser_problem() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (make test installs the dev extra)"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: install Debian's chromium (bash .ci/install-browser)"
    return None


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _skipped:
        banner = "DASHBOARD BROWSER TESTS WERE SKIPPED, NOT PASSED"
        terminalreporter.write_sep("!", banner, red=True)
        terminalreporter.write_line(f"reason: {_skipped[0]}", red=True)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    problem = browser_problem()
    if problem is not None:
        _skipped.append(problem)
        pytest.skip(f"DASHBOARD BROWSER TESTS SKIPPED: {problem}")
    from playwright.sync_api import sync_playwright

    profile_root = tempfile.mkdtemp(prefix="rokt-mock-chromium-")
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            env={"HOME": profile_root, "XDG_CONFIG_HOME": profile_root},
        )
        yield chromium
        chromium.close()
    shutil.rmtree(profile_root, ignore_errors=True)


class Page:
    """A Playwright page with the dashboard's URL helpers and a record of script errors."""

    def __init__(self, page: Any, mock: MockServer) -> None:
        self.page = page
        self.mock = mock
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.on(
            "console",
            lambda msg: (
                self.errors.append(f"console {msg.type}: {msg.text}")
                if msg.type == "error"
                else None
            ),
        )

    def open(self, view: str = "overview", namespace: str | None = None, path: str = "") -> Any:
        query = f"?interval={POLL_MS}" + (f"&namespace={namespace}" if namespace else "")
        # A fresh document every time: a hash-only change would keep the last page's state.
        self.page.goto("about:blank")
        self.page.goto(f"{self.mock.url}/__admin/{path}{query}#{view}")
        return self.page

    def shot(self, name: str, full_page: bool = True) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def no_horizontal_scroll(self) -> None:
        width, inner = self.page.evaluate(
            "[document.documentElement.scrollWidth, window.innerWidth]"
        )
        assert width <= inner, f"the page scrolls sideways: {width} px wide in a {inner} px window"


@pytest.fixture
def dash(browser: Any, mock: MockServer) -> Iterator[Page]:
    """A fresh browser context on a freshly reset mock, 1280 by 800; fails on any script error."""
    context = browser.new_context(viewport=WIDE, accept_downloads=True)
    context.set_default_timeout(10_000)
    page = Page(context.new_page(), mock)
    yield page
    context.close()
    assert not page.errors, "\n".join(page.errors)
