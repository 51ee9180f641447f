"""Logging: one formatter (text or JSON lines on stderr) and one line per request.

:func:`configure` runs once in the serving process, before gunicorn forks, so every worker
inherits the same root handler; :func:`gunicorn_logger_class` gives gunicorn's own error log
that formatter too, so ``--log-format json`` puts nothing but JSON objects on stderr.
gunicorn's access log stays off: the request line of :func:`init_app` replaces it, with the
fields a sender's developer needs (namespace, status, error code, fault, latency, journal id,
event count) and a path whose query secrets are redacted.

The module is named ``logs`` because a ``mockserver/logging.py`` would shadow the standard
library inside the package. The request hook asks ``isEnabledFor`` before building anything,
so ``--log-level warning`` costs one cached check per request. Every rendered line also goes
through :func:`scrub`: the configured secrets, the admin token and JWT-shaped strings never
reach the output even if some library logs them (gunicorn's debug lines quote request lines).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus, unquote_plus

from flask import Flask, Response, current_app, g, request

from .clock import iso

if TYPE_CHECKING:
    from .settings import Settings

REQUEST_LOG = logging.getLogger("rokt_mock.request")
REDACTED = "<redacted>"
#: ``app.config`` key of the secret values :func:`safe_path` removes (set by :func:`init_app`).
SECRETS_KEY = "ROKT_MOCK_SECRETS"
#: Shorter secrets are not replaced by value: a one-letter secret would blank every path.
MIN_SECRET_LENGTH = 6
#: A query parameter whose name holds one of these (``_`` read as ``-``) has its value redacted.
SENSITIVE_PARAMS = (
    "secret",
    "token",
    "password",
    "passwd",
    "authorization",
    "api-key",
    "apikey",
    "cookie",
    "signature",
    "credential",
)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
#: Requests logged at debug rather than info: the admin API (dashboards and the kit poll it).
_QUIET = ("/__admin", "/openapi.json", "/favicon.ico")
_NETWORK = ("reset", "stall", "empty")
_FIELDS = ("namespace", "code", "fault", "latency_ms", "request_id", "events")

_formatter: logging.Formatter | None = None
_json = False


def secrets_of(settings: Settings) -> tuple[str, ...]:
    """Every configured secret and the admin token, raw and percent-encoded, longest first."""
    values = {c.secret for c in (*settings.apps, *settings.keys)}
    if settings.admin_token:
        values.add(settings.admin_token)
    out = set()
    for value in values:
        if len(value) >= MIN_SECRET_LENGTH:
            out.update((value, quote(value, safe=""), quote_plus(value)))
    return tuple(sorted(out, key=len, reverse=True))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each secret value and JWT-shaped string replaced by ``<redacted>``."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if "eyJ" in text:
        text = _JWT.sub(REDACTED, text)
    return text


def _sensitive(name: str) -> bool:
    lowered = unquote_plus(name).lower().replace("_", "-")
    return any(word in lowered for word in SENSITIVE_PARAMS)


def safe_path(full_path: str, secrets: Iterable[str] | None = None) -> str:
    """``request.full_path`` as the journal and the logs keep it (no trailing ``?``).

    In the query string, the value of a parameter with a secret-looking name becomes
    ``<redacted>`` (the name stays, as evidence of what the sender did), and so does any
    configured secret, the admin token or an access token found under another name. The path
    itself is kept as sent: the journal's ``endpoint`` column repeats it, and an Event API
    path holds no data. Paths without a query cost one partition.
    """
    path, _, query = full_path.partition("?")
    if not query:
        return path
    pieces = query.split("&")
    for i, piece in enumerate(pieces):
        name, eq, _value = piece.partition("=")
        if eq and _sensitive(name):
            pieces[i] = f"{name}={REDACTED}"
    if secrets is None:
        secrets = current_app.config.get(SECRETS_KEY, ())
    return f"{path}?{scrub('&'.join(pieces), secrets)}"


class _Formatter(logging.Formatter):
    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__()
        self.secrets = secrets

    @staticmethod
    def stamp(created: float) -> str:
        return iso(created)  # the journal's RFC 3339 form, so log lines and rows compare


class TextFormatter(_Formatter):
    """``TIME LEVEL [PID] LOGGER: MESSAGE key=value ...``."""

    def format(self, record: logging.LogRecord) -> str:
        line = (
            f"{self.stamp(record.created)} {record.levelname} [{record.process}] "
            f"{record.name}: {record.getMessage()}"
        )
        fields = getattr(record, "rokt", None)
        if fields:
            line += "".join(
                f" {key}={'-' if fields.get(key) is None else fields[key]}" for key in _FIELDS
            )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return scrub(line, self.secrets)


class JsonFormatter(_Formatter):
    """One JSON object per line: time, level, logger, pid, message, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.stamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        out.update(getattr(record, "rokt", None) or {})
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return scrub(json.dumps(out, ensure_ascii=False, default=str), self.secrets)


def configure(settings: Settings) -> None:
    """Install the stderr handler on the root logger (once per process; idempotent)."""
    global _formatter, _json
    _json = settings.log_format.lower() == "json"
    secrets = secrets_of(settings)
    _formatter = JsonFormatter(secrets) if _json else TextFormatter(secrets)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_rokt_mock", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._rokt_mock = True  # type: ignore[attr-defined]
    handler.setFormatter(_formatter)
    root.addHandler(handler)
    root.setLevel(getattr(logging, settings.log_level.upper()))


def plain(message: str) -> None:
    """A line written whatever the level (``rokt-mock stopped``): a JSON object in json mode."""
    if _json:
        stamp = _Formatter.stamp(time.time())
        message = json.dumps(
            {"time": stamp, "level": "info", "logger": "rokt_mock", "message": message}
        )
    print(message, file=sys.stderr, flush=True)


def gunicorn_logger_class() -> type:
    """gunicorn's logger with our formatter on its handlers (its error log: start-up, worker
    crashes, unparseable requests), so both formats cover every line of stderr."""
    from gunicorn import glogging

    class GunicornLogger(glogging.Logger):  # type: ignore[misc]
        def setup(self, cfg: Any) -> None:
            super().setup(cfg)
            if _formatter is not None:
                for log in (self.error_log, self.access_log):
                    for handler in log.handlers:
                        handler.setFormatter(_formatter)

    return GunicornLogger


def _log_request(response: Response) -> Response:
    """The request line: info for the Event API, debug for the admin API."""
    path = request.path
    level = logging.DEBUG if path.startswith(_QUIET) else logging.INFO
    if REQUEST_LOG.isEnabledFor(level):
        try:
            _emit(response, path, level)
        except Exception:  # a log line must never change the answer
            logging.getLogger("rokt_mock").exception("could not log %s %s", request.method, path)
    return response


def _emit(response: Response, path: str, level: int) -> None:
    outcome = g.get("outcome") or {}
    status = outcome.get("status", response.status_code)
    if g.get("network_fault") in _NETWORK:
        status = 0
    if path.startswith("/ns/"):
        namespace: str | None = path[4:].partition("/")[0]
    elif level == logging.DEBUG:
        namespace = request.args.get("namespace")
    else:
        namespace = "default"
    note = g.get("fault_note")
    doc = g.get("doc")
    started = g.get("started")
    request_id = response.headers.get("X-Rokt-Mock-Request-Id")
    shown = safe_path(request.full_path)
    fields = {
        "namespace": namespace,
        "method": request.method,
        "path": shown,
        "status": status,
        "code": outcome.get("code"),
        "fault": note.get("kind") if isinstance(note, dict) else None,
        "latency_ms": round((time.perf_counter() - started) * 1000, 3) if started else None,
        "request_id": int(request_id) if request_id and request_id.isdecimal() else None,
        "events": len(doc["events"])
        if isinstance(doc, dict) and isinstance(doc.get("events"), list)
        else None,
    }
    REQUEST_LOG.log(level, "%s %s %s", request.method, shown, status, extra={"rokt": fields})


def init_app(app: Flask, settings: Settings) -> None:
    """Register the request line. Call it *before* ``recording.init_app``: after-request hooks
    run in reverse order, so this one sees the journal's request id on the response."""
    app.config[SECRETS_KEY] = secrets_of(settings)
    app.after_request(_log_request)
