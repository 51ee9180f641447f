"""Carrying out a selected fault: HTTP answers in the views, socket faults in WSGI middleware.

Socket faults (reset, stall, empty reply, truncated or dribbled bodies) cannot be done from a
Flask view, which can only return a response. The view records the request in the journal,
then marks the WSGI environ; :class:`NetworkFaults`, wrapped around the Flask app, sees the
mark, withholds or mangles the response, and acts on the client socket that gunicorn's
``gthread`` worker exposes as ``gunicorn.socket``. Ending with ``ECONNRESET``/``EPIPE`` makes
gunicorn drop the connection quietly, as it does for a client that went away.
"""

from __future__ import annotations

import contextlib
import errno
import select
import socket
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar

from ..errors import ApiError, OAuthError

MARK = "rokt_mock.network_fault"
NETWORK_CODES = {"reset": "ConnectionReset", "stall": "Stalled", "empty": "EmptyReply"}
_STATUS_CODES = {
    400: "RequestValidationError",
    401: "UnauthorizedError",
    403: "Forbidden",
    404: "NotFound",
    408: "RequestTimeout",
    409: "IdempotencyKeyReused",
    413: "RequestEntityTooLarge",
    429: "TooManyRequestsError",
    500: "InternalServerError",
    502: "ServiceUnavailableError",
    503: "ServiceUnavailableError",
    504: "ServiceUnavailableError",
}
_OAUTH_ERRORS = {400: "invalid_request", 401: "invalid_client", 403: "invalid_client"}
_MESSAGES = {
    401: "the access token expired (injected fault)",
    429: "too many requests (injected fault)",
    500: "internal server error (injected fault)",
}


class InjectedStatus(ApiError):
    """An error answer chosen by a fault rather than by the request's content."""

    status = 500
    code = "InternalServerError"
    exact_message: ClassVar[str] = "internal server error"

    @staticmethod
    def code_for(status: int) -> str:
        return _STATUS_CODES.get(status, "InjectedError")

    def __init__(self, status: int, headers: dict[str, str], note: dict[str, Any] | None) -> None:
        self.status = status  # type: ignore[misc]
        self.code = _STATUS_CODES.get(status, "InjectedError")  # type: ignore[misc]
        text = _MESSAGES.get(status, f"{self.code} (injected fault)")
        self.exact_message = text.replace(" (injected fault)", "")  # type: ignore[misc]
        super().__init__(text, headers=headers, extra={"fault": note})


def oauth_injected(status: int, headers: dict[str, str]) -> OAuthError:
    error = _OAUTH_ERRORS.get(
        status, "temporarily_unavailable" if status != 500 else "server_error"
    )
    return OAuthError(status, error, f"{status} injected fault", headers)


def _client_gone(sock: socket.socket, deadline: float) -> None:
    """Block until the client closes the connection or the deadline passes; send nothing."""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], min(0.2, max(0.0, deadline - time.monotonic())))
        if ready:
            try:
                if not sock.recv(65536, socket.MSG_PEEK):
                    return
                sock.recv(65536)  # a pipelined request: swallow it, keep stalling
            except OSError:
                return


def _dribble(body: bytes, seconds: float, chunks: int) -> Iterator[bytes]:
    size = max(1, -(-len(body) // chunks))
    pieces = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    pause = seconds / max(1, len(pieces))
    for piece in pieces:
        time.sleep(pause)
        yield piece


def _truncated(body: bytes, fraction: float) -> Iterator[bytes]:
    keep = int(len(body) * fraction)
    if keep:
        yield body[:keep]
    raise BrokenPipeError(errno.EPIPE, "rokt-mock: body truncated on purpose")


class NetworkFaults:
    """WSGI middleware executing the socket-level part of a fault marked by a view."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        held: dict[str, Any] = {}

        def hold(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if MARK not in environ:
                return start_response(status, headers, exc_info)
            held.update(status=status, headers=headers)
            return lambda data: None

        result = self.app(environ, hold)
        action = environ.get(MARK)
        if action is None:
            return result
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        kind = action["kind"]
        if kind == "dribble":
            start_response(held["status"], held["headers"])
            return _dribble(body, float(action["seconds"]), int(action.get("chunks", 10)))
        if kind == "truncate":
            start_response(held["status"], held["headers"])
            return _truncated(body, float(action["fraction"]))
        sock = environ.get("gunicorn.socket")
        if not isinstance(sock, socket.socket):
            raise RuntimeError("network faults need `rokt-mock serve` (gunicorn gthread workers)")
        if kind == "stall":
            _client_gone(sock, time.monotonic() + float(action["seconds"]))
        if kind == "reset":
            # SO_LINGER with a zero timeout turns close() into a TCP RST.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
            raise ConnectionResetError(errno.ECONNRESET, "rokt-mock: connection reset on purpose")
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        raise BrokenPipeError(errno.EPIPE, f"rokt-mock: {kind} on purpose")
