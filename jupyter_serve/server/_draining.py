"""What a stopping server says to the requests it no longer serves.

A drain (stop, swap of a pool, SIGTERM, kernel shutdown) closes the listening sockets, lets the
requests already read finish, and closes idle connections; so does uvicorn, MLflow's server. A
request a client had already sent on a kept-alive connection (pipelined, or racing the close),
or on a connection that was still waiting in the listen backlog, is not cut off: it gets 503
with the error JSON and ``Connection: close``, whatever its route, /ping and
/v2/health/ready included, so load balancers and probes see "not ready" and retry elsewhere.
A request still running when the drain timeout ends gets 503 before its connection closes.
"""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING

from tornado import httputil

from jupyter_serve.protocol import ScoringResponse

if TYPE_CHECKING:
    from tornado.iostream import IOStream

    from jupyter_serve.server._request_connection import RequestConnection


def _unavailable(message: str) -> ScoringResponse:
    body = json.dumps({"error_code": "TEMPORARILY_UNAVAILABLE", "message": message}).encode()
    return ScoringResponse(
        status=503, body=body, content_type="application/json", headers=(("Retry-After", "1"),)
    )


def draining_response() -> ScoringResponse:
    """503 for a request that reached a server after it began to stop."""
    return _unavailable(
        "The server is stopping: it finishes the requests it had already received and accepts "
        "no new ones. Send this request to another replica, or again once the deployment "
        "serves again."
    )


def drain_timeout_response(drain_seconds: float) -> ScoringResponse:
    """503 for a request still running when the server's drain timeout ended."""
    return _unavailable(
        f"The server stopped before this request finished: it waited {drain_seconds:g} seconds "
        "(the drain timeout) for the requests in flight. Retry on a running deployment, or "
        "give stopping deployments more time (drain_timeout, --drain-timeout)."
    )


class DrainRefusal(httputil.HTTPMessageDelegate):
    """Answers one request with `draining_response` as soon as its head is read, and
    discards its body; the connection then closes."""

    def __init__(self, request: RequestConnection) -> None:
        self._request = request

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> None:
        self._request.answer_and_close(draining_response())

    def data_received(self, chunk: bytes) -> None:
        return None


def has_unread_bytes(stream: IOStream) -> bool:
    """True when the client sent bytes not yet parsed: buffered, or still in the socket."""
    if stream.closed():
        return False
    if stream._read_buffer_size:
        return True
    try:
        return bool(stream.socket.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except OSError:  # BlockingIOError: nothing sent; anything else: the peer is gone
        return False
