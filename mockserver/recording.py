"""Flask glue that puts every API request into the journal before its response leaves.

Views that decide an answer from journal state (POST events) commit their own row inside
their transaction and mark ``g.journaled``; for everything else (token requests, refused
requests, unknown paths) the ``after_request`` hook commits the row. Either way the commit
happens before the WSGI server sends a byte, and the response carries
``X-Rokt-Mock-Request-Id`` so a sender's log line can be matched to the journal.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode

from flask import Flask, Response, current_app, g, request
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

from .errors import FRAMING_ERRORS, ApiError
from .journal import EventRecord, RequestRecord
from .logs import safe_path
from .validation import parse_json

log = logging.getLogger("rokt_mock")

REQUEST_ID_HEADER = "X-Rokt-Mock-Request-Id"
_SENSITIVE = ("authorization", "cookie", "secret", "token", "password", "api-key", "apikey")
_UNJOURNALED = ("/__admin", "/openapi.json", "/favicon.ico")


def is_journaled(path: str) -> bool:
    return not path.startswith(_UNJOURNALED)


def _is_sensitive(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SENSITIVE)


def redact_headers(headers: Any) -> dict[str, str]:
    """Headers as a dict, with credentials replaced: the scheme of Authorization stays visible
    (``Bearer <redacted>``) because it is evidence of what the sender did."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        if _is_sensitive(name):
            scheme, sep, _ = value.partition(" ")
            lowered = name.lower()
            if lowered in ("authorization", "proxy-authorization") and sep:
                value = f"{scheme} <redacted>"
            else:
                value = "<redacted>"
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def redact_form(raw: bytes) -> bytes:
    """A form body with secret-looking fields blanked (senders sometimes post client_secret)."""
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return b"<unparseable form body redacted>"
    return urlencode([(k, "<redacted>" if _is_sensitive(k) else v) for k, v in pairs]).encode()


def _redact_values(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: "<redacted>" if _is_sensitive(str(k)) else _redact_values(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact_values(v) for v in value]
    return value


def redact_json(raw: bytes) -> bytes:
    """A token request's non-form body (JSON, mostly) with secret-looking members blanked;
    anything that does not parse is not kept at all, since it may hold a secret verbatim."""
    try:
        doc = json.loads(raw.decode("utf-8"))
        return json.dumps(_redact_values(doc), ensure_ascii=False).encode()
    except (UnicodeDecodeError, ValueError, RecursionError):
        return f"<unparseable {len(raw)}-byte body redacted>".encode()


def split_namespace(path: str) -> tuple[str, str]:
    """``/ns/ci-42/v1/events`` -> ``("ci-42", "/v1/events")``; other paths are ``default``."""
    if path.startswith("/ns/"):
        name, sep, rest = path[4:].partition("/")
        if name:
            return name, "/" + rest if sep else "/"
    return "default", path


def read_body() -> None:
    """Read the body once, bounded by the size limit, and note what happened in ``g``.

    Nothing is raised here: the checks run in the documented order later (auth first), so an
    oversized body from an unauthenticated sender still gets its 401.
    """
    g.body, g.body_too_large, g.body_read_error = b"", False, False
    g.body_size = request.content_length or 0
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is not None and request.content_length > limit:
        g.body_too_large = True
        return
    try:
        if request.content_length is None and request.environ.get("wsgi.input_terminated"):
            # Chunked: werkzeug's stream stops quietly at the limit, so a longer body would be
            # parsed cut short. Read one byte past the limit from the server's own stream to
            # tell "exactly at the limit" from "over it", and hand werkzeug what was read.
            data = request.environ["wsgi.input"].read(limit + 1)
            if len(data) > limit:
                g.body_too_large, g.body_size = True, 0  # size unknown: "more than the limit"
                return
            request._cached_data = data  # werkzeug parses forms from this cache
            g.body = data
        else:
            g.body = request.get_data(cache=True)
        g.body_size = len(g.body)
    except RequestEntityTooLarge:
        g.body_too_large = True
    except (ClientDisconnected, OSError, ValueError, *FRAMING_ERRORS):
        g.body_read_error = True


def base_record() -> RequestRecord:
    services = current_app.extensions["rokt_mock"]
    namespace, endpoint = split_namespace(request.path)
    body = g.get("body") or None
    if body is not None and request.mimetype == "application/x-www-form-urlencoded":
        body = redact_form(body)
    elif body is not None and endpoint.endswith("/auth/oauth2/token"):
        body = redact_json(body)
    return RequestRecord(
        at=g.get("now") or services.clock.now(namespace),
        wall=time.time(),
        namespace=namespace,
        method=request.method,
        path=safe_path(request.full_path),  # query secrets redacted (docs/security.md)
        endpoint=endpoint,
        headers=redact_headers(request.headers),
        body=body,
        body_size=g.get("body_size", 0),
        body_sha256=hashlib.sha256(g.body).hexdigest() if g.get("body") else None,
    )


def refused_events(doc: Any) -> list[EventRecord]:
    """Best-effort event list of a refused body, so every attempt that carried an event id
    can be found later (the contract kit checks that retries carry the same events)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("events"), list):
        return []
    out = []
    for i, event in enumerate(doc["events"][:1000]):
        if isinstance(event, dict):
            ceid, etype = event.get("clientEventId"), event.get("eventType")
            out.append(
                EventRecord(
                    i,
                    ceid if isinstance(ceid, str) else None,
                    etype if isinstance(etype, str) else None,
                )
            )
    return out


def _after(response: Response) -> Response:
    if not is_journaled(request.path):
        return response
    if g.get("body_too_large"):
        response.headers["Connection"] = "close"
    request_id = g.get("journaled")
    if request_id is None:
        services = current_app.extensions["rokt_mock"]
        outcome = g.get("outcome", {})
        rec = base_record()
        rec.status = outcome.get("status", response.status_code)
        if g.get("network_fault") in ("reset", "stall", "empty"):
            rec.status = 0
        rec.code = outcome.get("code")
        rec.fault = g.get("fault_note")
        rec.api_version = outcome.get("api_version")
        rec.credential = outcome.get("credential")
        rec.account_id = outcome.get("account_id")
        rec.idempotency_key = outcome.get("idempotency_key")
        if rec.idempotency_key is None and rec.endpoint == "/v1/events":
            rec.idempotency_key = request.headers.get("Idempotency-Key")
        rec.warnings = outcome.get("warnings", [])
        error = g.get("error")
        if error is not None and getattr(error, "violations", None):
            rec.violations = [v.to_dict() for v in error.violations]
        rec.response = outcome.get("response_redacted") or response.get_json(silent=True)
        rec.duration_ms = (time.perf_counter() - g.started) * 1000 if "started" in g else None
        doc = g.get("doc")
        if doc is None and rec.endpoint.endswith("/events") and g.get("body"):
            try:  # a request refused before its body was parsed still names its events
                doc = parse_json(g.body)
            except ApiError:
                doc = None
        refused = refused_events(doc)
        if refused and rec.event_count is None:
            rec.event_count = len(doc["events"])
        if (
            rec.account_id is None
            and isinstance(doc, dict)
            and isinstance(doc.get("accountId"), str)
        ):
            rec.account_id = doc["accountId"]
        try:
            request_id = services.journal.record(rec, refused)
        except Exception:  # the journal is the evidence: never answer as if it were written
            log.exception("could not journal %s %s", request.method, request.path)
            return _journal_failure()
        _patch_request_id(response, request_id)
    response.headers[REQUEST_ID_HEADER] = str(request_id)
    return response


def _journal_failure() -> Response:
    response = current_app.response_class(
        json.dumps({"data": {"code": "InternalServerError", "message": "journal write failed"}}),
        status=500,
        mimetype="application/json",
    )
    return response


def _patch_request_id(response: Response, request_id: int) -> None:
    """Add ``data.details.requestId`` to an error body (it is only known after the insert)."""
    if current_app.config["ROKT_SETTINGS"].exact_bodies or response.status_code < 400:
        return
    payload = response.get_json(silent=True)
    data = payload.get("data") if isinstance(payload, dict) else None
    if isinstance(data, dict) and "code" in data:
        data.setdefault("details", {})["requestId"] = request_id
        response.set_data(json.dumps(payload, separators=(",", ":")))


def _before() -> None:
    g.started = time.perf_counter()
    g.outcome = {}
    if is_journaled(request.path):
        read_body()


def init_app(app: Flask) -> None:
    app.before_request(_before)
    app.after_request(_after)
