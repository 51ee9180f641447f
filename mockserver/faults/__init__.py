"""Configurable failures: every error a sender must survive, reproducible on demand.

``model`` holds the rules as data, ``engine`` stores and selects them, ``inject`` carries them
out, ``scenario`` reads scenario files. This module joins them to a request: views call
:func:`before` at the top and :func:`after` once the normal processing has decided its answer.
"""

from __future__ import annotations

import time
from typing import Any

from flask import current_app, g, request

from ..errors import Unauthorized
from .engine import ALL, Facts, FaultEngine, Selection, retry_after_header
from .inject import MARK, NETWORK_CODES, InjectedStatus, NetworkFaults, oauth_injected
from .scenario import ScenarioError, find, load, named_rules

__all__ = [
    "ALL",
    "MARK",
    "Facts",
    "FaultEngine",
    "NetworkFaults",
    "ScenarioError",
    "Selection",
    "after_answer",
    "before",
    "finish",
    "install_scenarios",
    "mark_network",
]

HEADER = "X-Rokt-Mock-Fault"


def install_scenarios(
    engine: FaultEngine, scenarios: tuple[str, ...], validator: Any, now: float
) -> None:
    """Replace the rules of earlier scenario runs with these (scope ``*``: every namespace)."""
    with engine.journal.transaction() as db:
        stale = db.execute(
            "SELECT scope, id FROM fault_rules WHERE source LIKE 'scenario:%'"
        ).fetchall()
        for scope, rule_id in stale:
            for table in ("fault_rules", "fault_state", "rate_buckets"):
                db.execute(f"DELETE FROM {table} WHERE scope=? AND id=?", (scope, rule_id))
    for name in scenarios:
        data = load(find(name), validator)
        engine.add(
            ALL, named_rules(data), now, seed=data.get("seed"), source=f"scenario:{data['name']}"
        )


def _mark(kind: str, **params: Any) -> None:
    request.environ[MARK] = {"kind": kind, **params}
    g.network_fault = kind


def _note(selection: Selection, **extra: Any) -> None:
    note = selection.note()
    if note is not None:
        note.update(extra)
        g.fault_note = note


def before(facts: Facts, services: Any, oauth: bool = False) -> Selection:
    """Select the fault, wait its latency, and carry out outcomes that replace processing.

    Raises the injected answer (status, rate limit, expired token), or marks a socket fault and
    raises :class:`NetworkFault` so the view stops; returns the selection otherwise.
    """
    header = request.headers.get(HEADER)
    if header is not None:
        selection = services.faults.header(header, facts.endpoint)
    else:
        selection = services.faults.select(facts)
    if selection.delay:
        time.sleep(selection.delay)
    _note(selection)
    outcome = selection.outcome
    if outcome is None or selection.fault is None or selection.fault.after_processing:
        return selection
    spec = selection.fault.spec
    headers: dict[str, str] = {}
    if outcome in ("status", "rateLimit"):
        status = 429 if outcome == "rateLimit" else int(spec["status"])
        if selection.retry_after is not None:
            fmt = (
                spec.get("retryAfterFormat")
                or spec.get("rateLimit", {}).get("retryAfterFormat")
                or "seconds"
            )
            headers["Retry-After"] = retry_after_header(selection.retry_after, fmt)
        if status == 401:
            headers["WWW-Authenticate"] = (
                'Basic realm="rokt-mock"'
                if oauth or facts.version == "v2"
                else 'Bearer realm="rokt-mock", error="invalid_token"'
            )
        if oauth:
            raise oauth_injected(status, headers)
        raise InjectedStatus(status, headers, g.fault_note)
    if outcome == "expireToken":
        token = _bearer_token()
        if token is not None:
            services.tokens.revoke(token, facts.now)
        if facts.version == "v2":  # no token to expire: the key pair is refused once
            raise Unauthorized(
                "the key pair was refused (injected expireToken fault)",
                headers={"WWW-Authenticate": 'Basic realm="rokt-mock"'},
                extra={"fault": g.fault_note},
            )
        raise Unauthorized(
            "the access token expired (injected fault)",
            headers={"WWW-Authenticate": 'Bearer realm="rokt-mock", error="invalid_token"'},
            extra={"tokenExpired": True, "fault": g.fault_note},
        )
    mark_network(outcome, float(spec["stall"]) if outcome == "stall" else 30.0)


def mark_network(kind: str, stall_seconds: float = 30.0) -> None:
    """Hand the connection to the middleware (reset, stall or empty) and stop the view."""
    if kind == "stall":
        _mark("stall", seconds=stall_seconds)
    else:
        _mark(kind)
    raise NetworkFault()


def after_answer(selection: Selection, oauth: bool = False) -> None:
    """Mangle a normal 200 answer as truncate, malformed or dribble faults ask."""
    outcome = selection.outcome
    if selection.fault is None or outcome not in ("truncate", "malformed", "dribble"):
        return
    spec = selection.fault.spec
    if outcome == "truncate":
        _mark("truncate", fraction=float(spec["truncate"]))
    elif outcome == "dribble":
        _mark("dribble", **spec["dribble"])
    else:
        g.malformed = True


MALFORMED_BODY = b'{"data": {"unprocessedRecords": [{"error": {"code": '
MALFORMED_TOKEN = b'{"access_token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIi'


def finish(response: Any, oauth: bool = False) -> Any:
    """The response as sent: replaced by broken JSON (still a 200) under a malformed fault."""
    if g.get("malformed"):
        response.set_data(MALFORMED_TOKEN if oauth else MALFORMED_BODY)
        g.outcome["code"] = "MalformedBody"
    elif request.environ.get(MARK, {}).get("kind") == "truncate":
        g.outcome["code"] = "TruncatedBody"
    return response


class NetworkFault(Exception):
    """Raised by a view to stop processing; the middleware then acts on the socket."""


def _bearer_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def register(app: Any) -> None:
    """Answer :class:`NetworkFault` with an empty placeholder the middleware never sends."""

    @app.errorhandler(NetworkFault)
    def _network(_: NetworkFault) -> Any:
        kind = g.get("network_fault", "reset")
        g.outcome.update(status=0, code=NETWORK_CODES.get(kind, kind))
        return current_app.response_class(b"", status=200)
