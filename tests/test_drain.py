"""Graceful drain: a stopping deployment refuses new connections and answers 503 to requests
sent after it began to stop, while the requests it had already read finish; SIGTERM to
``jupyter-serve models serve`` (one process or ``-w 2``) exits 0 after that. Real processes,
real sockets; the model holds its rows until the test creates a file."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from jupyter_serve.models import from_object, save_model
from jupyter_serve.server import ScoringServer, ServerOptions
from tests._serve_command import ServeCommand
from tests._support import free_port, wait_until

JUPYTER_SERVE = Path(sys.executable).parent / "jupyter-serve"
# Longer than the 5 s the server used to wait before cutting requests in flight.
SLOW_SECONDS = 6.0

GATED_MODEL = textwrap.dedent(
    """
    import os
    import time
    from pathlib import Path


    class FileGatedModel:
        '''Predicts a > 0; a positive row first writes started-<pid>-<a> in its directory,
        then waits until the file "release" exists there.'''

        def __init__(self, directory):
            self.directory = directory

        def predict(self, X):
            gates = Path(self.directory)
            for value in X["a"].tolist():
                if value > 0:
                    (gates / f"started-{os.getpid()}-{value:g}").touch()
            if (X["a"] > 0).any():
                deadline = time.monotonic() + 120
                while not (gates / "release").exists() and time.monotonic() < deadline:
                    time.sleep(0.01)
            return (X["a"] > 0).astype(int).to_numpy()
    """
)


@pytest.fixture
def gates(tmp_path: Path) -> Iterator[Path]:
    """A working directory holding the model's module and its gate files; the gate is opened
    at the end whatever happens, so no server waits on it."""
    (tmp_path / "gated_model.py").write_text(GATED_MODEL)
    yield tmp_path
    (tmp_path / "release").touch()


@pytest.fixture
def model_dir(gates: Path) -> Path:
    sys.path.insert(0, str(gates))
    try:
        import gated_model

        model = gated_model.FileGatedModel(str(gates))
        return save_model(model, gates / "model", serialization_format="cloudpickle")
    finally:
        sys.path.remove(str(gates))
        sys.modules.pop("gated_model", None)


def started(gates: Path) -> list[tuple[int, float]]:
    """(pid, a) of every row whose prediction has begun."""
    rows = []
    for path in gates.glob("started-*"):
        _, pid, value = path.name.split("-", 2)
        rows.append((int(pid), float(value)))
    return rows


def post(a: float) -> bytes:
    body = json.dumps({"dataframe_split": {"columns": ["a", "b"], "data": [[a, 1.0]]}}).encode()
    head = (
        "POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<Answer {self.status} {self.headers} {self.body[:200]!r}>"


def parse_answers(data: bytes) -> list[Answer]:
    """The HTTP/1.1 responses in ``data`` (each with a Content-Length), in order."""
    answers = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {
            name.strip().lower(): value.strip()
            for name, value in (line.split(":", 1) for line in lines[1:])
        }
        length = int(headers["content-length"])
        answers.append(Answer(status, headers, rest[:length]))
        data = rest[length:]
    return answers


def exchange(port: int, *requests: bytes) -> list[Answer]:
    """Send ``requests`` on one connection (pipelined) and read until the server closes it;
    a reset fails the test."""
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall(b"".join(requests))
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return parse_answers(received)


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def wait_seconds_since(start: float, seconds: float) -> None:
    """The model stays slow this long: the requests in flight outlast the old 5 s grace."""
    while time.monotonic() - start < seconds:
        time.sleep(0.05)


def assert_predicted(answer: Answer) -> None:
    assert answer.status == 200, answer
    assert answer.json() == {"predictions": [1]}


def assert_draining_refusal(answer: Answer) -> None:
    assert answer.status == 503, answer
    assert answer.headers["connection"] == "close"
    assert answer.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert "stopping" in answer.json()["message"]


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_lets_requests_in_flight_finish_refuses_new_ones_and_exits_0(
    gates: Path, model_dir: Path, workers: int
) -> None:
    port = free_port()
    command = ServeCommand(
        JUPYTER_SERVE, ["-m", str(model_dir), "-p", str(port), "-w", str(workers)], gates
    )
    try:
        command.wait_for_url()
        with ThreadPoolExecutor(17) as pool:
            # A slow request, then a readiness check the client sent right behind it.
            pipelined = pool.submit(exchange, port, post(100.0), get("/v2/health/ready"))
            wait_until(lambda: started(gates), timeout=60, message="a request in flight")
            # Many connections, so that the kernel spreads them over every worker.
            singles = 1 if workers == 1 else 16
            alone: list[Future[list[Answer]]] = [
                pool.submit(exchange, port, post(1.0 + i)) for i in range(singles)
            ]
            wait_until(
                lambda: (
                    len({pid for pid, _ in started(gates)}) == workers
                    and (workers > 1 or len(started(gates)) == 2)
                ),
                timeout=60,
                message="slow requests in flight on every worker",
            )
            in_flight = set(started(gates))
            stopping_since = time.monotonic()
            command.process.send_signal(signal.SIGTERM)
            wait_until(lambda: refuses_connections(port), timeout=30, message="port closed")
            assert command.process.poll() is None  # still finishing its requests
            wait_seconds_since(stopping_since, SLOW_SECONDS)
            assert not pipelined.done()
            (gates / "release").touch()

            slow, ready = pipelined.result(timeout=60)
            assert_predicted(slow)
            assert slow.headers["connection"] == "close"
            assert_draining_refusal(ready)
            for index, future in enumerate(alone):
                (answer,) = future.result(timeout=60)
                if any(a == 1.0 + index for _, a in in_flight):
                    assert_predicted(answer)
                elif answer.status != 200:  # sent, but not yet read when the stop came
                    assert_draining_refusal(answer)
        assert command.process.wait(timeout=60) == 0
        assert refuses_connections(port)
    finally:
        stderr = command.stop(signal.SIGKILL)
    assert "Traceback" not in stderr, stderr


SERVE_THEN_STOP = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    import jupyter_serve
    from gated_model import FileGatedModel

    deployment = jupyter_serve.serve(FileGatedModel(sys.argv[1]), name="gated", port=0)
    print(deployment.url, flush=True)
    if sys.stdin.readline().strip() == "stop":
        jupyter_serve.stop("gated")
        print("stopped", flush=True)
    # else the interpreter exits here: its exit hook stops every deployment
    """
)


@pytest.mark.parametrize("how", ["stop", "exit"])
def test_stop_or_exit_of_a_python_session_lets_a_request_in_flight_finish(
    gates: Path, how: str
) -> None:
    session = subprocess.Popen(
        [sys.executable, "-c", SERVE_THEN_STOP, str(gates)],
        cwd=gates,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert session.stdin is not None and session.stdout is not None
    try:
        url = session.stdout.readline().strip()
        port = int(url.rsplit(":", 1)[1])
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(exchange, port, post(7.0))
            wait_until(lambda: started(gates), timeout=60, message="the request in flight")
            stopping_since = time.monotonic()
            session.stdin.write(how + "\n")
            session.stdin.flush()
            wait_until(lambda: refuses_connections(port), timeout=30, message="port closed")
            wait_seconds_since(stopping_since, SLOW_SECONDS)
            assert session.poll() is None and not slow.done()
            (gates / "release").touch()
            (answer,) = slow.result(timeout=60)
            assert_predicted(answer)
        if how == "stop":
            assert session.stdout.readline().strip() == "stopped"
        assert session.wait(timeout=60) == 0
    finally:
        session.kill()
        session.wait(timeout=30)


class EventGatedModel:
    """Predicts a > 0; a positive row waits for ``gate``."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()

    def predict(self, X: pd.DataFrame) -> Any:
        if (X["a"] > 0).any():
            self.started.set()
            self.gate.wait(60)
        return (X["a"] > 0).astype(int).to_numpy()


def test_idle_keep_alive_connections_close_at_once_and_the_drain_timeout_answers_503() -> None:
    model = EventGatedModel()
    server = ScoringServer(
        from_object(model), ServerOptions(port=0, drain_timeout=1.0), model_uri="test:/gated"
    )
    server.start()
    stopper = threading.Thread(target=server.stop)
    try:
        idle = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        idle.sendall(post(-1.0))  # answered at once; the connection stays open, idle
        (first,) = parse_answers(idle.recv(65536))
        assert first.status == 200 and first.headers.get("connection") != "close"
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(exchange, server.port, post(1.0))
            assert model.started.wait(30)
            stopper.start()
            # Closed while the slow request still runs: an end of stream, not a reset.
            assert idle.recv(65536) == b""
            assert not slow.done()
            (answer,) = slow.result(timeout=60)
        assert answer.status == 503, answer
        assert answer.headers["connection"] == "close"
        assert answer.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
        assert "drain timeout" in answer.json()["message"]
        stopper.join(60)
        assert not server.is_running
    finally:
        idle.close()
        model.gate.set()
        server.stop()


def test_a_pool_answers_503_past_the_drain_timeout_and_its_workers_exit_0(gates: Path) -> None:
    import cloudpickle

    from jupyter_serve.server import WorkerPool

    sys.path.insert(0, str(gates))
    try:
        import gated_model

        cloudpickle.register_pickle_by_value(gated_model)  # the workers cannot import it
        try:
            model = gated_model.FileGatedModel(str(gates))
            path = save_model(model, gates / "model", serialization_format="cloudpickle")
        finally:
            cloudpickle.unregister_pickle_by_value(gated_model)
    finally:
        sys.path.remove(str(gates))
        sys.modules.pop("gated_model", None)
    pool = WorkerPool(
        path, ServerOptions(port=0, workers=2, drain_timeout=1.0), model_uri="test:/gated"
    )
    pool.start()
    try:
        with ThreadPoolExecutor(1) as requests:
            slow = requests.submit(exchange, pool.port, post(3.0))
            wait_until(lambda: started(gates), timeout=60, message="the request in flight")
            pool.stop()  # the gate stays shut: the prediction outlives the drain
            (answer,) = slow.result(timeout=60)
        assert answer.status == 503, answer
        assert answer.headers["connection"] == "close"
        assert "drain timeout" in answer.json()["message"]
        # Drained, not killed: a stuck prediction does not hold a worker until SIGKILL.
        workers = pool._snapshot_workers()[0]
        assert [worker.process.returncode for worker in workers] == [0, 0]
        assert refuses_connections(pool.port)
    finally:
        pool.stop()


def test_sigterm_exits_0_while_a_prediction_outlives_the_drain(
    gates: Path, model_dir: Path
) -> None:
    port = free_port()
    # The drain timeout defaults to the request timeout: 1 s here; the gate stays shut.
    command = ServeCommand(JUPYTER_SERVE, ["-m", str(model_dir), "-p", str(port), "-t", "1"], gates)
    try:
        command.wait_for_url()
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(exchange, port, post(9.0))
            wait_until(lambda: started(gates), timeout=60, message="the request in flight")
            command.process.send_signal(signal.SIGTERM)
            (answer,) = slow.result(timeout=60)
        assert answer.status in (503, 504), answer
        assert answer.json()["error_code"] in ("TEMPORARILY_UNAVAILABLE", "DEADLINE_EXCEEDED")
        assert command.process.wait(timeout=60) == 0
        assert not (gates / "release").exists()  # it did not wait for the prediction
    finally:
        command.stop(signal.SIGKILL)
