"""The one error hierarchy of the mock, and the one place that renders it.

Every answer that is not a success is an :class:`ApiError` (or werkzeug's ``HTTPException``
for routing), rendered in the real API's envelope ``{"data": {"code", "message"}}`` so a
sender's error handling meets exactly what production would send. Diagnostics that production
does not send (violations with JSON pointers, the journal's request id) go under
``data.details``, which ``--exact-bodies`` drops.

::

    ApiError                       (status, code, message, violations, headers)
    ├── BodyReadError              400 RequestBodyReadError
    ├── JsonUnmarshalError         400 RequestJsonUnmarshalError
    ├── RequestValidationError     400 RequestValidationError
    ├── Unauthorized               401 UnauthorizedError
    ├── Forbidden                  403 Forbidden
    ├── IdempotencyKeyReused       409 IdempotencyKeyReused
    ├── BodyTooLarge               413 RequestEntityTooLarge
    └── AdminError                 400/404 for the admin API (BadAdminRequest, NotFound)
    OAuthError                     the token endpoint's RFC 6749 body {"error": ...}
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger("rokt_mock")

try:  # gunicorn raises its own errors for broken chunked framing while a body is read
    from gunicorn.http.errors import ParseException as _GunicornParseError

    #: Errors a body read raises for the sender's broken framing (a 400, not a 500).
    FRAMING_ERRORS: tuple[type[Exception], ...] = (_GunicornParseError,)
except ImportError:  # pragma: no cover - another WSGI server
    FRAMING_ERRORS = ()


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule: where (a JSON pointer into the body or a header name), which rule, why.

    ``rule`` is a stable id (``eventTime.too_old``) used by fixtures, the journal's
    rejected-by-rule counts and the contract kit, so it never changes once published.
    """

    pointer: str
    rule: str
    message: str
    location: str = "body"
    event_index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "in": self.location,
            "pointer": self.pointer,
            "rule": self.rule,
            "message": self.message,
        }
        if self.event_index is not None:
            out["eventIndex"] = self.event_index
        return out


def summarise(violations: list[Violation]) -> str:
    """A one-line human message naming the first violation and how many follow."""
    if not violations:
        return ""
    first = violations[0]
    where = f"{first.location} {first.pointer}" if first.location != "body" else first.pointer
    text = f"{where}: {first.message}" if where else first.message
    if len(violations) > 1:
        text += f" (and {len(violations) - 1} more)"
    return text


class ApiError(Exception):
    """An answer in the Event API's error envelope."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "RequestValidationError"
    #: The wording Rokt documents (or a neutral one), used verbatim with --exact-bodies.
    exact_message: ClassVar[str] = "request validation failed"

    def __init__(
        self,
        message: str | None = None,
        violations: list[Violation] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.violations = violations or []
        self.message = message or summarise(self.violations) or self.exact_message
        self.headers = headers or {}
        self.extra = extra or {}
        super().__init__(self.message)

    def body(self, exact: bool, request_id: int | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "code": self.code,
            "message": self.exact_message if exact else self.message,
        }
        if not exact:
            details: dict[str, Any] = {}
            if request_id is not None:
                details["requestId"] = request_id
            if self.violations:
                details["violations"] = [v.to_dict() for v in self.violations]
            details.update(self.extra)
            if details:
                data["details"] = details
        return {"data": data}


class BodyReadError(ApiError):
    code = "RequestBodyReadError"
    exact_message = "unable to read request body"


class JsonUnmarshalError(ApiError):
    code = "RequestJsonUnmarshalError"
    exact_message = "unable to unmarshal request body"


class RequestValidationError(ApiError):
    code = "RequestValidationError"
    exact_message = "request validation failed"


class Unauthorized(ApiError):
    status = 401
    code = "UnauthorizedError"
    exact_message = "Unauthorized"


class Forbidden(ApiError):
    status = 403
    code = "Forbidden"
    exact_message = "Forbidden"


class IdempotencyKeyReused(ApiError):
    status = 409
    code = "IdempotencyKeyReused"
    exact_message = "idempotency key has already been used"


class BodyTooLarge(ApiError):
    status = 413
    code = "RequestEntityTooLarge"
    exact_message = "request body too large"


class AdminError(ApiError):
    """Errors of the admin API: same envelope, so one parser serves all of the mock."""

    code = "BadAdminRequest"
    exact_message = "bad admin request"


class NotFound(AdminError):
    status = 404
    code = "NotFound"
    exact_message = "not found"


@dataclass
class OAuthError(Exception):
    """RFC 6749 §5.2 error of the token endpoint: ``{"error": ..., "error_description": ...}``."""

    status: int
    error: str
    description: str
    headers: dict[str, str] = field(default_factory=dict)

    def body(self, exact: bool) -> dict[str, Any]:
        if exact:
            return {"error": self.error}
        return {"error": self.error, "error_description": self.description}


_HTTP_CODES = {404: "NotFound", 405: "MethodNotAllowed", 413: "RequestEntityTooLarge"}


def register_error_handlers(app: Flask) -> None:
    """Install the three handlers: ours, werkzeug's routing errors, and the last resort.

    The last resort exists so that a bug never answers HTML or a bare 500: the sender under
    test sees the envelope and the journal still records the request.
    """
    exact = bool(app.config["ROKT_SETTINGS"].exact_bodies)

    def finish(status: int, code: str, payload: dict[str, Any], headers: dict[str, str]) -> Any:
        response = jsonify(payload)
        response.status_code = status
        for name, value in headers.items():
            response.headers[name] = value
        g.setdefault("outcome", {})
        g.outcome.update(status=status, code=code)
        return response

    @app.errorhandler(ApiError)
    def _api_error(err: ApiError) -> Any:
        g.error = err
        request_id = g.get("request_id")
        return finish(err.status, err.code, err.body(exact, request_id), err.headers)

    @app.errorhandler(OAuthError)
    def _oauth_error(err: OAuthError) -> Any:
        g.error = err
        return finish(err.status, err.error, err.body(exact), err.headers)

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException) -> Any:
        status = err.code or 500
        code = _HTTP_CODES.get(status, err.name.replace(" ", ""))
        message = err.description or err.name
        if status == 404:
            message = (
                f"no endpoint at {request.method} {request.path}; the Event API has "
                "POST /auth/oauth2/token, POST /v1/events and POST /v2/events "
                "(optionally under /ns/<namespace>), the admin API is under /__admin/"
            )
        elif status == 405:
            message = f"{request.method} is not allowed on {request.path}"
        payload = {"data": {"code": code, "message": message}}
        headers = {k: v for k, v in err.get_headers() if k.lower() != "content-type"}
        return finish(status, code, payload, headers)

    def _framing(err: Exception) -> Any:
        """Broken chunked framing surfaces while a view reads the body: the sender's fault,
        so a 400 in the envelope rather than the last resort's 500."""
        return _api_error(
            BodyReadError(
                f"the request body's chunked framing is broken ({type(err).__name__})",
                violations=[Violation("", "body.read", "the body could not be read")],
            )
        )

    for framing_error in FRAMING_ERRORS:
        app.register_error_handler(framing_error, _framing)

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Any:
        log.exception("unexpected error while handling a request")
        payload = {"data": {"code": "InternalServerError", "message": "internal server error"}}
        return finish(500, "InternalServerError", payload, {})
