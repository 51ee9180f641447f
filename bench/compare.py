"""The load benchmark behind ``bench/run``: the mock, Prism and a bare Flask view, in one run.

    bench/run                              # everything, ~6 minutes on a 2-core machine
    BENCH_DURATION=5 BENCH_SKIP_KIT=1 bench/run
    bench/run --batches 1,100 --servers mock,prism

Every server gets the same load from the same generator with the same settings: wrk (threads 2,
16 connections, keep-alive) running bench/wrk/events.lua, which POSTs valid v1 batches with a
fresh Idempotency-Key and fresh event ids per request. Each (server, batch size) pair runs on a
freshly started server: warm-up, then a measured run bounded in time. Everything listens on
127.0.0.1 only. The servers:

- ``mock``: ``rokt-mock serve --workers 2 --journal <tmp file> --log-level warning``, the
  production set-up (quiet log, like Prism's): every
  check (auth, headers, schema, per-event rules, idempotency) and the durable journal on.
  ``--mock-args "--threads 1"`` (``BENCH_MOCK_ARGS``) adds serve options to the mock's runs only
  (docs/performance.md compares thread counts); results then go to ``--out`` as usual.
- ``prism``: ``prism mock schemas/openapi.json`` (@stoplight/prism-cli from npm, installed in
  bench/.node by bench/run), which validates every request against the same OpenAPI document,
  with ``-v silent`` logging. ``--errors`` is left off: with it Prism answers 500 to valid
  requests, because its generated example responses break our response schemas' patterns.
  Request validation is on either way: the script checks that Prism refuses an invalid body.
- ``bare``: bench/bare_app.py, a Flask view that answers 200 without reading the JSON, under
  gunicorn with the same gthread settings as the mock (2 workers, 16 threads, keep-alive 5 s).

It also times ``rokt-mock serve`` from launch to the first 200 of /__admin/health (median of 5)
and a ``CI=true rokt-mock contract run`` of the reference Python v1 sender (``BENCH_SKIP_KIT=1``
skips it). Results: a table on stdout and bench/results/results.{md,json} + chart.png.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import platform
import random
import shlex
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import bodies  # noqa: E402

VENV_BIN = Path(sys.executable).parent
PRISM = BENCH / ".node" / "node_modules" / ".bin" / "prism"
LUA = BENCH / "wrk" / "events.lua"
RESULTS = BENCH / "results"
SERVERS = ("mock", "prism", "bare")
#: Extra ``rokt-mock serve`` arguments for the mock's runs (``--mock-args``), e.g. "--threads 1".
MOCK_ARGS: list[str] = []
LABELS = {
    "mock": "rokt-mock (all checks + journal)",
    "prism": "Prism (validation on)",
    "bare": "bare Flask view",
}


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- plumbing ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


class Server:
    """A server process in its own process group, stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, kind: str, argv: list[str], port: int, workdir: Path, env: dict[str, str]):
        self.kind, self.port = kind, port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = workdir / f"{kind}-{port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, path: str, timeout: float = 60.0, any_status: bool = False) -> float:
        """Seconds from launch to the first answer on ``path`` (200 unless ``any_status``)."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited early; see {self.log_path}")
            try:
                status, _ = http("GET", self.url + path, timeout=1.0)
                if status == 200 or any_status:
                    return time.perf_counter() - self.started
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.01)
        raise RuntimeError(f"{self.kind} not ready after {timeout} s; see {self.log_path}")

    def pids(self) -> list[int]:
        """The server's process and its children (gunicorn workers)."""
        out = [self.proc.pid]
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
            out += [int(p) for p in children.split()]
        except OSError:
            pass
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._log.close()


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def server_env() -> dict[str, str]:
    """The caller's environment without ROKT_MOCK_* settings, so every run uses the defaults."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROKT_MOCK_")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def start(kind: str, workdir: Path, workers: int, journal: Path | None = None) -> Server:
    port = free_port()
    env = server_env()
    if kind == "mock":
        assert journal is not None
        argv = [
            str(VENV_BIN / "rokt-mock"),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--journal",
            str(journal),
            # Quiet logging, as Prism's ``-v silent``: the per-request log line is not a check.
            "--log-level",
            "warning",
            *MOCK_ARGS,
        ]
        server = Server(kind, argv, port, workdir, env)
        server.wait_ready("/__admin/health")
    elif kind == "prism":
        doc = os.environ.get("BENCH_PRISM_DOC", str(ROOT / "schemas" / "openapi.json"))
        argv = [str(PRISM), "mock", "-h", "127.0.0.1", "-p", str(port), "-v", "silent", doc]
        server = Server(kind, argv, port, workdir, env)
        server.wait_ready("/", any_status=True)
    elif kind == "bare":
        argv = [
            str(VENV_BIN / "gunicorn"),
            "-k",
            "gthread",
            "--workers",
            str(workers),
            "--threads",
            "16",
            "--keep-alive",
            "5",
            "--log-level",
            "warning",
            "--chdir",
            str(BENCH),
            "-b",
            f"127.0.0.1:{port}",
            "bare_app:app",
        ]
        server = Server(kind, argv, port, workdir, env)
        server.wait_ready("/__admin/health")
    else:
        raise ValueError(kind)
    return server


def get_token(url: str) -> str:
    basic = base64.b64encode(b"demo-app-id:demo-app-secret").decode()
    status, body = http(
        "POST",
        f"{url}/auth/oauth2/token",
        b"grant_type=client_credentials",
        {
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    if status != 200:
        raise RuntimeError(f"token request answered {status}: {body[:200]!r}")
    return str(json.loads(body)["access_token"])


def v1_headers(token: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Charset": "utf-8",
        "Rokt-Version": "2020-05-21",
        "Idempotency-Key": str(uuid.uuid4()),
    }


def sanity(server: Server, token: str, template: str) -> dict[str, int]:
    """One valid and one invalid body: does the server accept the first, refuse the second?"""
    valid = bodies.fill(template, seed=random.randrange(2**32)).encode()
    invalid = json.dumps({"accountId": bodies.ACCOUNT_ID, "events": []}).encode()
    ok, _ = http("POST", f"{server.url}/v1/events", valid, v1_headers(token))
    bad, _ = http("POST", f"{server.url}/v1/events", invalid, v1_headers(token))
    return {"valid": ok, "invalid": bad}


# -- wrk --------------------------------------------------------------------------------------


@dataclass
class Load:
    threads: int
    connections: int
    duration: int
    warmup: int


def wrk(url: str, templates: list[Path], token: str, seconds: int, load: Load, out: Path) -> Any:
    env = dict(os.environ)
    env.update(
        BENCH_BODIES=";".join(str(p) for p in templates),
        BENCH_TOKEN=token,
        BENCH_PATH="/v1/events",
        BENCH_NONCE=str(random.randrange(2**32)),
        BENCH_OUT=str(out),
    )
    argv = [
        "wrk",
        "-t",
        str(load.threads),
        "-c",
        str(load.connections),
        "-d",
        f"{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        url,
    ]
    out.unlink(missing_ok=True)
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return json.loads(out.read_text())


@dataclass
class Scenario:
    server: str
    batch: int
    body_bytes: int
    requests: int
    seconds: float
    rps: float
    ok_rps: float
    events_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int
    statuses: dict[str, int]
    sanity: dict[str, int]
    rss_mb: list[float] = field(default_factory=list)
    journal: dict[str, Any] = field(default_factory=dict)


def run_scenario(
    kind: str, batch: int, templates: list[Path], workdir: Path, load: Load, workers: int
) -> Scenario:
    journal = workdir / f"journal-{kind}-{batch}.sqlite3"
    server = start(kind, workdir, workers, journal if kind == "mock" else None)
    try:
        token = get_token(server.url) if kind == "mock" else "bench-token-for-" + kind
        template = templates[0].read_text(encoding="utf-8")
        checks = sanity(server, token, template)
        if kind != "bare" and not (200 <= checks["valid"] < 300):
            raise RuntimeError(f"{kind} answered {checks['valid']} to a valid body")
        if kind != "bare" and not (400 <= checks["invalid"] < 500):
            raise RuntimeError(f"{kind} accepted an invalid body ({checks['invalid']})")
        if load.warmup:
            wrk(server.url, templates, token, load.warmup, load, workdir / "wrk-warmup.json")
        data = wrk(server.url, templates, token, load.duration, load, workdir / "wrk.json")
        rss = [r for r in (rss_mb(p) for p in server.pids()[1:]) if r is not None]
        extra: dict[str, Any] = {}
        if kind == "mock":
            status, raw = http("GET", f"{server.url}/__admin/summary")
            summary = json.loads(raw) if status == 200 else {}
            extra = {
                "requests_journaled": summary.get("requests", {}).get("total"),
                "events_accepted": summary.get("events", {}).get("accepted"),
                "file_mb": round(
                    sum(
                        p.stat().st_size
                        for p in workdir.glob(journal.name + "*")
                        if not p.name.endswith("-lock")
                    )
                    / 2**20,
                    1,
                ),
            }
    finally:
        server.stop()
        for path in workdir.glob(journal.name + "*"):
            path.unlink(missing_ok=True)
    seconds = data["duration_us"] / 1e6
    statuses = {str(k): int(v) for k, v in data["statuses"].items()}
    ok = sum(v for k, v in statuses.items() if 200 <= int(k) < 300)
    errors = data["errors"]
    lat = data["latency_us"]
    return Scenario(
        server=kind,
        batch=batch,
        body_bytes=len(bodies.fill(template).encode()),
        requests=int(data["requests"]),
        seconds=round(seconds, 2),
        rps=round(data["requests"] / seconds, 1),
        ok_rps=round(ok / seconds, 1),
        events_per_s=round(ok * batch / seconds, 0),
        p50_ms=round(lat["p50"] / 1000, 2),
        p90_ms=round(lat["p90"] / 1000, 2),
        p99_ms=round(lat["p99"] / 1000, 2),
        max_ms=round(lat["max"] / 1000, 2),
        non_2xx=int(data["requests"]) - ok,
        socket_errors=sum(int(errors[k]) for k in ("connect", "read", "write", "timeout")),
        statuses=statuses,
        sanity=checks,
        rss_mb=[round(r, 1) for r in rss],
        journal=extra,
    )


# -- start-up and the kit ---------------------------------------------------------------------


def startup_times(workdir: Path, runs: int, workers: int) -> list[float]:
    times = []
    for i in range(runs):
        server = start_unready(workdir, workers, workdir / f"startup-{i}.sqlite3")
        try:
            times.append(round(server.wait_ready("/__admin/health", timeout=30), 3))
        finally:
            server.stop()
    return times


def start_unready(workdir: Path, workers: int, journal: Path) -> Server:
    port = free_port()
    argv = [
        str(VENV_BIN / "rokt-mock"),
        "serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--journal",
        str(journal),
    ]
    return Server("startup", argv, port, workdir, server_env())


def kit_run(workdir: Path) -> dict[str, Any]:
    env = server_env()
    env["CI"] = "true"
    argv = [
        str(VENV_BIN / "rokt-mock"),
        "contract",
        "run",
        "--sender",
        "python3 fixtures/senders/good/python_v1.py",
        "--api",
        "v1",
    ]
    started = time.perf_counter()
    try:
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        code, output = done.returncode, (done.stdout + done.stderr)
    except subprocess.TimeoutExpired as exc:
        code, output = -1, f"timed out after 900 s: {exc}"
    seconds = time.perf_counter() - started
    (workdir / "kit.log").write_text(output)
    tail = [line for line in output.strip().splitlines() if line.strip()][-3:]
    return {
        "command": 'CI=true rokt-mock contract run --sender "python3 '
        'fixtures/senders/good/python_v1.py" --api v1',
        "seconds": round(seconds, 1),
        "exit_code": code,
        "tail": tail,
    }


# -- report -----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass

    def version(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            text = (done.stdout or done.stderr).strip().splitlines()
            return text[0] if text else "?"
        except (OSError, subprocess.TimeoutExpired):
            return "not found"

    from importlib.metadata import version as dist_version

    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "flask": dist_version("flask"),
        "gunicorn": dist_version("gunicorn"),
        "wrk": version(["wrk", "-v"]),
        "node": version(["node", "--version"]),
        "prism": version([str(PRISM), "--version"]) if PRISM.exists() else "not installed",
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def comparisons(scenarios: list[Scenario]) -> list[dict[str, Any]]:
    by = {(s.server, s.batch): s for s in scenarios}
    out = []
    for batch in sorted({s.batch for s in scenarios}):
        mock, prism, bare = (by.get((k, batch)) for k in SERVERS)
        if mock is None:
            continue
        out.append(
            {
                "batch": batch,
                "mock_over_prism_rps": ratio(mock.ok_rps, prism.ok_rps if prism else None),
                "mock_over_bare_rps": ratio(mock.ok_rps, bare.ok_rps if bare else None),
                "mock_over_prism_p99": ratio(mock.p99_ms, prism.p99_ms if prism else None),
            }
        )
    return out


def targets(scenarios: list[Scenario], startup: list[float]) -> list[dict[str, Any]]:
    by = {(s.server, s.batch): s for s in scenarios}
    out = []
    for batch in (100, 1):
        mock, prism = by.get(("mock", batch)), by.get(("prism", batch))
        if mock and prism:
            out.append(
                {
                    "target": f"{batch}-event batches: requests/s >= 2x Prism's",
                    "measured": f"{mock.ok_rps:.0f} vs 2 x {prism.ok_rps:.0f} = "
                    f"{2 * prism.ok_rps:.0f} ({mock.ok_rps / prism.ok_rps:.2f}x)",
                    "met": mock.ok_rps >= 2 * prism.ok_rps,
                }
            )
            if batch == 100:
                out.append(
                    {
                        "target": "100-event batches: p99 no worse than Prism's",
                        "measured": f"{mock.p99_ms:.1f} ms vs {prism.p99_ms:.1f} ms",
                        "met": mock.p99_ms <= prism.p99_ms,
                    }
                )
    if startup:
        median = statistics.median(startup)
        out.append(
            {
                "target": "start-up to healthy under 1 s",
                "measured": f"median {median:.2f} s of {len(startup)}",
                "met": median < 1.0,
            }
        )
    return out


def table(scenarios: list[Scenario]) -> list[str]:
    lines = [
        "| server | events/batch | body | requests/s | events/s | p50 ms | p99 ms | non-2xx |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in sorted(scenarios, key=lambda s: (s.batch, SERVERS.index(s.server))):
        lines.append(
            f"| {LABELS[s.server]} | {s.batch} | {s.body_bytes / 1000:.1f} KB | {s.ok_rps:,.0f} | "
            f"{s.events_per_s:,.0f} | {s.p50_ms:.1f} | {s.p99_ms:.1f} | "
            f"{s.non_2xx + s.socket_errors} |"
        )
    return lines


def write_markdown(report: dict[str, Any], scenarios: list[Scenario], path: Path) -> None:
    m = report["machine"]
    load = report["load"]
    lines = [
        "# Benchmark results",
        "",
        f"Run {report['finished']} by `bench/run` on {m['cpus']} x {m['cpu_model']}, "
        f"{m['memory']}, Linux {m['kernel']}; Python {m['python']}, SQLite {m['sqlite']}, "
        f"gunicorn {m['gunicorn']}, Prism {m['prism']} on Node {m['node']}, {m['wrk']}.",
        "",
        f"Load: wrk, {load['threads']} threads, {load['connections']} connections, "
        f"{load['warmup']} s warm-up then {load['duration']} s measured, per server and batch "
        f"size, each on a fresh server (the mock on a fresh journal) with "
        f"{report['workers']} workers; loopback only. Valid v1 batches, fresh event ids and "
        "Idempotency-Key per request."
        + (
            f" The mock ran with `{shlex.join(report['mock_args'])}` added."
            if report.get("mock_args")
            else ""
        ),
        "",
        *table(scenarios),
    ]
    if any(v is not None for c in report["ratios"] for k, v in c.items() if k != "batch"):
        lines += [
            "",
            "| events/batch | mock / Prism requests/s | mock / bare requests/s"
            " | mock / Prism p99 |",
            "|---:|---:|---:|---:|",
        ]
        for c in report["ratios"]:
            lines.append(
                f"| {c['batch']} | {c['mock_over_prism_rps'] or '-'} | "
                f"{c['mock_over_bare_rps'] or '-'} | {c['mock_over_prism_p99'] or '-'} |"
            )
    if report["targets"]:
        lines += ["", "| target | measured | met |", "|---|---|---|"]
        for t in report["targets"]:
            lines.append(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else 'NO'} |")
    if report.get("startup_s"):
        lines += [
            "",
            f"Start-up of `rokt-mock serve --workers {report['workers']}` to the first 200 of "
            f"/__admin/health: {', '.join(f'{t:.2f}' for t in report['startup_s'])} s "
            f"(median {statistics.median(report['startup_s']):.2f} s).",
        ]
    kit = report.get("kit")
    if kit:
        lines += [
            "",
            f"Contract kit, ci profile: `{kit['command']}` took {kit['seconds']} s, "
            f"exit code {kit['exit_code']}.",
        ]
    sanity_lines = [
        f"{LABELS[s.server]} answered {s.sanity['valid']} to a valid body and "
        f"{s.sanity['invalid']} to an invalid one"
        for s in scenarios
        if s.batch == min(x.batch for x in scenarios)
    ]
    if sanity_lines:
        lines += ["", "Sanity checks before each run: " + "; ".join(sanity_lines) + "."]
    mocks = [s for s in scenarios if s.server == "mock" and s.journal]
    if mocks:
        lines += ["", "Journal after each mock run (warm-up included):", ""]
        for s in mocks:
            lines.append(
                f"- {s.batch}-event batches: {s.journal.get('requests_journaled')} requests and "
                f"{s.journal.get('events_accepted')} events journaled, "
                f"{s.journal.get('file_mb')} MB on disk; worker RSS {s.rss_mb} MB"
            )
    lines += ["", "![chart](chart.png)", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def write_chart(scenarios: list[Scenario], path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib missing: no chart"
    colors = {"mock": "#d62728", "prism": "#1f77b4", "bare": "#7f7f7f"}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    for kind in SERVERS:
        rows = sorted((s for s in scenarios if s.server == kind), key=lambda s: s.batch)
        if not rows:
            continue
        x = [s.batch for s in rows]
        style = {"color": colors[kind], "marker": "o", "label": LABELS[kind]}
        axes[0].plot(x, [s.ok_rps for s in rows], **style)
        axes[1].plot(x, [s.events_per_s for s in rows], **style)
        axes[2].plot(x, [s.p99_ms for s in rows], **style)
        for ax, values in zip(
            axes,
            ([s.ok_rps for s in rows], [s.events_per_s for s in rows], [s.p99_ms for s in rows]),
            strict=True,
        ):
            for xi, yi in zip(x, values, strict=True):
                ax.annotate(
                    f"{yi:,.0f}" if yi >= 10 else f"{yi:.1f}",
                    (xi, yi),
                    textcoords="offset points",
                    xytext=(0, 5),
                    ha="center",
                    fontsize=7,
                    color=colors[kind],
                )
    titles = ("requests/s (2xx)", "events/s carried (2xx)", "p99 latency (ms)")
    for ax, title in zip(axes, titles, strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("events per batch")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.set_xticks(sorted({s.batch for s in scenarios}))
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axes[0].legend(fontsize=8)
    fig.suptitle("POST /v1/events, wrk 2 threads x 16 connections, loopback, 2-core machine")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"matplotlib {matplotlib.__version__}"


# -- main -------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=_env_int("BENCH_DURATION", 10))
    parser.add_argument("--warmup", type=int, default=_env_int("BENCH_WARMUP", 3))
    parser.add_argument("--connections", type=int, default=_env_int("BENCH_CONNECTIONS", 16))
    parser.add_argument("--threads", type=int, default=_env_int("BENCH_THREADS", 2))
    parser.add_argument("--workers", type=int, default=_env_int("BENCH_WORKERS", 2))
    parser.add_argument("--batches", default=os.environ.get("BENCH_BATCHES", "1,10,50,100"))
    parser.add_argument("--servers", default=os.environ.get("BENCH_SERVERS", ",".join(SERVERS)))
    parser.add_argument("--startup-runs", type=int, default=_env_int("BENCH_STARTUP_RUNS", 5))
    parser.add_argument(
        "--skip-kit",
        action="store_true",
        default=bool(os.environ.get("BENCH_SKIP_KIT", "") not in ("", "0")),
    )
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("BENCH_OUT", RESULTS)))
    parser.add_argument(
        "--mock-args",
        default=os.environ.get("BENCH_MOCK_ARGS", ""),
        help='extra `rokt-mock serve` arguments for the mock, e.g. "--threads 1"',
    )
    args = parser.parse_args()
    MOCK_ARGS[:] = shlex.split(args.mock_args)

    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = set(servers) - set(SERVERS)
    if unknown or not servers:
        parser.error(f"--servers takes a list of {', '.join(SERVERS)}")
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (bench/run installs it with apt-get when it can)")
    if "prism" in servers and not PRISM.exists():
        parser.error(f"Prism is not installed in {PRISM.parent.parent} (bench/run does it)")
    load = Load(args.threads, args.connections, args.duration, args.warmup)
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="rokt-mock-bench-"))
    log(f"work folder {workdir}; servers {servers}; batches {batches}; {load}")
    scenarios: list[Scenario] = []
    startup: list[float] = []
    kit: dict[str, Any] | None = None
    try:
        templates = {n: bodies.write_templates(workdir / "bodies", n) for n in batches}
        for batch in batches:
            for kind in servers:
                log(f"{kind}, {batch}-event batches ...")
                s = run_scenario(kind, batch, templates[batch], workdir, load, args.workers)
                scenarios.append(s)
                log(
                    f"  {s.ok_rps:,.0f} req/s, {s.events_per_s:,.0f} events/s, p50 {s.p50_ms} ms,"
                    f" p99 {s.p99_ms} ms, statuses {s.statuses}, socket errors {s.socket_errors}"
                )
        if args.startup_runs:
            log(f"start-up time, {args.startup_runs} runs ...")
            startup = startup_times(workdir, args.startup_runs, args.workers)
            log(f"  {startup} s")
        if not args.skip_kit:
            log("contract kit, ci profile (about 90 s) ...")
            kit = kit_run(workdir)
            log(f"  {kit['seconds']} s, exit {kit['exit_code']}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    report: dict[str, Any] = {
        "finished": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "load": asdict(load),
        "workers": args.workers,
        "mock_args": MOCK_ARGS,
        "scenarios": [asdict(s) for s in scenarios],
        "ratios": comparisons(scenarios),
        "targets": targets(scenarios, startup),
        "startup_s": startup,
        "kit": kit,
    }
    chart = write_chart(scenarios, args.out / "chart.png")
    report["chart"] = chart
    (args.out / "results.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    write_markdown(report, scenarios, args.out / "results.md")

    print()
    print("\n".join(table(scenarios)))
    print()
    for c in report["ratios"]:
        print(
            f"{c['batch']:>3}-event batches: mock/Prism requests/s {c['mock_over_prism_rps']}, "
            f"mock/bare {c['mock_over_bare_rps']}, mock/Prism p99 {c['mock_over_prism_p99']}"
        )
    for t in report["targets"]:
        print(f"{'met' if t['met'] else 'NOT MET':>8}  {t['target']}: {t['measured']}")
    if startup:
        print(f"start-up to healthy: {startup} s (median {statistics.median(startup):.2f} s)")
    if kit:
        print(f"contract kit ci profile: {kit['seconds']} s, exit code {kit['exit_code']}")
    print(f"\nwrote {args.out}/results.md, results.json, chart.png ({chart})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
