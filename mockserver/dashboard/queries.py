"""Read-only journal queries behind the dashboard, each bounded and served by an index.

The admin API answers exact questions ("every 409 of namespace ci-42"); a page that polls every
second or two needs smaller, cheaper answers: the funnel per account and a light list of recent
requests (no bodies, no headers). Every query here is capped by a row limit and walks an index:
``requests_ns`` (namespace, id) or the primary keys, never a whole table.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from ..clock import iso

#: SQLite allows 32766 bound parameters from 3.32 on; chunks of 500 stay far below any build's.
_CHUNK = 500
OUTCOMES = ("accepted", "duplicate", "rejected", "refused")


def _chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def recent_requests(journal: Any, namespace: str, window: int) -> tuple[list[dict[str, Any]], bool]:
    """The newest ``window`` requests of ``namespace`` (``*``: all) as (id, namespace,
    account, status) and whether that window holds every request of the namespace."""
    where, params = ("1", []) if namespace == "*" else ("namespace = ?", [namespace])
    rows = journal.query(
        f"SELECT id, namespace, account_id, status FROM requests WHERE {where}"
        " ORDER BY id DESC LIMIT ?",
        [*params, window + 1],
    )
    complete = len(rows) <= window
    return [dict(r) for r in rows[:window]], complete


def funnel(journal: Any, namespace: str, window: int) -> dict[str, Any]:
    """Requests by status and event outcomes per (namespace, account), over the newest
    ``window`` requests. ``complete`` says whether they are all of the namespace's requests,
    in which case the totals equal ``/__admin/summary``."""
    requests, complete = recent_requests(journal, namespace, window)
    groups: dict[tuple[str, str | None], dict[str, Any]] = {}

    def group(ns: str, account: str | None) -> dict[str, Any]:
        key = (ns, account)
        if key not in groups:
            groups[key] = {
                "namespace": ns,
                "accountId": account,
                "requests": {"total": 0, "byStatus": {}},
                "events": {
                    "received": 0,
                    "accepted": 0,
                    "duplicates": 0,
                    "rejected": 0,
                    "refused": 0,
                    "rejectedByRule": {},
                },
            }
        return groups[key]

    for r in requests:
        counts = group(r["namespace"], r["account_id"])["requests"]
        counts["total"] += 1
        status = str(r["status"])
        counts["byStatus"][status] = counts["byStatus"].get(status, 0) + 1
    ids = [r["id"] for r in requests]
    for chunk in _chunks(ids):
        marks = ",".join("?" * len(chunk))
        for row in journal.query(
            "SELECT namespace, account_id, outcome, rule, count(*) AS n FROM events"
            f" WHERE request_id IN ({marks}) GROUP BY namespace, account_id, outcome, rule",
            list(chunk),
        ):
            events = group(row["namespace"], row["account_id"])["events"]
            n = row["n"]
            events["received"] += n
            field = "duplicates" if row["outcome"] == "duplicate" else row["outcome"]
            events[field] = events.get(field, 0) + n
            if row["outcome"] == "rejected" and row["rule"]:
                by_rule = events["rejectedByRule"]
                by_rule[row["rule"]] = by_rule.get(row["rule"], 0) + n
    rows = sorted(groups.values(), key=lambda g: (g["namespace"], g["accountId"] or ""))
    return {
        "namespace": namespace,
        "window": window,
        "requestsScanned": len(requests),
        "complete": complete,
        "rows": rows,
    }


def light_requests(journal: Any, where: str, params: list[Any], limit: int) -> dict[str, Any]:
    """Newest-first rows without headers or bodies, with event outcomes counted, for the
    timeline and the requests table (which poll, so a row must stay a few hundred bytes)."""
    rows = journal.query(
        "SELECT id, at, wall, namespace, method, endpoint, api_version, account_id, status,"
        " code, idempotency_key, body_sha256, event_count, fault, duration_ms,"
        " coalesce(json_array_length(violations), 0) AS violation_count"
        f" FROM requests WHERE {where} ORDER BY id DESC LIMIT ?",
        [*params, limit + 1],
    )
    more = len(rows) > limit
    rows = rows[:limit]
    outcomes: dict[int, dict[str, int]] = {r["id"]: {} for r in rows}
    ids = [r["id"] for r in rows]
    for chunk in _chunks(ids):
        marks = ",".join("?" * len(chunk))
        for row in journal.query(
            "SELECT request_id, outcome, count(*) AS n FROM events"
            f" WHERE request_id IN ({marks}) GROUP BY request_id, outcome",
            list(chunk),
        ):
            outcomes[row["request_id"]][row["outcome"]] = row["n"]
    return {
        "requests": [_light(r, outcomes[r["id"]]) for r in rows],
        "next": rows[-1]["id"] if more else None,
    }


def _light(row: Any, outcomes: dict[str, int]) -> dict[str, Any]:
    fault = json.loads(row["fault"]) if row["fault"] else None
    return {
        "id": row["id"],
        "at": iso(row["at"]),
        "wallTime": iso(row["wall"]),
        "namespace": row["namespace"],
        "method": row["method"],
        "endpoint": row["endpoint"],
        "apiVersion": row["api_version"],
        "accountId": row["account_id"],
        "status": row["status"],
        "code": row["code"],
        "idempotencyKey": row["idempotency_key"],
        "bodySha256": row["body_sha256"],
        "eventCount": row["event_count"],
        "violationCount": row["violation_count"],
        "durationMs": row["duration_ms"],
        "outcomes": outcomes,
        "fault": None
        if fault is None
        else {
            "kind": fault.get("kind", "delay"),
            "rule": fault.get("rule"),
            "source": fault.get("source"),
            "committed": bool(fault.get("committed")),
        },
    }


def namespaces(journal: Any, limit: int) -> tuple[list[str], bool]:
    """Names that have requests, fault rules or a clock of their own, ``default`` first.

    The requests are walked with a loose index scan of ``requests_ns`` (one seek per distinct
    name), so a journal of a million rows in three namespaces costs three seeks, not a scan.
    """
    found = {
        r["n"]
        for r in journal.query(
            "WITH RECURSIVE ns(n) AS ("
            " SELECT min(namespace) FROM requests"
            " UNION ALL SELECT (SELECT min(namespace) FROM requests WHERE namespace > ns.n)"
            " FROM ns WHERE ns.n IS NOT NULL)"
            " SELECT n FROM ns WHERE n IS NOT NULL LIMIT ?",
            [limit + 1],
        )
    }
    for r in journal.query(
        "SELECT DISTINCT scope FROM fault_rules WHERE scope != '*' LIMIT ?", [limit + 1]
    ):
        found.add(r["scope"])
    for r in journal.query(
        # a range on the primary key: the state table also holds one row per revoked token
        "SELECT substr(key, 7) AS n FROM state WHERE key >= 'clock:' AND key < 'clock;' LIMIT ?",
        [limit + 1],
    ):
        found.add(r["n"])
    found.discard("default")
    names = ["default", *sorted(found)]
    return names[:limit], len(names) > limit
