"""``{base_url}jupyter-serve/proxy/<id>/<path>``: any request, relayed to one deployment.

Small bodies are read whole before the deployment is contacted; larger and chunked ones are
streamed as they arrive (a bounded number at once), asking the deployment first with
``Expect: 100-continue`` so that it can refuse them from their headers. Answers stream back as
they come, with back-pressure both ways, so large uploads and answers never sit whole in the
Jupyter server's memory. An answer that comes while the body still arrives (the deployment's
early 413, the proxy's own 413 or 408) goes out at once. Authentication and authorization run
in ``prepare``, before a single body byte is forwarded, as well as on each verb; websocket
upgrades are refused after authentication.
"""

from __future__ import annotations

from collections.abc import Awaitable
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

from jupyter_serve.errors import DeploymentError
from jupyter_serve.serverext._base import JupyterServeHandler, escaped_json, http_error
from jupyter_serve.serverext._body import GATHERED_BODY_LIMIT, StallWatch, StreamedBody
from jupyter_serve.serverext._deployments import record_of_kernels, unknown_deployment_message
from jupyter_serve.serverext._headers import (
    docs_page_policy,
    is_docs_page,
    request_headers_to_forward,
    response_headers_to_return,
)
from jupyter_serve.serverext._refusals import (
    busy_uploads_message,
    failure_answer,
    failure_of,
    over_limit_message,
    stalled_body_message,
)
from jupyter_serve.serverext._remote import RemoteHostRefused, remote_upstream
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
# answer. Larger bodies are not worth reading for nothing; they get the answer at once. An
# answer given while the body still arrives (a 413, a stall, the deployment's early answer)
# goes out at once, and up to this much more of the body is drained before the connection
# is closed, for clients that read only once they have sent everything.
_DRAINED_BODY_LIMIT = 1024 * 1024
# Tornado's own limit answers a bare 400 mid-body: the proxy counts and cuts bodies itself.
_LIFTED_BODY_LIMIT = 1 << 50


@web.stream_request_body
class DeploymentProxyHandler(JupyterServeHandler):
    """Relays every verb to the deployment named in the URL; see the module docstring."""

    def initialize(self, settings: JupyterServeProxy, upstream: UpstreamClient) -> None:
        self.proxy_settings = settings
        self.upstream = upstream
        self._body: StreamedBody | None = None
        self._gathered: list[bytes] | None = None  # a small body, forwarded once whole
        self._target: tuple[UpstreamTarget, str | None, int | None] | None = None
        self._answer: Future[HTTPResponse] | None = None
        self._upstream_status: tuple[int, str] = (502, "")
        self._upstream_headers: list[tuple[str, str]] = []
        self._deployment_id = ""
        self._refusal: web.HTTPError | None = None
        self._client_gone = False
        self._chunked_bytes_left: int | None = None  # a chunked body's room under the limit
        self._stall: StallWatch | None = None
        self._holds_permit = False  # an upload permit, held while a body streams upstream
        self._body_complete = False
        self._answered_early = False  # answered while the body still arrives
        self._drained = 0  # body bytes read after that answer
        self._early_flush: Future[None] | None = None

    def compute_etag(self) -> str | None:
        """No ETag of the proxy's own: the deployment's headers pass through unchanged."""
        return None

    @property
    def content_security_policy(self) -> str:
        """Jupyter's API policy, but for a deployment's own ``/docs`` page: its scripts may run."""
        policy: str = super().content_security_policy
        if not self._is_docs_page():
            return policy
        prefix = url_path_join(self.base_url, "jupyter-serve/proxy/")
        deployment_id = self.request.path[len(prefix) :].partition("/")[0]
        request = self.request
        docs_url = f"{request.protocol}://{request.host}{prefix}{deployment_id}/docs"
        return policy.replace("default-src 'none'", docs_page_policy(docs_url))

    def _is_docs_page(self) -> bool:
        prefix = url_path_join(self.base_url, "jupyter-serve/proxy/")
        deployment_id, slash, rest = self.request.path[len(prefix) :].partition("/")
        return bool(deployment_id) and is_docs_page(slash + rest)

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
            self._stall = StallWatch(self.proxy_settings.body_idle_timeout, self._on_stall)
            return
        if body_length is not None and 0 < body_length <= GATHERED_BODY_LIMIT:
            # Read whole first: a client stalling in it holds no connection to a deployment.
            self._gathered = []
            self._target = (target, secret, body_length)
        elif body_length != 0:
            await self._take_upload_permit()
            self._start_upstream(target, secret, body_length)
        else:
            self._start_upstream(target, secret, body_length)
        if body_length != 0:
            self._stall = StallWatch(self.proxy_settings.body_idle_timeout, self._on_stall)

    def _small_body_follows(self) -> bool:
        declared = self.request.headers.get("Content-Length", "")
        return declared.isdigit() and 0 < int(declared) <= _DRAINED_BODY_LIMIT

    async def _take_upload_permit(self) -> None:
        wait = self.proxy_settings.connect_timeout
        if not await self.upstream.take_upload_permit(wait):
            raise http_error(503, busy_uploads_message(wait))
        self._holds_permit = True

    def _release_upload_permit(self) -> None:
        if self._holds_permit:
            self._holds_permit = False
            self.upstream.release_upload_permit()

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
            if record.is_remote:
                return remote_upstream(record, self.proxy_settings, path), None
            target = UpstreamTarget(loopback_host(str(record.host)), record.port, path)
        except RemoteHostRefused as error:
            raise http_error(403, str(error)) from error
        except (ProxyTargetError, DeploymentError) as error:
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
                    413, over_limit_message(f"the request body ({length} bytes)", limit)
                )
        bound = limit
        if length is None:
            # A chunked body's size shows on the way: data_received answers 413 past the limit.
            self._chunked_bytes_left = limit
            bound = _LIFTED_BODY_LIMIT
        connection = self.request.connection
        if connection is not None and hasattr(connection, "set_max_body_size"):
            connection.set_max_body_size(bound)
        return length

    def _start_upstream(
        self, target: UpstreamTarget, secret: str | None, length: int | None, body: bytes = b""
    ) -> None:
        method = self.request.method or "GET"
        streamed = self._gathered is None and (length is None or length > 0)
        headers = request_headers_to_forward(
            self.request.headers, secret=secret, body_length=length if length else None
        )
        if "Content-Type" not in headers:
            headers[NO_CONTENT_TYPE_MARKER] = "1"
        options: dict[str, Any] = {}
        if streamed:
            self._body = StreamedBody()
            options["body_producer"] = self._body.produce
            # The deployment refuses a body it will not take (413 over its limit, 403) from
            # the headers alone: the client gets that answer at once, with no body sent.
            options["expect_100_continue"] = True
        elif length or method in _METHODS_WITH_BODY:
            options["body"] = body
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
            **options,
        )
        self._answer = self.upstream.client().fetch(request, raise_error=False)
        self._answer.add_done_callback(self._on_upstream_done)

    async def data_received(self, chunk: bytes) -> None:
        if self._stall is not None:
            self._stall.touched()
        if self._answered_early:
            self._drained += len(chunk)
            if self._drained > _DRAINED_BODY_LIMIT:
                self._close_connection()
            return
        if self._chunked_bytes_left is not None and self._refusal is None:
            self._chunked_bytes_left -= len(chunk)
            if self._chunked_bytes_left < 0:
                limit = self.proxy_settings.max_body_size
                self._answer_now(413, over_limit_message("the chunked request body", limit))
                return
        if self._refusal is not None:
            return
        if self._gathered is not None:
            self._gathered.append(chunk)
        elif self._body is not None and self._answer is not None:
            if self._stall is not None:
                self._stall.held_up(True)
            await self._body.forward(chunk, self._answer)
            if self._stall is not None:
                self._stall.held_up(False)

    def _on_stall(self) -> None:
        if not self._answered_early:
            self._answer_now(408, stalled_body_message(self.proxy_settings.body_idle_timeout))
        self._close_connection()  # a stalled client sends nothing more to drain

    def _answer_now(self, status: int, message: str) -> None:
        """Answer while the body still arrives; the body is not forwarded any further."""
        if self._body is not None:
            self._body.abort()  # the deployment never gets a cut-off body as complete
        if self._answered_early or self._finished:
            return
        self._answered_early = True
        if self._headers_written:
            self._close_connection()  # part of the deployment's answer went out already
            return
        self.clear()
        self.set_status(status)
        payload = escaped_json({"message": message}).encode()
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Length", str(len(payload)))
        self.write(payload)
        self._early_flush = self.flush()
        self._early_flush.add_done_callback(lambda done: done.cancelled() or done.exception())

    def _close_connection(self) -> None:
        """Close the client's connection once what was written has gone out."""
        connection = self.request.connection
        if not isinstance(connection, HTTP1Connection):
            return
        if self._early_flush is None or self._early_flush.done():
            connection.close()
        else:
            self._early_flush.add_done_callback(lambda _: connection.close())

    def _on_upstream_done(self, answer: Future[HTTPResponse]) -> None:
        failure = failure_of(answer)  # also marks the outcome as seen
        self._release_upload_permit()
        if self._body_complete or self._answered_early or self._finished or self._client_gone:
            return
        # The deployment answered before the whole body arrived (its 413, a 403): relay now.
        if failure is not None:
            self._answer_now(*failure_answer(failure, self.proxy_settings, self._deployment_id))
            return
        self._answered_early = True
        if "Content-Length" not in self._headers:
            self.finish()  # only the end of the chunked answer tells it is complete

    def on_connection_close(self) -> None:
        self._client_gone = True
        if self._body is not None:
            self._body.abort()
        if self._stall is not None:
            self._stall.cancel()
        self._release_upload_permit()
        super().on_connection_close()

    def on_finish(self) -> None:
        if self._stall is not None:
            self._stall.cancel()
        self._release_upload_permit()
        super().on_finish()

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
        if self._finished or self._answered_early:
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
        if self._finished or self._client_gone or self._answered_early:
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
        self._body_complete = True
        if self._stall is not None:
            self._stall.cancel()
        if self._answered_early:
            if not self._finished:
                self.finish()
            return
        if self._refusal is not None:
            raise self._refusal
        if self._target is not None:
            target, secret, length = self._target
            self._start_upstream(target, secret, length, b"".join(self._gathered or ()))
            self._gathered = None
        assert self._answer is not None
        if self._body is not None:
            self._body.end()
        try:
            await self._answer
        except Exception:
            failure = failure_of(self._answer)
            assert failure is not None
            self._fail(*failure_answer(failure, self.proxy_settings, self._deployment_id))
        else:
            self.finish()

    def _fail(self, status: int, message: str) -> None:
        if self._headers_written:
            # Part of the answer has gone out: cut the connection so the client sees a
            # truncated answer rather than a complete-looking one.
            self._close_connection()
            return
        raise http_error(status, message)

    @web.authenticated
    @authorized
    async def get(self) -> None:
        if self._is_docs_page():
            # Swagger UI's "Try it out" echoes Jupyter's _xsrf cookie on its POSTs; a browser
            # that came straight to /docs has none yet.
            self.xsrf_token  # noqa: B018  (reading it sets the cookie)
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
