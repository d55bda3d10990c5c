"""``/invocations``, the hot path, as a bare Tornado message delegate.

A `RequestHandler` costs about as much CPU as everything else a request needs once requests
are batched (its per-request set-up, coroutines and header work: the bare Tornado echo of the
benchmarks serves ~5.7k requests/s with one, ~8k without). So this one route answers from
`HTTPMessageDelegate` callbacks: headers, body chunks, then a parse on the IO loop and a
future from the batcher; no coroutine, no task. Its answers are those of the other routes:
the same limits, secret check, metrics and error bodies (`_handlers.py` holds the shared
parts).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from functools import lru_cache, partial
from http.client import responses
from typing import Any

import tornado
from tornado import httputil
from tornado.http1connection import HTTP1Connection

from jupyter_serve.protocol import (
    PlainColumns,
    ScoringError,
    ScoringRequest,
    ScoringResponse,
    body_too_large_response,
    method_not_allowed_response,
    parse_invocation,
    prepare_input,
    timeout_response,
)
from jupyter_serve.server._handlers import (
    INLINE_PARSE_BYTES,
    BodyBuffer,
    ServedModel,
    ServingState,
    make_application,
    record_finish,
    refusal_before_body,
)
from jupyter_serve.server._request_connection import status_when_closed
from jupyter_serve.server._request_ids import REQUEST_ID_HEADER, request_id_for
from jupyter_serve.server._responses import internal_error_response

logger = logging.getLogger("jupyter_serve.server")

_SERVER_HEADER = f"TornadoServer/{tornado.version}"


class ScoringRoutes(httputil.HTTPServerConnectionDelegate):
    """Every route of one deployment: ``/invocations`` here, the others in the Tornado
    application of `make_application`."""

    def __init__(self, state: ServingState) -> None:
        self._state = state
        self._application = make_application(state)

    def start_request(
        self, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> httputil.HTTPMessageDelegate:
        return _Dispatch(self._state, self._application, server_conn, request_conn)


class _Dispatch(httputil.HTTPMessageDelegate):
    """Hands a request to `_Invocation` or to the application once its path is known.

    Tornado's RuleRouter does the same, at the price of an HTTPServerRequest per request.
    """

    def __init__(
        self,
        state: ServingState,
        application: httputil.HTTPServerConnectionDelegate,
        server_conn: object,
        request_conn: httputil.HTTPConnection,
    ) -> None:
        self._state = state
        self._application = application
        self._server_conn = server_conn
        self._request_conn = request_conn
        self._delegate: httputil.HTTPMessageDelegate | None = None

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        assert isinstance(start_line, httputil.RequestStartLine)
        path = start_line.path.partition("?")[0]
        if path == "/invocations":
            self._delegate = _Invocation(self._state, self._request_conn)
        else:
            self._delegate = self._application.start_request(self._server_conn, self._request_conn)
        return self._delegate.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        assert self._delegate is not None
        return self._delegate.data_received(chunk)

    def finish(self) -> None:
        assert self._delegate is not None
        self._delegate.finish()

    def on_connection_close(self) -> None:
        if self._delegate is not None:
            self._delegate.on_connection_close()


class _Invocation(httputil.HTTPMessageDelegate):
    """One request to ``/invocations``, from its headers to its one answer."""

    def __init__(self, state: ServingState, connection: httputil.HTTPConnection) -> None:
        self._state = state
        self._connection = connection
        self._started = time.perf_counter()
        self._method = ""
        self._path = "/invocations"
        self._content_type: str | None = None
        self._body = BodyBuffer(state.options.max_body_bytes)
        self._answered = False
        self._counted = False
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._prediction: asyncio.Future[ScoringResponse] | None = None
        self._request_id = ""
        self._data: Any = None  # the prepared input, kept for the capture
        self._response: ScoringResponse | None = None

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> None:
        assert isinstance(start_line, httputil.RequestStartLine)
        state = self._state
        self._method, self._path = start_line.method, start_line.path
        self._content_type = headers.get("Content-Type")
        self._request_id = request_id_for(self._connection, headers)
        state.metrics.request_started()
        self._counted = True
        refusal = refusal_before_body(state, headers, self._connection)
        if refusal is not None:
            self._answer(refusal)

    def data_received(self, chunk: bytes) -> None:
        if self._answered:
            return
        if not self._body.add(chunk):
            self._answer(body_too_large_response(self._state.options.max_body_bytes))

    def finish(self) -> None:
        if self._answered:
            return
        if self._method != "POST":
            self._answer(method_not_allowed_response(("POST",)))
            return
        state = self._state
        served = state.current  # a swap from now on does not touch this request
        body = self._body.take()
        if isinstance(self._connection, HTTP1Connection):
            # Tells on_connection_close of a client gone while its request is being answered
            # (the delegate's own callback only covers a client gone mid-body).
            self._connection.set_close_callback(self.on_connection_close)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + state.options.timeout - (time.perf_counter() - self._started)
        self._deadline = deadline
        self._timer = loop.call_at(deadline, self._time_out)
        if len(body) <= INLINE_PARSE_BYTES:
            try:
                parsed = parse_for_batching(served.model, body, self._content_type)
            except Exception as error:
                self._answer(_error_response(error))
                return
            self._submit(served, parsed)
        else:
            parsing = loop.run_in_executor(
                state.executor, parse_for_batching, served.model, body, self._content_type
            )
            parsing.add_done_callback(partial(self._parsed, served))

    def on_connection_close(self) -> None:
        # A client gone before its answer (e.g. mid-body) would otherwise stay in flight.
        if not self._answered:
            self._answered = True
            self._cancel_timer()
            self._withdraw_prediction()
            self._record_finish(status_when_closed(self._connection))

    def _parsed(
        self, served: ServedModel, parsing: asyncio.Future[tuple[ScoringRequest, Any, Any]]
    ) -> None:
        if self._answered:
            return
        error = parsing.exception()
        if error is not None:
            self._answer(_error_response(error))
            return
        self._submit(served, parsing.result())

    def _submit(self, served: ServedModel, parsed: tuple[ScoringRequest, Any, Any]) -> None:
        request, data, params = parsed
        self._data = data
        answer = self._state.batcher.submit(
            served.model, data, params, wrap=request.wrap_predictions, deadline=self._deadline
        )
        answer.add_done_callback(self._predicted)
        self._prediction = answer

    def _predicted(self, answer: asyncio.Future[ScoringResponse]) -> None:
        if not answer.cancelled():
            self._answer(answer.result())

    def _time_out(self) -> None:
        self._timer = None
        self._withdraw_prediction()
        self._answer(timeout_response(self._state.options.timeout))

    def _withdraw_prediction(self) -> None:
        # Nobody waits for it any more: a queued prediction must not take a thread's time.
        if self._prediction is not None:
            self._state.batcher.withdraw(self._prediction)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _answer(self, response: ScoringResponse) -> None:
        if self._answered:
            return
        self._answered = True
        self._cancel_timer()
        self._response = response
        headers = httputil.HTTPHeaders()
        headers["Server"] = _SERVER_HEADER
        headers["Content-Type"] = response.content_type
        headers["Date"] = _http_date()
        for name, value in response.headers:
            headers[name] = value
        headers["Content-Length"] = str(len(response.body))
        headers[REQUEST_ID_HEADER] = self._request_id
        # Counted before the bytes leave: a client reading the metrics right after its
        # answer (a notebook cell, the dashboard) must see its own request.
        self._record_finish(response.status)
        start_line = httputil.ResponseStartLine(
            "HTTP/1.1", response.status, responses.get(response.status, "Unknown")
        )
        body = None if self._method == "HEAD" else response.body
        self._connection.write_headers(start_line, headers, body)
        self._connection.finish()

    def _record_finish(self, status: int) -> None:
        if self._counted:
            self._counted = False
            record_finish(
                self._state,
                self._method,
                self._path,
                status,
                self._started,
                self._request_id,
                self._connection,
                data=self._data,
                response=self._response,
                scored=True,
            )


def parse_for_batching(
    model: Any, body: bytes, content_type: str | None
) -> tuple[ScoringRequest, Any, dict[str, Any] | None]:
    """The request, the model input for the batcher and its params.

    A plain split or records body stays `PlainColumns`: the batcher builds and schema-enforces one
    DataFrame for the requests it merges. Every other input is enforced here.
    """
    request = parse_invocation(body, content_type, model, keep_plain_columns=True)
    if isinstance(request.data, PlainColumns):
        return request, request.data, request.params
    data, params = prepare_input(model, request)
    return request, data, params


@lru_cache(maxsize=2)
def _date_of_second(second: int) -> str:
    return httputil.format_timestamp(second)


def _http_date() -> str:
    """The Date header's value for now (formatting it costs more than the rest of the
    headers, so each second is formatted once)."""
    return _date_of_second(int(time.time()))


def _error_response(error: BaseException) -> ScoringResponse:
    if isinstance(error, ScoringError):
        return error.to_response()
    logger.error("unexpected failure while parsing a request", exc_info=error)
    return internal_error_response()
