"""The server extension in a pytest-jupyter server, proxying to a small real Tornado server.

The deployment here is a real HTTP server on loopback announced by a real discovery record,
owned by a real (echo) kernel of the Jupyter server; what a user sees is asserted over real
sockets. The end-to-end path with a model served from an ipykernel is in
``test_serverext_server.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import tornado.testing
from jupyter_server.auth import Authorizer
from pytest_jupyter.jupyter_server import *  # noqa: F403 - fixtures, local to this module
from tornado import web
from tornado.httpclient import HTTPResponse
from tornado.httpserver import HTTPServer
from tornado.simple_httpclient import HTTPStreamClosedError, SimpleAsyncHTTPClient
from tornado.websocket import WebSocketClientConnection, websocket_connect
from traitlets.config import Config

from jupyter_serve.discovery import DeploymentRecord, record_path, write_record
from jupyter_serve.serverext import AUTH_RESOURCE, SECRET_HEADER

SECRET = "secret-only-the-proxy-knows"
VERBS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class _PingHandler(web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish("\n")


class _EchoHandler(web.RequestHandler):
    """Answers what it received, so tests see exactly what the proxy forwarded."""

    SUPPORTED_METHODS = VERBS

    def _echo(self) -> None:
        body = self.request.body
        self.set_header("Content-Type", "application/json")
        self.set_header("Set-Cookie", "stolen=1; Path=/")
        self.set_header("Access-Control-Allow-Origin", "https://evil.example")
        self.set_header("X-Upstream", "yes")
        self.set_header("Content-Security-Policy", "script-src *")
        self.set_status(201 if self.request.method == "PUT" else 200)
        self.finish(
            json.dumps(
                {
                    "method": self.request.method,
                    "uri": self.request.uri,
                    "headers": {k.lower(): v for k, v in self.request.headers.get_all()},
                    "body_length": len(body),
                    "body_sha256": hashlib.sha256(body).hexdigest(),
                }
            )
        )

    get = head = post = put = patch = delete = options = _echo


class _BigAnswerHandler(web.RequestHandler):
    async def get(self) -> None:
        size = int(self.get_argument("size"))
        self.set_header("Content-Type", "application/octet-stream")
        sent = 0
        while sent < size:
            chunk = bytes([sent // 65536 % 251]) * min(65536, size - sent)
            self.write(chunk)
            await self.flush()
            sent += len(chunk)


class _SlowHandler(web.RequestHandler):
    async def get(self) -> None:
        await asyncio.sleep(5)
        self.finish("late")


class _StallingHandler(web.RequestHandler):
    """Starts an answer, then stalls: a proxy must not pass the part off as the whole."""

    async def get(self) -> None:
        self.write(b"partial answer ")
        await self.flush()
        await asyncio.sleep(5)
        self.finish(b"never seen")


LIMITED_BODY_BYTES = 256 * 1024


@web.stream_request_body
class _LimitedHandler(web.RequestHandler):
    """A body limit as a deployment keeps it: 413 from the Content-Length, or as a chunked
    body's running total crosses the limit, then the connection is closed unread."""

    ANSWER = json.dumps({"error_code": "BAD_REQUEST", "message": "over the deployment's limit"})

    def prepare(self) -> None:
        self._received = 0
        if int(self.request.headers.get("Content-Length", "0")) > LIMITED_BODY_BYTES:
            self._refuse()
        elif self.request.connection is not None:
            self.request.connection.set_max_body_size(1 << 40)  # type: ignore[attr-defined]

    def data_received(self, chunk: bytes) -> None:
        self._received += len(chunk)
        if self._received > LIMITED_BODY_BYTES and not self._finished:
            self._refuse()

    def _refuse(self) -> None:
        self.set_status(413)
        self.set_header("Content-Type", "application/json")
        self.finish(self.ANSWER)

    def post(self) -> None:
        self.finish({"received": self._received})


@web.stream_request_body
class _SlowReaderHandler(web.RequestHandler):
    """Takes its body slowly: pauses after the first chunk, as a busy kernel would."""

    def prepare(self) -> None:
        self._received = 0

    async def data_received(self, chunk: bytes) -> None:
        if self._received == 0:
            await asyncio.sleep(3)
        self._received += len(chunk)

    def post(self) -> None:
        self.finish({"received": self._received})


class _StopHandler(web.RequestHandler):
    def post(self) -> None:
        if self.request.headers.get(SECRET_HEADER) != SECRET:
            raise web.HTTPError(403)
        record_id = self.application.settings["record_id"]
        self.set_status(202)
        self.finish()
        record_path(record_id).unlink()


class _SecretGate(web.RequestHandler):
    """Like a deployment with ``require_secret``: every route wants the proxy's secret."""

    def prepare(self) -> None:
        self.application.settings["seen"].append(self.request.method)
        if self.request.headers.get(SECRET_HEADER) != SECRET:
            raise web.HTTPError(403)
        super().prepare()


def _deployment_app() -> web.Application:
    gated = [
        (r"/ping", type("Ping", (_SecretGate, _PingHandler), {})),
        (r"/echo.*", type("Echo", (_SecretGate, _EchoHandler), {})),
        (r"/big", type("Big", (_SecretGate, _BigAnswerHandler), {})),
        (r"/slow", type("Slow", (_SecretGate, _SlowHandler), {})),
        (r"/stall", type("Stall", (_SecretGate, _StallingHandler), {})),
        (r"/limited", type("Limited", (_SecretGate, _LimitedHandler), {})),
        (r"/slow-reader", type("SlowReader", (_SecretGate, _SlowReaderHandler), {})),
        (r"/-/jupyter-serve/stop", _StopHandler),
    ]
    return web.Application(gated, record_id="", seen=[])


@pytest.fixture(scope="module", autouse=True)
def usable_event_loop_afterwards() -> Iterator[None]:
    """pytest-jupyter closes the loop it made current; later modules get an open one."""
    yield
    asyncio.set_event_loop(asyncio.new_event_loop())


@pytest.fixture
def proxy_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    return dict(getattr(request, "param", {}))


@pytest.fixture
def jp_server_config(proxy_settings: dict[str, Any]) -> Config:
    server: dict[str, Any] = {"jpserver_extensions": {"jupyter_serve": True}}
    if "__authorizer__" in proxy_settings:
        server["authorizer_class"] = proxy_settings.pop("__authorizer__")
    return Config(
        {"ServerApp": server, "JupyterServeProxy": {"stop_timeout": 10.0, **proxy_settings}}
    )


@pytest.fixture
def run(jp_asyncio_loop: asyncio.AbstractEventLoop) -> Callable[[Any], Any]:
    """Run a coroutine or future on the server's loop (the tests themselves are plain)."""
    return jp_asyncio_loop.run_until_complete


@pytest.fixture
def fetch(
    run: Callable[[Any], Any], http_server_client: Any, jp_auth_header: dict[str, str]
) -> Iterator[Callable[..., HTTPResponse]]:
    """Fetch a raw path (sent exactly as written) from the Jupyter server, or an absolute URL.

    Never raises for an HTTP error status: tests look at the answer.
    """
    client = SimpleAsyncHTTPClient(force_instance=True)

    def fetch_path(path: str, *, auth: bool = True, **kwargs: Any) -> HTTPResponse:
        url = path if path.startswith("http://") else http_server_client.get_url(path)
        headers = {**(jp_auth_header if auth else {}), **kwargs.pop("headers", {})}
        kwargs.setdefault("allow_nonstandard_methods", True)
        kwargs.setdefault("request_timeout", 30)
        return run(client.fetch(url, headers=headers, raise_error=False, **kwargs))  # type: ignore[no-any-return]

    yield fetch_path
    client.close()


@pytest.fixture
def kernel_id(run: Callable[[Any], Any], jp_fetch: Any) -> str:
    answer = run(jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": "echo"})))
    return str(json.loads(answer.body)["id"])


@pytest.fixture
def deployment_port(run: Callable[[Any], Any]) -> Iterator[tuple[int, web.Application]]:
    sock, port = tornado.testing.bind_unused_port()
    app = _deployment_app()

    async def start() -> HTTPServer:
        server = HTTPServer(app)
        server.add_sockets([sock])
        return server

    server = run(start())
    yield port, app
    server.stop()


@pytest.fixture
def record(kernel_id: str, deployment_port: tuple[int, web.Application]) -> DeploymentRecord:
    port, app = deployment_port
    announced = DeploymentRecord(
        name="spam",
        pid=os.getpid(),
        host="127.0.0.1",
        port=port,
        model_uri="models:/spam/Production",
        status="running",
        started_at=1_700_000_000.0,
        kernel_id=kernel_id,
        version="3",
        metrics={
            "requests": 7,
            "errors": 0,
            "in_flight": 0,
            "latency_ms": {"p50": 1.0, "p99": float("nan")},
        },
        secret=SECRET,
        require_secret=True,
    )
    app.settings["record_id"] = announced.id
    write_record(announced)
    return announced


def _proxy(base_url: str, record: DeploymentRecord, path: str) -> str:
    return f"{base_url}jupyter-serve/proxy/{record.id}{path}"


def _not_json(constant: str) -> None:
    raise AssertionError(f"{constant} is not JSON")


def _json(answer: HTTPResponse) -> Any:
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    return json.loads(answer.body, parse_constant=_not_json)


def test_lists_the_deployments_of_this_servers_kernels(
    fetch: Callable[..., HTTPResponse], jp_base_url: str, record: DeploymentRecord
) -> None:
    foreign = DeploymentRecord(**{**record.__dict__, "name": "other", "kernel_id": "not-ours"})
    write_record(foreign)
    dead = DeploymentRecord(**{**record.__dict__, "name": "dead", "pid": _dead_pid()})
    dead_file = write_record(dead)

    answer = fetch(f"{jp_base_url}jupyter-serve/api/deployments")

    assert answer.code == 200
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert _json(answer) == [
        {
            "id": record.id,
            "name": "spam",
            "kernel_id": record.kernel_id,
            "notebook_path": None,
            "model_uri": "models:/spam/Production",
            "version": "3",
            "status": "running",
            "url": record.url,
            "proxy_url": f"{jp_base_url}jupyter-serve/proxy/{record.id}/",
            "started_at": 1_700_000_000.0,
            "metrics": {**record.metrics, "latency_ms": {"p50": 1.0, "p99": None}},
        }
    ]
    assert SECRET.encode() not in answer.body
    assert not dead_file.exists(), "the record of a dead process is removed"


def test_notebook_path_comes_from_the_session_of_the_kernel(
    run: Callable[[Any], Any],
    jp_fetch: Any,
    fetch: Callable[..., HTTPResponse],
    jp_base_url: str,
    record: DeploymentRecord,
) -> None:
    session = {"path": "work/spam.ipynb", "type": "notebook", "kernel": {"id": record.kernel_id}}
    run(jp_fetch("api", "sessions", method="POST", body=json.dumps(session)))

    (listed,) = _json(fetch(f"{jp_base_url}jupyter-serve/api/deployments"))

    assert listed["notebook_path"] == "work/spam.ipynb"


def test_proxy_answers_like_the_deployment(
    fetch: Callable[..., HTTPResponse], jp_base_url: str, record: DeploymentRecord
) -> None:
    via_proxy = fetch(_proxy(jp_base_url, record, "/ping"))
    direct = fetch(f"{record.url}/ping", auth=False, headers={SECRET_HEADER: SECRET})

    assert (via_proxy.code, via_proxy.body) == (direct.code, direct.body) == (200, b"\n")
    assert via_proxy.headers["Content-Type"] == direct.headers["Content-Type"]


def test_proxy_forwards_method_body_query_and_safe_headers_only(
    fetch: Callable[..., HTTPResponse], jp_base_url: str, record: DeploymentRecord
) -> None:
    body = os.urandom(3000)
    answer = fetch(
        _proxy(jp_base_url, record, "/echo/a%20b?x=1&y=%2F&z"),
        method="PATCH",
        body=body,
        headers={
            "Content-Type": "application/octet-stream",
            "X-Custom": "kept",
            "Cookie": "_xsrf=abc; username-127-0-0-1-8888=secret-login",
            "X-XSRFToken": "abc",
            SECRET_HEADER: "a-guess",
            "Connection": "X-Drop-Me",
            "X-Drop-Me": "hop-by-hop",
        },
    )

    echoed = _json(answer)
    assert answer.code == 200
    assert echoed["method"] == "PATCH"
    assert echoed["uri"] == "/echo/a%20b?x=1&y=%2F&z"
    assert echoed["body_sha256"] == hashlib.sha256(body).hexdigest()
    headers = echoed["headers"]
    assert headers["x-custom"] == "kept"
    assert headers["content-type"] == "application/octet-stream"
    assert headers[SECRET_HEADER.lower()] == SECRET
    for stripped in ("authorization", "cookie", "x-xsrftoken", "x-drop-me"):
        assert stripped not in headers
    assert answer.headers["X-Upstream"] == "yes"
    assert "stolen" not in " ".join(answer.headers.get_list("Set-Cookie"))
    assert answer.headers.get("Access-Control-Allow-Origin") != "https://evil.example"
    # Whatever a deployment answers runs no script on the Jupyter origin.
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
    assert "script-src *" not in answer.headers["Content-Security-Policy"]
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_a_token_in_the_query_authenticates_but_is_not_forwarded(
    fetch: Callable[..., HTTPResponse],
    jp_base_url: str,
    record: DeploymentRecord,
    jp_auth_header: dict[str, str],
) -> None:
    token = jp_auth_header["Authorization"].removeprefix("token ")

    answer = fetch(_proxy(jp_base_url, record, f"/echo?a=1&token={token}&b=2"), auth=False)

    assert answer.code == 200
    assert _json(answer)["uri"] == "/echo?a=1&b=2"


def test_every_verb_reaches_the_deployment(
    fetch: Callable[..., HTTPResponse], jp_base_url: str, record: DeploymentRecord
) -> None:
    for method in VERBS:
        body = b"{}" if method in ("POST", "PUT", "PATCH") else None
        answer = fetch(_proxy(jp_base_url, record, "/echo"), method=method, body=body)

        assert answer.code == (201 if method == "PUT" else 200), method
        if method == "HEAD":
            assert answer.body == b""
            assert int(answer.headers["Content-Length"]) > 0
        else:
            assert _json(answer)["method"] == method


def test_a_post_without_content_type_reaches_the_deployment_without_one(
    run: Callable[[Any], Any],
    jp_asyncio_loop: asyncio.AbstractEventLoop,
    http_server_client: Any,
    jp_auth_header: dict[str, str],
    jp_base_url: str,
    record: DeploymentRecord,
) -> None:
    # http.client sends no Content-Type unless told (Tornado's client would add one).
    def post_without_content_type() -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", http_server_client.get_http_port())
        connection.request(
            "POST", _proxy(jp_base_url, record, "/echo"), body=b"x", headers=jp_auth_header
        )
        answer = connection.getresponse()
        return answer.status, answer.read()

    status, body = run(jp_asyncio_loop.run_in_executor(None, post_without_content_type))

    assert status == 200
    assert "content-type" not in json.loads(body)["headers"]


def test_large_bodies_stream_both_ways(
    fetch: Callable[..., HTTPResponse], jp_base_url: str, record: DeploymentRecord
) -> None:
    upload = os.urandom(12 * 1024 * 1024)
    sent = fetch(
        _proxy(jp_base_url, record, "/echo"),
        method="POST",
        body=upload,
        headers={"Content-Type": "application/octet-stream"},
    )
    size = 20 * 1024 * 1024
    received = fetch(_proxy(jp_base_url, record, f"/big?size={size}"))

    assert _json(sent)["body_sha256"] == hashlib.sha256(upload).hexdigest()
    assert received.code == 200
    assert len(received.body) == size
    assert received.body[65536 * 5] == 5


def test_a_chunked_upload_is_streamed_through(
    fetch: Callable[..., HTTPResponse], jp_base_url: str, record: DeploymentRecord
) -> None:
    pieces = [os.urandom(100_000) for _ in range(30)]

    async def produce(write: Callable[[bytes], Any]) -> None:
        for piece in pieces:
            await write(piece)

    answer = fetch(
        _proxy(jp_base_url, record, "/echo"),
        method="POST",
        body_producer=produce,
        headers={"Content-Type": "application/octet-stream"},
    )

    echoed = _json(answer)
    assert echoed["body_sha256"] == hashlib.sha256(b"".join(pieces)).hexdigest()
    assert echoed["headers"]["transfer-encoding"] == "chunked"


@pytest.mark.parametrize("proxy_settings", [{"max_body_size": 64 * 1024}], indirect=True)
def test_a_body_over_the_limit_gets_413(
    fetch: Callable[..., HTTPResponse],
    jp_base_url: str,
    record: DeploymentRecord,
    deployment_port: tuple[int, web.Application],
) -> None:
    answer = fetch(_proxy(jp_base_url, record, "/echo"), method="POST", body=b"x" * 65537)

    assert answer.code == 413
    assert "65536" in _json(answer)["message"]
    assert deployment_port[1].settings["seen"] == [], "no byte of it reached the deployment"

    def chunks(count: int) -> Callable[[Callable[[bytes], Any]], Any]:
        async def produce(write: Callable[[bytes], Any]) -> None:
            for _ in range(count):
                await write(b"x" * 10_000)

        return produce

    # Without a Content-Length the size shows on the way: the proxy answers 413 as the limit
    # is crossed, and drains up to 1 MiB more for clients that read only once they have sent
    # everything; the deployment never gets the body as a whole.
    chunked = fetch(_proxy(jp_base_url, record, "/echo"), method="POST", body_producer=chunks(40))
    assert chunked.code == 413
    assert "chunked request body is over the proxy's limit of 65536" in _json(chunked)["message"]
    assert b"body_length" not in chunked.body
    assert fetch(_proxy(jp_base_url, record, "/ping")).code == 200


@pytest.mark.parametrize("proxy_settings", [{"request_timeout": 0.5}], indirect=True)
def test_a_deployment_that_does_not_answer_in_time_gets_504(
    fetch: Callable[..., HTTPResponse], jp_base_url: str, record: DeploymentRecord
) -> None:
    answer = fetch(_proxy(jp_base_url, record, "/slow"))

    assert answer.code == 504
    assert "did not answer in time" in _json(answer)["message"]
    # Once part of an answer went out, the connection is cut: never a complete-looking answer.
    with pytest.raises(HTTPStreamClosedError):
        fetch(_proxy(jp_base_url, record, "/stall"))
    assert fetch(_proxy(jp_base_url, record, "/ping")).code == 200


def test_a_deployment_whose_server_died_gets_502(
    fetch: Callable[..., HTTPResponse], jp_base_url: str, record: DeploymentRecord
) -> None:
    write_record(DeploymentRecord(**{**record.__dict__, "port": _closed_port()}))

    answer = fetch(_proxy(jp_base_url, record, "/ping"))

    assert answer.code == 502
    assert "did not answer" in _json(answer)["message"]


def test_an_unknown_deployment_gets_404_with_an_escaped_message(
    fetch: Callable[..., HTTPResponse], jp_base_url: str, record: DeploymentRecord
) -> None:
    for deployment_id in ("1-nothing", "%3Cscript%3Ealert(1)%3C%2Fscript%3E", "<b>x</b>"):
        answer = fetch(f"{jp_base_url}jupyter-serve/proxy/{deployment_id}/ping")
        assert answer.code == 404, deployment_id
        assert b"<" not in answer.body and b"script" not in answer.body
        assert "no running" in _json(answer)["message"]


ESCAPING_PATHS = [
    "/../../api/kernels",
    "/%2e%2e/%2E%2E/api/kernels",
    "/.%2e/x",
    "/echo%2F..%2F..%2Fapi",
    "/echo%5c..",
    "/@evil.example/ping",
    "/%40evil.example/ping",
    "//evil.example/ping",
    "/http://evil.example/ping",
    "/echo\\..\\x",
    "/echo/%0d%0aX-Injected:%201",
    "/<script>alert(1)</script>",
]


ORDINARY_PATHS = [
    "/echo/v2/models/spam.v1/versions/3/infer",
    "/echo/v2/health/ready",
    "/echo/a%20b/c~d/e:f/g-h_i",
    "/echo/",
    "/echo?next=%2F..%2F&a=@b",
]


def test_paths_that_try_to_escape_get_400_and_ordinary_ones_pass(
    fetch: Callable[..., HTTPResponse], jp_base_url: str, record: DeploymentRecord
) -> None:
    for path in ESCAPING_PATHS:
        answer = fetch(_proxy(jp_base_url, record, path))

        assert answer.code == 400, path
        assert b"<" not in answer.body
        assert _json(answer)["message"]
    for path in ORDINARY_PATHS:
        answer = fetch(_proxy(jp_base_url, record, path))

        assert answer.code == 200, path
        assert _json(answer)["uri"] == path


def test_a_record_pointing_off_loopback_is_never_contacted(
    fetch: Callable[..., HTTPResponse], jp_base_url: str, record: DeploymentRecord
) -> None:
    for host in ("10.0.0.1", "example.com", "169.254.169.254", "::ffff:10.0.0.1"):
        write_record(DeploymentRecord(**{**record.__dict__, "host": host}))

        answer = fetch(_proxy(jp_base_url, record, "/ping"))

        assert answer.code == 502, host
        assert "not loopback" in _json(answer)["message"]
    # A server bound to every interface is reached on loopback.
    write_record(DeploymentRecord(**{**record.__dict__, "host": "0.0.0.0"}))
    assert fetch(_proxy(jp_base_url, record, "/ping")).code == 200


def test_delete_stops_the_deployment_through_its_control_route(
    fetch: Callable[..., HTTPResponse], jp_base_url: str, record: DeploymentRecord
) -> None:
    url = f"{jp_base_url}jupyter-serve/api/deployments/{record.id}"

    stopped = fetch(url, method="DELETE")

    assert stopped.code == 204
    assert not record_path(record.id).exists()
    assert _json(fetch(f"{jp_base_url}jupyter-serve/api/deployments")) == []
    again = fetch(url, method="DELETE")
    assert again.code == 404
    assert "no running deployment" in _json(again)["message"]


def _routes(base_url: str, record: DeploymentRecord) -> list[str]:
    return [
        f"{base_url}jupyter-serve/api/deployments",
        f"{base_url}jupyter-serve/api/deployments/{record.id}",
        _proxy(base_url, record, "/echo"),
        _proxy(base_url, record, "/ping"),
    ]


def _refused_upload_then_next_request(
    run: Callable[[Any], Any],
    loop: asyncio.AbstractEventLoop,
    http_server_client: Any,
    path: str,
) -> tuple[int, bool, int]:
    """POST a body without credentials, then send a second request on the same connection.

    Returns the first status, whether the server kept the connection open (it must have read
    the refused body for that), and the second status.
    """

    def post_then_get() -> tuple[int, bool, int]:
        connection = http.client.HTTPConnection("127.0.0.1", http_server_client.get_http_port())
        try:
            connection.request("POST", path, body=b'{"x": 1}')
            first = connection.getresponse()
            first.read()
            connection.request("GET", path)
            second = connection.getresponse()
            second.read()
            return first.status, not first.will_close, second.status
        finally:
            connection.close()

    return run(loop.run_in_executor(None, post_then_get))  # type: ignore[no-any-return]


def test_unauthenticated_requests_get_403_on_every_route_and_verb(
    run: Callable[[Any], Any],
    jp_asyncio_loop: asyncio.AbstractEventLoop,
    http_server_client: Any,
    fetch: Callable[..., HTTPResponse],
    jp_base_url: str,
    record: DeploymentRecord,
    deployment_port: tuple[int, web.Application],
) -> None:
    for method in VERBS:
        body = b"{}" if method in ("POST", "PUT", "PATCH") else None
        for url in _routes(jp_base_url, record):
            for headers in ({}, {"Authorization": "token wrong"}):
                answer = fetch(url, auth=False, method=method, body=body, headers=headers)
                assert answer.code == 403, (method, url, headers)
    # The refused body is drained first: closing a socket with unread bytes resets the
    # connection, and clients like requests may then lose the answer (a CI flake once).
    upload_path = _proxy(jp_base_url, record, "/echo")
    assert _refused_upload_then_next_request(
        run, jp_asyncio_loop, http_server_client, upload_path
    ) == (403, True, 403)
    assert record_path(record.id).exists(), "nothing was stopped"
    assert deployment_port[1].settings["seen"] == [], "nothing reached the deployment"


def test_websocket_upgrades_need_auth_and_are_refused(
    run: Callable[[Any], Any],
    http_server_client: Any,
    jp_auth_header: dict[str, str],
    jp_base_url: str,
    record: DeploymentRecord,
) -> None:
    ws_url = http_server_client.get_url(_proxy(jp_base_url, record, "/echo")).replace("http", "ws")

    async def upgrade(headers: dict[str, str]) -> int:
        try:
            connection: WebSocketClientConnection = await websocket_connect(
                tornado.httpclient.HTTPRequest(ws_url, headers=headers)
            )
        except tornado.httpclient.HTTPClientError as error:
            return error.code
        connection.close()
        return 101

    assert run(upgrade({})) == 403
    assert run(upgrade(jp_auth_header)) == 400


def _dead_pid() -> int:
    """The pid of a process that has exited (a killed kernel's, as far as records go)."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ReadOnlyDeployments(Authorizer):
    """A policy that lets users see deployments but not score with or stop them."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        if "/jupyter-serve/" in handler.request.path:
            return action == "read" and resource == AUTH_RESOURCE
        return True


@pytest.mark.parametrize("proxy_settings", [{"__authorizer__": ReadOnlyDeployments}], indirect=True)
def test_the_authorizer_decides_per_verb_before_any_body_is_forwarded(
    fetch: Callable[..., HTTPResponse],
    jp_base_url: str,
    record: DeploymentRecord,
    deployment_port: tuple[int, web.Application],
) -> None:
    assert fetch(f"{jp_base_url}jupyter-serve/api/deployments").code == 200
    assert fetch(_proxy(jp_base_url, record, "/ping")).code == 200

    scoring = fetch(_proxy(jp_base_url, record, "/echo"), method="POST", body=b"{}")
    stopping = fetch(f"{jp_base_url}jupyter-serve/api/deployments/{record.id}", method="DELETE")

    assert (scoring.code, stopping.code) == (403, 403)
    assert "not authorized to write" in _json(scoring)["message"]
    assert deployment_port[1].settings["seen"] == ["GET"]
    assert record_path(record.id).exists()
