"""The admin API under ``/__admin/``: health, journal queries, clock control, reset.

It is how tests and the contract kit see what arrived, so every read is consistent the moment
the API response was sent (the journal commits first); nobody needs to sleep before asking.
Query parameters are validated and a bad one gets a 400 in the usual envelope. With an admin
token configured, every call needs it (``X-Rokt-Mock-Admin-Token`` or ``Authorization:
Bearer``), except the health probe and the dashboard's page and static files (docs/security.md).
"""

from __future__ import annotations

import base64
import hmac
import json
import math
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from . import __version__
from .clock import iso
from .errors import AdminError, JsonUnmarshalError, NotFound, Violation
from .faults import install_scenarios
from .faults.model import OUTCOMES
from .settings import ROKT_VERSIONS
from .timefmt import parse_rfc3339
from .validation import parse_json, pointer

bp = Blueprint("admin", __name__, url_prefix="/__admin")

TOKEN_HEADER = "X-Rokt-Mock-Admin-Token"
#: Endpoints open to GET without the token: the health probe (which then leaves the journal
#: out of its answer) and the dashboard's page and static files, which hold no data.
_OPEN = frozenset({"admin.health", "dashboard.page", "dashboard.to_page", "dashboard.static"})
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="rokt-mock-admin"'}


class AdminTokenRequired(AdminError):
    status = 401
    code = "AdminTokenRequired"
    exact_message = "admin token required"


class AdminTokenInvalid(AdminError):
    status = 401
    code = "AdminTokenInvalid"
    exact_message = "admin token invalid"


ALL = "*"
_FAULT_FILTERS = frozenset({"any", "delay", *OUTCOMES})
_FIRST_SECOND, _LAST_SECOND = -62135596800 + 86400, 253402300799 - 86400


def _services() -> Any:
    return current_app.extensions["rokt_mock"]


def _bad_field(pointer: str, rule: str, message: str) -> AdminError:
    """A refusal that points at the offending field, like the Event API's."""
    return AdminError(message, violations=[Violation(pointer, rule, message)])


def _json_object(example: str) -> dict[str, Any]:
    """The body as a JSON object, parsed as strictly as events (depth, NaN, bad UTF-8 and
    broken framing are 400 BadAdminRequest in the envelope, never a 500)."""
    try:
        doc = parse_json(request.get_data(cache=True))
    except JsonUnmarshalError as exc:  # the admin API's own code, with the same pointer
        raise AdminError(
            f"the body is not JSON: {exc.violations[0].message}", violations=exc.violations
        ) from None
    if not isinstance(doc, dict):
        raise _bad_field("", "admin.body", f"the body must be a JSON object like {example}")
    return doc


def _bad(param: str, message: str) -> AdminError:
    return AdminError(
        f"{param}: {message}", [Violation(f"/{param}", f"query.{param}", message, "query")]
    )


def _int_arg(name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad(name, f"must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise _bad(name, f"must be between {lo} and {hi}, got {value}")
    return value


_NAMESPACE = re.compile(r"\*|[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _namespace(default: str = "default") -> str:
    value = request.args.get("namespace")
    if value is None:
        value = default
    # An empty value is refused rather than read as absent: where absent means "every
    # namespace" (reset, DELETE journal), a script with an empty variable would wipe them all.
    if not _NAMESPACE.fullmatch(value):
        raise _bad(
            "namespace",
            f"{value!r} is not a namespace: 1-64 of A-Z a-z 0-9 . _ - starting with a letter or "
            "digit, or * for all",
        )
    return value


def _ns_clause(namespace: str, column: str = "namespace") -> tuple[list[str], list[Any]]:
    return ([], []) if namespace == ALL else ([f"{column} = ?"], [namespace])


def request_json(row: Any, events: list[dict[str, Any]]) -> dict[str, Any]:
    """One journal row as the admin API and the export show it."""
    body = row["body"]
    item: dict[str, Any] = {
        "id": row["id"],
        "at": iso(row["at"]),
        "wallTime": iso(row["wall"]),
        "namespace": row["namespace"],
        "method": row["method"],
        "path": row["path"],
        "endpoint": row["endpoint"],
        "apiVersion": row["api_version"],
        "credential": row["credential"],
        "accountId": row["account_id"],
        "status": row["status"],
        "code": row["code"],
        "idempotencyKey": row["idempotency_key"],
        "bodySha256": row["body_sha256"],
        "bodySize": row["body_size"],
        "eventCount": row["event_count"],
        "headers": json.loads(row["headers"]),
        "body": None,
        "response": json.loads(row["response"]) if row["response"] else None,
        "violations": json.loads(row["violations"]) if row["violations"] else [],
        "warnings": json.loads(row["warnings"]) if row["warnings"] else [],
        "note": json.loads(row["note"]) if row["note"] else {},
        "fault": json.loads(row["fault"]) if row["fault"] else None,
        "durationMs": row["duration_ms"],
        "events": events,
    }
    if body is not None:
        try:
            item["body"] = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            item["bodyBase64"] = base64.b64encode(bytes(body)).decode("ascii")
    return item


def _request_filters() -> tuple[str, list[Any]]:
    namespace = _namespace()
    clauses, params = _ns_clause(namespace)
    since = request.args.get("since")
    if since:
        at = parse_rfc3339(since)
        if at is None:
            raise _bad("since", f"must be an RFC 3339 date-time, got {since!r}")
        clauses.append("at >= ?")
        params.append(at)
    status = request.args.get("status")
    if status:
        if re.fullmatch(r"[1-5][xX]{2}", status):
            lo = int(status[0]) * 100
            clauses.append("status BETWEEN ? AND ?")
            params += [lo, lo + 99]
        elif re.fullmatch(r"0|[1-5][0-9]{2}", status):
            clauses.append("status = ?")
            params.append(int(status))
        else:
            raise _bad(
                "status",
                f"must be a status like 409, a class like 4xx, or 0 (no answer), got {status!r}",
            )
    endpoint = request.args.get("endpoint")
    if endpoint:
        clauses.append("endpoint = ?")
        params.append(endpoint)
    fault = request.args.get("fault")
    if fault and fault not in _FAULT_FILTERS:
        raise _bad("fault", f"must be one of {', '.join(sorted(_FAULT_FILTERS))}, got {fault!r}")
    if fault:
        clauses.append(
            "fault IS NOT NULL" if fault == "any" else "json_extract(fault, '$.kind') = ?"
        )
        if fault != "any":
            params.append(fault)
    key = request.args.get("idempotencyKey")
    if key:
        clauses.append("idempotency_key = ?")
        params.append(key)
    ceid = request.args.get("clientEventId")
    if ceid:
        sub_clauses, sub_params = _ns_clause(namespace)
        where = " AND ".join(["client_event_id = ?", *sub_clauses])
        clauses.append(f"id IN (SELECT request_id FROM events WHERE {where})")
        params += [ceid, *sub_params]
    before = _int_arg("before", None, 1, 2**62)
    if before is not None:
        clauses.append("id < ?")
        params.append(before)
    return " AND ".join(clauses) or "1", params


def _given_token() -> str | None:
    """The token a request carries: ``X-Rokt-Mock-Admin-Token``, else a Bearer credential."""
    header = request.headers.get(TOKEN_HEADER)
    if header is not None:
        return header.strip()
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def token_ok() -> bool:
    """Whether this request may use the admin API: no token configured, or the right one
    (compared in constant time)."""
    expected = _services().settings.admin_token
    if not expected:
        return True
    given = _given_token()
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


@bp.before_app_request
def _require_admin_token() -> None:
    """Guard everything under ``/__admin`` (this blueprint, the dashboard's reads, unknown
    paths alike). The messages never repeat what was sent."""
    if not request.path.startswith("/__admin") or not _services().settings.admin_token:
        return
    if request.method in ("GET", "HEAD") and request.endpoint in _OPEN:
        return
    if _given_token() is None:
        raise AdminTokenRequired(
            f"this mock has an admin token: send it as {TOKEN_HEADER}: <token> "
            "or Authorization: Bearer <token>",
            headers=_CHALLENGE,
        )
    if not token_ok():
        raise AdminTokenInvalid(
            "the admin token does not match the one this mock was started with",
            headers=_CHALLENGE,
        )


@bp.get("/health")
def health() -> Any:
    services = _services()
    if not token_ok():  # an open probe: up or not, nothing about the journal or the clock
        return jsonify({"status": "ok", "version": __version__})
    counts = services.journal.counts()
    return jsonify(
        {
            "status": "ok",
            "version": __version__,
            "schemaVersion": services.schemas.version,
            "apiVersions": list(ROKT_VERSIONS),
            "journal": {"path": services.journal.path, **counts},
            "clock": services.clock.describe(),
        }
    )


@bp.get("/clock")
def get_clock() -> Any:
    return jsonify(_services().clock.describe(_clock_namespace()))


def _clock_namespace() -> str | None:
    """Clocks: no namespace (or ``*``) means the global clock."""
    name = _namespace(ALL)
    return None if name == ALL else name


@bp.post("/clock")
def post_clock() -> Any:
    body = _json_object('{"frozen": true}')
    unknown = sorted(set(body) - {"now", "advance", "frozen", "reset"})
    if unknown:
        raise _bad_field(
            pointer([unknown[0]]),
            "clock.unknown_field",
            f"unknown clock fields: {', '.join(unknown)} (known: now, advance, frozen, reset)",
        )
    set_to = None
    if "now" in body:
        if not isinstance(body["now"], str) or parse_rfc3339(body["now"]) is None:
            raise _bad_field(
                "/now",
                "clock.now",
                "now must be an RFC 3339 date-time such as 2026-11-20T12:00:00Z",
            )
        set_to = parse_rfc3339(body["now"])
    advance = body.get("advance", 0)
    if isinstance(advance, bool) or not isinstance(advance, (int, float)):
        raise _bad_field("/advance", "clock.advance", "advance must be a number of seconds")
    if not math.isfinite(advance) or abs(advance) > 100 * 365 * 86400:
        raise _bad_field(
            "/advance",
            "clock.advance",
            "advance must be a finite number of seconds within a century",
        )
    for flag in ("frozen", "reset"):
        if flag in body and not isinstance(body[flag], bool):
            raise _bad_field(f"/{flag}", f"clock.{flag}", f"{flag} must be true or false")
    start = set_to if set_to is not None else _services().clock.now(_clock_namespace())
    if not _FIRST_SECOND < start + advance < _LAST_SECOND:
        raise _bad_field(
            "/now" if "now" in body else "/advance",
            "clock.range",
            "the clock must stay between the years 1 and 9999",
        )
    namespace = _clock_namespace()
    if namespace is not None and body.get("reset"):
        _services().clock.forget(namespace)
        if len(body) == 1:
            return jsonify(_services().clock.describe(namespace))
    state = _services().clock.update(
        set_to=set_to,
        advance=float(advance),
        frozen=body.get("frozen"),
        reset=bool(body.get("reset", False)),
        namespace=namespace,
    )
    return jsonify(state)


@bp.get("/requests")
def list_requests() -> Any:
    journal = _services().journal
    where, params = _request_filters()
    limit = _int_arg("limit", 50, 1, 1000) or 50
    rows = list(journal.iter_requests(where, params, newest_first=True, limit=limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    events = journal.events_of([r["id"] for r in rows])
    return jsonify(
        {
            "requests": [request_json(r, events[r["id"]]) for r in rows],
            "next": rows[-1]["id"] if more else None,
        }
    )


@bp.get("/events")
def list_events() -> Any:
    """Delivery counts per event id, in the order the ids first arrived.

    Each delivered id has exactly one ``accepted`` event row, its first delivery; later ones are
    ``duplicate``. So the listing walks accepted rows in journal order (the events primary key:
    a page costs its own rows) and counts each id's deliveries through ``events_by_id``;
    ``minDeliveries`` above 1 starts from the duplicate rows. ``total`` counts every matching
    accepted row (docs/performance.md has the costs at a million events).
    """
    journal = _services().journal
    filters, params = _ns_clause(_namespace())
    for arg, column in (("accountId", "account_id"), ("clientEventId", "client_event_id")):
        value = request.args.get(arg)
        if value:
            filters.append(f"{column} = ?")
            params.append(value)
    clauses = [f"e.{clause}" for clause in filters]
    same_id = (
        " FROM events AS d WHERE d.client_event_id = e.client_event_id"
        " AND d.namespace = e.namespace AND d.account_id IS e.account_id"
        " AND d.outcome IN ('accepted', 'duplicate')"
    )
    min_deliveries = _int_arg("minDeliveries", None, 1, 2**31)
    if min_deliveries is not None and min_deliveries > 1:
        # ids delivered at least N times have N-1 duplicate rows: find those in one pass
        # (there are few), rather than counting every accepted id's deliveries.
        clauses.append(
            "(e.client_event_id, e.namespace, coalesce(e.account_id, '')) IN (SELECT"
            " client_event_id, namespace, coalesce(account_id, '') FROM events"
            " WHERE "
            + " AND ".join(["outcome = 'duplicate'", *filters])
            + " GROUP BY 1, 2, 3 HAVING count(*) >= ?)"
        )
        params = [*params, *params, min_deliveries - 1]
    where = " AND ".join(["e.outcome = 'accepted'", *clauses])
    limit = _int_arg("limit", 100, 1, 1000)
    offset = _int_arg("offset", 0, 0, 2**62)
    total = journal.query(f"SELECT count(*) AS n FROM events AS e WHERE {where}", params)[0]["n"]
    rows = journal.query(
        "SELECT p.*, f.at AS first_at, l.at AS last_at FROM ("
        "SELECT e.namespace, e.account_id, e.client_event_id, e.event_type,"
        f" e.request_id AS first_request_id, e.idx, (SELECT count(*){same_id}) AS deliveries,"
        f" (SELECT max(d.request_id){same_id}) AS last_request_id"
        f" FROM events AS e WHERE {where} ORDER BY e.request_id, e.idx LIMIT ? OFFSET ?"
        ") AS p JOIN requests AS f ON f.id = p.first_request_id"
        " JOIN requests AS l ON l.id = p.last_request_id"
        " ORDER BY p.first_request_id, p.idx",
        [*params, limit, offset],
    )
    return jsonify(
        {
            "events": [
                {
                    "namespace": r["namespace"],
                    "accountId": r["account_id"],
                    "clientEventId": r["client_event_id"],
                    "eventType": r["event_type"],
                    "deliveries": r["deliveries"],
                    "firstRequestId": r["first_request_id"],
                    "lastRequestId": r["last_request_id"],
                    "firstAt": iso(r["first_at"]),
                    "lastAt": iso(r["last_at"]),
                }
                for r in rows
            ],
            "total": total,
        }
    )


@bp.get("/summary")
def summary() -> Any:
    journal = _services().journal
    namespace = _namespace()
    by_status: dict[str, int] = {}
    by_code: dict[str, int] = {}
    by_fault: dict[str, int] = {}
    by_rule: dict[str, int] = {}
    outcomes = {o: 0 for o in ("accepted", "duplicate", "rejected", "refused")}
    total = 0
    # running counts kept in each commit's transaction (journal.py, tallies): constant time
    for kind, key, n in journal.tallies(None if namespace == ALL else namespace):
        if kind == "req":
            status, _, code = key.partition("|")
            total += n
            by_status[status] = by_status.get(status, 0) + n
            if code:
                by_code[code] = by_code.get(code, 0) + n
        elif kind == "fault":
            by_fault[key] = by_fault.get(key, 0) + n
        elif kind == "ev":
            outcome, _, rule = key.partition("|")
            outcomes[outcome] = outcomes.get(outcome, 0) + n
            if outcome == "rejected" and rule:
                by_rule[rule] = by_rule.get(rule, 0) + n
    # every first delivery of an id is an "accepted" event
    unique = outcomes["accepted"]
    return jsonify(
        {
            "namespace": namespace,
            "requests": {
                "total": total,
                "byStatus": by_status,
                "byCode": by_code,
                "byFault": by_fault,
            },
            "events": {
                "received": sum(outcomes.values()),
                "accepted": outcomes["accepted"],
                "duplicates": outcomes["duplicate"],
                "rejected": outcomes["rejected"],
                "refused": outcomes["refused"],
                "unique": unique,
                "rejectedByRule": by_rule,
            },
        }
    )


@bp.delete("/journal")
def clear_journal() -> Any:
    namespace = _namespace(ALL)
    _services().journal.clear(None if namespace == ALL else namespace)
    return jsonify({"cleared": True, "namespace": namespace})


def _reset_namespace(namespace: str) -> None:
    services = _services()
    services.journal.clear(namespace, state=True)
    services.faults.delete(namespace)
    services.faults.forget_namespace(namespace)
    services.clock.forget(namespace)


@bp.post("/reset")
def reset() -> Any:
    """Back to how the server started: journal, keys, API-added fault rules, counters, clocks.

    Rules loaded from ``--scenario`` files stay (with fresh counters), as at start-up.
    """
    services = _services()
    given = _namespace(ALL)
    if given != ALL:
        _reset_namespace(given)
        return jsonify({"reset": True, "namespace": given})
    services.journal.clear(None, state=True)
    with services.journal.transaction() as db:
        db.execute("DELETE FROM fault_rules WHERE source NOT LIKE 'scenario:%'")
        db.execute("DELETE FROM state WHERE key LIKE 'clock:%' OR key LIKE 'revoked:%'")
    services.clock.update(reset=True)
    # Scenario rules start over as at start-up: fresh counters, windows anchored to now.
    install_scenarios(
        services.faults,
        services.settings.scenarios,
        services.schemas.validators["scenario"],
        services.clock.now(),
    )
    return jsonify({"reset": True, "namespace": ALL})


@bp.delete("/namespaces/<name>")
def delete_namespace(name: str) -> Any:
    """Forget everything one namespace has: its journal, keys, rules, counters and clock."""
    if name == ALL:
        raise AdminError("use POST /__admin/reset to reset every namespace")
    if not _NAMESPACE.fullmatch(name):
        raise _bad("namespace", f"{name!r} is not a namespace name")
    _reset_namespace(name)
    return jsonify({"reset": True, "namespace": name})


@bp.get("/faults")
def list_faults() -> Any:
    services = _services()
    scope = _namespace()
    return jsonify({"namespace": scope, "rules": services.faults.list(scope, _scope_now(scope))})


def _scope_now(scope: str) -> float:
    """The clock a rule of ``scope`` lives on: the namespace's own, or the global one."""
    return _services().clock.now(None if scope == ALL else scope)


@bp.post("/faults")
def add_faults() -> Any:
    """One rule, ``{"rules": [...], "seed": N}``, or ``{"scenario": "NAME"}`` (a bundled one)."""
    from .faults.scenario import ScenarioError, find, load, named_rules

    services = _services()
    scope = _namespace()
    body = _json_object('{"fault": {"status": 503}}, {"rules": [...]} or {"scenario": NAME}')
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise _bad_field("/seed", "faults.seed", "seed must be an integer")
    if "scenario" in body:
        try:
            path = find(str(body["scenario"]), bundled_only=True)
            data = load(path, services.schemas.validators["scenario"])
        except ScenarioError as exc:
            raise _bad_field("/scenario", "admin.scenario", str(exc)) from None
        rules = named_rules(data)
        seed = data.get("seed", seed)
    elif "rules" in body:
        rules = body["rules"]
        if not isinstance(rules, list) or not rules:
            raise _bad_field("/rules", "faults.rules", "rules must be a non-empty list of rules")
    else:
        rules = [body]
    added = services.faults.add(
        scope,
        rules,
        _scope_now(scope),
        seed=seed,
        single="rules" not in body and "scenario" not in body,
    )
    return jsonify({"namespace": scope, "rules": added}), 201


@bp.delete("/faults")
def clear_faults() -> Any:
    scope = _namespace()
    return jsonify({"namespace": scope, "deleted": _services().faults.delete(scope)})


@bp.delete("/faults/<rule_id>")
def delete_fault(rule_id: str) -> Any:
    scope = _namespace()
    if not _services().faults.delete(scope, rule_id):
        raise NotFound(f"no fault rule {rule_id!r} in namespace {scope!r}")
    return jsonify({"namespace": scope, "deleted": 1})


@bp.get("/journal/export")
def export() -> Any:
    journal = _services().journal
    where, params = _request_filters()

    def lines() -> Iterator[str]:
        batch: list[Any] = []
        for row in journal.iter_requests(where, params, newest_first=False, limit=None):
            batch.append(row)
            if len(batch) == 200:
                yield from _render(journal, batch)
                batch = []
        yield from _render(journal, batch)

    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    return Response(
        lines(),
        mimetype="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="rokt-mock-journal-{stamp}.jsonl"'},
    )


def _render(journal: Any, rows: list[Any]) -> Iterator[str]:
    events = journal.events_of([r["id"] for r in rows])
    for r in rows:
        yield json.dumps(request_json(r, events[r["id"]]), ensure_ascii=False) + "\n"
