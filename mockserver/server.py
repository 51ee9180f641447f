"""Run the app on a real socket: bind (port 0 allowed), announce the URL, stop cleanly.

The server is gunicorn with ``gthread`` workers, chosen over werkzeug's development server
because that one closes every connection after one response (no HTTP/1.1 keep-alive, so a
sender's connection pool is never exercised) and over granian or uvicorn because gthread
workers hand the app the raw client socket, which network faults (resets, stalls) need.
One worker is the default; ``--workers N`` runs N processes that share everything through the
journal. Before forking, the contract and the journal are opened once in the parent, so a
broken schema or journal stops the start with a clear message instead of a worker crash loop.
"""

from __future__ import annotations

import ast
import ipaddress
import json
import logging
import os
import re
from typing import Any

from gunicorn import util as gunicorn_util
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from . import logs
from .app import create_app
from .clock import Clock
from .faults import FaultEngine, install_scenarios
from .faults.scenario import find as find_scenario
from .faults.scenario import load as load_scenario
from .journal import Journal
from .schemas import load_schemas
from .settings import ConfigError, Settings
from .worker import worker_class

log = logging.getLogger("rokt_mock")


def url_for(host: str, port: int) -> str:
    """The address a client on this machine can use: a wildcard bind (``0.0.0.0``, ``::``)
    is announced through loopback, since ``http://0.0.0.0:PORT`` is not an address."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


_HTTP_LAYER_CODES = {
    400: "MalformedRequest",
    403: "Forbidden",
    414: "URITooLong",
    417: "ExpectationFailed",
    431: "RequestHeaderFieldsTooLarge",
    500: "InternalServerError",
    501: "NotImplemented",
}


_TOKEN_LIST = re.compile(
    r"[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:[ \t]*,[ \t]*[!#$%&'*+.^_`|~0-9A-Za-z-]+)*\Z"
)


def _quoted(mesg: str) -> str:
    """The header value inside gunicorn's ``Unsupported transfer coding: 'x'`` message."""
    _, _, rest = mesg.partition(": ")
    try:
        value = ast.literal_eval(rest)
    except (ValueError, SyntaxError):
        return rest
    return value if isinstance(value, str) else rest


def _write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's answer to a request it cannot parse, in our envelope instead of HTML.

    Such a request never reaches the app (a bad request line, a header gunicorn refuses), so
    it is not journaled; a sender still gets a JSON body its error handling can read.
    """
    if status_int == 501 and not _TOKEN_LIST.match(_quoted(mesg)):
        # gunicorn says 501 for any Transfer-Encoding it does not know, but a value that is
        # not even a list of tokens (empty, "a,,b", "(x)") is the sender's mistake: 400.
        status_int, reason = 400, "Bad Request"
        mesg = f"malformed Transfer-Encoding: {mesg}"
    body = json.dumps(
        {"data": {"code": _HTTP_LAYER_CODES.get(status_int, "MalformedRequest"), "message": mesg}}
    )
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    gunicorn_util.write_nonblock(sock, (head + body).encode("latin-1", "replace"))


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and ``localhost``; any other name counts as public (not resolved)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def preflight(settings: Settings) -> None:
    """Fail fast, in the parent, on anything that would make every worker fail."""
    if not is_loopback(settings.host) and not settings.admin_token:
        raise ConfigError(
            f"host {settings.host!r} is not a loopback address, and without an admin token "
            "anyone who can reach it could read the journal and reset the mock; set "
            "ROKT_MOCK_ADMIN_TOKEN (or --admin-token), or bind to 127.0.0.1"
        )
    if settings.journal == ":memory:" and settings.workers > 1:
        raise ConfigError("--journal :memory: cannot be shared by several --workers; use a file")
    schemas = load_schemas(settings.schema_dir)
    if settings.journal != ":memory:":
        journal = Journal(settings.journal)
        try:
            engine = FaultEngine(journal, schemas.validators["rule"], settings.seed)
            install_scenarios(
                engine, settings.scenarios, schemas.validators["scenario"], Clock(journal).now()
            )
        finally:
            journal.close()
    else:  # the worker's own in-memory journal gets them; check them here all the same
        for name in settings.scenarios:
            load_scenario(find_scenario(name), schemas.validators["scenario"])


class _Arbiter(Arbiter):  # type: ignore[misc]
    """Ctrl-C stops as gracefully as SIGTERM: requests in flight are answered first."""

    def handle_int(self) -> None:
        self.handle_term()


class _Server(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        # The one patch of a library: gunicorn has no hook for the body of its own 400s.
        gunicorn_util.write_error = _write_json_error
        s = self.settings
        level = s.log_level.lower()
        options: dict[str, Any] = {
            "bind": [f"[{s.host}]:{s.port}" if ":" in s.host else f"{s.host}:{s.port}"],
            "workers": s.workers,
            # gthread with a gate: a thread only for a complete request head (worker.py)
            "worker_class": worker_class(),
            "threads": s.threads,
            "keepalive": 5,
            # Faults stall answers on purpose; the worker's heartbeat runs on its own thread,
            # so a long request is not mistaken for a hung worker.
            "timeout": 120,
            "graceful_timeout": 10,
            # gunicorn 27's control socket is one fixed path per user: several mocks (CI
            # jobs, tests) would fight over it, and nothing of ours uses it.
            "control_socket_disable": True,
            "loglevel": level if level in ("debug", "error") else "warning",
            # our request line (mockserver/logs.py) replaces the access log, which would
            # print query strings unredacted
            "accesslog": None,
            "logger_class": logs.gunicorn_logger_class(),
            "limit_request_line": 8190,
            "limit_request_fields": 200,
            "limit_request_field_size": 16380,
            "when_ready": self._when_ready,
            "worker_exit": _worker_exit,
            "proc_name": "rokt-mock",
        }
        for key, value in options.items():
            if key in self.cfg.settings:  # control_socket_disable is new in gunicorn 27
                self.cfg.set(key, value)

    def _when_ready(self, arbiter: Any) -> None:
        port = arbiter.LISTENERS[0].sock.getsockname()[1]
        print(f"rokt-mock listening on {url_for(self.settings.host, port)}", flush=True)
        log.info(
            "%r; journal %s; %d worker(s)",
            self.settings,
            self.settings.journal,
            self.settings.workers,
        )

    def load(self) -> Any:
        return create_app(self.settings, install_scenarios=self.settings.journal == ":memory:")

    def run(self) -> None:
        _Arbiter(self).run()


def _worker_exit(arbiter: Any, worker: Any) -> None:
    app = getattr(worker, "wsgi", None)
    services = getattr(app, "extensions", {}).get("rokt_mock") if app is not None else None
    if services is not None:
        services.journal.close()


def serve(settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT. Prints ``rokt-mock listening on URL`` once bound."""
    logs.configure(settings)
    preflight(settings)
    parent = os.getpid()
    try:
        _Server(settings).run()
    finally:  # gunicorn's arbiter (and each forked worker) leaves through sys.exit
        if os.getpid() == parent:
            logs.plain("rokt-mock stopped")
