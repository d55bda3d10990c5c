"""HTTP/1.1 connections of a scoring server, held to the bounds a public port needs.

Tornado's HTTP server, left to its defaults, lets a client hold a connection for an hour
(idle keep-alive, headers sent a byte at a time) or forever (a body that stops halfway),
answers an oversized head by closing without a word, rejects valid chunk extensions and
trailers, and closes the socket with the client's unread bytes in it right after an early
answer (413 mid-upload), so the kernel resets the connection and the answer may be lost.

`ScoringHTTPServer` keeps Tornado's parser and changes only the edges:

- the connection's head (an idle keep-alive wait, then the request line and headers) must be
  complete within ``keep_alive_timeout`` (uvicorn, MLflow's server, closes idle connections
  after the same 5 s, but never cuts slow headers);
- a body that makes no progress for ``body_stall_timeout`` is answered 408 and closed; a
  slow but progressing upload is never cut;
- an oversized head gets 414 or 431 with the error JSON;
- chunked bodies are read by `_request_connection.py` (`RequestConnection`): extensions and
  trailers are accepted and ignored, as RFC 9112 §7.1 allows;
- the bytes of request bodies held at once are bounded server-wide (`BodyBudget`);
- a connection closed before its request was read in full first sends its answer, stops
  writing, and discards what the client still sends for a few seconds ("lingering close");
- accepting pauses, without spinning or flooding the log, when descriptors run out
  (`_accepting.py`);
- a drain stops accepting and lets the requests already read finish (`_draining.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from tornado import httputil
from tornado.http1connection import HTTP1ServerConnection
from tornado.httpserver import HTTPServer, _HTTPRequestContext
from tornado.iostream import IOStream, StreamClosedError, UnsatisfiableReadError

from jupyter_serve.protocol import ScoringResponse
from jupyter_serve.server._accepting import ConnectionAcceptor, ResourceExhaustionReport
from jupyter_serve.server._client_stream import ClientStream
from jupyter_serve.server._draining import DrainRefusal, has_unread_bytes
from jupyter_serve.server._request_connection import BodyBudget, RequestConnection

logger = logging.getLogger("jupyter_serve.server")


class _ServerConnection(HTTP1ServerConnection):
    """One client connection: its requests, one after the other, as `RequestConnection`s."""

    stream: ClientStream

    def __init__(
        self, stream: ClientStream, params: Any, context: object, budget: BodyBudget
    ) -> None:
        super().__init__(stream, params, context)
        self._budget = budget
        self.request: RequestConnection | None = None
        self.draining = False

    def begin_drain(self) -> None:
        """The server stops: close now if idle, else after the request being answered (one
        the client already sent after it gets 503). Every close from here on lingers, so
        bytes still arriving never reset the connection."""
        self.draining = True
        self.stream.linger = True
        if self.request is not None and not self.request.begin_drain():
            self.stream.close()

    async def _server_request_loop(self, delegate: httputil.HTTPServerConnectionDelegate) -> None:
        stream = self.stream
        try:
            while True:
                if self.draining and not has_unread_bytes(stream):
                    stream.close()
                    return
                request = RequestConnection(stream, self.params, self.context, self._budget)
                self.request = request
                stream.reading_head = True
                answering = (
                    DrainRefusal(request)
                    if self.draining
                    else delegate.start_request(self, request)
                )
                try:
                    keep_open = await request.read_response(answering)
                except (StreamClosedError, UnsatisfiableReadError, asyncio.CancelledError):
                    return
                except Exception:
                    logger.exception("unexpected failure on a connection from %s", self.context)
                    request.close()
                    return
                finally:
                    request.release_body()
                if not keep_open:
                    return
                await asyncio.sleep(0)
        finally:
            self.request = None
            delegate.on_close(self)


class ScoringHTTPServer(HTTPServer):
    """Tornado's HTTP server with the bounds of this module (make one with
    `make_http_server`). IO loop thread only."""

    budget: BodyBudget
    _body_stall_timeout: float
    _url: Callable[[], str]
    _acceptors: list[ConnectionAcceptor]
    _sweep_handle: asyncio.TimerHandle | None
    _all_closed: asyncio.Event | None

    def add_sockets(self, sockets: Any) -> None:
        report = ResourceExhaustionReport(self._url(), lambda: len(self._connections))
        for sock in sockets:
            acceptor = ConnectionAcceptor(sock, self._accepted, report)
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = acceptor.stop
            self._acceptors.append(acceptor)
        self._schedule_sweep()

    def _accepted(self, sock: socket.socket, address: Any) -> None:
        stream = ClientStream(
            sock,
            self.conn_params.max_header_size,
            max_buffer_size=self.max_buffer_size,
            read_chunk_size=self.read_chunk_size,
        )
        self.handle_stream(stream, address)

    def handle_stream(self, stream: IOStream, address: tuple[Any, ...]) -> None:
        assert isinstance(stream, ClientStream)
        context = _HTTPRequestContext(stream, address, self.protocol, self.trusted_downstream)
        connection = _ServerConnection(stream, self.conn_params, context, self.budget)
        self._connections.add(connection)
        connection.start_serving(self)

    def on_close(self, server_conn: object) -> None:
        super().on_close(server_conn)
        for acceptor in self._acceptors:
            acceptor.resume()  # a descriptor was freed
        if self._all_closed is not None and not self._connections:
            self._all_closed.set()

    def begin_drain(self) -> None:
        """Stop accepting, and close every connection once its current request is answered
        (idle ones now). Connections already waiting in the listen backlog are taken first:
        closing the socket would reset them, and their clients may have sent a request."""
        for sock in list(self._sockets.values()):
            while True:
                try:
                    connection, address = sock.accept()
                except OSError:  # BlockingIOError: the backlog is empty
                    break
                self._accepted(connection, address)
        self.stop()
        self._all_closed = asyncio.Event()
        if not self._connections:
            self._all_closed.set()
        for server_connection in list(self._connections):
            if isinstance(server_connection, _ServerConnection):
                server_connection.begin_drain()

    async def drained(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every connection to close (after
        `begin_drain`); True when none is left."""
        if self._all_closed is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._all_closed.wait(), timeout)
        return not self._connections

    def answer_unfinished(self, response: ScoringResponse) -> None:
        """Answer ``response`` to every request read and not yet answered, and close every
        connection (the drain timeout has passed)."""
        for server_connection in list(self._connections):
            request = getattr(server_connection, "request", None)
            if request is not None:
                request.answer_unfinished(response)

    async def close_all_connections(self) -> None:
        try:
            await super().close_all_connections()
        finally:
            if self._sweep_handle is not None:
                self._sweep_handle.cancel()
                self._sweep_handle = None

    def _schedule_sweep(self) -> None:
        period = min(1.0, self._body_stall_timeout / 4)
        self._sweep_handle = asyncio.get_running_loop().call_later(period, self._sweep)

    def _sweep(self) -> None:
        now = time.monotonic()
        for connection in list(self._connections):
            request = getattr(connection, "request", None)
            if request is None:
                continue
            stalled = request.stalled_since(now)
            if stalled is not None and stalled >= self._body_stall_timeout:
                request.cut_stalled_body(self._body_stall_timeout)
        self._schedule_sweep()


def make_http_server(
    delegate: httputil.HTTPServerConnectionDelegate,
    *,
    url: Callable[[], str],
    max_body_bytes: int,
    max_body_bytes_in_flight: int,
    keep_alive_timeout: float,
    body_stall_timeout: float,
) -> ScoringHTTPServer:
    """A `ScoringHTTPServer` answering with ``delegate``; ``url`` names it in the log."""
    # Tornado builds HTTP servers through Configurable.initialize, hence no __init__ here.
    server = ScoringHTTPServer(
        delegate, max_body_size=max_body_bytes, idle_connection_timeout=keep_alive_timeout
    )
    server.budget = BodyBudget(max_body_bytes_in_flight)
    server._body_stall_timeout = body_stall_timeout
    server._url = url
    server._acceptors = []
    server._sweep_handle = None
    server._all_closed = None
    return server
