# ruff: noqa: F811 - the imported fixtures are parameters of the tests, as pytest means them
"""Uploads through the proxy that stall, or go over a limit, as a real client sends them.

A pytest-jupyter server proxies to a small real Tornado deployment (the proxy suite's); the
clients here are raw sockets that read the answer while they send, as curl and browsers do,
so an early answer is seen as early. Limits and timeouts are scaled down through
``c.JupyterServeProxy`` settings; the code paths are the ones the defaults take.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403 - fixtures, local to this module
from test_serverext_proxy import (  # fixtures shared with the proxy's suite
    LIMITED_BODY_BYTES,
    _json,
    _proxy,
    deployment_port,  # noqa: F401
    fetch,  # noqa: F401
    jp_server_config,  # noqa: F401
    kernel_id,  # noqa: F401
    proxy_settings,  # noqa: F401
    record,  # noqa: F401
    run,  # noqa: F401
    usable_event_loop_afterwards,  # noqa: F401
)
from tornado.httpclient import HTTPResponse

from jupyter_serve.discovery import DeploymentRecord

Answer = tuple[int, dict[str, str], bytes]
_LIMITED_ANSWER = '{"error_code": "BAD_REQUEST", "message": "over the deployment\'s limit"}'


def _producing(size: int) -> Callable[[Callable[[bytes], Any]], Any]:
    async def produce(write: Callable[[bytes], Any]) -> None:
        for start in range(0, size, 10_000):
            await write(b"x" * min(10_000, size - start))

    return produce


def _head(path: str, auth: dict[str, str], headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in {**auth, **headers}.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _read_answer(reader: asyncio.StreamReader) -> Answer:
    head = await reader.readuntil(b"\r\n\r\n")
    start, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(start.split()[1]), headers, body


async def _send_reading_early(
    port: int, head: bytes, pieces: Iterable[bytes], sent: list[int] | None = None
) -> Answer:
    """Send ``head`` and then ``pieces`` until an answer arrives; return that answer.

    ``sent``, if given, gets the number of body bytes written before the answer came.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = asyncio.ensure_future(_read_answer(reader))
    try:
        writer.write(head)
        for piece in pieces:
            if answer.done():
                break
            writer.write(piece)
            if sent is not None:
                sent.append(len(piece))
            draining = asyncio.ensure_future(writer.drain())
            await asyncio.wait({draining, answer}, return_when=asyncio.FIRST_COMPLETED)
            if not draining.done():
                draining.cancel()
            elif draining.exception() is not None:
                break  # the proxy closed the connection: its answer is what it sent before
        return await asyncio.wait_for(answer, timeout=30)
    finally:
        writer.close()


def _chunked(pieces: int, size: int) -> Iterable[bytes]:
    piece = f"{size:x}\r\n".encode() + b"x" * size + b"\r\n"
    for _ in range(pieces):
        yield piece
    yield b"0\r\n\r\n"


STALLS = {
    "body_idle_timeout": 1.5,
    "max_clients": 4,
    "max_streamed_uploads": 2,
    "connect_timeout": 3.0,
}


@pytest.mark.parametrize("proxy_settings", [STALLS], indirect=True)
def test_stalled_uploads_get_408_and_do_not_starve_other_requests(
    run: Callable[[Any], Any],
    fetch: Callable[..., HTTPResponse],
    http_server_client: Any,
    jp_auth_header: dict[str, str],
    jp_base_url: str,
    record: DeploymentRecord,
) -> None:
    port = http_server_client.get_http_port()
    path = _proxy(jp_base_url, record, "/echo")

    async def stall(declared: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_head(path, jp_auth_header, {"Content-Length": str(declared)}) + b"{")
        await writer.drain()
        return reader, writer

    # Three times the proxy's slots: small bodies (read whole first) and large ones (streamed).
    stalled = [run(stall(100_000)) for _ in range(8)] + [run(stall(5_000_000)) for _ in range(4)]

    normal = fetch(path, method="POST", body=b'{"x": 1}')

    assert normal.code == 200, normal.body
    assert _json(normal)["body_length"] == 8
    for reader, writer in stalled:
        status, headers, body = run(asyncio.wait_for(_read_answer(reader), timeout=30))
        assert status == 408, body
        assert headers["content-type"] == "application/json"
        message = json.loads(body)["message"]
        assert "request body stalled" in message and "body_idle_timeout" in message
        assert "deployment was not at fault" in message
        writer.close()
    assert fetch(path, method="POST", body=b'{"x": 2}').code == 200


@pytest.mark.parametrize("proxy_settings", [{"max_body_size": 64 * 1024}], indirect=True)
def test_a_chunked_upload_far_over_the_limit_gets_the_413_json_at_once(
    run: Callable[[Any], Any],
    fetch: Callable[..., HTTPResponse],
    http_server_client: Any,
    jp_auth_header: dict[str, str],
    jp_base_url: str,
    record: DeploymentRecord,
) -> None:
    port = http_server_client.get_http_port()
    path = _proxy(jp_base_url, record, "/echo")
    declared = fetch(path, method="POST", body=b"x" * (64 * 1024 + 1))
    head = _head(path, jp_auth_header, {"Transfer-Encoding": "chunked"})

    for _ in range(3):
        # 10 MB offered: ten times what the proxy would drain after its answer.
        status, headers, body = run(_send_reading_early(port, head, _chunked(1000, 10_000)))

        assert status == 413, body
        assert headers["content-type"] == "application/json"
        assert headers["x-content-type-options"] == "nosniff"
        message = json.loads(body)["message"]
        assert message == (
            "the chunked request body is over the proxy's limit of 65536 bytes "
            "(c.JupyterServeProxy.max_body_size)"
        )
        assert message.split(" is over")[1] == _json(declared)["message"].split(" is over")[1]
    assert fetch(_proxy(jp_base_url, record, "/ping")).code == 200


@pytest.mark.parametrize(
    "proxy_settings", [{"max_clients": 1, "connect_timeout": 1.0}], indirect=True
)
def test_a_request_that_finds_the_proxy_full_gets_503_naming_the_setting(
    run: Callable[[Any], Any],
    fetch: Callable[..., HTTPResponse],
    http_server_client: Any,
    jp_auth_header: dict[str, str],
    jp_base_url: str,
    record: DeploymentRecord,
    deployment_port: tuple[int, Any],
) -> None:
    client = http_server_client
    slow = client.fetch(
        _proxy(jp_base_url, record, "/slow"), headers=jp_auth_header, raise_error=False
    )

    async def slow_reached_the_deployment() -> None:
        while "GET" not in deployment_port[1].settings["seen"]:
            await asyncio.sleep(0.01)

    run(asyncio.wait_for(slow_reached_the_deployment(), timeout=10))

    queued = fetch(_proxy(jp_base_url, record, "/ping"))

    assert queued.code == 503
    message = _json(queued)["message"]
    assert "c.JupyterServeProxy.max_clients = 1" in message and "was not contacted" in message
    assert run(slow).code == 200


def test_a_body_over_the_deployments_limit_gets_its_413_at_once_every_time(
    run: Callable[[Any], Any],
    fetch: Callable[..., HTTPResponse],
    http_server_client: Any,
    jp_auth_header: dict[str, str],
    jp_base_url: str,
    record: DeploymentRecord,
) -> None:
    port = http_server_client.get_http_port()
    path = _proxy(jp_base_url, record, "/limited")
    offered = 40 * LIMITED_BODY_BYTES  # over the deployment's limit, under the proxy's
    chunked = _head(path, jp_auth_header, {"Transfer-Encoding": "chunked"})
    declared = _head(path, jp_auth_header, {"Content-Length": str(offered)})
    piece = b"x" * 65536

    for _ in range(5):
        for head, pieces in (
            (chunked, _chunked(offered // 10_000, 10_000)),
            (declared, [piece] * (offered // len(piece))),
        ):
            sent: list[int] = []
            status, headers, body = run(_send_reading_early(port, head, pieces, sent))

            assert status == 413, body
            assert headers["content-type"] == "application/json"
            assert json.loads(body) == json.loads(_LIMITED_ANSWER)
            assert sum(sent) < offered // 2, "answered as the limit was crossed, not at the end"
    under = fetch(path, method="POST", body_producer=_producing(LIMITED_BODY_BYTES))
    assert json.loads(under.body) == {"received": LIMITED_BODY_BYTES}


@pytest.mark.parametrize("proxy_settings", [{"body_idle_timeout": 1.0}], indirect=True)
def test_a_deployment_slow_to_take_a_body_is_not_blamed_on_the_client(
    fetch: Callable[..., HTTPResponse], jp_base_url: str, record: DeploymentRecord
) -> None:
    size = 32 * 1024 * 1024  # more than loopback's socket buffers hold while it pauses

    answer = fetch(
        _proxy(jp_base_url, record, "/slow-reader"),
        method="POST",
        body=b"x" * size,
        headers={"Content-Type": "application/octet-stream"},
    )

    assert answer.code == 200, answer.body
    assert json.loads(answer.body) == {"received": size}
