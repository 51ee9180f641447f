"""Running one case: a fresh namespace, its fault rules, the sender process, the evidence.

This is the one-shot adapter of the sender protocol (``reference/sender-protocol.md``): the
sender is a shell command started in its own process group with the ``ROKT_*`` variables, and
is killed with its whole group at the deadline. The evidence (journal, exit status, result
file) is gathered into plain data and handed to the judge, so the verdict never depends on
how the sender was driven.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from .model import Case, Judgement, SenderRun

PROTOCOL = "1"
#: The admin token of a mock started with one (docs/security.md); the kit sends it when set.
ADMIN_TOKEN_ENV = "ROKT_MOCK_ADMIN_TOKEN"


class KitError(Exception):
    """A usage or wiring problem (exit code 2), never a finding about the sender."""


@dataclass(frozen=True)
class Credentials:
    account: str = "1234567890"
    app_id: str = "demo-app-id"
    app_secret: str = "demo-app-secret"
    public_key: str = "rpub-demo-0001"
    secret_key: str = "rsec-demo-0001"


FAULT_SPECS: dict[str, dict[str, Any]] = {
    "503": {"status": 503},
    "500": {"status": 500},
    "502": {"status": 502},
    "504": {"status": 504},
    "400": {"status": 400},
    "429": {"status": 429, "retryAfter": 1},
    "429-date": {"status": 429, "retryAfter": 1, "retryAfterFormat": "http-date"},
    "reset": {"reset": True},
    "empty": {"empty": True},
    "stall": {"stall": 20},
    "accept-then-500": {"acceptThen": 500},
    "accept-then-reset": {"acceptThen": "reset"},
    "expire-token": {"expireToken": True},
    "partial-reject": {"partialReject": {"indexes": [0]}},
}


def schedule_rules(case: Case) -> list[dict[str, Any]]:
    """The mock rules that serve ``case.schedule``: one rule per faulty attempt number."""
    rules = []
    for endpoint, schedule in (("events", case.schedule), ("token", case.token_schedule)):
        for k, kind in enumerate(schedule, start=1):
            if kind == "ok":
                continue
            if kind not in FAULT_SPECS:
                raise KitError(f"unknown fault kind {kind!r} in the schedule")
            rules.append(
                {
                    "id": f"{endpoint}-{k}",
                    "match": {"endpoint": endpoint},
                    "when": {"attempts": [k, k]},
                    "fault": FAULT_SPECS[kind],
                }
            )
    return rules


@dataclass
class CaseResult:
    case: Case
    namespace: str
    journal: list[dict[str, Any]]
    run: SenderRun
    judgement: Judgement
    workdir: Path
    extra: dict[str, Any] = field(default_factory=dict)


class Mock:
    """The admin side of a running mock, as the kit uses it."""

    def __init__(
        self, url: str, credentials: Credentials | None = None, admin_token: str | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.credentials = credentials or Credentials()
        self.http = requests.Session()
        token = admin_token or os.environ.get(ADMIN_TOKEN_ENV)
        if token:
            self.http.headers["X-Rokt-Mock-Admin-Token"] = token

    def _admin(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            response = self.http.request(method, f"{self.url}/__admin/{path}", timeout=30, **kwargs)
        except requests.RequestException as exc:
            raise KitError(f"cannot reach the mock at {self.url}: {exc}") from None
        if response.status_code >= 400:
            raise KitError(
                f"mock admin {method} {path} answered {response.status_code}: {response.text}"
            )
        return response

    def close(self) -> None:
        """Drop idle keep-alive connections (they would delay a graceful stop of the mock)."""
        self.http.close()

    def health(self) -> dict[str, Any]:
        return dict(self._admin("GET", "health").json())

    def fresh_namespace(self, name: str) -> str:
        self._admin("DELETE", f"namespaces/{name}")
        return name

    def add_rules(self, namespace: str, rules: list[dict[str, Any]]) -> None:
        if rules:
            self._admin("POST", "faults", params={"namespace": namespace}, json={"rules": rules})

    def journal(self, namespace: str) -> list[dict[str, Any]]:
        """Every request of the namespace, oldest first."""
        rows: list[dict[str, Any]] = []
        before: int | None = None
        while True:
            params: dict[str, Any] = {"namespace": namespace, "limit": 1000}
            if before is not None:
                params["before"] = before
            page = self._admin("GET", "requests", params=params).json()
            rows.extend(page["requests"])
            before = page["next"]
            if before is None:
                break
        return list(reversed(rows))


def _read_results(path: Path) -> tuple[list[dict[str, Any]] | None, list[str]]:
    if not path.exists():
        return None, []
    results: list[dict[str, Any]] = []
    errors: list[str] = []
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            errors.append(f"line {n}: not JSON ({exc})")
            continue
        if not isinstance(item, dict) or not isinstance(item.get("clientEventId"), str):
            errors.append(f"line {n}: needs an object with a string clientEventId")
            continue
        if item.get("outcome") not in ("delivered", "rejected", "abandoned"):
            errors.append(f"line {n}: outcome must be delivered, rejected or abandoned")
            continue
        results.append(item)
    return results, errors


def shift_event_times(events: list[dict[str, Any]], delta_s: float) -> list[dict[str, Any]]:
    """Events with every eventTime moved by ``delta_s``: a replay months later stays in window."""
    from mockserver.clock import iso
    from mockserver.timefmt import parse_rfc3339

    out = []
    for event in events:
        copy = dict(event)
        at = parse_rfc3339(str(event.get("eventTime", "")))
        if at is not None:
            copy["eventTime"] = iso(at + delta_s)
        out.append(copy)
    return out


def sender_env(
    mock: Mock, namespace: str, case: Case, events_file: Path, result_file: Path, deadline_s: float
) -> dict[str, str]:
    c = mock.credentials
    env = dict(os.environ)
    env.pop(ADMIN_TOKEN_ENV, None)  # the sender under test has no business with the admin API
    env.update(
        {
            "ROKT_API_URL": f"{mock.url}/ns/{namespace}",
            "ROKT_ACCOUNT_ID": c.account,
            "ROKT_APP_ID": c.app_id,
            "ROKT_APP_SECRET": c.app_secret,
            "ROKT_PUBLIC_KEY": c.public_key,
            "ROKT_SECRET_KEY": c.secret_key,
            "ROKT_KIT_PROTOCOL": PROTOCOL,
            "ROKT_KIT_EVENTS_FILE": str(events_file),
            "ROKT_KIT_RESULT_FILE": str(result_file),
            "ROKT_KIT_SEED": str(case.seed),
            "ROKT_KIT_CASE": case.case_id,
            "ROKT_KIT_DEADLINE_S": str(int(deadline_s)),
        }
    )
    return env


def run_sender(command: str, env: dict[str, str], workdir: Path, deadline_s: float) -> SenderRun:
    """Run ``command`` via the shell in a new process group, killed whole at the deadline."""
    out_path, err_path = workdir / "stdout.txt", workdir / "stderr.txt"
    started = time.monotonic()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(
            command,
            shell=True,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
            start_new_session=True,
        )
        timed_out = False
        try:
            code: int | None = proc.wait(timeout=deadline_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            code = None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    duration = time.monotonic() - started
    results, errors = _read_results(Path(env["ROKT_KIT_RESULT_FILE"]))
    return SenderRun(
        exit_code=code,
        timed_out=timed_out,
        duration_s=duration,
        results=results,
        stdout=out_path.read_text(encoding="utf-8", errors="replace")[-20000:],
        stderr=err_path.read_text(encoding="utf-8", errors="replace")[-20000:],
        result_errors=errors,
    )


PYTHON_PREFIX = "python:"


def load_callable(ref: str) -> Callable[[dict[str, str]], int | None]:
    """``package.module:function`` -> the function (the Python callable adapter)."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise KitError(f"--sender python:{ref}: expected python:package.module:function")
    try:
        module = importlib.import_module(module_name)
        func = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise KitError(f"--sender python:{ref}: cannot load it: {exc}") from None
    if not callable(func):
        raise KitError(f"--sender python:{ref} is not callable")
    return func  # type: ignore[no-any-return]


def run_callable(ref: str, env: dict[str, str], deadline_s: float) -> SenderRun:
    """The Python callable adapter: ``func(env)`` in this process, in a thread.

    The function gets the same ``ROKT_*`` variables as a dict (it must not read os.environ for
    them: cases may run in parallel) and returns the exit status (``None`` means 0). An
    exception counts as exit status 1 with its traceback as stderr. A thread cannot be killed:
    past the deadline the case is judged as timed out and the thread is left to finish alone.
    """
    func = load_callable(ref)
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            code = func(dict(env))
            outcome["code"] = 0 if code is None else int(code)
        except SystemExit as exc:  # sys.exit(n) in the sender means exit status n
            outcome["code"] = (
                exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            )
        except BaseException:  # the sender's crash is evidence, not the kit's problem
            outcome["code"] = 1
            outcome["stderr"] = traceback.format_exc()

    started = time.monotonic()
    thread = threading.Thread(target=target, daemon=True, name=f"sender-{ref}")
    thread.start()
    thread.join(deadline_s)
    timed_out = thread.is_alive()
    results, errors = _read_results(Path(env["ROKT_KIT_RESULT_FILE"]))
    return SenderRun(
        exit_code=None if timed_out else outcome.get("code", 1),
        timed_out=timed_out,
        duration_s=time.monotonic() - started,
        results=results,
        stderr=str(outcome.get("stderr", "")),
        result_errors=errors,
    )


def run_case(
    case: Case,
    command: str,
    mock: Mock,
    *,
    deadline_s: float,
    judge: Callable[[Case, list[dict[str, Any]], SenderRun], Judgement],
    namespace: str | None = None,
    workroot: Path | None = None,
) -> CaseResult:
    """One case end to end: fresh namespace, rules, sender, journal, verdict."""
    ns = mock.fresh_namespace(namespace or f"kit-{case.case_id or 'case'}-{uuid.uuid4().hex[:6]}")
    mock.add_rules(ns, schedule_rules(case))
    root = workroot or Path(tempfile.gettempdir()) / "rokt-mock-kit"
    workdir = root / ns
    workdir.mkdir(parents=True, exist_ok=True)
    events_file, result_file = workdir / "events.jsonl", workdir / "results.jsonl"
    events_file.write_text(
        "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in case.events), encoding="utf-8"
    )
    result_file.unlink(missing_ok=True)
    env = sender_env(mock, ns, case, events_file, result_file, deadline_s)
    if command.startswith(PYTHON_PREFIX):
        run = run_callable(command[len(PYTHON_PREFIX) :], env, deadline_s)
    else:
        run = run_sender(command, env, workdir, deadline_s)
    journal = mock.journal(ns)
    if workroot is None:  # our own scratch space: everything it held is in `run` now
        shutil.rmtree(workdir, ignore_errors=True)
    return CaseResult(case, ns, journal, run, judge(case, journal, run), workdir)
