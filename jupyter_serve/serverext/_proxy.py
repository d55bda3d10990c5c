"""``{base_url}jupyter-serve/proxy/<id>/<path>``: any request, relayed to one deployment.

The request body is streamed to the deployment as it arrives and the answer streamed back as
it comes, both with back-pressure, so large uploads and answers never sit whole in the Jupyter
server's memory. Authentication and authorization run in ``prepare``, before a single body
byte is forwarded, as well as on each verb; websocket upgrades are refused after
authentication.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized
from jupyter_server.auth.utils import HTTP_METHOD_TO_AUTH_ACTION
from jupyter_server.utils import url_path_join
from tornado import httputil, web
from tornado.concurrent import Future
from tornado.http1connection import HTTP1Connection
from tornado.httpclient import HTTPRequest, HTTPResponse
from tornado.iostream import StreamClosedError
from tornado.simple_httpclient import HTTPTimeoutError

from jupyter_serve.serverext._base import JupyterServeHandler, http_error
from jupyter_serve.serverext._deployments import record_of_kernels, unknown_deployment_message
from jupyter_serve.serverext._headers import request_headers_to_forward, response_headers_to_return
from jupyter_serve.serverext._settings import JupyterServeProxy
from jupyter_serve.serverext._target import (
    ProxyTargetError,
    UpstreamTarget,
    loopback_host,
    upstream_path,
)
from jupyter_serve.serverext._upstream import NO_CONTENT_TYPE_MARKER, UpstreamClient

_METHODS_WITH_BODY = ("POST", "PUT", "PATCH")
# A refusal decided before the body was read waits until a small body has been drained:
# closing a socket with unread bytes resets the connection, and the client may lose the
# answer. Larger bodies are not worth reading for nothing; they get the answer at once.
_DRAINED_BODY_LIMIT = 1024 * 1024


class _StreamedBody:
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
        if self._write is None or answer.done():
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
        """The client went away mid-body: fail the upstream request instead of finishing it."""
        if not self._complete.done():
            self._complete.set_exception(ConnectionAbortedError("the client disconnected"))


@web.stream_request_body
class DeploymentProxyHandler(JupyterServeHandler):
    """Relays every verb to the deployment named in the URL; see the module docstring."""

    def initialize(self, settings: JupyterServeProxy, upstream: UpstreamClient) -> None:
        self.proxy_settings = settings
        self.upstream = upstream
        self._body: _StreamedBody | None = None
        self._answer: Future[HTTPResponse] | None = None
        self._upstream_status: tuple[int, str] = (502, "")
        self._upstream_headers: list[tuple[str, str]] = []
        self._deployment_id = ""
        self._refusal: web.HTTPError | None = None
        self._client_gone = False
        self._chunked_bytes_left: int | None = None  # a chunked body's room under the limit

    def compute_etag(self) -> str | None:
        """No ETag of the proxy's own: the deployment's headers pass through unchanged."""
        return None

    def finish(self, chunk: Any = None) -> Future[None]:
        """Finish, keeping the deployment's Content-Type (APIHandler would force JSON)."""
        self.update_api_activity()
        return web.RequestHandler.finish(self, chunk)

    async def prepare(self) -> None:  # type: ignore[override]
        try:
            await super().prepare()
            if self._finished:
                return
            await self._authorize_before_body()
            if self.request.headers.get("Upgrade"):
                raise http_error(
                    400,
                    "the jupyter-serve proxy does not forward websocket or other protocol "
                    "upgrades; send plain HTTP requests",
                )
            target, secret = self._resolve_target()
            body_length = self._declared_body_length()
        except web.HTTPError as refusal:
            if not self._small_body_follows():
                raise
            self._refusal = refusal  # answered by the verb, once the body is drained
            return
        self._start_upstream(target, secret, body_length)

    def _small_body_follows(self) -> bool:
        declared = self.request.headers.get("Content-Length", "")
        return declared.isdigit() and 0 < int(declared) <= _DRAINED_BODY_LIMIT

    async def _authorize_before_body(self) -> None:
        # The verbs carry @authorized too, but they run only once the body has arrived: an
        # unauthorized client must not get to stream a body to a deployment first.
        method = self.request.method or ""
        action = HTTP_METHOD_TO_AUTH_ACTION.get(method)
        if not self.current_user or action is None:
            raise http_error(403, "authentication required")
        user = self.current_user
        if not await ensure_async(
            self.authorizer.is_authorized(self, user, action, self.auth_resource)
        ):
            raise http_error(
                403, f"User is not authorized to {action} on resource: {self.auth_resource}."
            )

    def _resolve_target(self) -> tuple[UpstreamTarget, str | None]:
        prefix = url_path_join(self.base_url, "jupyter-serve/proxy/")
        deployment_id, slash, rest = self.request.path[len(prefix) :].partition("/")
        record = record_of_kernels(deployment_id, set(self.kernel_manager.list_kernel_ids()))
        if record is None:
            raise http_error(404, unknown_deployment_message(deployment_id))
        self._deployment_id = record.id
        try:
            path = upstream_path(slash + rest)
        except ProxyTargetError as error:
            raise http_error(400, str(error)) from error
        try:
            target = UpstreamTarget(loopback_host(str(record.host)), record.port, path)
        except ProxyTargetError as error:
            raise http_error(502, f"deployment {record.id} cannot be proxied: {error}") from error
        return target, record.secret

    def _declared_body_length(self) -> int | None:
        """The Content-Length to forward, None for a chunked body; raises 411/413/400."""
        limit = self.proxy_settings.max_body_size
        declared = self.request.headers.get("Content-Length")
        chunked = "chunked" in self.request.headers.get("Transfer-Encoding", "").lower()
        if declared is None:
            if chunked and self.request.method not in _METHODS_WITH_BODY:
                raise http_error(411, f"send a Content-Length with a {self.request.method} body")
            length = None if chunked else 0
        else:
            try:
                length = int(declared)
            except ValueError as error:
                raise http_error(400, "the Content-Length header is not a number") from error
            if length > limit:
                raise http_error(
                    413,
                    f"the request body ({length} bytes) is over the proxy's limit of {limit} "
                    "bytes (c.JupyterServeProxy.max_body_size)",
                )
        bound = limit
        if length is None:
            # A chunked body's size shows on the way: data_received refuses it past the limit
            # and drains up to this much more, so that the client reads the 413; beyond that,
            # Tornado cuts the connection.
            self._chunked_bytes_left = limit
            bound = limit + _DRAINED_BODY_LIMIT
        connection = self.request.connection
        if connection is not None and hasattr(connection, "set_max_body_size"):
            connection.set_max_body_size(bound)
        return length

    def _start_upstream(
        self, target: UpstreamTarget, secret: str | None, length: int | None
    ) -> None:
        method = self.request.method or "GET"
        streamed = length is None or length > 0
        headers = request_headers_to_forward(
            self.request.headers, secret=secret, body_length=length if streamed else None
        )
        if "Content-Type" not in headers:
            headers[NO_CONTENT_TYPE_MARKER] = "1"
        body: dict[str, Any] = {}
        if streamed:
            self._body = _StreamedBody()
            body["body_producer"] = self._body.produce
        elif method in _METHODS_WITH_BODY:
            body["body"] = b""
        request = HTTPRequest(
            target.url(self.request.query),
            method=method,
            headers=headers,
            connect_timeout=self.proxy_settings.connect_timeout,
            request_timeout=self.proxy_settings.request_timeout,
            follow_redirects=False,
            decompress_response=False,
            allow_nonstandard_methods=True,
            header_callback=self._on_upstream_header_line,
            streaming_callback=self._on_upstream_chunk,
            **body,
        )
        self._answer = self.upstream.client().fetch(request, raise_error=False)
        # Read by _relay, unless the client went away first: then nobody else would.
        self._answer.add_done_callback(lambda done: done.cancelled() or done.exception())

    async def data_received(self, chunk: bytes) -> None:
        if self._chunked_bytes_left is not None and self._refusal is None:
            self._chunked_bytes_left -= len(chunk)
            if self._chunked_bytes_left < 0:
                limit = self.proxy_settings.max_body_size
                self._refusal = http_error(
                    413,
                    f"the chunked request body is over the proxy's limit of {limit} bytes "
                    "(c.JupyterServeProxy.max_body_size)",
                )
                if self._body is not None:
                    self._body.abort()  # the deployment never gets a cut-off body as complete
        if self._refusal is None and self._body is not None and self._answer is not None:
            await self._body.forward(chunk, self._answer)

    def on_connection_close(self) -> None:
        if self._body is not None:
            self._body.abort()
        super().on_connection_close()

    def _on_upstream_header_line(self, line: str) -> None:
        if line.startswith("HTTP/"):
            start = httputil.parse_response_start_line(line.strip())
            self._upstream_status = (start.code, start.reason)
            self._upstream_headers = []
        elif line == "\r\n":
            self._apply_upstream_headers()
        else:
            name, _, value = line.partition(":")
            self._upstream_headers.append((name.strip(), value.strip()))

    def _apply_upstream_headers(self) -> None:
        if self._finished:
            return
        code, reason = self._upstream_status
        self.set_status(code, reason or None)
        self.clear_header("Content-Type")  # Tornado's default; the deployment's own follows
        seen: set[str] = set()
        for name, value in response_headers_to_return(self._upstream_headers):
            try:
                if name.lower() in seen:
                    self.add_header(name, value)
                else:
                    self.set_header(name, value)
                    seen.add(name.lower())
            except ValueError:
                self.log.warning("jupyter-serve proxy: dropped an invalid header %r", name)

    def _on_upstream_chunk(self, chunk: bytes) -> Awaitable[None] | None:
        if self._finished or self._client_gone:
            return None
        self.write(chunk)
        # Tornado's client waits on what this returns before reading on: the deployment's
        # answer is read no faster than the client takes it, so it never piles up here.
        return self._sent(self.flush())

    async def _sent(self, flushing: Future[None]) -> None:
        try:
            await flushing
        except StreamClosedError:
            self._client_gone = True  # the rest of the answer is read and dropped

    async def _relay(self) -> None:
        if self._refusal is not None:
            raise self._refusal
        assert self._answer is not None
        if self._body is not None:
            self._body.end()
        try:
            await self._answer
        except HTTPTimeoutError:
            self._fail(
                504,
                f"deployment {self._deployment_id} did not answer in time "
                f"(connect {self.proxy_settings.connect_timeout:g} s, request "
                f"{self.proxy_settings.request_timeout:g} s; c.JupyterServeProxy)",
            )
        except Exception:  # refused, reset, ...: all mean "not reachable"
            self._fail(502, self._unreachable_message())
        else:
            self.finish()

    def _unreachable_message(self) -> str:
        return (
            f"deployment {self._deployment_id} did not answer: its server refused or dropped "
            "the connection. It may have stopped or crashed; check its notebook."
        )

    def _fail(self, status: int, message: str) -> None:
        if self._headers_written:
            # Part of the answer has gone out: cut the connection so the client sees a
            # truncated answer rather than a complete-looking one.
            if isinstance(self.request.connection, HTTP1Connection):
                self.request.connection.close()
            return
        raise http_error(status, message)

    @web.authenticated
    @authorized
    async def get(self) -> None:
        await self._relay()

    @web.authenticated
    @authorized
    async def head(self) -> None:
        await self._relay()

    @web.authenticated
    @authorized
    async def post(self) -> None:
        await self._relay()

    @web.authenticated
    @authorized
    async def put(self) -> None:
        await self._relay()

    @web.authenticated
    @authorized
    async def patch(self) -> None:
        await self._relay()

    @web.authenticated
    @authorized
    async def delete(self) -> None:
        await self._relay()

    @web.authenticated
    @authorized
    async def options(self) -> None:  # type: ignore[override]
        await self._relay()
