"""The Dockerfile, checked without a Docker engine (this machine has only the client).

Static checks read the instructions: slim Python base, pip without a cache, a non-root user,
the port, a health check on /__admin/health with Python's urllib (slim has no curl), and
`rokt-mock serve --host 0.0.0.0` with the admin token from ROKT_MOCK_ADMIN_TOKEN only. Then the
parts that can run here do run: a wheel is built from exactly the build context that
.dockerignore lets through, the image's command starts (or refuses to start) the way the
container would, and the health check's own command is run against it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import requests

from contract_tests.mock import ANNOUNCE
from mockserver.settings import Settings
from tests.conftest import ROOT

DOCKERFILE = ROOT / "Dockerfile"
BIN = Path(sys.executable).parent


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # blank lines and comments, also inside a continued instruction
        if line.endswith("\\"):
            buf += line[:-1].strip() + " "
            continue
        name, _, rest = (buf + line).partition(" ")
        out.append((name.upper(), rest.strip()))
        buf = ""
    assert not buf, "the Dockerfile ends inside a continued line"
    return out


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for name, rest in instructions(DOCKERFILE.read_text(encoding="utf-8")):
        if name == "FROM":
            found.append([])
        assert found, f"{name} before the first FROM"
        found[-1].append((name, rest))
    return found


def final() -> list[tuple[str, str]]:
    return stages()[-1]


def args_of(stage: list[tuple[str, str]], name: str) -> list[str]:
    return [rest for n, rest in stage if n == name]


def exec_form(rest: str) -> list[str]:
    value = json.loads(rest)  # exec form: a JSON array of strings, no shell in between
    assert isinstance(value, list)
    assert all(isinstance(v, str) for v in value)
    return value


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in args_of(final(), "ENV"):
        for item in shlex.split(rest):
            key, eq, value = item.partition("=")
            assert eq, f"ENV {item}: use KEY=value"
            env[key] = value
    return env


def command() -> list[str]:
    (entrypoint,) = args_of(final(), "ENTRYPOINT")
    (cmd,) = args_of(final(), "CMD")
    return exec_form(entrypoint) + exec_form(cmd)


def healthcheck() -> tuple[str, list[str]]:
    (rest,) = args_of(final(), "HEALTHCHECK")
    options, marker, probe = rest.partition("CMD ")
    assert marker, rest
    return options, exec_form(probe)


# --- static checks ----------------------------------------------------------------------------


def test_every_stage_uses_a_slim_python_base() -> None:
    bases = [rest.split()[0] for stage in stages() for n, rest in stage if n == "FROM"]
    assert bases
    for base in bases:
        assert re.fullmatch(r"python:3\.\d+-slim", base), base


def test_the_image_runs_as_an_unprivileged_user_after_installing() -> None:
    stage = final()
    names = [n for n, _ in stage]
    (user,) = args_of(stage, "USER")
    uid = user.split(":")[0]
    assert uid not in ("root", "0"), user
    assert uid.isdigit(), "a numeric uid lets Kubernetes' runAsNonRoot verify it"
    last_run = max(i for i, n in enumerate(names) if n == "RUN")
    assert names.index("USER") > last_run, "USER must come after the installing RUN"
    assert any(f"--uid {uid}" in rest for rest in args_of(stage, "RUN")), "the user is created"


def test_pip_installs_the_built_wheel_without_a_cache() -> None:
    build_runs = [rest for stage in stages()[:-1] for rest in args_of(stage, "RUN")]
    assert any("pip wheel" in r and "--no-cache-dir" in r for r in build_runs), build_runs
    installs = [r for r in args_of(final(), "RUN") if "pip install" in r]
    assert installs
    for run in installs:
        assert "--no-cache-dir" in run, run
        assert ".whl" in run, run
    assert any("--from=" in rest for rest in args_of(final(), "COPY")), "only the wheel is copied"


def test_the_port_is_exposed_and_matches_the_settings() -> None:
    (exposed,) = args_of(final(), "EXPOSE")
    assert exposed == image_env()["ROKT_MOCK_PORT"] == str(Settings().port)


def test_the_command_serves_on_all_interfaces_with_the_token_from_the_environment() -> None:
    argv = command()
    assert argv[:2] == ["rokt-mock", "serve"], argv
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    assert "--admin-token" not in argv, "a flag shows in ps and in the image: use the variable"
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "ROKT_MOCK_ADMIN_TOKEN" not in image_env(), "never bake a token into the image"
    assert not re.search(r"^\s*ARG\s+ROKT_MOCK_ADMIN_TOKEN", text, re.MULTILINE)
    assert "ROKT_MOCK_ADMIN_TOKEN" in text  # documented, and read by the health check


def test_the_healthcheck_asks_the_health_probe_with_urllib() -> None:
    options, probe = healthcheck()
    assert probe[:2] == ["python", "-c"], probe
    code = probe[2]
    assert "/__admin/health" in code
    assert "urllib" in code
    assert "ROKT_MOCK_PORT" in code
    assert "ROKT_MOCK_ADMIN_TOKEN" in code
    assert "curl" not in " ".join(probe)
    assert "wget" not in " ".join(probe)
    for option in ("--interval=", "--timeout=", "--start-period=", "--retries="):
        assert option in options, options
    compile(code, "<healthcheck>", "exec")


# --- what can run without an engine -----------------------------------------------------------


def _ignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore as (negated, regex), with Docker's rules: `*` stays within a folder, `**`
    crosses folders, `!` re-includes, the last matching line wins."""
    patterns = []
    for raw in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        glob = line.lstrip("!").strip("/")
        regex = ""
        i = 0
        while i < len(glob):
            if glob.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif glob.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif glob[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif glob[i] == "?":
                regex, i = regex + "[^/]", i + 1
            else:
                regex, i = regex + re.escape(glob[i]), i + 1
        patterns.append((negated, re.compile(regex)))
    return patterns


def _in_context(rel: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negated, pattern in patterns:
        if any(pattern.fullmatch(p) for p in prefixes):
            excluded = not negated
    return not excluded


def test_the_build_context_is_enough_to_build_the_wheel(tmp_path: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    patterns = _ignore_patterns()
    context = tmp_path / "context"
    kept = []
    for rel in filter(None, listed.split("\0")):
        source = ROOT / rel
        if source.is_file() and _in_context(rel, patterns):
            kept.append(rel)
            (context / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, context / rel)
    assert "pyproject.toml" in kept
    assert not any(k.startswith(("tests/", "docs/", ".git/", "bench/")) for k in kept)
    assert any(k.startswith("fixtures/scenarios/") for k in kept)
    assert not any(k.startswith("fixtures/") and "/scenarios/" not in k for k in kept)
    out = tmp_path / "dist"
    subprocess.run(  # what the build stage runs
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), "."],
        cwd=context,
        check=True,
        timeout=300,
    )
    (wheel,) = out.glob("rokt_mock-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "mockserver/cli.py" in names
    assert "rokt_mock_plugin.py" in names
    assert any(n.startswith("mockserver/_schemas/") for n in names)
    assert any(n.startswith("mockserver/_scenarios/") for n in names)


def _container_env(**extra: str) -> dict[str, str]:
    """The image's ENV over a clean environment, the way the container would see it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROKT_MOCK_")}
    env.update(image_env())
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # `rokt-mock` and `python`
    env.update(extra)
    return env


def _run_probe(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    _, probe = healthcheck()
    argv = [sys.executable if probe[0] == "python" else probe[0], *probe[1:]]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=20, check=False)


def test_the_command_refuses_to_start_without_an_admin_token(tmp_path: Path) -> None:
    env = _container_env(ROKT_MOCK_PORT="0", ROKT_MOCK_JOURNAL=":memory:")
    started = subprocess.run(
        command(), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert started.returncode == 2, started.stdout + started.stderr
    assert "ROKT_MOCK_ADMIN_TOKEN" in started.stderr


def test_the_command_serves_with_the_token_and_the_healthcheck_passes(tmp_path: Path) -> None:
    token = "ci-secret-token"
    env = _container_env(
        ROKT_MOCK_PORT="0", ROKT_MOCK_JOURNAL=":memory:", ROKT_MOCK_ADMIN_TOKEN=token
    )
    server = subprocess.Popen(
        command(),
        env={**env, "PYTHONUNBUFFERED": "1"},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith(ANNOUNCE), line
        port = line.rsplit(":", 1)[1].strip().rstrip("/")
        base = f"http://127.0.0.1:{port}"  # bound to 0.0.0.0; spoken to over loopback only
        probe_env = {**env, "ROKT_MOCK_PORT": port}
        healthy = _run_probe(probe_env)
        assert healthy.returncode == 0, healthy.stderr
        assert requests.get(f"{base}/__admin/requests", timeout=10).status_code == 401
        headers = {"X-Rokt-Mock-Admin-Token": token}
        assert requests.get(f"{base}/__admin/requests", headers=headers, timeout=10).ok
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()
    assert server.returncode == 0
    # nothing listens there any more: the probe must fail, not hang
    down = _run_probe(probe_env)
    assert down.returncode != 0
