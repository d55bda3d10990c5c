"""A proxied request's body on its way in: streamed to the deployment, and watched for stalls.

Small bodies are gathered whole before the deployment is contacted, so a client that sends
headers and then stalls holds no connection to a deployment at all; larger and chunked bodies
are streamed as they arrive. Either way the client must keep sending: a body that pauses for
longer than ``c.JupyterServeProxy.body_idle_timeout`` is the client's fault and gets a 408.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from tornado.concurrent import Future
from tornado.httpclient import HTTPResponse

# Bodies up to this size (by their Content-Length) are gathered before the deployment is
# contacted; larger ones, and chunked ones, are streamed and count as uploads in flight.
GATHERED_BODY_LIMIT = 1024 * 1024


class BodyCutOff(ConnectionAbortedError):
    """A streamed body that will not be complete; its upstream connection must be dropped."""


class StreamedBody:
    """Hands request-body chunks to the upstream request as they arrive, with back-pressure."""

    def __init__(self) -> None:
        self._write: Callable[[bytes], Awaitable[None]] | None = None
        self._ready = asyncio.Event()
        self._complete: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._complete.add_done_callback(lambda done: done.cancelled() or done.exception())

    async def produce(self, write: Callable[[bytes], Awaitable[None]]) -> None:
        """Tornado's ``body_producer``: returns when the whole body has been forwarded."""
        self._write = write
        self._ready.set()
        await self._complete

    async def forward(self, chunk: bytes, answer: Future[HTTPResponse]) -> None:
        """Send ``chunk`` upstream; returns early (dropping it) once ``answer`` is decided."""
        if not self._ready.is_set():
            ready: asyncio.Future[Any] = asyncio.ensure_future(self._ready.wait())
            pending: set[asyncio.Future[Any]] = {ready, answer}
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
        if self._write is None or answer.done() or self._complete.done():
            return
        try:
            await self._write(chunk)
        except Exception:  # the upstream request reports its own failure
            return

    def end(self) -> None:
        """The whole body has arrived."""
        if not self._complete.done():
            self._complete.set_result(None)

    def abort(self) -> None:
        """The body will not be complete: fail the upstream request instead of finishing it."""
        if not self._complete.done():
            self._complete.set_exception(BodyCutOff("the request body was cut off"))


class StallWatch:
    """Calls ``on_stall`` once no body byte has arrived for ``timeout`` seconds.

    Costs one timer per ``timeout`` seconds, not one per chunk. Use on the event loop only.
    """

    def __init__(self, timeout: float, on_stall: Callable[[], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._timeout = timeout
        self._on_stall = on_stall
        self._last = self._loop.time()
        self._held_up = False
        self._timer: asyncio.TimerHandle | None = self._loop.call_later(timeout, self._check)

    def touched(self) -> None:
        """A body chunk arrived."""
        self._last = self._loop.time()

    def held_up(self, held_up: bool) -> None:
        """Whether the proxy itself holds the body up (waiting on the deployment to take a
        chunk): that time is not the client's, and the idle time restarts afterwards."""
        self._held_up = held_up
        self._last = self._loop.time()

    def cancel(self) -> None:
        """The body is complete, or the request is over: stop watching."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        idle = 0.0 if self._held_up else self._loop.time() - self._last
        if idle >= self._timeout:
            self._timer = None
            self._on_stall()
        else:
            self._timer = self._loop.call_later(self._timeout - idle, self._check)
