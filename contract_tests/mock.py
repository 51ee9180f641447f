"""A handle on a real mock process: start it through the CLI partners use, find it, stop it.

The server binds port 0 itself and announces its URL on stdout, so no port is ever picked and
released (the race pytest-flask users hit). Readiness is an HTTP answer from
``/__admin/health``, polled against a deadline: never a fixed sleep.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests

ANNOUNCE = "rokt-mock listening on "


class MockStartError(RuntimeError):
    """The mock did not announce itself or become healthy in time; carries its output."""


class MockServer:
    """A ``rokt-mock serve`` subprocess. Use as a context manager or call ``stop()``."""

    def __init__(
        self,
        args: Sequence[str] = (),
        *,
        journal: str | Path = ":memory:",
        env: dict[str, str] | None = None,
        startup_timeout: float = 20.0,
        python: str = sys.executable,
        cwd: str | Path | None = None,
    ) -> None:
        self.args = ["serve", "--port", "0", "--journal", str(journal), *args]
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("ROKT_MOCK_")}
        child_env.update(env or {})
        child_env.setdefault("PYTHONUNBUFFERED", "1")
        self.command = [python, "-m", "mockserver", *self.args]
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen(
            self.command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=child_env,
            cwd=cwd,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,
        )
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()
        self.url = self._wait_ready(startup_timeout)
        self.session = requests.Session()
        # the admin token it was started with, if any (health, polled above, needs none)
        token = child_env.get("ROKT_MOCK_ADMIN_TOKEN")
        if "--admin-token" in self.args[:-1]:
            token = self.args[self.args.index("--admin-token") + 1]
        if token:
            self.session.headers["X-Rokt-Mock-Admin-Token"] = token

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def _wait_ready(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        url = None
        while url is None:
            try:
                line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                line = ""
            if line is None or time.monotonic() > deadline:
                self.kill()
                raise MockStartError(
                    f"rokt-mock did not announce its URL ({' '.join(self.command)}):\n"
                    + "".join(self.output)
                )
            if line.startswith(ANNOUNCE):
                url = line[len(ANNOUNCE) :].strip()
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/__admin/health", timeout=2).status_code == 200:
                    return url
            except requests.ConnectionError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)  # polling interval of the readiness probe, not a synchronisation
        self.kill()
        raise MockStartError("rokt-mock never became healthy:\n" + "".join(self.output))

    # -- convenience -------------------------------------------------------------------------

    def admin(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(
            method, f"{self.url}/__admin/{path.lstrip('/')}", timeout=30, **kwargs
        )

    def reset(self) -> None:
        self.admin("POST", "reset").raise_for_status()

    def requests(self, **params: Any) -> list[dict[str, Any]]:
        response = self.admin("GET", "requests", params=params)
        response.raise_for_status()
        return list(response.json()["requests"])

    def summary(self, namespace: str = "default") -> dict[str, Any]:
        response = self.admin("GET", "summary", params={"namespace": namespace})
        response.raise_for_status()
        return dict(response.json())

    # -- lifecycle ---------------------------------------------------------------------------

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then wait; returns the exit code (SIGKILL after ``timeout``)."""
        if hasattr(self, "session"):
            self.session.close()  # idle keep-alive connections would delay a graceful stop
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        code = self.proc.wait()
        self._close_output()
        return code

    def _close_output(self) -> None:
        self._pump_thread.join(timeout=5)
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            self.proc.stdout.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._close_output()

    def __enter__(self) -> MockServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
