"""The HTTP client the proxy and the stop action use to reach deployments."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

from tornado import httputil
from tornado.concurrent import Future
from tornado.http1connection import HTTP1Connection
from tornado.iostream import IOStream
from tornado.netutil import Resolver
from tornado.simple_httpclient import SimpleAsyncHTTPClient, _HTTPConnection

from jupyter_serve.serverext._body import BodyCutOff
from jupyter_serve.serverext._settings import JupyterServeProxy

# Answers are streamed through, never held whole, so the client's own limit need not bind.
_UNBOUNDED_RESPONSE = 1 << 50

NO_CONTENT_TYPE_MARKER = "X-Jupyter-Serve-No-Content-Type"


class _VerbatimHeadersConnection(_HTTPConnection):
    """Sends a proxied request as the proxy built it, and hears a deployment's early answer.

    Tornado's client gives every POST lacking a Content-Type a form-urlencoded one; a proxy
    must not invent headers (a deployment answers a missing Content-Type differently). The
    proxy marks such requests; the marker and the invented header go before the wire.

    Tornado's client also reads the answer only once the whole body is sent, but a deployment
    may answer mid-body (413 past its limit, for a chunked body) and close: the body's next
    write then fails, the connection is dropped and its answer lost. Here, once the
    deployment has said ``100 Continue``, the body goes out while its answer is read, and
    writing stops as soon as an answer starts to arrive.
    """

    def _create_connection(self, stream: IOStream) -> HTTP1Connection:
        connection = super()._create_connection(stream)
        write_headers = connection.write_headers
        write = connection.write

        def write_verbatim_headers(start_line: Any, headers: Any, chunk: Any = None) -> Any:
            if NO_CONTENT_TYPE_MARKER in headers:
                del headers[NO_CONTENT_TYPE_MARKER]
                if "Content-Type" in headers:
                    del headers["Content-Type"]
            return write_headers(start_line, headers, chunk)

        def write_until_answered(chunk: bytes) -> Future[None]:
            if _answer_is_arriving(stream):
                skipped: Future[None] = Future()
                skipped.set_result(None)
                return skipped
            return write(chunk)

        connection.write_headers = write_verbatim_headers  # type: ignore[method-assign]
        connection.write = write_until_answered  # type: ignore[method-assign]
        return connection

    async def headers_received(
        self,
        first_line: httputil.ResponseStartLine | httputil.RequestStartLine,
        headers: httputil.HTTPHeaders,
    ) -> None:
        if self.request.expect_100_continue and getattr(first_line, "code", None) == 100:
            # Returning lets the connection read the final answer while the body goes out.
            self._body_sent = asyncio.ensure_future(self._send_body_beside_the_answer())
            return
        await super().headers_received(first_line, headers)

    async def _send_body_beside_the_answer(self) -> None:
        try:
            await self._write_body(False)
        except Exception:  # a body cut short: the answer, if any, was read; else it fails
            if not self.stream.closed():
                self.stream.close()

    async def _write_body(self, start_read: bool) -> None:
        try:
            await super()._write_body(start_read)
        except BodyCutOff:
            # Dropping the connection is the one way to tell the deployment the body it was
            # getting is not complete; the request then ends as a failed one.
            self.stream.close()


def _answer_is_arriving(stream: IOStream) -> bool:
    """Whether the deployment has sent something (or closed) while its request is sent."""
    if stream.closed():
        return True
    try:
        return stream.socket.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) is not None
    except BlockingIOError:
        return False
    except OSError:
        return True


class _AddressLiteralResolver(Resolver):
    """Resolves the IP literals deployments are reached at, without DNS and without a thread
    (host names of allowed remote deployments go through the loop's own lookup).

    Tornado's default resolver hands every lookup, literals included, to a thread pool; on a
    busy machine that hand-off cost milliseconds of the Jupyter server's loop per request.
    """

    def initialize(self) -> None:
        pass

    async def resolve(
        self, host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[tuple[int, Any]]:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            # A remote host allowed by name (allowed_remote_hosts): the only lookup made.
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, family=family, type=socket.SOCK_STREAM
            )
            return [(info[0], info[4]) for info in infos]
        if address.version == 6:
            return [(socket.AF_INET6, (host, port, 0, 0))]
        return [(socket.AF_INET, (host, port))]


class _ProxyHTTPClient(SimpleAsyncHTTPClient):
    def _connection_class(self) -> type:
        return _VerbatimHeadersConnection


class UpstreamClient:
    """One shared client, created on first use on the Jupyter server's event loop.

    Not thread-safe: use it from the server's event loop only (as every handler does).
    """

    def __init__(self, settings: JupyterServeProxy) -> None:
        self._settings = settings
        self._client: SimpleAsyncHTTPClient | None = None
        self._upload_permits: asyncio.Semaphore | None = None

    async def take_upload_permit(self, wait: float) -> bool:
        """Wait up to ``wait`` seconds for a permit to stream an upload; False if none came.

        Permits are fewer than the client's slots, so that requests with small bodies
        (gathered before they are forwarded) always find a slot free.
        """
        if self._upload_permits is None:
            slots = self._settings.max_clients
            cap = min(self._settings.max_streamed_uploads, slots - 1)
            self._upload_permits = asyncio.Semaphore(max(1, cap))
        try:
            await asyncio.wait_for(self._upload_permits.acquire(), timeout=wait)
        except asyncio.TimeoutError:
            return False
        return True

    def release_upload_permit(self) -> None:
        """Give back a permit :meth:`take_upload_permit` granted."""
        assert self._upload_permits is not None
        self._upload_permits.release()

    def client(self) -> SimpleAsyncHTTPClient:
        """The client; it never follows redirects on its own (callers pass follow_redirects)."""
        if self._client is None:
            self._client = _ProxyHTTPClient(
                force_instance=True,
                resolver=_AddressLiteralResolver(),
                max_clients=self._settings.max_clients,
                max_body_size=_UNBOUNDED_RESPONSE,
            )
        return self._client

    def close(self) -> None:
        """Close the client's connections; a later :meth:`client` call makes a new one."""
        if self._client is not None:
            self._client.close()
            self._client = None
