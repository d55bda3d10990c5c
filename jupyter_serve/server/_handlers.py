"""The Tornado application of every route but ``/invocations`` (`_invocations.py`, the hot
path): thin handlers passing bytes and headers to the protocol functions, and the pieces both
share (limits, secret, metrics).

Every handler streams its body (`stream_request_body`), so the body limit is checked on the
Content-Length header before a byte of the body is read, and on the running total for chunked
bodies: an oversized request gets 413 and its connection is closed, unread.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from tornado.http1connection import HTTP1Connection
from tornado.httputil import HTTPHeaders
from tornado.web import Application, RequestHandler, stream_request_body

from jupyter_serve.protocol import (
    ScoringResponse,
    body_too_large_response,
    method_not_allowed_response,
    not_found_response,
    ping_response,
    version_response,
)
from jupyter_serve.server._batching import PredictionBatcher
from jupyter_serve.server._exchanges import Exchange
from jupyter_serve.server._metrics import ServerMetrics
from jupyter_serve.server._options import ServerOptions
from jupyter_serve.server._recording import RequestRecorder
from jupyter_serve.server._request_connection import RequestConnection, status_when_closed
from jupyter_serve.server._request_ids import REQUEST_ID_HEADER, request_id_for
from jupyter_serve.server._responses import (
    forbidden_response,
    internal_error_response,
    stopping_response,
)

logger = logging.getLogger("jupyter_serve.server")

SECRET_HEADER = "X-Jupyter-Serve-Secret"
STOP_ROUTE = "/-/jupyter-serve/stop"
# Bodies up to this size are parsed on the IO loop (a thread hop costs more than parsing
# them); larger ones on a prediction thread, so the loop keeps answering meanwhile.
INLINE_PARSE_BYTES = 256 * 1024
# Tornado's own body limit, lifted where the handlers enforce ours (refusal_before_body).
_UNLIMITED_BODY = 2**62


@dataclass(frozen=True)
class ServedModel:
    """The model a request is answered with; replaced as a whole by a swap."""

    model: Any
    model_uri: str
    version: str | None


class ServingState:
    """What the handlers share with the server object. ``current`` is swapped from any thread
    (a single reference assignment); everything else is fixed while the server runs. The
    ``recorder`` is the one place every answered request is counted, logged and captured."""

    def __init__(
        self,
        current: ServedModel,
        options: ServerOptions,
        metrics: ServerMetrics,
        batcher: PredictionBatcher,
        executor: Executor,
        on_remote_stop: Callable[[], None] | None,
    ) -> None:
        self.current = current
        self.options = options
        self.metrics = metrics
        self.batcher = batcher
        self.executor = executor
        self.on_remote_stop = on_remote_stop
        self.recorder = RequestRecorder(options, metrics)


@stream_request_body
class _ScoringHandler(RequestHandler):
    # Every verb reaches prepare(), which answers 405 in the protocol's words.
    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS")
    allowed_methods: tuple[str, ...] = ()
    scored = False  # its answers are captured (a scoring route)
    _data: Any = None  # the prepared model input, for the capture
    _response: ScoringResponse | None = None

    def initialize(self, state: ServingState) -> None:
        self._state = state
        self._started = time.perf_counter()
        self._body = BodyBuffer(state.options.max_body_bytes)
        self._counted = False
        self._request_id: str | None = None

    @property
    def request_id(self) -> str:
        """This request's ID: the client's ``X-Request-ID`` when safe, else a new one."""
        if self._request_id is None:
            self._request_id = request_id_for(self.request.connection, self.request.headers)
        return self._request_id

    def prepare(self) -> None:
        self._state.metrics.request_started()
        self._counted = True
        refusal = refusal_before_body(self._state, self.request.headers, self.request.connection)
        if refusal is not None:
            self._answer(refusal)

    def data_received(self, chunk: bytes) -> None:
        if self._finished:
            return
        if not self._body.add(chunk):
            self._answer(body_too_large_response(self._state.options.max_body_bytes))

    async def get(self) -> None:
        await self._dispatch()

    async def head(self) -> None:
        await self._dispatch()

    async def post(self) -> None:
        await self._dispatch()

    async def delete(self) -> None:
        await self._dispatch()

    async def patch(self) -> None:
        await self._dispatch()

    async def put(self) -> None:
        await self._dispatch()

    async def options(self) -> None:
        await self._dispatch()

    async def _dispatch(self) -> None:
        if self._finished:
            return
        if self.request.method not in self.allowed_methods:
            self._answer(method_not_allowed_response(self.allowed_methods))
            return
        self._answer(await self.respond())

    async def respond(self) -> ScoringResponse:
        """The answer to an allowed request; the subclass's route logic."""
        raise NotImplementedError

    def take_body(self) -> bytes:
        """The request's body, once: the handler lets go of it."""
        return self._body.take()

    def _has_secret(self) -> bool:
        return offers_secret(self.request.headers, self._state.options.secret)

    def _answer(self, response: ScoringResponse) -> None:
        self._response = response
        self.set_status(response.status)
        self.set_header("Content-Type", response.content_type)
        for name, value in response.headers:
            self.set_header(name, value)
        self.set_header(REQUEST_ID_HEADER, self.request_id)
        # Counted before the bytes leave: a client reading the metrics right after its answer
        # (a notebook cell, the dashboard) must see its own request.
        self._record_finish(response.status)
        self.finish(response.body)

    def compute_etag(self) -> None:
        return None  # answers are not cacheable; MLflow sends no ETag either

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 405:
            response = method_not_allowed_response(self.allowed_methods)
        elif status_code == 404:
            response = not_found_response()
        else:
            response = internal_error_response()
        self.clear()
        self._answer(response)

    def on_connection_close(self) -> None:
        # A client gone before its answer (e.g. mid-body) would otherwise stay in flight.
        if not self._finished:
            self._record_finish(status_when_closed(self.request.connection))

    def on_finish(self) -> None:
        self._record_finish(self.get_status())

    def _record_finish(self, status: int) -> None:
        if self._counted:
            self._counted = False
            request = self.request
            record_finish(
                self._state,
                request.method,
                request.path,
                status,
                self._started,
                self.request_id,
                request.connection,
                data=self._data,
                response=self._response,
                scored=self.scored,
            )


class BodyBuffer:
    """A request body as its chunks arrive, up to ``limit`` bytes in all."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._chunks: list[bytes] = []
        self._size = 0

    def add(self, chunk: bytes) -> bool:
        """Keep ``chunk``; False (and nothing kept) once the body is over the limit."""
        self._size += len(chunk)
        if self._size > self._limit:
            self._chunks.clear()
            return False
        self._chunks.append(chunk)
        return True

    def take(self) -> bytes:
        """The body received so far; the buffer lets go of it (it may be large)."""
        body, self._chunks = b"".join(self._chunks), []
        return body


def refusal_before_body(
    state: ServingState, headers: HTTPHeaders, connection: object
) -> ScoringResponse | None:
    """The answer a request gets from its headers alone: 403 without the secret the
    deployment requires, 413 for a Content-Length over the body limit, 503 when the body
    does not fit the server's budget for bodies held at once; None otherwise.

    The caller enforces the body limit on the running total of what arrives (chunked bodies
    declare no length); the connection grows a chunked body's share of the budget.
    """
    options = state.options
    if options.require_secret and not offers_secret(headers, options.secret):
        return forbidden_response()
    declared = declared_length(headers)
    if declared is not None and declared > options.max_body_bytes:
        return body_too_large_response(options.max_body_bytes)
    if declared and isinstance(connection, RequestConnection):
        refusal = connection.reserve_body(declared)
        if refusal is not None:
            return refusal
    if isinstance(connection, HTTP1Connection):
        # Tornado's own limit answers a bare 400 before data_received sees the chunk that
        # crosses it; the caller enforces ours, with its JSON answer, on the running total.
        connection.set_max_body_size(_UNLIMITED_BODY)
    return None


def declared_length(headers: HTTPHeaders) -> int | None:
    """The request's Content-Length, when it has a valid one."""
    declared = headers.get("Content-Length")
    if declared is None or not declared.strip().isdigit():
        return None
    return int(declared)


def offers_secret(headers: HTTPHeaders, secret: str | None) -> bool:
    """Whether the request's headers carry the deployment's secret (never without one)."""
    offered = headers.get(SECRET_HEADER)
    if secret is None or offered is None:
        return False
    return hmac.compare_digest(offered.encode(), secret.encode())


def record_finish(
    state: ServingState,
    method: str | None,
    path: str,
    status: int,
    started: float,
    request_id: str,
    connection: object,
    *,
    data: Any = None,
    response: ScoringResponse | None = None,
    scored: bool = False,
) -> None:
    """Count one answered request in the metrics, hand it to the recorder (access log,
    capture, inference log), and log it when asked to. On the IO loop."""
    latency = time.perf_counter() - started
    state.metrics.request_finished(status, latency, path)
    recorder = state.recorder
    if recorder.access_wanted or (scored and recorder.keeps_scored):
        recorder.record(
            Exchange(
                time.time(),
                request_id,
                method or "",
                path,
                status,
                latency,
                getattr(getattr(connection, "context", None), "address", None),
                state.current.version,
                data,
                None if response is None else response.body,
                scored,
            )
        )
    if state.options.log_requests:
        logger.info("%s %s %d %.1f ms", method, path, status, latency * 1000)
    elif logger.isEnabledFor(logging.DEBUG):
        logger.debug("%s %s %d %.1f ms", method, path, status, latency * 1000)


class PingHandler(_ScoringHandler):
    allowed_methods = ("GET",)

    async def respond(self) -> ScoringResponse:
        return ping_response()


class VersionHandler(_ScoringHandler):
    allowed_methods = ("GET",)

    async def respond(self) -> ScoringResponse:
        return version_response()


class NotFoundHandler(_ScoringHandler):
    allowed_methods = _ScoringHandler.SUPPORTED_METHODS

    async def respond(self) -> ScoringResponse:
        return not_found_response()


class StopHandler(_ScoringHandler):
    allowed_methods = ("POST",)

    async def respond(self) -> ScoringResponse:
        if not self._has_secret():
            return forbidden_response()
        return stopping_response()

    def on_finish(self) -> None:
        super().on_finish()
        callback = self._state.on_remote_stop
        if self.get_status() == 202 and callback is not None:
            asyncio.get_running_loop().call_soon(_call_safely, callback)


def _call_safely(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:
        logger.exception("the remote-stop callback failed")


def _open_inference_routes(state: ServingState) -> list[Any]:
    # Imported here: the V2 handlers build on this module's handler base.
    from jupyter_serve.server._open_inference_handlers import open_inference_routes

    return open_inference_routes(state)


def _observability_routes(state: ServingState) -> list[Any]:
    from jupyter_serve.server._observability_handlers import observability_routes

    return observability_routes(state)


def make_application(state: ServingState) -> Application:
    """The Tornado application of one deployment's routes but ``/invocations`` (see
    `_invocations.ScoringRoutes`): MLflow's others and the Open Inference Protocol's, plus the
    remote-stop control route when the deployment has a secret."""
    routes: list[Any] = [
        (r"/ping", PingHandler, {"state": state}),
        (r"/health", PingHandler, {"state": state}),
        (r"/version", VersionHandler, {"state": state}),
        *_open_inference_routes(state),
        *_observability_routes(state),
    ]
    if state.options.secret is not None:
        routes.append((STOP_ROUTE, StopHandler, {"state": state}))
    return Application(
        routes,
        default_handler_class=NotFoundHandler,
        default_handler_args={"state": state},
        # Per-request logging costs throughput: the handlers log only when asked.
        log_function=lambda handler: None,
        compress_response=False,
    )
