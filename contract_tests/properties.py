"""The named properties the judge checks: stable ids, levels, what they mean, how to fix them.

Every property id is public (reports, JUnit output, replay files, known-failure lists use it)
and never changes once published. ``MUST`` properties fail a case; ``SHOULD`` properties only
warn. Each property has its own exception class (a :class:`ContractViolation`), so that
Hypothesis, which tells failures apart by exception type and raise site, keeps shrinking
towards the *same* broken property instead of wandering to another one.

The exact semantics, including every decision the sender protocol leaves open, are in each
property's ``details``. All of them are judged from the mock's journal, the final case (its
events and schedule) and the sender's exit status and result file, never from what a
generator intended (the schedule is only ever used for display).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .model import Api, Finding, Level

__all__ = [
    "GROUP_ORDER",
    "ORDER",
    "PROPERTIES",
    "ContractViolation",
    "Property",
    "exception_for",
]


class ContractViolation(AssertionError):
    """A property did not hold. Carries the :class:`Finding` that shows it.

    Two violations are equal when they are of the same class (the same property), whatever
    their messages: Hypothesis and known-failure lists compare failures by property.
    """

    property_id: ClassVar[str] = ""

    def __init__(self, finding: Finding, detail: str = "") -> None:
        self.finding = finding
        self.detail = detail
        text = f"{finding.property} ({finding.level}): {finding.message}"
        if detail:
            text += "\n\n" + detail
        super().__init__(text)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.finding, self.detail))


# One class per property. The names are the ids in CamelCase.


class RequestSchema(ContractViolation):
    property_id = "request.schema"


class RequestBatchLimit(ContractViolation):
    property_id = "request.batch_limit"


class RequestContractWarnings(ContractViolation):
    property_id = "request.contract_warnings"


class AuthNoSecretLeak(ContractViolation):
    property_id = "auth.no_secret_leak"


class AuthRefreshOn401(ContractViolation):
    property_id = "auth.refresh_on_401"


class AuthTokenReused(ContractViolation):
    property_id = "auth.token_reused"


class IdempotencyKeyUniquePerBatch(ContractViolation):
    property_id = "idempotency.key_unique_per_batch"


class IdempotencyKeyReusedOnRetry(ContractViolation):
    property_id = "idempotency.key_reused_on_retry"


class RetryNotOnClientError(ContractViolation):
    property_id = "retry.not_on_client_error"


class RetryOnTransient(ContractViolation):
    property_id = "retry.on_transient"


class RetryHonoursRetryAfter(ContractViolation):
    property_id = "retry.honours_retry_after"


class RetryBounded(ContractViolation):
    property_id = "retry.bounded"


class RetryBackoffGrows(ContractViolation):
    property_id = "retry.backoff_grows"


class PartialResendOnlyFailed(ContractViolation):
    property_id = "partial.resend_only_failed"


class AmbiguousAcceptThenFail(ContractViolation):
    property_id = "ambiguous.accept_then_fail"


class DeliveryContentFaithful(ContractViolation):
    property_id = "delivery.content_faithful"


class DeliveryNoDuplicate(ContractViolation):
    property_id = "delivery.no_duplicate"


class DeliveryNoLoss(ContractViolation):
    property_id = "delivery.no_loss"


class DeliveryReportTruthful(ContractViolation):
    property_id = "delivery.report_truthful"


class LivenessTerminates(ContractViolation):
    property_id = "liveness.terminates"


@dataclass(frozen=True)
class Property:
    """One named check: its id, level, a one-line description, the fix, the exact rules."""

    id: str
    level: Level
    description: str
    fix: str
    details: str
    exception: type[ContractViolation]
    apis: tuple[Api, ...] = ("v1", "v2")

    @property
    def group(self) -> str:
        return self.id.split(".", 1)[0]


#: Root-cause order of the groups: a broken request explains everything after it, and
#: delivery and liveness are usually consequences of an earlier property.
GROUP_ORDER = (
    "request",
    "auth",
    "idempotency",
    "retry",
    "partial",
    "ambiguous",
    "delivery",
    "liveness",
)

_ALL: tuple[Property, ...] = (
    Property(
        "request.schema",
        "MUST",
        "Every request the mock received is well formed and authenticated.",
        "Send the documented body and headers (Content-Type: application/json, Charset: utf-8, "
        "Rokt-Version, Authorization, v1 Idempotency-Key), the configured accountId, and events "
        "exactly as handed over; POST to ROKT_API_URL + /v1/events or /v2/events.",
        "Fails for: an events request answered 400/403/404/405/413/415/422 that no injected fault"
        " caused (row.fault has no kind), naming the rule ids and JSON pointers the mock "
        "reported; an event the mock rejected by a per-event rule (outcome rejected, rule not "
        "starting 'fault.'); an events request answered 401 that is not a token expiry (no "
        "expireToken fault, no tokenExpired detail, no 'expired' in the message); a token request"
        " answered 400/401 without an injected fault; a request to an unknown URL (404/405); a "
        "request to the other API version than the case's. A violation or rejection that points "
        "into an event the sender sent exactly as the kit handed it over is not the sender's "
        "fault (the case itself held an invalid event) and is not reported here; the sender must "
        "then report that event rejected. events.max_items/events.min_items are reported under "
        "request.batch_limit instead.",
        RequestSchema,
    ),
    Property(
        "request.batch_limit",
        "MUST",
        "Every events request carries between 1 and 100 events.",
        "Split the events into batches of at most 100 and never send an empty batch.",
        "Fails for an events POST whose eventCount (or, when the mock did not count, the number "
        "of events in its body) is over 100 or 0, or that the mock refused with the rule "
        "events.max_items or events.min_items.",
        RequestBatchLimit,
    ),
    Property(
        "request.contract_warnings",
        "SHOULD",
        "The mock journaled no contract warnings (e.g. a missing Charset header).",
        "Send what Rokt's documentation asks for: Charset: utf-8, a version-4 Idempotency-Key, no"
        " unknown fields.",
        "Warns once per warning rule found in the journal's 'warnings' of events requests, naming"
        " the attempts. Event-level warnings (with an eventIndex) about an event sent exactly as "
        "handed over are the case's doing and are not reported, except "
        "clientEventId.duplicate_in_batch.",
        RequestContractWarnings,
    ),
    Property(
        "auth.no_secret_leak",
        "MUST",
        "Credentials never appear in a URL or query string.",
        "Send credentials only in the Authorization header (Basic for the token request and v2, "
        "Bearer for v1 events), never as query parameters.",
        "Fails when any journaled request's path (URL-decoded) contains the app secret, the v2 "
        "secret key (the demo ones, or those passed as judge(secrets=...)), a JWT-shaped access "
        "token, or a query parameter named like a credential (access_token, client_secret, "
        "app_secret, secret, secret_key, password, token, api_key, apikey, authorization).",
        AuthNoSecretLeak,
    ),
    Property(
        "auth.refresh_on_401",
        "MUST",
        "After a 401 for an expired token, the sender gets a new token and retries the batch.",
        "On 401 with an expired token, request a new token once and resend the same batch (same "
        "Idempotency-Key) with it; do not give up and do not reuse the old token.",
        "v1 only. For each events attempt answered 401 as a token expiry: its events whose "
        "delivery no earlier answer confirmed must be sent again later (unless the event had "
        "already been attempted 6 times, or the run timed out with no later attempt at all); the "
        "first later attempt carrying them must follow a successful token request made after the "
        "401, and must not itself be refused as expired without an injected fault (that means the"
        " old token was reused). Whether the retry kept the key is judged by "
        "idempotency.key_reused_on_retry.",
        AuthRefreshOn401,
        ("v1",),
    ),
    Property(
        "auth.token_reused",
        "SHOULD",
        "One access token is reused across requests until it expires.",
        "Cache the token and reuse it until it expires or a 401 says it expired.",
        "v1 only. Warns when the token requests outnumber 2 + the expiry 401s + the failed token "
        "requests (one to start, one per expiry, one per failed token request, one slack).",
        AuthTokenReused,
        ("v1",),
    ),
    Property(
        "idempotency.key_unique_per_batch",
        "MUST",
        "An Idempotency-Key is used for one batch only, always with the same payload.",
        "Generate a new UUIDv4 key per batch when the batch is formed, store it with the batch.",
        "v1 only. Fails when one key appears on events attempts carrying different sets of "
        "clientEventIds, or the same set with a different payload (compared as parsed JSON, so "
        "key order and whitespace do not matter; by bodySha256 when a body cannot be parsed).",
        IdempotencyKeyUniquePerBatch,
        ("v1",),
    ),
    Property(
        "idempotency.key_reused_on_retry",
        "MUST",
        "A retry of a batch carries the same Idempotency-Key as the attempt it retries.",
        "Keep the key with the batch and send it again on every retry of that batch.",
        "v1 only. For each events attempt that failed transiently or ambiguously (429, 408, 5xx, "
        "no answer, a committed accept-then-fail, a truncated or malformed 200, a 401 token "
        "expiry), the next attempt with the same set of clientEventIds (its retry) must carry the"
        " same key.",
        IdempotencyKeyReusedOnRetry,
        ("v1",),
    ),
    Property(
        "retry.not_on_client_error",
        "MUST",
        "A request answered with a client error is not sent again unchanged.",
        "Treat 400, 403, 404, 405, 413, 415 and 422 as permanent for that payload: report the "
        "events rejected (or split a 413 batch); treat 409 IdempotencyKeyReused as 'already "
        "delivered' and stop.",
        "Fails when, after an events attempt answered 400/403/404/405/413/415/422 (injected or "
        "not), a later attempt has the same payload (same bodySha256; for a body the mock did not"
        " store, the same bodySize), or when, after a 409, a later attempt carries the same "
        "Idempotency-Key again.",
        RetryNotOnClientError,
    ),
    Property(
        "retry.on_transient",
        "MUST",
        "After a transient failure the events of the failed request are sent again.",
        "Retry on 429, 408, 5xx, connection reset, empty reply, read timeout and unreadable 200 "
        "answers, with backoff, up to a bounded number of attempts.",
        "For each events attempt answered 429, 408, 5xx or nothing (status 0: reset, stall, empty"
        " reply), or a truncated/malformed 200, that the mock did NOT commit (committed ones are "
        "judged by ambiguous.accept_then_fail): each of its events whose delivery no earlier "
        "answer confirmed (a clean 200 accepting it, or a 409) must appear in some later attempt "
        "(the same batch or a new one: re-batching is allowed). Not required when the event had "
        "already been attempted 6 times (the sender may give up and report it abandoned), nor "
        "when the run timed out and no attempt at all followed. A token request that failed "
        "transiently and was followed by no request at all, while events were still undelivered, "
        "also fails.",
        RetryOnTransient,
    ),
    Property(
        "retry.honours_retry_after",
        "MUST",
        "After an answer with Retry-After, the next request waits at least that long.",
        "Parse Retry-After (delta-seconds and HTTP-date) and wait at least that long before the "
        "next events request.",
        "For each events attempt whose fault carried retryAfter s (the header says ceil(s) "
        "seconds, or an HTTP-date on real time rounded up, so never earlier than that), the next "
        "events attempt that arrived after that answer (arrival = wallTime - durationMs; attempts"
        " already in flight are ignored) must arrive no earlier than the answer's wallTime + "
        "ceil(s) - tolerance (retry_after_tolerance_s, default 0.1 s).",
        RetryHonoursRetryAfter,
    ),
    Property(
        "retry.bounded",
        "MUST",
        "No batch is attempted more than the allowed number of times.",
        "Cap the attempts per batch (e.g. 5-8), then report the events abandoned and exit "
        "non-zero.",
        "Fails when some event was carried by more than max_attempts_per_batch events attempts "
        "(default 10), counting every attempt that carried it, so re-batching does not hide a "
        "retry storm.",
        RetryBounded,
    ),
    Property(
        "retry.backoff_grows",
        "SHOULD",
        "Without Retry-After, the waits between retries of a batch grow.",
        "Use exponential backoff (with jitter) between retries.",
        "Warns for a batch (same set of ids) with a run of at least 3 consecutive attempts that "
        "failed transiently or ambiguously without Retry-After, when the waits after them (from "
        "an answer's wallTime to the next attempt's arrival) do not grow: some wait is under 0.9 "
        "x the one before, or the last is under 1.5 x the first (a constant pause with jitter can"
        " look like it grows from one retry to the next). A stalled attempt ends a run (when the "
        "client gave up is unknown).",
        RetryBackoffGrows,
    ),
    Property(
        "partial.resend_only_failed",
        "MUST",
        "After a partial success, the events the mock accepted are never sent again.",
        "Read data.unprocessedRecords: resend (or report rejected) only the records listed there,"
        " never the whole batch.",
        "Fails when an attempt answered a clean 200 (not truncated or malformed) that rejected "
        "some of its events in unprocessedRecords, and an event it accepted appears again in a "
        "later attempt, unless that later attempt is a v1 same-key resend (which the mock "
        "answers 409 and does not count). Resending a fully accepted batch is "
        "delivery.no_duplicate.",
        PartialResendOnlyFailed,
    ),
    Property(
        "ambiguous.accept_then_fail",
        "MUST",
        "When the mock committed a batch but the answer failed, the sender still retries it.",
        "Treat a 5xx, reset, timeout or unreadable answer as 'unknown': retry the same batch with"
        " the same Idempotency-Key (v1), treat a 409 on that retry as delivered, and never report"
        " such events rejected.",
        "For each events attempt the mock committed (fault.committed) but answered with a status "
        "other than 200, no answer, or a truncated/malformed 200: each of its events not already "
        "confirmed to the sender earlier must be sent again later (v1: in an attempt carrying the"
        " same Idempotency-Key), unless the event had been attempted 6 times or the run timed out"
        " with no later attempt. The report on events first committed by such an attempt is "
        "judged here too: it fails when they are reported rejected or abandoned although a later "
        "answer confirmed them (a 409 on the same-key retry, or a 200), or reported rejected "
        "although no answer ever rejected them. Reporting them abandoned after retries that never"
        " got an answer is honest and passes.",
        AmbiguousAcceptThenFail,
    ),
    Property(
        "delivery.content_faithful",
        "MUST",
        "What the mock received equals what the kit handed over.",
        "Send each event object unchanged (same fields, same values); do not invent events.",
        "For each delivered event of the case, the event object in the body of the first attempt "
        "that delivered it must equal the intended event (deep JSON equality, key order ignored, "
        "list order kept). Fails too when the mock accepted a clientEventId the kit never handed "
        "over.",
        DeliveryContentFaithful,
    ),
    Property(
        "delivery.no_duplicate",
        "MUST",
        "No event is delivered twice.",
        "Resend a batch only after a failure, with the same Idempotency-Key (v1); never resend "
        "what a 200 confirmed; never put one event twice in a batch.",
        "Counts the deliveries (event outcome accepted or duplicate) of each intended event. v1: "
        "more than one fails. v2: a delivery is explained (a warning naming the cause, not a "
        "failure) when the delivery before it was ambiguous (committed then answered other than a"
        " clean 200, or a 200 delayed by injected latency that the sender resent before the "
        "answer was complete, i.e. after its own timeout), since v2 has no key to deduplicate a "
        "necessary retry; any other extra delivery fails.",
        DeliveryNoDuplicate,
    ),
    Property(
        "delivery.no_loss",
        "MUST",
        "Every event is delivered or reported rejected/abandoned.",
        "Deliver every event, or write it to the result file as rejected/abandoned and exit "
        "non-zero.",
        "An intended event is lost when no attempt delivered it (outcome accepted or duplicate) "
        "and the result file does not report it rejected or abandoned. Without a result file, "
        "lost events fail only when the exit status is 0; with a non-zero status (or a kill at "
        "the deadline) the sender admitted failure and they are a warning.",
        DeliveryNoLoss,
    ),
    Property(
        "delivery.report_truthful",
        "MUST",
        "The exit status and the result file agree with the journal.",
        "Report 'delivered' only after a 200 (or a v1 409) for the event, 'rejected' only for a "
        "server rejection, 'abandoned' when giving up; exit 0 only when nothing was abandoned or "
        "lost.",
        "Fails when: the exit status is 0 while an intended event is neither delivered nor "
        "reported rejected, or while the result file reports events abandoned; the result file "
        "says 'delivered' for an event no attempt delivered; it says 'rejected' or 'abandoned' "
        "for an event whose delivery was confirmed to the sender (a clean 200 accepting it, or a "
        "409 for an attempt carrying it), unless an ambiguous attempt committed it first (then "
        "ambiguous.accept_then_fail judges the report); it says 'rejected' for an undelivered "
        "event that no answer ever rejected (no per-event rejection, no 4xx other than 409/429); "
        "the result file has malformed lines, unknown outcomes or ids that were never handed "
        "over. Without a result file only the exit status is judged. A non-zero exit although "
        "every event's delivery was confirmed is a warning.",
        DeliveryReportTruthful,
    ),
    Property(
        "liveness.terminates",
        "MUST",
        "The sender exits within the time budget.",
        "Bound every wait: connect/read timeouts on each request, a cap on retries and on total "
        "backoff, so the process ends before ROKT_KIT_DEADLINE_S.",
        "Fails when the kit had to kill the sender at the deadline (run.timed_out).",
        LivenessTerminates,
    ),
)

#: Every property by id.
PROPERTIES: dict[str, Property] = {p.id: p for p in _ALL}

#: The fixed root-cause order :func:`contract_tests.judge.raise_first` follows.
ORDER: tuple[str, ...] = tuple(p.id for g in GROUP_ORDER for p in _ALL if p.group == g)


def exception_for(property_id: str) -> type[ContractViolation]:
    """The exception class of a property id."""
    return PROPERTIES[property_id].exception
