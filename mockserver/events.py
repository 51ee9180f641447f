"""POST /v1/events and POST /v2/events: every check in the order decisions.md fixes.

1 auth (401) -> 2 headers (400) -> 3 body read, size, JSON and types (413/400) -> 4 request
validation (400) -> 5 account binding (403) -> 6 v1 idempotency (409) -> 7 per-event rules
(``unprocessedRecords``) -> 8 commit and 200. Stages 6 to 8 run in one journal transaction.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request

from . import faults
from .auth import authenticate_bearer, authenticate_key_pair, claimed_identity
from .errors import (
    ApiError,
    BodyReadError,
    BodyTooLarge,
    Forbidden,
    IdempotencyKeyReused,
    JsonUnmarshalError,
    RequestValidationError,
    Violation,
)
from .faults.inject import InjectedStatus
from .journal import EventRecord
from .recording import base_record
from .settings import ROKT_VERSIONS
from .validation import parse_json

bp = Blueprint("events", __name__)

_RECORD_ERROR_MESSAGE = "Invalid content"  # Rokt's documented per-record message


def _header_checks(version: str, strict: bool) -> list[Violation]:
    """Stage 2. Raises for hard failures; returns contract warnings."""
    warnings: list[Violation] = []
    if (request.mimetype or "").lower() != "application/json":
        raise BodyReadError(
            violations=[
                Violation(
                    "/Content-Type",
                    "header.content_type",
                    "Content-Type must be application/json, "
                    f"got {request.content_type or 'none'!r}",
                    "header",
                )
            ]
        )
    charset_param = request.mimetype_params.get("charset")
    if charset_param is not None and charset_param.lower().replace("-", "") != "utf8":
        warnings.append(
            Violation(
                "/Content-Type",
                "header.charset",
                f"the body must be UTF-8, Content-Type says charset={charset_param}",
                "header",
            )
        )
    rokt_version = request.headers.get("Rokt-Version", "").strip()
    if rokt_version and rokt_version not in ROKT_VERSIONS:
        raise RequestValidationError(
            violations=[
                Violation(
                    "/Rokt-Version",
                    "header.rokt_version",
                    f"unknown Rokt-Version {rokt_version!r}; known: {', '.join(ROKT_VERSIONS)}",
                    "header",
                )
            ]
        )
    charset = request.headers.get("Charset")
    if charset is None:
        warnings.append(
            Violation(
                "/Charset",
                "header.charset",
                "Rokt documents a required 'Charset: utf-8' header; it is missing",
                "header",
            )
        )
    elif charset.strip().lower().replace("-", "") != "utf8":
        warnings.append(
            Violation(
                "/Charset", "header.charset", f"Charset must be utf-8, got {charset!r}", "header"
            )
        )
    if version == "v1":
        key = request.headers.get("Idempotency-Key")
        g.outcome["idempotency_key"] = key
        if not key:
            raise RequestValidationError(
                violations=[
                    Violation(
                        "/Idempotency-Key",
                        "header.idempotency_key",
                        "v1 requires an Idempotency-Key header holding a UUID v4",
                        "header",
                    )
                ]
            )
        try:
            parsed = uuid.UUID(key.strip())
            canonical = len(key.strip()) == 36
        except ValueError:
            parsed, canonical = None, False
        if parsed is None or not canonical:
            raise RequestValidationError(
                violations=[
                    Violation(
                        "/Idempotency-Key",
                        "header.idempotency_key",
                        f"Idempotency-Key must be a UUID (8-4-4-4-12 hex), got {key!r}",
                        "header",
                    )
                ]
            )
        if parsed.version != 4:
            warnings.append(
                Violation(
                    "/Idempotency-Key",
                    "header.idempotency_key_version",
                    f"Rokt asks for a UUID v4; this key is version {parsed.version}",
                    "header",
                )
            )
    if strict and warnings:
        raise RequestValidationError(violations=warnings)
    return warnings


def _body() -> Any:
    """Stage 3: the body, read once by the recording hook, as JSON."""
    if g.body_too_large:
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        raise BodyTooLarge(
            violations=[
                Violation(
                    "",
                    "body.too_large",
                    f"the body is {g.body_size or 'more than ' + str(limit)} bytes; "
                    f"the limit is {limit}",
                )
            ]
        )
    if g.body_read_error:
        raise BodyReadError(violations=[Violation("", "body.read", "the body could not be read")])
    return parse_json(g.body)


def _parsed_for_matching() -> Any:
    return None if g.body_too_large or g.body_read_error else parse_json(g.body)


def _handle(version: str, namespace: str) -> Any:
    services = current_app.extensions["rokt_mock"]
    settings = services.settings
    g.now = now = services.clock.now(namespace)
    g.outcome["api_version"] = version
    auth_header = request.headers.get("Authorization")
    # 0. faults that replace processing (outage, rate limit, resets, ...)
    selection = faults.before(
        faults.Facts(
            namespace, "events", version, claimed_identity(auth_header), now, _parsed_for_matching
        ),
        services,
    )
    # 1. auth
    if version == "v1":
        cred = authenticate_bearer(services.tokens, auth_header, now)
    else:
        cred = authenticate_key_pair(services.keys, auth_header)
    g.outcome["credential"] = cred.ident
    # 2. headers
    warnings = _header_checks(version, settings.strict)
    g.outcome["warnings"] = [w.to_dict() for w in warnings]
    # 3. body
    doc = _body()
    g.doc = doc
    verdict = services.contract.check(doc, now, strict=settings.strict)
    if verdict.unmarshal:
        raise JsonUnmarshalError(violations=verdict.unmarshal)
    if isinstance(doc, dict) and isinstance(doc.get("accountId"), str):
        g.outcome["account_id"] = doc["accountId"]
    # 4. request-level validation
    if verdict.request:
        raise RequestValidationError(violations=verdict.request)
    warnings += verdict.warnings
    g.outcome["warnings"] = [w.to_dict() for w in warnings]
    # 5. account binding
    account = doc["accountId"]
    if account not in cred.accounts:
        raise Forbidden(
            f"credential {cred.ident!r} is not authorised for account {account!r}",
            violations=[
                Violation("/accountId", "accountId.forbidden", "not bound to this credential")
            ],
        )
    # 6-8 in one transaction
    events = doc["events"]
    if selection.outcome == "partialReject" and selection.fault is not None:
        _partial_reject(selection, events, verdict.events)
    records = [
        EventRecord(
            i,
            ev["clientEventId"],
            ev["eventType"],
            verdict.events[i][0].rule if i in verdict.events else None,
        )
        for i, ev in enumerate(events)
    ]
    rec = base_record()
    rec.api_version, rec.credential, rec.account_id = version, cred.ident, account
    rec.idempotency_key = g.outcome.get("idempotency_key") if version == "v1" else None
    rec.event_count = len(events)
    rec.warnings = g.outcome["warnings"]
    rec.violations = [v.to_dict() for v in verdict.event_violations]
    unprocessed = [
        {
            "error": {
                "code": "ValidationError",
                "message": _RECORD_ERROR_MESSAGE
                if settings.exact_bodies
                else "; ".join(f"{v.pointer}: {v.message}" for v in verdict.events[i]),
            },
            "record": events[i],
        }
        for i in sorted(verdict.events)
    ]
    reject = settings.invalid_events == "reject"
    rec.response = {"data": {"unprocessedRecords": unprocessed}}
    exact = settings.exact_bodies
    rec.duration_ms = (time.perf_counter() - g.started) * 1000
    answer = None
    accept_then = selection.fault.get("acceptThen") if selection.fault is not None else None
    if accept_then is not None:
        answer = (
            (accept_then, InjectedStatus.code_for(accept_then))
            if isinstance(accept_then, int)
            else (0, faults.NETWORK_CODES[accept_then])
        )
    elif selection.outcome in ("truncate", "malformed"):
        answer = (200, "TruncatedBody" if selection.outcome == "truncate" else "MalformedBody")
    rec.fault = g.get("fault_note")

    def refusal(status: int, code: str) -> dict[str, Any]:
        """The journaled body of a batch refused inside the transaction (409, or 400 reject)."""
        error: ApiError = (
            IdempotencyKeyReused()
            if status == 409
            else RequestValidationError(violations=verdict.event_violations)
        )
        return {"data": {"code": code, "message": error.body(exact)["data"]["message"]}}

    result = services.journal.commit_batch(
        rec,
        records,
        retention=settings.idempotency_retention,
        reject_invalid=reject,
        answer=answer,
        refusal=refusal,
    )
    g.journaled = g.request_id = result.request_id  # error bodies from here on name it
    if result.reused is not None:
        original, differs = result.reused
        raise IdempotencyKeyReused(
            f"Idempotency-Key {rec.idempotency_key} was already accepted in request {original}"
            + (" with a different body" if differs else ""),
            extra={
                "requestId": result.request_id,
                "originalRequestId": original,
                "bodyDiffers": differs,
            },
        )
    if rec.status == 400 and rec.code == "RequestValidationError":
        raise RequestValidationError(
            violations=verdict.event_violations, extra={"requestId": result.request_id}
        )
    if accept_then is not None:
        if isinstance(accept_then, int):
            raise InjectedStatus(accept_then, {}, g.fault_note)
        faults.mark_network(accept_then)
    g.outcome.update(status=200)
    data: dict[str, Any] = {"unprocessedRecords": unprocessed}
    if not settings.exact_bodies:
        for record, violations in zip(
            unprocessed, (verdict.events[i] for i in sorted(verdict.events)), strict=True
        ):
            record["error"]["details"] = [v.to_dict() for v in violations]
        data["details"] = {
            "requestId": result.request_id,
            "accepted": result.outcomes.count("accepted"),
            "duplicates": result.outcomes.count("duplicate"),
            "rejected": result.outcomes.count("rejected"),
            "warnings": g.outcome["warnings"],
        }
    faults.after_answer(selection)
    return faults.finish(jsonify({"data": data}))


def _partial_reject(
    selection: faults.Selection, events: list[Any], rejected: dict[int, list[Violation]]
) -> None:
    """Mark the events a ``partialReject`` fault chooses as unprocessed (ValidationError)."""
    params = selection.fault.spec["partialReject"] if selection.fault else {}
    chosen: list[int] = []
    if "indexes" in params:
        chosen = [i for i in params["indexes"] if i < len(events)]
    elif "every" in params:
        chosen = [i for i in range(len(events)) if (i + 1) % params["every"] == 0]
    else:
        chosen = [
            i for i in range(len(events)) if selection.u(f"partial-{i}") < params["probability"]
        ]
    for i in chosen:
        rejected.setdefault(i, []).append(
            Violation(
                f"/events/{i}",
                "fault.partial_reject",
                "not processed: rejected by an injected partialReject fault",
                "body",
                i,
            )
        )
    if g.get("fault_note") is not None:
        g.fault_note["rejectedIndexes"] = chosen


@bp.post("/v1/events")
def post_v1(namespace: str = "default") -> Any:
    return _handle("v1", namespace)


@bp.post("/v2/events")
def post_v2(namespace: str = "default") -> Any:
    return _handle("v2", namespace)
