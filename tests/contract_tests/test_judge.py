"""The judge on hand-built journals: every property holds on a good run and fires on a bad one.

:class:`JournalBuilder` writes rows in the exact shape of ``GET /__admin/requests`` (checked
against ``mockserver.admin.request_json``) and imitates what the mock journals for each fault
of the kit's schedule vocabulary: statuses, codes, ``fault`` notes, committed batches, event
outcomes (accepted, duplicate, rejected, refused) and the v1 409 on a reused key. Each failing
journal asserts the exact set of MUST properties that fire, so a false alarm fails too.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections import Counter
from datetime import datetime, timezone
from typing import Any

import pytest

from contract_tests.judge import ContractViolation, format_timeline, judge, raise_first
from contract_tests.model import FAULT_KINDS, Case, Finding, Judgement, SenderRun
from contract_tests.properties import GROUP_ORDER, ORDER, PROPERTIES, exception_for

ACCOUNT = "1234567890"
T0 = 1795176000.0  # 2026-11-20T12:00:00Z
NS = "kit-1"

PROTOCOL_IDS = (
    "request.schema",
    "request.batch_limit",
    "delivery.no_loss",
    "delivery.no_duplicate",
    "delivery.report_truthful",
    "delivery.content_faithful",
    "idempotency.key_reused_on_retry",
    "idempotency.key_unique_per_batch",
    "retry.on_transient",
    "retry.not_on_client_error",
    "retry.honours_retry_after",
    "retry.backoff_grows",
    "retry.bounded",
    "auth.token_reused",
    "auth.refresh_on_401",
    "partial.resend_only_failed",
    "liveness.terminates",
    "ambiguous.accept_then_fail",
)


# -- builders -------------------------------------------------------------------------------


def iso(ts: float) -> str:
    moment = datetime.fromtimestamp(ts, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def eid(i: int) -> str:
    return f"{i:08x}-5b1e-4c8e-9a51-2f0d6e8b9c01"


def K(n: int) -> str:
    """An Idempotency-Key, recognisable by its number."""
    return f"{n:08d}-8d4a-4f6b-9e2c-1a7d5b3c9e0f"


def event(i: int, **overrides: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "clientEventId": eid(i),
        "eventType": "conversion",
        "eventTime": "2026-11-20T11:58:00.000Z",
        "objectData": [
            {"name": "email", "value": f"user{i}@example.com"},
            {"name": "conversiontype", "value": "order"},
        ],
    }
    out.update(overrides)
    return out


def events(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [event(i) for i in range(start, start + n)]


_STATUS_CODES = {
    400: "RequestValidationError",
    401: "UnauthorizedError",
    429: "TooManyRequestsError",
    500: "InternalServerError",
    502: "ServiceUnavailableError",
    503: "ServiceUnavailableError",
    504: "ServiceUnavailableError",
}
_NETWORK = {"reset": "ConnectionReset", "empty": "EmptyReply", "stall": "Stalled"}
_COMMITTING = ("ok", "partial-reject", "accept-then-500", "accept-then-reset", "truncate")


class JournalBuilder:
    """Rows as ``/__admin/requests`` returns them, oldest first, imitating the mock."""

    def __init__(self, api: str = "v1") -> None:
        self.api = api
        self.rows: list[dict[str, Any]] = []
        self.now = T0
        self.deliveries: Counter[str] = Counter()
        self.accepted_keys: set[str] = set()
        self.fired = 0

    # -- raw rows --------------------------------------------------------------------------

    def _row(self, endpoint: str, wait: float, duration_ms: float, **fields: Any) -> dict:
        self.now += wait
        wall = self.now + duration_ms / 1000.0
        self.now = wall
        path = fields.pop("path", None) or f"/ns/{NS}{endpoint}"
        row = {
            "id": len(self.rows) + 1,
            "at": fields.pop("at", None) or iso(wall),
            "wallTime": iso(wall),
            "namespace": NS,
            "method": fields.pop("method", "POST"),
            "path": path,
            "endpoint": endpoint,
            "apiVersion": None,
            "credential": None,
            "accountId": None,
            "status": 200,
            "code": None,
            "idempotencyKey": None,
            "bodySha256": None,
            "bodySize": 0,
            "eventCount": None,
            "headers": {},
            "body": None,
            "response": None,
            "violations": [],
            "warnings": [],
            "note": {},
            "fault": None,
            "durationMs": duration_ms,
            "events": [],
        }
        row.update(fields)
        self.rows.append(row)
        return row

    def _fault(self, kind: str, spec: dict[str, Any], **extra: Any) -> dict[str, Any]:
        self.fired += 1
        return {
            "source": "rule",
            "rule": f"kit-{self.fired}",
            "kind": kind,
            "attempt": self.fired,
            "fault": spec,
            **extra,
        }

    def token(
        self,
        answer: str = "ok",
        *,
        wait: float = 0.0,
        status: int | None = None,
        path: str | None = None,
    ) -> dict[str, Any]:
        fault = None
        if answer != "ok":
            fault = self._fault("status", {"status": int(answer)})
            status = int(answer)
        status = status or 200
        response: dict[str, Any] = (
            {"access_token": "<redacted>"}
            if status == 200
            else {"error": "invalid_client", "error_description": f"{status} answer"}
        )
        return self._row(
            "/auth/oauth2/token",
            wait,
            1.0,
            path=path,
            status=status,
            code=None if status == 200 else response["error"],
            credential="demo-app-id",
            headers={
                "Authorization": "Basic <redacted>",
                "Content-Type": "application/x-www-form-urlencoded",
            },
            body="grant_type=client_credentials",
            bodySize=29,
            response=response,
            fault=fault,
        )

    def post(
        self,
        evs: list[dict[str, Any]],
        answer: str = "ok",
        *,
        key: str | None = None,
        wait: float = 0.0,
        duration_ms: float = 2.0,
        rules: dict[int, str] | None = None,
        partial: tuple[int, ...] = (0,),
        refuse: tuple[int, str, list[dict[str, Any]], str] | None = None,
        warnings: list[dict[str, Any]] | None = None,
        extra_body: dict[str, Any] | None = None,
        at: str | None = None,
        path: str | None = None,
        method: str = "POST",
        endpoint: str | None = None,
    ) -> dict[str, Any]:
        """One events attempt answered as ``answer`` (a schedule kind, or "refuse").

        ``refuse=(status, code, violations, message)`` answers a non-injected refusal;
        ``rules`` maps event indexes to the per-event rule that rejects them.
        """
        api = self.api
        endpoint = endpoint or f"/{api}/events"
        if api == "v1" and key is None:
            key = K(100 + len(self.rows))
        doc = {"accountId": ACCOUNT, "events": evs, **(extra_body or {})}
        body = json.dumps(doc)
        fields: dict[str, Any] = {
            "apiVersion": api,
            "credential": "demo-app-id" if api == "v1" else "rpub-demo-0001",
            "accountId": ACCOUNT,
            "idempotencyKey": key if api == "v1" else None,
            "bodySha256": hashlib.sha256(body.encode()).hexdigest(),
            "bodySize": len(body.encode()),
            "headers": {
                "Authorization": "Bearer <redacted>" if api == "v1" else "Basic <redacted>",
                "Content-Type": "application/json",
                "Charset": "utf-8",
                "Rokt-Version": "2020-05-21",
                **({"Idempotency-Key": key} if api == "v1" and key else {}),
            },
            "body": body,
            "warnings": warnings or [],
            "at": at,
            "path": path,
            "method": method,
        }
        rules = dict(rules or {})

        def refused(status: int, code: str, message: str, fault: Any = None, **extra: Any):
            details = {"requestId": len(self.rows) + 1, **extra}
            return self._row(
                endpoint,
                wait,
                duration_ms,
                **fields,
                status=status,
                code=code,
                fault=fault,
                response={"data": {"code": code, "message": message, "details": details}},
                events=[
                    {
                        "index": i,
                        "clientEventId": e.get("clientEventId"),
                        "eventType": e.get("eventType"),
                        "outcome": "refused",
                    }
                    for i, e in enumerate(evs)
                ],
            )

        if refuse is not None:
            status, code, violations, message = refuse
            fields["violations"] = violations
            return refused(status, code, message)
        if answer in _COMMITTING:
            if api == "v1" and key in self.accepted_keys:
                fields["note"] = {"idempotency": {"originalRequestId": 1, "bodyDiffers": False}}
                return refused(409, "IdempotencyKeyReused", f"Idempotency-Key {key} reused")
            fault = None
            status, code = 200, None
            if answer == "partial-reject":
                for i in partial:
                    rules[i] = "fault.partial_reject"
                fault = self._fault(
                    "partialReject",
                    {"partialReject": {"indexes": list(partial)}},
                    rejectedIndexes=list(partial),
                )
            elif answer.startswith("accept-then-"):
                then = answer.removeprefix("accept-then-")
                spec_then: Any = int(then) if then.isdigit() else then
                fault = self._fault("acceptThen", {"acceptThen": spec_then})
                status, code = (
                    (int(then), _STATUS_CODES[int(then)]) if then.isdigit() else (0, _NETWORK[then])
                )
            elif answer == "truncate":
                fault = self._fault("truncate", {"truncate": 0.5})
                code = "TruncatedBody"
            if fault is not None:
                fault["committed"] = True
            outcomes = []
            for i, e in enumerate(evs):
                if i in rules:
                    outcomes.append({"outcome": "rejected", "rule": rules[i]})
                    continue
                ceid = e["clientEventId"]
                first = self.deliveries[ceid] == 0
                self.deliveries[ceid] += 1
                outcomes.append({"outcome": "accepted" if first else "duplicate"})
            if api == "v1" and key:
                self.accepted_keys.add(key)
            fields["violations"] = [
                {
                    "in": "body",
                    "pointer": f"/events/{i}",
                    "rule": rule,
                    "message": "rejected",
                    "eventIndex": i,
                }
                for i, rule in sorted(rules.items())
            ]
            return self._row(
                endpoint,
                wait,
                duration_ms,
                **fields,
                status=status,
                code=code,
                eventCount=len(evs),
                fault=fault,
                response={"data": {"unprocessedRecords": []}},
                events=[
                    {
                        "index": i,
                        "clientEventId": e["clientEventId"],
                        "eventType": e["eventType"],
                        **o,
                    }
                    for i, (e, o) in enumerate(zip(evs, outcomes, strict=True))
                ],
            )
        if answer in _NETWORK:
            spec = {"stall": 30.0} if answer == "stall" else {answer: True}
            return refused(0, _NETWORK[answer], "", fault=self._fault(answer, spec))
        if answer == "expire-token":
            fault = self._fault("expireToken", {"expireToken": True})
            return refused(
                401,
                "UnauthorizedError",
                "the access token expired (injected fault)",
                fault=fault,
                tokenExpired=True,
            )
        if answer in ("429", "429-date"):
            spec = {"status": 429, "retryAfter": 1}
            if answer == "429-date":
                spec["retryAfterFormat"] = "http-date"
            fault = self._fault("status", spec, retryAfter=1)
            return refused(429, "TooManyRequestsError", "too many requests", fault=fault)
        status = int(answer)
        fault = self._fault("status", {"status": status})
        return refused(status, _STATUS_CODES[status], f"{status} (injected fault)", fault=fault)


def delivered(evs: list[dict[str, Any]], **outcomes: str) -> list[dict[str, Any]]:
    """A result file: every event delivered, except those named (by index: e0="abandoned")."""
    out = []
    for i, e in enumerate(evs):
        outcome = outcomes.get(f"e{i}", "delivered")
        if outcome != "absent":
            out.append({"clientEventId": e["clientEventId"], "outcome": outcome})
    return out


def sender(
    exit_code: int | None = 0,
    results: list[dict[str, Any]] | None = None,
    *,
    timed_out: bool = False,
    result_errors: list[str] | None = None,
) -> SenderRun:
    return SenderRun(
        exit_code=exit_code,
        timed_out=timed_out,
        duration_s=3.0,
        results=results,
        result_errors=result_errors or [],
    )


def verdict(
    api: str, evs: list[dict[str, Any]], j: JournalBuilder, run: SenderRun, **kw: Any
) -> Judgement:
    return judge(Case(api=api, events=evs, schedule=[]), j.rows, run, **kw)  # type: ignore[arg-type]


def musts(judgement: Judgement) -> set[str]:
    return {f.property for f in judgement.failed}


def warned(judgement: Judgement) -> set[str]:
    return {f.property for f in judgement.warnings}


def good_v1(n: int = 3) -> tuple[list[dict[str, Any]], JournalBuilder]:
    evs = events(n)
    j = JournalBuilder("v1")
    j.token()
    j.post(evs, key=K(1))
    return evs, j


# -- the builder and the registry ------------------------------------------------------------


def test_builder_rows_have_the_exact_journal_shape() -> None:
    from mockserver.admin import request_json

    stored = {
        "id": 1,
        "at": T0,
        "wall": T0,
        "namespace": NS,
        "method": "POST",
        "path": "/v1/events",
        "endpoint": "/v1/events",
        "api_version": "v1",
        "credential": None,
        "account_id": None,
        "status": 200,
        "code": None,
        "idempotency_key": None,
        "body_sha256": None,
        "body_size": 0,
        "event_count": None,
        "headers": "{}",
        "body": None,
        "response": None,
        "violations": None,
        "warnings": None,
        "note": None,
        "fault": None,
        "duration_ms": 1.0,
    }
    reference = set(request_json(stored, []))
    _, j = good_v1()
    j.post(events(1), "503")
    j.post(events(1), "reset")
    for row in j.rows:
        assert set(row) == reference


def test_the_registry_names_every_protocol_property_with_its_own_exception() -> None:
    assert set(PROTOCOL_IDS) <= set(PROPERTIES)
    assert {"request.contract_warnings", "auth.no_secret_leak"} <= set(PROPERTIES)
    assert set(ORDER) == set(PROPERTIES)
    assert len({p.exception for p in PROPERTIES.values()}) == len(PROPERTIES)
    for pid, prop in PROPERTIES.items():
        assert prop.id == pid
        assert prop.exception.property_id == pid
        assert issubclass(prop.exception, ContractViolation)
        assert issubclass(prop.exception, AssertionError)
        assert prop.description
        assert prop.fix
        assert prop.details
        assert prop.group in GROUP_ORDER
    should = {p.id for p in PROPERTIES.values() if p.level == "SHOULD"}
    assert should == {"retry.backoff_grows", "auth.token_reused", "request.contract_warnings"}
    groups = [PROPERTIES[p].group for p in ORDER]
    assert groups == sorted(groups, key=GROUP_ORDER.index)


def test_the_builder_knows_every_schedule_kind() -> None:
    for kind in FAULT_KINDS:
        j = JournalBuilder("v1")
        j.post(events(2), kind)
        assert j.rows[-1]["endpoint"] == "/v1/events"


# -- good runs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_a_clean_run_passes_and_says_what_it_did_not_exercise(api: str) -> None:
    evs = events(3)
    j = JournalBuilder(api)
    if api == "v1":
        j.token()
    j.post(evs, key=K(1))
    judgement = verdict(api, evs, j, sender(0, delivered(evs)))
    assert judgement.ok
    assert judgement.findings == []
    assert judgement.warnings == []
    assert "no fault was served" in judgement.coverage
    assert "the sender never retried" in judgement.coverage
    assert "delivery.no_loss" in judgement.checked
    if api == "v2":
        assert "idempotency.key_reused_on_retry" in judgement.skipped
        assert "auth.refresh_on_401" in judgement.skipped
    else:
        assert set(ORDER) == set(judgement.checked)


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_a_run_through_every_fault_kind_passes(api: str) -> None:
    """A correct sender: retries, reuses keys, refreshes tokens, honours Retry-After."""
    evs = events(4)
    j = JournalBuilder(api)
    if api == "v1":
        j.token()
    j.post(evs[:2], "503", key=K(1))
    j.post(evs[:2], "429", key=K(1), wait=0.2)
    j.post(evs[:2], "reset", key=K(1), wait=1.05)
    j.post(evs[:2], "expire-token", key=K(1), wait=0.5)
    if api == "v1":
        j.token()
    j.post(evs[:2], "accept-then-500", key=K(1), wait=0.1)
    j.post(evs[:2], "ok", key=K(1), wait=0.2)  # v1: 409 (already accepted); v2: duplicates
    j.post(evs[2:], "partial-reject", key=K(2), partial=(1,))
    j.post(evs[3:], "ok", key=K(3))
    judgement = verdict(api, evs, j, sender(0, delivered(evs)))
    if api == "v2":
        # v2 needs no token: the injected expire-token 401 is what a v2 sender gets for
        # bad credentials; it is injected, so not a request.schema failure.
        assert musts(judgement) == set()
        assert warned(judgement) == {"delivery.no_duplicate"}
    else:
        assert judgement.ok, judgement.failed
        assert warned(judgement) == set()
    assert "no fault was served" not in judgement.coverage
    assert "the sender never retried" not in judgement.coverage


# -- request.* -------------------------------------------------------------------------------


def test_request_schema_fires_for_a_refusal_no_fault_caused() -> None:
    evs = events(1)
    sent = [{k: v for k, v in evs[0].items() if k != "eventTime"}]
    j = JournalBuilder("v1")
    j.token()
    violation = {
        "in": "body",
        "pointer": "/events/0/eventTime",
        "rule": "eventTime.required",
        "message": "eventTime is required",
        "eventIndex": 0,
    }
    j.post(sent, refuse=(400, "RequestValidationError", [violation], "request validation failed"))
    judgement = verdict("v1", evs, j, sender(1, delivered(evs, e0="rejected")))
    assert musts(judgement) == {"request.schema"}
    finding = judgement.failed[0]
    assert "eventTime.required" in finding.message
    assert "/events/0/eventTime" in finding.message
    assert finding.attempts == (2,)
    assert finding.events == (eid(0),)
    assert (
        "every attempt was refused by request.schema, delivery properties are vacuous"
        in judgement.coverage
    )


def test_request_schema_fires_for_a_per_event_rejection_of_a_changed_event() -> None:
    evs = events(2)
    sent = [event(0, eventTime="2026-11-20T22:58:00+10:00"), evs[1]]
    j = JournalBuilder("v2")
    j.post(sent, rules={0: "eventTime.utc"})
    judgement = verdict("v2", evs, j, sender(1, delivered(evs, e0="rejected")))
    assert musts(judgement) == {"request.schema"}
    assert "eventTime.utc" in judgement.failed[0].message


def test_a_rejection_of_an_event_sent_as_handed_over_is_the_cases_doing() -> None:
    evs = [event(0, eventTime="2024-01-01T00:00:00.000Z"), event(1)]
    j = JournalBuilder("v2")
    j.post(evs, rules={0: "eventTime.too_old"})
    assert verdict("v2", evs, j, sender(0, delivered(evs, e0="rejected"))).ok
    # ...but the sender must then report it rejected
    judgement = verdict("v2", evs, j, sender(0, delivered(evs)))
    assert musts(judgement) == {"delivery.no_loss", "delivery.report_truthful"}


def test_request_schema_fires_for_a_401_that_is_not_an_expiry() -> None:
    evs = events(1)
    j = JournalBuilder("v2")
    j.post(evs, refuse=(401, "UnauthorizedError", [], "unknown public key or wrong secret key"))
    judgement = verdict("v2", evs, j, sender(1, delivered(evs, e0="rejected")))
    assert musts(judgement) == {"request.schema"}
    assert "not a token expiry" in judgement.failed[0].message


def test_request_schema_fires_for_the_wrong_api_version_and_unknown_urls() -> None:
    evs = events(1)
    j = JournalBuilder("v2")
    j.post(evs, endpoint="/v2/event", refuse=(404, "NotFound", [], "no route"))
    j.rows[-1]["events"] = []
    j.post(evs, endpoint="/v1/events")
    judgement = verdict("v2", evs, j, sender(0, delivered(evs)))
    assert musts(judgement) == {"request.schema"}
    assert len(judgement.failed) == 2


def test_request_batch_limit_fires_for_an_oversized_batch_not_request_schema() -> None:
    evs = events(101)
    j = JournalBuilder("v1")
    j.token()
    violation = {
        "in": "body",
        "pointer": "/events",
        "rule": "events.max_items",
        "message": "101 events; at most 100",
    }
    j.post(evs, refuse=(400, "RequestValidationError", [violation], "request validation failed"))
    j.post(evs[:100], key=K(2))
    j.post(evs[100:], key=K(3))
    judgement = verdict("v1", evs, j, sender(0, delivered(evs)))
    assert musts(judgement) == {"request.batch_limit"}
    assert judgement.failed[0].attempts == (2,)
    assert "101" in judgement.failed[0].message


def test_request_batch_limit_holds_for_100_and_fires_for_an_empty_batch() -> None:
    evs = events(101)
    j = JournalBuilder("v2")
    j.post(evs[:100])
    j.post(evs[100:])
    assert verdict("v2", evs, j, sender(0, delivered(evs))).ok
    violation = {"in": "body", "pointer": "/events", "rule": "events.min_items", "message": "x"}
    j.post([], refuse=(400, "RequestValidationError", [violation], "request validation failed"))
    assert musts(verdict("v2", evs, j, sender(0, delivered(evs)))) == {"request.batch_limit"}


def test_request_contract_warnings_is_a_warning() -> None:
    evs = events(2)
    charset = {"in": "header", "pointer": "/Charset", "rule": "header.charset", "message": "x"}
    j = JournalBuilder("v2")
    j.post(evs[:1], warnings=[charset])
    j.post(evs[1:], warnings=[charset])
    judgement = verdict("v2", evs, j, sender(0, delivered(evs)))
    assert judgement.ok
    assert warned(judgement) == {"request.contract_warnings"}
    assert judgement.warnings[0].attempts == (1, 2)
    assert "header.charset" in judgement.warnings[0].message


def test_event_warnings_about_events_sent_as_handed_over_are_not_reported() -> None:
    evs = [event(0, objectData=[{"name": "conversiontype", "value": "order"}])]
    identifier = {
        "in": "body",
        "pointer": "/events/0/objectData",
        "rule": "conversion.identifier",
        "message": "no identifier",
        "eventIndex": 0,
    }
    j = JournalBuilder("v2")
    j.post(evs, warnings=[identifier])
    judgement = verdict("v2", evs, j, sender(0, delivered(evs)))
    assert judgement.warnings == []


# -- auth.* ------------------------------------------------------------------------------------


def test_auth_no_secret_leak_fires_for_credentials_in_the_query() -> None:
    evs, j = good_v1()
    assert verdict("v1", evs, j, sender(0, delivered(evs))).ok
    j.token(path="/ns/kit-1/auth/oauth2/token?client_id=demo-app-id&client_secret=demo-app-secret")
    judgement = verdict("v1", evs, j, sender(0, delivered(evs)))
    assert musts(judgement) == {"auth.no_secret_leak"}
    assert judgement.failed[0].attempts == (3,)


def test_auth_no_secret_leak_finds_a_token_or_a_given_secret() -> None:
    evs = events(1)
    j = JournalBuilder("v2")
    j.post(evs, path="/ns/kit-1/v2/events?key=rpub-demo-0001:hunter2")
    assert musts(verdict("v2", evs, j, sender(0, delivered(evs)), secrets=["hunter2"])) == {
        "auth.no_secret_leak"
    }
    j2 = JournalBuilder("v1")
    j2.token()
    j2.post(evs, path="/ns/kit-1/v1/events?jwt=eyJhbGciOi.eyJzdWIiOiJkZW1v.a-KmEUxyz")
    assert musts(verdict("v1", evs, j2, sender(0, delivered(evs)))) == {"auth.no_secret_leak"}


def test_auth_refresh_on_401_holds_when_the_sender_refreshes_and_retries() -> None:
    evs = events(2)
    j = JournalBuilder("v1")
    j.token()
    j.post(evs, "expire-token", key=K(1))
    j.token()
    j.post(evs, key=K(1))
    judgement = verdict("v1", evs, j, sender(0, delivered(evs)))
    assert judgement.ok
    assert judgement.warnings == []


def test_auth_refresh_on_401_fires_when_the_batch_is_never_retried() -> None:
    evs = events(2)
    j = JournalBuilder("v1")
    j.token()
    j.post(evs, "expire-token", key=K(1))
    judgement = verdict("v1", evs, j, sender(1, delivered(evs, e0="abandoned", e1="abandoned")))
    assert musts(judgement) == {"auth.refresh_on_401"}
    assert "never sent again" in judgement.failed[0].message


def test_auth_refresh_on_401_fires_when_the_retry_reuses_the_expired_token() -> None:
    evs = events(1)
    j = JournalBuilder("v1")
    j.token()
    j.post(evs, "expire-token", key=K(1))
    j.post(
        evs,
        key=K(1),
        refuse=(401, "UnauthorizedError", [], "the access token was expired at x by a fault"),
    )
    j.rows[-1]["response"]["data"]["details"]["tokenExpired"] = True
    j.token()
    j.post(evs, key=K(1))
    judgement = verdict("v1", evs, j, sender(0, delivered(evs)))
    assert musts(judgement) == {"auth.refresh_on_401"}
    assert judgement.failed[0].attempts == (2, 3)
    assert "without getting a new token" in judgement.failed[0].message


def test_auth_token_reused_warns_for_a_token_per_batch() -> None:
    evs = events(4)
    j = JournalBuilder("v1")
    for i, e in enumerate(evs):
        j.token()
        j.post([e], key=K(i + 1))
    judgement = verdict("v1", evs, j, sender(0, delivered(evs)))
    assert judgement.ok
    assert warned(judgement) == {"auth.token_reused"}
    j2 = JournalBuilder("v1")
    j2.token()
    for i, e in enumerate(evs):
        j2.post([e], key=K(i + 1))
    assert verdict("v1", evs, j2, sender(0, delivered(evs))).warnings == []


# -- idempotency.* -------------------------------------------------------------------------------


def test_idempotency_key_reused_on_retry_fires_for_a_new_key() -> None:
    evs = events(2)
    j = JournalBuilder("v1")
    j.token()
    j.post(evs, "503", key=K(1))
    j.post(evs, key=K(1), wait=0.1)
    assert verdict("v1", evs, j, sender(0, delivered(evs))).ok
    j = JournalBuilder("v1")
    j.token()
    j.post(evs, "503", key=K(1))
    j.post(evs, key=K(2), wait=0.1)
    judgement = verdict("v1", evs, j, sender(0, delivered(evs)))
    assert musts(judgement) == {"idempotency.key_reused_on_retry"}
    finding = judgement.failed[0]
    assert finding.attempts == (2, 3)
    assert finding.expected == K(1)
    assert finding.observed == K(2)


def test_idempotency_key_unique_per_batch_fires_for_one_key_on_two_batches() -> None:
    evs = events(2)
    j = JournalBuilder("v1")
    j.token()
    j.post(evs[:1], "400", key=K(1))
    j.post(evs[1:], key=K(1))
    judgement = verdict("v1", evs, j, sender(0, delivered(evs, e0="rejected")))
    assert musts(judgement) == {"idempotency.key_unique_per_batch"}


def test_idempotency_key_unique_per_batch_fires_for_a_changed_payload_under_one_key() -> None:
    evs = events(1)
    j = JournalBuilder("v1")
    j.token()
    j.post(evs, "503", key=K(1), extra_body={"attempt": 1})
    j.post(evs, key=K(1), wait=0.1, extra_body={"attempt": 2})
    judgement = verdict("v1", evs, j, sender(0, delivered(evs)))
    assert musts(judgement) == {"idempotency.key_unique_per_batch"}
    assert "different payloads" in judgement.failed[0].message


# -- retry.* ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["503", "500", "502", "504", "429", "reset", "empty", "stall"])
def test_retry_on_transient_fires_when_a_transient_failure_is_not_retried(kind: str) -> None:
    evs = events(2)
    j = JournalBuilder("v2")
    j.post(evs, kind)
    judgement = verdict("v2", evs, j, sender(1, delivered(evs, e0="abandoned", e1="abandoned")))
    assert musts(judgement) == {"retry.on_transient"}
    assert set(judgement.failed[0].events) == {eid(0), eid(1)}


def test_retry_on_transient_allows_rebatching_and_giving_up_after_six_attempts() -> None:
    evs = events(2)
    j = JournalBuilder("v2")
    j.post(evs, "503")
    j.post(evs[:1], wait=0.1)
    j.post(evs[1:])
    assert verdict("v2", evs, j, sender(0, delivered(evs))).ok
    j = JournalBuilder("v2")
    for n in range(6):
        j.post(evs, "503", wait=0.1 * 2**n)
    judgement = verdict("v2", evs, j, sender(1, delivered(evs, e0="abandoned", e1="abandoned")))
    assert judgement.ok
    # five attempts are not enough to give up
    j.rows.pop()
    judgement = verdict("v2", evs, j, sender(1, delivered(evs, e0="abandoned", e1="abandoned")))
    assert musts(judgement) == {"retry.on_transient"}


def test_retry_on_transient_after_an_ambiguous_failure_still_expects_a_retry() -> None:
    evs = events(1)
    j = JournalBuilder("v1")
    j.token()
    j.post(evs, "accept-then-reset", key=K(1))
    j.post(evs, "503", key=K(1), wait=0.1)  # the sender still does not know: retry again
    judgement = verdict("v1", evs, j, sender(1, delivered(evs, e0="abandoned")))
    assert musts(judgement) == {"retry.on_transient"}
    j.post(evs, key=K(1), wait=0.2)  # 409: delivered
    assert verdict("v1", evs, j, sender(0, delivered(evs))).ok


def test_retry_on_transient_fires_when_a_failed_token_request_is_not_retried() -> None:
    evs = events(1)
    j = JournalBuilder("v1")
    j.token("503")
    judgement = verdict("v1", evs, j, sender(1, delivered(evs, e0="abandoned")))
    assert musts(judgement) == {"retry.on_transient"}
    j.token(wait=0.5)
    j.post(evs)
    assert verdict("v1", evs, j, sender(0, delivered(evs))).ok


def test_retry_not_on_client_error_fires_for_the_same_payload_after_a_400() -> None:
    evs = events(1)
    j = JournalBuilder("v2")
    j.post(evs, "400")
    assert verdict("v2", evs, j, sender(0, delivered(evs, e0="rejected"))).ok
    j.post(evs, wait=0.5)
    judgement = verdict("v2", evs, j, sender(0, delivered(evs)))
    assert musts(judgement) == {"retry.not_on_client_error"}
    assert judgement.failed[0].attempts == (1, 2)


def test_retry_not_on_client_error_fires_for_the_same_key_after_a_409() -> None:
    evs = events(1)
    j = JournalBuilder("v1")
    j.token()
    j.post(evs, "accept-then-500", key=K(1))
    j.post(evs, key=K(1), wait=0.1)  # 409: already accepted
    assert j.rows[-1]["status"] == 409
    assert verdict("v1", evs, j, sender(0, delivered(evs))).ok
    j.post(evs, key=K(1), wait=0.1)
    judgement = verdict("v1", evs, j, sender(0, delivered(evs)))
    assert musts(judgement) == {"retry.not_on_client_error"}
    assert judgement.failed[0].attempts == (3, 4)


def test_retry_honours_retry_after() -> None:
    evs = events(1)
    j = JournalBuilder("v2")
    j.post(evs, "429")
    j.post(evs, wait=0.95)  # within the 0.1 s tolerance of Retry-After: 1
    assert verdict("v2", evs, j, sender(0, delivered(evs))).ok
    j = JournalBuilder("v2")
    j.post(evs, "429")
    j.post(evs, wait=0.2)
    judgement = verdict("v2", evs, j, sender(0, delivered(evs)))
    assert musts(judgement) == {"retry.honours_retry_after"}
    assert "Retry-After 1s" in judgement.failed[0].message
    assert judgement.failed[0].attempts == (1, 2)


def test_retry_honours_retry_after_as_an_http_date() -> None:
    """The mock rounds the date up (never early), so it asks for at least ceil(seconds)."""
    evs = events(1)
    j = JournalBuilder("v2")
    j.post(evs, "429-date", at="2026-11-20T12:00:00.000Z")  # a frozen mock clock: no matter
    j.post(evs, wait=1.0)
    assert verdict("v2", evs, j, sender(0, delivered(evs))).ok
    j = JournalBuilder("v2")
    j.post(evs, "429-date", at="2026-11-20T12:00:00.000Z")
    j.post(evs, wait=0.5)
    judgement = verdict("v2", evs, j, sender(0, delivered(evs)))
    assert musts(judgement) == {"retry.honours_retry_after"}
    assert "(HTTP-date)" in judgement.failed[0].message


def test_retry_honours_retry_after_ignores_a_request_already_in_flight() -> None:
    evs = events(2)
    j = JournalBuilder("v2")
    j.now = T0 + 0.005
    j.post(evs[:1], "429")  # answered at .007
    j.post(evs[1:], wait=-0.007, duration_ms=50.0)  # arrived at .000, before that answer
    j.post(evs[:1], wait=1.0)
    assert verdict("v2", evs, j, sender(0, delivered(evs))).ok


def test_retry_backoff_grows_warns_for_constant_waits() -> None:
    evs = events(1)
    j = JournalBuilder("v2")
    for _ in range(4):
        j.post(evs, "503", wait=0.1)
    j.post(evs, wait=0.1)
    judgement = verdict("v2", evs, j, sender(0, delivered(evs)))
    assert judgement.ok
    assert warned(judgement) == {"retry.backoff_grows"}
    j = JournalBuilder("v2")
    for n in range(4):
        j.post(evs, "503", wait=0.1 * 2**n)
    j.post(evs, wait=0.8)
    assert verdict("v2", evs, j, sender(0, delivered(evs))).warnings == []
    # a constant pause with jitter that happens to rise is still constant
    j = JournalBuilder("v2")
    for wait in (0.0, 0.28, 0.30):
        j.post(evs, "503", wait=wait)
    j.post(evs, wait=0.32)
    assert warned(verdict("v2", evs, j, sender(0, delivered(evs)))) == {"retry.backoff_grows"}


def test_retry_bounded_fires_past_the_attempt_budget() -> None:
    evs = events(1)

    def attempts(n: int) -> JournalBuilder:
        j = JournalBuilder("v1")
        j.token()
        for i in range(n - 1):
            j.post(evs, "503", key=K(1), wait=0.01 * 2**i)
        j.post(evs, key=K(1), wait=1.0)
        return j

    assert verdict("v1", evs, attempts(10), sender(0, delivered(evs))).ok
    j = attempts(11)
    judgement = verdict("v1", evs, j, sender(0, delivered(evs)))
    assert musts(judgement) == {"retry.bounded"}
    assert "11 times" in judgement.failed[0].message
    relaxed = verdict("v1", evs, j, sender(0, delivered(evs)), max_attempts_per_batch=11)
    assert musts(relaxed) == set()


# -- partial.*, ambiguous.* ----------------------------------------------------------------------


def test_partial_resend_only_failed() -> None:
    evs = events(2)
    j = JournalBuilder("v1")
    j.token()
    j.post(evs, "partial-reject", key=K(1), partial=(1,))
    j.post(evs[1:], key=K(2))
    assert verdict("v1", evs, j, sender(0, delivered(evs))).ok
    j = JournalBuilder("v1")
    j.token()
    j.post(evs, "partial-reject", key=K(1), partial=(1,))
    j.post(evs, "503", key=K(2))  # resends the accepted event 0 (nothing committed)
    j.post(evs[1:], key=K(3), wait=0.1)
    judgement = verdict("v1", evs, j, sender(0, delivered(evs)))
    assert musts(judgement) == {"partial.resend_only_failed"}
    assert judgement.failed[0].events == (eid(0),)
    assert judgement.failed[0].attempts == (2, 3)


def test_a_partially_rejected_event_may_be_reported_rejected() -> None:
    evs = events(2)
    j = JournalBuilder("v2")
    j.post(evs, "partial-reject", partial=(0,))
    judgement = verdict("v2", evs, j, sender(0, delivered(evs, e0="rejected")))
    assert judgement.ok
    assert judgement.warnings == []


def test_ambiguous_accept_then_fail_holds_for_a_same_key_retry() -> None:
    evs = events(2)
    for kind in ("accept-then-500", "accept-then-reset", "truncate"):
        j = JournalBuilder("v1")
        j.token()
        j.post(evs, kind, key=K(1))
        j.post(evs, key=K(1), wait=0.1)
        judgement = verdict("v1", evs, j, sender(0, delivered(evs)))
        assert judgement.ok, (kind, judgement.failed)
        assert judgement.warnings == []


def test_ambiguous_accept_then_fail_fires_when_the_batch_is_not_retried() -> None:
    evs = events(2)
    j = JournalBuilder("v1")
    j.token()
    j.post(evs, "accept-then-500", key=K(1))
    judgement = verdict("v1", evs, j, sender(1, delivered(evs, e0="abandoned", e1="abandoned")))
    assert musts(judgement) == {"ambiguous.accept_then_fail"}
    assert "never sent again" in judgement.failed[0].message


def test_ambiguous_accept_then_fail_fires_for_reporting_committed_events_rejected() -> None:
    evs = events(1)
    j = JournalBuilder("v1")
    j.token()
    j.post(evs, "accept-then-reset", key=K(1))
    for n in range(5):
        j.post(evs, "503", key=K(1), wait=0.1 * 2**n)
    assert verdict("v1", evs, j, sender(1, delivered(evs, e0="abandoned"))).ok
    judgement = verdict("v1", evs, j, sender(1, delivered(evs, e0="rejected")))
    assert musts(judgement) == {"ambiguous.accept_then_fail"}
    assert "not a rejection" in judgement.failed[0].message


def test_ambiguous_accept_then_fail_fires_for_treating_the_409_as_an_error() -> None:
    evs = events(2)
    j = JournalBuilder("v1")
    j.token()
    j.post(evs, "accept-then-500", key=K(1))
    j.post(evs, key=K(1), wait=0.1)  # 409: already accepted
    judgement = verdict("v1", evs, j, sender(1, delivered(evs, e0="abandoned", e1="abandoned")))
    assert musts(judgement) == {"ambiguous.accept_then_fail"}
    finding = judgement.failed[0]
    assert "409" in finding.message
    assert finding.attempts == (2, 3)
    assert set(finding.events) == {eid(0), eid(1)}


def test_a_new_key_after_an_ambiguous_failure_breaks_three_properties_in_v1() -> None:
    evs = events(1)
    j = JournalBuilder("v1")
    j.token()
    j.post(evs, "accept-then-500", key=K(1))
    j.post(evs, key=K(2), wait=0.1)
    judgement = verdict("v1", evs, j, sender(0, delivered(evs)))
    assert musts(judgement) == {
        "idempotency.key_reused_on_retry",
        "ambiguous.accept_then_fail",
        "delivery.no_duplicate",
    }
    with pytest.raises(exception_for("idempotency.key_reused_on_retry")):
        raise_first(judgement)


# -- delivery.* -----------------------------------------------------------------------------------


def test_v2_duplicate_explained_by_an_ambiguous_failure_is_a_warning() -> None:
    evs = events(2)
    j = JournalBuilder("v2")
    j.post(evs, "accept-then-500")
    j.post(evs, wait=0.1)
    judgement = verdict("v2", evs, j, sender(0, delivered(evs)))
    assert judgement.ok
    assert warned(judgement) == {"delivery.no_duplicate"}
    warning = judgement.warnings[0]
    assert warning.level == "SHOULD"
    assert "accept-then-500" in warning.message
    assert "limitation of the API" in warning.message
    assert warning.attempts == (1, 2)


@pytest.mark.parametrize("kind", ["accept-then-reset", "truncate"])
def test_v2_every_ambiguous_kind_explains_one_duplicate(kind: str) -> None:
    evs = events(1)
    j = JournalBuilder("v2")
    j.post(evs, kind)
    j.post(evs, wait=0.1)
    judgement = verdict("v2", evs, j, sender(0, delivered(evs)))
    assert judgement.ok
    assert warned(judgement) == {"delivery.no_duplicate"}


def test_v2_a_delayed_200_the_sender_gave_up_on_explains_its_duplicate() -> None:
    """Latency past the client's timeout: the mock commits after the client has resent."""
    evs = events(2)
    j = JournalBuilder("v2")
    j.now = T0 + 1.2
    j.post(evs)  # the retry, sent after a 1 s timeout, is answered first (journal id 1)
    j.now = T0
    j.post(evs, duration_ms=3000.0)  # the first attempt, delayed 3 s (journal id 2)
    j.rows[-1]["fault"] = {"source": "rule", "delaySeconds": 3.0, "committed": True}
    case = Case(api="v2", events=evs)
    judgement = judge(case, j.rows, sender(0, delivered(evs)))
    assert judgement.ok, judgement.failed
    assert warned(judgement) == {"delivery.no_duplicate"}
    assert "delay 3s" in judgement.warnings[0].message
    text = format_timeline(case, j.rows, judgement)
    assert "too late (the sender had already resent)" in text
    # the same journal without the overlap (the resend came after the answer) is a failure
    j.rows[0]["wallTime"] = iso(T0 + 3.5)
    assert "delivery.no_duplicate" in musts(judge(case, j.rows, sender(0, delivered(evs))))


def test_v2_duplicate_after_a_200_is_a_failure() -> None:
    evs = events(1)
    j = JournalBuilder("v2")
    j.post(evs, "accept-then-500")
    j.post(evs, wait=0.1)
    j.post(evs, wait=0.1)  # after a 200: not explained
    judgement = verdict("v2", evs, j, sender(0, delivered(evs)))
    assert musts(judgement) == {"delivery.no_duplicate"}  # a clean 200 resent: not partial
    finding = next(f for f in judgement.failed if f.property == "delivery.no_duplicate")
    assert "no ambiguous failure explains it" in finding.message


def test_no_duplicate_fires_for_an_event_twice_in_one_batch() -> None:
    evs = events(1)
    j = JournalBuilder("v1")
    j.token()
    j.post([evs[0], evs[0]], key=K(1))
    judgement = verdict("v1", evs, j, sender(0, delivered(evs)))
    assert musts(judgement) == {"delivery.no_duplicate"}
    assert judgement.failed[0].events == (eid(0),)


def test_delivery_content_faithful_fires_for_a_changed_event() -> None:
    evs = events(2)
    sent = [event(0, eventTime="2026-11-20T11:58:00Z"), evs[1]]
    j = JournalBuilder("v2")
    j.post(sent)
    judgement = verdict("v2", evs, j, sender(0, delivered(evs)))
    assert musts(judgement) == {"delivery.content_faithful"}
    finding = judgement.failed[0]
    assert "eventTime" in finding.message
    assert finding.events == (eid(0),)
    # key order does not matter
    reordered = [dict(reversed(list(e.items()))) for e in evs]
    j = JournalBuilder("v2")
    j.post(reordered)
    assert verdict("v2", evs, j, sender(0, delivered(evs))).ok


def test_delivery_content_faithful_fires_for_an_invented_event() -> None:
    evs = events(1)
    j = JournalBuilder("v2")
    j.post([*evs, event(9)])
    judgement = verdict("v2", evs, j, sender(0, delivered(evs)))
    assert musts(judgement) == {"delivery.content_faithful"}
    assert judgement.failed[0].events == (eid(9),)


def test_delivery_no_loss() -> None:
    evs = events(2)
    j = JournalBuilder("v2")
    j.post(evs[:1])
    judgement = verdict("v2", evs, j, sender(1, delivered(evs, e1="absent")))
    assert musts(judgement) == {"delivery.no_loss"}
    assert judgement.failed[0].events == (eid(1),)
    assert verdict("v2", evs, j, sender(1, delivered(evs, e1="abandoned"))).ok


def test_delivery_no_loss_without_a_result_file_depends_on_the_exit_status() -> None:
    evs = events(2)
    j = JournalBuilder("v2")
    j.post(evs[:1])
    lied = verdict("v2", evs, j, sender(0, None))
    assert musts(lied) == {"delivery.no_loss", "delivery.report_truthful"}
    admitted = verdict("v2", evs, j, sender(1, None))
    assert admitted.ok
    assert warned(admitted) == {"delivery.no_loss"}
    assert "no result file: report-based checks skipped" in admitted.coverage
    assert "delivery.report_truthful" in admitted.skipped


def test_delivery_report_truthful_fires_for_exit_0_with_abandoned_events() -> None:
    evs = events(1)
    j = JournalBuilder("v2")
    for n in range(6):
        j.post(evs, "503", wait=0.1 * 2**n)
    assert verdict("v2", evs, j, sender(1, delivered(evs, e0="abandoned"))).ok
    judgement = verdict("v2", evs, j, sender(0, delivered(evs, e0="abandoned")))
    assert musts(judgement) == {"delivery.report_truthful"}
    assert "exit status 0" in judgement.failed[0].message


def test_delivery_report_truthful_fires_for_a_confirmed_event_reported_abandoned() -> None:
    evs = events(2)
    j = JournalBuilder("v2")
    j.post(evs)
    judgement = verdict("v2", evs, j, sender(1, delivered(evs, e1="abandoned")))
    assert musts(judgement) == {"delivery.report_truthful"}
    assert judgement.failed[0].attempts == (1,)
    assert judgement.failed[0].events == (eid(1),)


def test_delivery_report_truthful_fires_for_a_rejection_nobody_made() -> None:
    evs = events(1)
    j = JournalBuilder("v2")
    for n in range(6):
        j.post(evs, "503", wait=0.1 * 2**n)
    judgement = verdict("v2", evs, j, sender(1, delivered(evs, e0="rejected")))
    assert musts(judgement) == {"delivery.report_truthful"}
    assert "no answer rejected" in judgement.failed[0].message


def test_delivery_report_truthful_fires_for_a_malformed_result_file() -> None:
    evs, j = good_v1(1)
    bad = [*delivered(evs), {"clientEventId": eid(0), "outcome": "sent"}, {"x": 1}]
    judgement = verdict("v1", evs, j, sender(0, bad))
    assert musts(judgement) == {"delivery.report_truthful"}
    judgement = verdict("v1", evs, j, sender(0, delivered(evs), result_errors=["line 2: not JSON"]))
    assert musts(judgement) == {"delivery.report_truthful"}
    assert "line 2: not JSON" in judgement.failed[0].message


def test_report_truthful_fires_for_a_claimed_delivery_and_warns_on_a_needless_failure() -> None:
    evs = events(2)
    j = JournalBuilder("v2")
    j.post(evs[:1])
    judgement = verdict("v2", evs, j, sender(1, delivered(evs)))
    assert musts(judgement) == {"delivery.no_loss", "delivery.report_truthful"}
    j.post(evs[1:])
    judgement = verdict("v2", evs, j, sender(3, delivered(evs)))
    assert judgement.ok
    assert warned(judgement) == {"delivery.report_truthful"}


# -- liveness, coverage ---------------------------------------------------------------------------


def test_liveness_terminates_fires_when_the_sender_was_killed() -> None:
    evs = events(1)
    j = JournalBuilder("v2")
    j.post(evs, "stall")
    judgement = verdict("v2", evs, j, sender(None, None, timed_out=True))
    assert musts(judgement) == {"liveness.terminates"}
    assert judgement.failed[0].events == (eid(0),)
    assert warned(judgement) == {"delivery.no_loss"}


def test_no_request_at_all() -> None:
    evs = events(1)
    judgement = judge(Case(api="v2", events=evs), [], sender(0, None))
    assert musts(judgement) == {"delivery.no_loss", "delivery.report_truthful"}
    assert "the sender made no events request" in judgement.coverage
    assert "no fault was served" in judgement.coverage


def test_judging_is_pure_and_repeatable() -> None:
    evs = events(2)
    j = JournalBuilder("v1")
    j.token()
    j.post(evs, "accept-then-500", key=K(1))
    j.post(evs, key=K(2), wait=0.1)
    before = json.dumps(j.rows, sort_keys=True)
    first = verdict("v1", evs, j, sender(0, delivered(evs)))
    second = verdict("v1", evs, j, sender(0, delivered(evs)))
    assert first == second
    assert json.dumps(j.rows, sort_keys=True) == before
    # rows newest first (as /__admin/requests pages them) are judged the same
    case = Case(api="v1", events=evs)
    assert judge(case, j.rows[::-1], sender(0, delivered(evs))) == first
    assert format_timeline(case, j.rows[::-1], first) == format_timeline(case, j.rows, first)
    assert all(isinstance(f, Finding) for f in first.findings)
    assert json.loads(json.dumps([f.to_json() for f in first.findings]))


# -- raise_first --------------------------------------------------------------------------------


def _judgement(*props: str) -> Judgement:
    return Judgement(findings=[Finding(p, "MUST", f"{p} broke") for p in props])


def test_raise_first_follows_the_root_cause_order() -> None:
    with pytest.raises(exception_for("request.schema")) as info:
        raise_first(
            _judgement("liveness.terminates", "delivery.no_loss", "request.schema", "retry.bounded")
        )
    assert info.value.finding.property == "request.schema"
    assert "request.schema (MUST): request.schema broke" in str(info.value)
    chain = [
        "delivery.no_loss",
        "ambiguous.accept_then_fail",
        "partial.resend_only_failed",
        "retry.on_transient",
        "idempotency.key_reused_on_retry",
        "auth.refresh_on_401",
        "request.batch_limit",
    ]
    for i in range(len(chain)):
        with pytest.raises(ContractViolation) as info:
            raise_first(_judgement(*chain[: i + 1]))
        assert type(info.value) is exception_for(chain[i])
    raise_first(Judgement())  # nothing to raise


def test_raise_first_ignores_warnings_unless_strict() -> None:
    judgement = Judgement(
        warnings=[
            Finding("retry.backoff_grows", "SHOULD", "flat"),
            Finding("delivery.no_duplicate", "SHOULD", "explained"),
        ]
    )
    raise_first(judgement)
    with pytest.raises(exception_for("retry.backoff_grows")):
        raise_first(judgement, strict=True)
    raise_first(Judgement(warnings=[Finding("delivery.no_duplicate", "SHOULD", "x")]), strict=True)


def test_violations_compare_by_class_and_survive_pickling() -> None:
    cls = exception_for("delivery.no_loss")
    a = cls(Finding("delivery.no_loss", "MUST", "one"))
    b = cls(Finding("delivery.no_loss", "MUST", "two"), "timeline")
    other = exception_for("delivery.no_duplicate")(Finding("delivery.no_duplicate", "MUST", "x"))
    assert a == b
    assert hash(a) == hash(b)
    assert a != other
    assert isinstance(a, AssertionError)
    copy = pickle.loads(pickle.dumps(b))
    assert type(copy) is cls
    assert copy.finding == b.finding
    assert str(copy) == str(b)
    assert str(b).endswith("\n\ntimeline")


# -- the timeline -------------------------------------------------------------------------------


def test_format_timeline_shows_attempts_tokens_relations_and_findings() -> None:
    evs = events(5)
    j = JournalBuilder("v1")
    j.token()
    j.post(evs[:4], "503", key=K(1), wait=0.01)
    j.post(evs[:4], "accept-then-500", key=K(1), wait=0.5)
    j.post(evs[:4], key=K(2), wait=0.25)
    j.post(evs[4:], key=K(3))
    case = Case(api="v1", events=evs, schedule=["503", "accept-then-500"], seed=7, case_id="c9")
    judgement = judge(case, j.rows, sender(0, delivered(evs)))
    text = format_timeline(case, j.rows, judgement)
    print(text)
    lines = text.splitlines()
    assert lines[0].startswith("case c9 (v1, seed 7): 5 events; schedule: 503, accept-then-500")
    assert lines[1].split() == ["t", "ms", "#", "id", "batch", "key", "events", "mock", "relation"]
    token, first, second, third, fourth = lines[2:7]
    assert "tok" in token
    assert "token issued" in token
    assert first.split()[0] == "11"  # ms since the first request, from wallTime - durationMs
    assert " b1 " in first
    assert " 00000001 " in first
    assert first.endswith("new batch")
    assert f"{eid(0)[:8]} {eid(1)[:8]} {eid(2)[:8]} +1 (4)" in first
    assert "503 ServiceUnavailableError [fault 503]" in first
    assert "retry of b1 same key" in second
    assert "[fault accept-then-500, committed]" in second
    assert "accepted=4" in second
    assert "retry of b1 NEW KEY" in third
    assert "duplicate=4" in third
    assert " b2 " in fourth
    assert fourth.endswith("new batch")
    assert "FAIL idempotency.key_reused_on_retry:" in text
    assert "FAIL delivery.no_duplicate:" in text
    assert text.index("FAIL idempotency") < text.index("FAIL delivery")


def test_format_timeline_of_a_passing_v2_case() -> None:
    evs = events(4)
    j = JournalBuilder("v2")
    j.post(evs[:2], "accept-then-reset")
    j.post(evs[:2], wait=0.1)
    j.post(evs[2:], "503")
    j.post(evs[2:3], wait=0.1)
    j.post(evs[3:], "partial-reject")
    case = Case(api="v2", events=evs)
    judgement = judge(case, j.rows, sender(0, delivered(evs, e3="rejected")))
    assert judgement.ok
    text = format_timeline(case, j.rows, judgement)
    lines = text.splitlines()
    assert "no answer (ConnectionReset) accepted=2 [fault accept-then-reset, committed]" in lines[2]
    assert lines[3].endswith("retry of b1")
    assert lines[5].endswith("new batch (resends 1 of b2)")
    assert "rejected=1 [fault partial-reject 0, committed]" in lines[6]
    assert "WARN delivery.no_duplicate:" in text
    assert "verdict: every MUST property held" in text
    empty = format_timeline(case, [], Judgement())
    assert "(the mock received no request)" in empty
    assert empty.endswith("verdict: every MUST property held")
