"""One request on a scoring server's connection: Tornado's `HTTP1Connection` with the edges
`_connections.py` lists (the body budget, stalled bodies, chunked bodies with extensions and
trailers, answers from below the handlers, the drain), and the request's ID.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from http.client import responses
from typing import Any

from tornado import httputil
from tornado.http1connection import HTTP1Connection

from jupyter_serve.protocol import ScoringResponse
from jupyter_serve.server._client_stream import ClientStream
from jupyter_serve.server._draining import has_unread_bytes
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


# nginx's status for a request whose client closed the connection before its answer.
CLIENT_CLOSED_STATUS = 499


def status_when_closed(connection: object) -> int:
    """The status to count for a request whose connection closed before its handler answered:
    the connection's own answer (a 408, 413 or 503 sent from below the handlers) if it sent
    one, else `CLIENT_CLOSED_STATUS`."""
    answered = getattr(connection, "answered_status", None)
    return answered if isinstance(answered, int) else CLIENT_CLOSED_STATUS


class RequestConnection(HTTP1Connection):
    """One request on a server connection (Tornado's `HTTP1Connection`, with our edges)."""

    stream: ClientStream
    # Answered with Connection: close because the server began to drain: the connection stays
    # open after the answer only to refuse a request the client had already sent.
    drain_keeps_open = False
    # The status of an answer sent from below the handlers (`answer_and_close`), if any.
    answered_status: int | None = None

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
        self.answered_status = response.status
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
