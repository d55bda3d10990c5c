"""The scoring server's connections under hostile or careless clients, over real sockets:
idle and slow connections are closed, oversized heads and bodies are answered, the memory
held by bodies is bounded, and running out of descriptors neither spins nor floods the log."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sklearn.dummy import DummyClassifier

from jupyter_serve.models import from_object
from jupyter_serve.server import ScoringServer, ServerOptions

BODY = b'{"dataframe_split": {"columns": ["x"], "data": [[1]]}}'
WAIT_SECONDS = 30.0


def _wait_until(condition: Any) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.01)


def _model() -> Any:
    return from_object(DummyClassifier().fit([[0], [1]], [0, 1]))


@pytest.fixture
def serve() -> Iterator[Any]:
    """Start a `ScoringServer` with the given options (port 0); all are stopped afterwards."""
    started: list[ScoringServer] = []

    def start(**options: Any) -> ScoringServer:
        server = ScoringServer(
            _model(), ServerOptions(port=0, **options), model_uri="test:/connections"
        )
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    connection = socket.create_connection((host, int(port)), timeout=WAIT_SECONDS)
    return connection


def _read_answer(connection: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response from ``connection``: status, headers (lower-case names), body."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = connection.recv(65536)
        if not chunk:
            raise AssertionError(f"the connection closed without an answer: {received!r}")
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, value in (ln.split(":", 1) for ln in lines)}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(status_line.split()[1]), headers, body[:length]


def _closed_by_server(connection: socket.socket) -> bool:
    """Whether the server closes ``connection`` (EOF or reset) within the generous wait."""
    connection.settimeout(WAIT_SECONDS)
    try:
        while connection.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def _post_head(
    length: int | None = None, path: str = "/invocations", request_id: str | None = None
) -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    request_id_line = f"X-Request-ID: {request_id}\r\n" if request_id else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"{request_id_line}{framing}\r\n\r\n"
    ).encode()


def _chunked(body: bytes, size: int = 65536) -> bytes:
    pieces = [body[start : start + size] for start in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


def _padded_body(size: int) -> bytes:
    """A valid one-row request of exactly ``size`` bytes (JSON padded with spaces)."""
    return BODY + b" " * (size - len(BODY))


def test_an_idle_keep_alive_connection_is_closed_after_the_timeout(serve: Any) -> None:
    server = serve(keep_alive_timeout=0.5)
    with _connect(server.url) as connection:
        for _ in range(2):  # kept alive between requests
            connection.sendall(_post_head(len(BODY)) + BODY)
            status, _, _ = _read_answer(connection)
            assert status == 200
        assert _closed_by_server(connection)
    assert requests.get(server.url + "/ping", timeout=10).status_code == 200


def test_headers_sent_a_byte_at_a_time_are_cut(serve: Any) -> None:
    server = serve(keep_alive_timeout=1.0)
    with _connect(server.url) as connection:
        connection.sendall(b"GET /ping HTTP/1.1\r\n")
        deadline = time.monotonic() + WAIT_SECONDS
        cut = False
        while time.monotonic() < deadline and not cut:
            try:
                connection.sendall(b"X")
            except OSError:
                cut = True
                break
            connection.settimeout(0.1)
            try:
                cut = connection.recv(1) == b""
            except TimeoutError:
                pass
            except ConnectionResetError:
                cut = True
        assert cut, "a client trickling its headers kept the connection"


def test_a_stalled_body_gets_408_and_a_slow_one_is_served(serve: Any) -> None:
    server = serve(body_stall_timeout=1.0)
    with _connect(server.url) as stalled:
        stalled.sendall(_post_head(len(BODY), request_id="stalled-1") + BODY[:10])
        status, headers, body = _read_answer(stalled)
        assert status == 408
        assert headers["x-request-id"] == "stalled-1"
        assert "no byte of it came for 1 seconds" in json.loads(body)["message"]
        assert headers["connection"] == "close"
        assert _closed_by_server(stalled)
    with _connect(server.url) as slow:
        slow.sendall(_post_head(len(BODY)))
        for start in range(0, len(BODY), 4):  # ~1.4 s in all, never 1 s without a byte
            slow.sendall(BODY[start : start + 4])
            time.sleep(0.1)
        status, _, body = _read_answer(slow)
        assert status == 200, body
    assert server.metrics.snapshot()["in_flight"] == 0


def test_a_408_is_captured_with_its_status_and_the_id_it_carries(serve: Any) -> None:
    server = serve(body_stall_timeout=0.5)
    with _connect(server.url) as stalled:
        stalled.sendall(_post_head(len(BODY)) + BODY[:10])
        status, headers, _ = _read_answer(stalled)
    assert status == 408
    _wait_until(lambda: len(server.captured_records()) == 1)
    captured = server.captured_records()[0]
    assert (captured["request_id"], captured["status"]) == (headers["x-request-id"], 408)
    assert server.metrics.snapshot()["in_flight"] == 0


def test_a_chunked_body_over_the_limit_gets_the_413_answer(serve: Any) -> None:
    server = serve(max_body_bytes=1_000_000)
    with _connect(server.url) as connection:
        # The client sends everything before it reads, as most clients do.
        sender = threading.Thread(
            target=_send_quietly,
            args=(connection, _post_head(request_id="big-1") + _chunked(b" " * 4_000_000)),
        )
        sender.start()
        status, headers, body = _read_answer(connection)
        sender.join(WAIT_SECONDS)
    assert status == 413
    assert headers["x-request-id"] == "big-1"
    assert "1000000 bytes" in json.loads(body)["message"]
    assert requests.post(server.url + "/invocations", data=BODY, timeout=10).status_code in (
        200,
        415,
    )


def _send_quietly(connection: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the server may close once it has answered
        connection.sendall(data)


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET /" + b"a" * 1_000_000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n", 414),
        (
            b"GET /ping HTTP/1.1\r\nHost: localhost\r\n"
            + b"".join(b"X-Header-%d: %s\r\n" % (n, b"v" * 50) for n in range(20_000))
            + b"\r\n",
            431,
        ),
    ],
    ids=["1 MB URL", "header flood"],
)
def test_an_oversized_head_gets_an_answer(serve: Any, head: bytes, status: int) -> None:
    server = serve()
    with _connect(server.url) as connection:
        sender = threading.Thread(target=_send_quietly, args=(connection, head))
        sender.start()
        answered, headers, body = _read_answer(connection)
        sender.join(WAIT_SECONDS)
    assert answered == status
    assert headers["content-type"] == "application/json"
    assert 0 < len(headers["x-request-id"]) <= 128
    assert "65536 bytes" in json.loads(body)["message"]
    assert requests.get(server.url + "/ping", timeout=10).status_code == 200


@pytest.mark.parametrize(
    "chunked",
    [
        b"%x;name=value\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY),
        b'%x ; name="quoted;value"\r\n%s\r\n0;last\r\n\r\n' % (len(BODY), BODY),
        b"%x\r\n%s\r\n0\r\nX-Checksum: 1\r\nX-Other: 2\r\n\r\n" % (len(BODY), BODY),
    ],
    ids=["extension", "quoted extensions", "trailers"],
)
def test_chunk_extensions_and_trailers_are_accepted(serve: Any, chunked: bytes) -> None:
    server = serve()
    with _connect(server.url) as connection:
        connection.sendall(_post_head() + chunked)
        status, _, body = _read_answer(connection)
        assert (status, json.loads(body)) == (200, {"predictions": [0]})
        connection.sendall(_post_head(len(BODY)) + BODY)  # and the connection goes on
        assert _read_answer(connection)[0] == 200


@pytest.mark.parametrize(
    "request_bytes",
    [
        _post_head() + b"zz\r\n" + BODY + b"\r\n0\r\n\r\n",
        b"HELLO\r\n\r\n",
        b"GET /ping HTTP/1.1\r\nHost: localhost\r\nno colon here\r\n\r\n",
    ],
    ids=["bad chunk size", "garbage request line", "bad header line"],
)
def test_an_unparsable_request_gets_400_with_the_error_json(
    serve: Any, request_bytes: bytes
) -> None:
    server = serve()
    with _connect(server.url) as connection:
        connection.sendall(request_bytes)
        status, headers, body = _read_answer(connection)
        assert status == 400
        assert json.loads(body)["error_code"] == "BAD_REQUEST"
        assert "not valid HTTP/1.1" in json.loads(body)["message"]
        assert 0 < len(headers["x-request-id"]) <= 128
        assert headers["connection"] == "close"
    assert requests.get(server.url + "/ping", timeout=10).status_code == 200


def test_bodies_past_the_budget_get_503_and_the_budget_comes_back(serve: Any) -> None:
    server = serve(max_body_bytes=1_000_000, max_body_bytes_in_flight=2_000_000)
    size = 900_000
    body = _padded_body(size)
    holders = [_connect(server.url) for _ in range(2)]
    try:
        for holder in holders:  # two bodies in flight: 1.8 MB of the 2 MB budget
            holder.sendall(_post_head(size) + body[:-1])
        _wait_until(lambda: server.metrics.snapshot()["in_flight"] == 2)
        with _connect(server.url) as refused:
            refused.sendall(_post_head(size, request_id="refused-1"))
            status, headers, answer = _read_answer(refused)
        assert status == 503
        assert headers["retry-after"] == "1"
        assert headers["x-request-id"] == "refused-1"
        assert "max_body_bytes_in_flight" in json.loads(answer)["message"]
        with _connect(server.url) as chunked:  # a chunked body is refused once it does not fit
            sender = threading.Thread(
                target=_send_quietly, args=(chunked, _post_head() + _chunked(body))
            )
            sender.start()
            assert _read_answer(chunked)[0] == 503
            sender.join(WAIT_SECONDS)
        for holder in holders:
            holder.sendall(body[-1:])
            assert _read_answer(holder)[0] == 200
    finally:
        for holder in holders:
            holder.close()
    answer_after = requests.post(
        server.url + "/invocations",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=WAIT_SECONDS,
    )
    assert answer_after.status_code == 200


# A server in its own process, limited to few descriptors, logging to a file.
_SERVER_SCRIPT = textwrap.dedent(
    """
    import logging, sys
    from sklearn.dummy import DummyClassifier
    from jupyter_serve.models import from_object
    from jupyter_serve.server import ScoringServer, ServerOptions

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    options = ServerOptions(port=0, **eval(sys.argv[1]))
    server = ScoringServer(
        from_object(DummyClassifier().fit([[0], [1]], [0, 1])), options, model_uri="test:/sub"
    )
    server.start()
    print(server.url, flush=True)
    server.serve_forever()
    """
)


class _ServerProcess:
    def __init__(self, options: dict[str, Any], log: Path, max_files: int | None = None) -> None:
        def limit_files() -> None:
            if max_files is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (max_files, max_files))

        self.log = log
        with log.open("wb") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _SERVER_SCRIPT, repr(options)],
                stdout=subprocess.PIPE,
                stderr=sink,
                preexec_fn=limit_files,
            )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().decode().strip()
        assert self.url.startswith("http://"), log.read_text()

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def test_running_out_of_descriptors_neither_spins_nor_floods_the_log(tmp_path: Path) -> None:
    server = _ServerProcess({"keep_alive_timeout": 2.0}, tmp_path / "server.log", max_files=64)
    idle: list[socket.socket] = []
    try:
        cpu_before, started = server.cpu_seconds(), time.monotonic()
        idle = [_connect(server.url) for _ in range(100)]  # more than the server may hold
        response = requests.get(server.url + "/ping", timeout=WAIT_SECONDS)
        assert response.status_code == 200  # served once idle connections were closed
        time.sleep(2.0)  # a window in which a spinning accept loop would burn a core
        cpu_used, window = server.cpu_seconds() - cpu_before, time.monotonic() - started
    finally:
        for connection in idle:
            connection.close()
        server.stop()
    log = server.log.read_text()
    assert "cannot accept new connections" in log
    assert "ulimit -n" in log
    assert len(log.splitlines()) < 20, log[:3000]
    assert cpu_used < 0.5 * window, f"{cpu_used:.2f} s of CPU in {window:.2f} s"


def test_concurrent_large_bodies_past_the_budget_keep_memory_bounded(tmp_path: Path) -> None:
    size, limit, budget, clients = 4_000_000, 5_000_000, 10_000_000, 12
    server = _ServerProcess(
        {"max_body_bytes": limit, "max_body_bytes_in_flight": budget}, tmp_path / "server.log"
    )
    body = _padded_body(size)
    holders: list[socket.socket] = []
    try:
        requests.get(server.url + "/ping", timeout=WAIT_SECONDS)
        rss_before = server.rss_bytes()
        holders = [_connect(server.url) for _ in range(clients)]
        for holder in holders:  # every body but its last byte: all held at once
            threading.Thread(
                target=_send_quietly, args=(holder, _post_head(size) + body[:-1])
            ).start()
        statuses = []
        for holder in holders:
            holder.settimeout(2.0)
            try:
                statuses.append(_read_answer(holder)[0])
            except TimeoutError:
                statuses.append(None)  # still receiving: inside the budget
        rss_peak = rss_before
        window_ends = time.monotonic() + 2.0
        while time.monotonic() < window_ends:  # the accepted bodies arrive in full meanwhile
            rss_peak = max(rss_peak, server.rss_bytes())
            time.sleep(0.05)
        rss_growth = rss_peak - rss_before
        assert statuses.count(503) >= clients - budget // size
        assert rss_growth < (clients * size) // 2, f"grew {rss_growth} bytes"
    finally:
        for holder in holders:
            holder.close()
        server.stop()
