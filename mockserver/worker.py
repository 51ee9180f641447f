"""gunicorn's gthread worker with a gate in front of its thread pool (slowloris defence).

Stock gthread hands every new connection to a pool thread, which then blocks until the
request's head has arrived: as many clients as threads that send half a head (or nothing at
all) stall the whole mock, health checks included. Partners leave the mock running in shared
CI, where a buggy sender can do exactly that.

Here a connection reaches the pool only once its head is complete. The check is a
non-blocking ``MSG_PEEK`` for the blank line that ends the head, so nothing is consumed and
gunicorn's parser reads the request as usual. Connections still waiting are re-checked by the
worker's main loop every ``_RECHECK`` s and closed after ``HEAD_TIMEOUT`` s. A request whose
head is complete but whose body dribbles in still holds its thread (the body is the view's to
read); docs/security.md says so.

The gate relies on gthread internals of gunicorn 23 and later (``finish_request``,
``wait_for_and_dispatch_events``); :func:`worker_class` falls back to plain gthread where they
are missing.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

#: Seconds a connection may take to send a complete request head.
HEAD_TIMEOUT = 10.0
#: Head peeks beyond this size go to the parser, which answers 431 or 400 itself.
_PEEK_LIMIT = 65536
_RECHECK = 0.05
_WAIT = object()


_TCP_CLOSE_WAIT = 8  # linux/tcp_states.h


def _peer_done(sock: socket.socket) -> bool:
    """Has the client closed its side (FIN) after a partial head? A peek cannot see the end of
    the stream behind data, the kernel's TCP state can (Linux; elsewhere such a client waits
    for ``HEAD_TIMEOUT``). The parser then answers the incomplete head at once."""
    if not hasattr(socket, "TCP_INFO"):
        return False
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] == _TCP_CLOSE_WAIT
    except OSError:
        return False


def _head_state(conn: Any) -> str:
    """``ready`` (hand to a thread), ``wait`` (head incomplete) or ``expired``."""
    if conn.initialized and conn.parser is not None:
        buffered = getattr(getattr(conn.parser, "unreader", None), "buf", None)
        if buffered is not None and buffered.getvalue():
            return "ready"  # read-ahead of a pipelined request: the parser has it already
    try:
        data = conn.sock.recv(_PEEK_LIMIT, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        data = None
    except OSError:
        return "ready"  # let the parser meet the error and close the connection
    if data is not None and (
        not data
        or b"\r\n\r\n" in data
        or b"\n\n" in data
        or len(data) >= _PEEK_LIMIT
        or _peer_done(conn.sock)
    ):
        conn.head_deadline = None
        return "ready"
    deadline = getattr(conn, "head_deadline", None)
    if deadline is None:
        conn.head_deadline = time.monotonic() + HEAD_TIMEOUT
    elif time.monotonic() > deadline:
        return "expired"
    return "wait"


class GatedThreadWorker(ThreadWorker):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._waiting: list[Any] = []

    def handle(self, conn: Any) -> Any:
        state = _head_state(conn)
        if state == "wait":
            return _WAIT
        if state == "expired":
            return False  # finish_request closes it
        conn.data_ready = True  # skip gunicorn's own (thread-holding) wait for data
        return super().handle(conn)

    def finish_request(self, conn: Any, fs: Any) -> None:
        result = fs.result() if not fs.cancelled() else False
        if result is _WAIT and self.alive:
            conn.sock.setblocking(False)
            self._waiting.append(conn)
            return
        super().finish_request(conn, fs)

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        if self._waiting:
            still: list[Any] = []
            for conn in self._waiting:
                state = _head_state(conn)
                if state == "ready":
                    self.enqueue_req(conn)
                elif state == "expired":
                    self.nr_conns -= 1
                    conn.close()
                else:
                    still.append(conn)
            self._waiting = still
            if still:
                timeout = min(timeout, _RECHECK)
        super().wait_for_and_dispatch_events(timeout)


def worker_class() -> Any:
    """The gated worker, or ``"gthread"`` on a gunicorn without the internals it needs."""
    needed = ("finish_request", "wait_for_and_dispatch_events", "enqueue_req", "handle")
    if all(hasattr(ThreadWorker, name) for name in needed):
        return GatedThreadWorker
    return "gthread"
