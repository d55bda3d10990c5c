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
- chunked bodies are read here (`RequestConnection._read_chunked_body`): extensions and
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
from collections.abc import Awaitable, Callable
from http.client import responses
from typing import Any

from tornado import httputil
from tornado.http1connection import HTTP1Connection, HTTP1ServerConnection
from tornado.httpserver import HTTPServer, _HTTPRequestContext
from tornado.iostream import IOStream, StreamClosedError, UnsatisfiableReadError

from jupyter_serve.protocol import ScoringResponse
from jupyter_serve.server._accepting import ConnectionAcceptor, ResourceExhaustionReport
from jupyter_serve.server._client_stream import ClientStream
from jupyter_serve.server._draining import DrainRefusal, has_unread_bytes
from jupyter_serve.server._limit_responses import (
    bodies_over_budget_response,
    body_stalled_response,
)
from jupyter_serve.server._request_ids import REQUEST_ID_HEADER, new_request_id, request_id_of

logger = logging.getLogger("jupyter_serve.server")

# A chunk-size line with its extensions; a trailer field line.
_MAX_CHUNK_LINE_BYTES = 8 * 1024
_MAX_TRAILER_BYTES = 64 * 1024
# A body answered before it was read is discarded, so no limit applies to it.
_UNLIMITED_BODY = 2**62
# Bytes (or chunk headers, each counted as 1 KiB) read before other connections get a turn.
_YIELD_EVERY_BYTES = 256 * 1024
_CHUNK_COST = 1024


class BodyBudget:
    """The bytes of request bodies a server may hold at once. IO loop thread only."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def reserve(self, size: int) -> bool:
        """Take ``size`` bytes of the budget; False (nothing taken) when they do not fit."""
        if self.held + size > self.limit:
            return False
        self.held += size
        return True

    def release(self, size: int) -> None:
        self.held -= size


class RequestConnection(HTTP1Connection):
    """One request on a server connection (Tornado's `HTTP1Connection`, with our edges)."""

    stream: ClientStream
    # Answered with Connection: close because the server began to drain: the connection stays
    # open after the answer only to refuse a request the client had already sent.
    drain_keeps_open = False

    def __init__(
        self,
        stream: ClientStream,
        params: Any,
        context: object,
        budget: BodyBudget,
    ) -> None:
        super().__init__(stream, False, params, context)
        self._budget = budget
        self._reserved = 0
        self._body_started: float | None = None
        self._request_id: str | None = None

    def request_id(self) -> str:
        """This request's ID (`request_id_of` its headers), made once: the handler's answer,
        its access-log line and an answer from below the handlers (408, 413, 503) all carry
        the same one."""
        if self._request_id is None:
            headers = self._request_headers
            self._request_id = request_id_of(headers) if headers is not None else new_request_id()
        return self._request_id

    def reserve_body(self, size: int) -> ScoringResponse | None:
        """Hold ``size`` bytes of the server's body budget for this request until it ends;
        the 503 to answer when they do not fit."""
        if self._budget.reserve(size):
            self._reserved += size
            return None
        return bodies_over_budget_response(size, self._budget.held, self._budget.limit)

    def release_body(self) -> None:
        """Give this request's share of the body budget back (the request has ended)."""
        self._budget.release(self._reserved)
        self._reserved = 0

    def stalled_since(self, now: float) -> float | None:
        """Seconds the body of this request has made no progress; None when not reading one."""
        if self._body_started is None or self._read_finished or self.stream.closed():
            return None
        return now - max(self._body_started, self.stream.last_received)

    def cut_stalled_body(self, stall_seconds: float) -> None:
        """Answer 408 if no answer was sent yet, then close (lingering)."""
        logger.info("cutting a request body stalled for %g s from %s", stall_seconds, self.context)
        if self._write_finished:
            self.stream.linger = True
            self.close()
        else:
            self.answer_and_close(body_stalled_response(stall_seconds))

    def answer_and_close(self, response: ScoringResponse) -> None:
        """Answer from below the handlers (they get ``on_connection_close``), then close."""
        self._disconnect_on_finish = True
        headers = httputil.HTTPHeaders({"Content-Type": response.content_type})
        for name, value in response.headers:
            headers[name] = value
        headers["Content-Length"] = str(len(response.body))
        headers[REQUEST_ID_HEADER] = self.request_id()
        start_line = httputil.ResponseStartLine(
            "HTTP/1.1", response.status, responses.get(response.status, "Error")
        )
        self.write_headers(start_line, headers, response.body)
        self.finish()

    def _read_body(
        self, code: int, headers: httputil.HTTPHeaders, delegate: httputil.HTTPMessageDelegate
    ) -> Awaitable[None] | None:
        self.stream.reading_head = False
        if self._write_finished:  # answered already: the body is discarded, whatever its size
            self._max_body_size = _UNLIMITED_BODY
        body = super()._read_body(code, headers, delegate)
        if body is not None:
            self._body_started = time.monotonic()
        return body

    def begin_drain(self) -> bool:
        """The server stops: an answer not yet begun will say ``Connection: close``. False
        when the connection is idle (no byte of a request read or waiting)."""
        if self._request_start_line is None:
            return has_unread_bytes(self.stream)
        if self._response_start_line is None:
            self._disconnect_on_finish = True
            self.drain_keeps_open = True
        return True

    def answer_unfinished(self, response: ScoringResponse) -> None:
        """Answer ``response`` if this request was read and not answered yet; close."""
        self.drain_keeps_open = False
        if self._request_start_line is not None and self._response_start_line is None:
            self.answer_and_close(response)
        else:
            self.close()

    def _finish_request(self, future: Any) -> None:
        if self._disconnect_on_finish:
            if not self._read_finished:
                self.stream.linger = True  # answered before the body was read in full
            elif self.drain_keeps_open:
                self._disconnect_on_finish = False
        super()._finish_request(future)

    async def _read_chunked_body(self, delegate: httputil.HTTPMessageDelegate) -> None:
        stream = self.stream
        work = 0
        received = 0
        while True:
            size = parse_chunk_size(await stream.read_until(b"\r\n", _MAX_CHUNK_LINE_BYTES))
            if size == 0:
                break
            work += _CHUNK_COST
            remaining = size
            while remaining:
                data = await stream.read_bytes(min(remaining, self.params.chunk_size), True)
                remaining -= len(data)
                received += len(data)
                if received > self._max_body_size:  # a handler that does not enforce its own
                    raise httputil.HTTPInputError("chunked body too large")
                if received > self._reserved:
                    self._grow_reservation(received)
                await self._deliver_body(delegate, data)
                work += len(data)
                if work >= _YIELD_EVERY_BYTES:
                    work = 0
                    await asyncio.sleep(0)
            if await stream.read_bytes(2) != b"\r\n":
                raise httputil.HTTPInputError("a chunk of the body does not end with CRLF")
        await self._skip_trailers()

    def _grow_reservation(self, received: int) -> None:
        # Once answered, the rest of the body is discarded as it comes (nothing is held).
        if self._write_finished:
            return
        if self.reserve_body(received - self._reserved) is not None:
            self.answer_and_close(
                bodies_over_budget_response(None, self._budget.held, self._budget.limit)
            )

    async def _skip_trailers(self) -> None:
        trailer_bytes = 0
        while True:
            line = await self.stream.read_until(b"\r\n", _MAX_CHUNK_LINE_BYTES)
            if line == b"\r\n":
                return
            trailer_bytes += len(line)
            if trailer_bytes > _MAX_TRAILER_BYTES:
                raise httputil.HTTPInputError("the chunked body's trailer section is too large")


def parse_chunk_size(line: bytes) -> int:
    """The size of a chunk from its size line (``1a;name=value\\r\\n``); extensions ignored."""
    size_text = line[:-2].split(b";", 1)[0].strip(b" \t")
    if not size_text or any(byte not in b"0123456789abcdefABCDEF" for byte in size_text):
        raise httputil.HTTPInputError(f"invalid chunk size line {line[:40]!r}")
    return int(size_text, 16)


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
