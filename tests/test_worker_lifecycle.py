"""`-w N` worker processes over their whole life, as users meet it: real kernels, a real
`jupyter server`, the real CLI, real signals.

Workers must stop with whatever owns them, however it ends (graceful kernel shutdown, DELETE
through the Jupyter server, SIGKILL, a closed terminal), must not be touched by signals meant
for their owner (a front end interrupting a cell), and must keep the port answering when a
request kills the worker that predicts it, again and again.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pandas as pd
import pytest
from _support import Kernel, discovery_files, free_port, port_is_listening, wait_until

from jupyter_serve.models import save_model

SERVE_COMMAND = [sys.executable, "-m", "jupyter_serve.cli", "models", "serve"]
POISON = "poison"

POISON_MODEL_SOURCE = """
import os

class PoisonOnRequest:
    '''Row-wise: the length of each text; a text that reads "poison" ends the process.'''

    def predict(self, data):
        if (data["text"] == "poison").any():
            os._exit(3)
        return [len(text) for text in data["text"]]
"""


class PoisonOnRequest:
    """Row-wise: the length of each text; a text that reads "poison" ends the process."""

    def predict(self, data: pd.DataFrame) -> list[int]:
        if (data["text"] == POISON).any():
            os._exit(3)
        return [len(text) for text in data["text"]]


def _body(text: str) -> bytes:
    return json.dumps({"dataframe_split": {"columns": ["text"], "data": [[text]]}}).encode()


def _post(port: int, text: str, timeout: float = 30) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(
            "POST", "/invocations", _body(text), {"Content-Type": "application/json"}
        )
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        connection.close()


def _answers_200(port: int) -> bool:
    try:
        return _post(port, "hello") == (200, {"predictions": [5]})
    except (ConnectionError, http.client.HTTPException, TimeoutError):
        return False


def _send_poison(port: int, times: int) -> list[str]:
    """Send the poison request ``times`` times, each to a worker that takes it; what each got."""
    outcomes: list[str] = []
    for attempt in range(times):
        deadline = time.monotonic() + 30
        while True:
            try:
                status, body = _post(port, POISON)
                outcomes.append(f"{status} {body}")
                break
            except ConnectionRefusedError:
                # Nobody listening (the last worker is being replaced): the request was
                # never taken, so it does not count.
                assert time.monotonic() < deadline, (
                    f"the port stopped answering after poison request {attempt}: {outcomes}"
                )
                time.sleep(0.05)
            except (ConnectionError, http.client.HTTPException) as error:
                outcomes.append(type(error).__name__)
                break
    return outcomes


def worker_pids(parent: int) -> set[int]:
    """The jupyter-serve worker processes ``parent`` started (Linux /proc)."""
    children: set[int] = set()
    for listing in Path(f"/proc/{parent}/task").glob("*/children"):
        try:
            children.update(int(pid) for pid in listing.read_text().split())
        except OSError:
            continue
    return {pid for pid in children if b"jupyter_serve.server._worker" in _cmdline(pid)}


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def poison_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # By value, so that workers (which cannot import this test module) can load it.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        return save_model(PoisonOnRequest(), tmp_path_factory.mktemp("poison") / "model")
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    started = Kernel(tmp_path / "runtime", tmp_path / "registry")
    try:
        yield started
    finally:
        if started.manager.is_alive():
            started.client.stop_channels()
            started.manager.shutdown_kernel(now=True)


def _serve_in_kernel(kernel: Kernel) -> int:
    kernel.ok(POISON_MODEL_SOURCE)
    result = kernel.ok(
        "import jupyter_serve\n"
        "deployment = jupyter_serve.serve(PoisonOnRequest(), name='poison', workers=2)\n"
        "print(deployment.port)\n",
        timeout=120,
    )
    port = int(result.stdout.split()[-1])
    assert _answers_200(port)
    return port


def test_a_kernel_serving_workers_survives_interrupts_and_shuts_down_on_its_own(
    kernel: Kernel,
) -> None:
    port = _serve_in_kernel(kernel)
    workers = worker_pids(kernel.pid)
    assert len(workers) == 2
    [record] = discovery_files(kernel.runtime_dir)

    # Interrupting a cell signals the kernel's process group: not the workers.
    running = kernel.submit("import time; print('sleeping', flush=True); time.sleep(60)")
    kernel.collect(running, until_stdout="sleeping")
    kernel.manager.interrupt_kernel()
    interrupted = kernel.collect(running)
    assert interrupted.status == "error" and "KeyboardInterrupt" in interrupted.error_text
    assert worker_pids(kernel.pid) == workers
    assert _answers_200(port)

    process = kernel.manager.provisioner.process  # type: ignore[union-attr]
    # jupyter_client sends SIGTERM after half this wait. ipykernel's own SIGTERMs to its
    # children alone last 14 s, so a kernel whose workers come back could never be done by
    # then; a kernel with pandas and scikit-learn loaded takes a few seconds to finalize on a
    # busy CI machine, hence not the default 5 s.
    kernel.manager.shutdown_wait_time = 20
    kernel.shutdown()

    # Stopped by jupyter_client's SIGTERM or SIGKILL, the kernel would say -15 or -9.
    assert process.returncode == 0
    assert not any(alive(pid) for pid in workers)
    assert not record.exists()
    assert not port_is_listening(port)


def test_a_poison_request_in_a_kernel_never_leaves_the_port_dead_and_sigkill_ends_workers(
    kernel: Kernel,
) -> None:
    port = _serve_in_kernel(kernel)

    outcomes = _send_poison(port, 8)

    wait_until(lambda: _answers_200(port), timeout=60, message="a 200 after 8 poison requests")
    assert len(outcomes) == 8
    workers = worker_pids(kernel.pid)
    assert workers
    os.kill(kernel.pid, signal.SIGKILL)
    wait_until(lambda: not any(alive(pid) for pid in workers), timeout=10, message="workers gone")
    wait_until(lambda: not port_is_listening(port), timeout=10, message="port closed")


def _start_cli(model: Path, port: int, *extra: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [*SERVE_COMMAND, "-m", str(model), "-p", str(port), "-w", "2", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert "serving" in process.stdout.readline(), process.communicate(timeout=60)
    return process


def test_the_cli_keeps_answering_after_poison_requests(poison_model: Path) -> None:
    port = free_port()
    process = _start_cli(poison_model, port)
    try:
        outcomes = _send_poison(port, 8)

        wait_until(lambda: _answers_200(port), timeout=60, message="a 200 after 8 poison requests")
        assert process.poll() is None
        assert len(outcomes) == 8
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    # The log says what happened to each worker, with its exit code.
    assert "exited with code 3" in stderr


def test_a_closed_terminal_stops_the_cli_and_its_workers(poison_model: Path) -> None:
    port = free_port()
    process = _start_cli(poison_model, port)
    workers = worker_pids(process.pid)
    assert len(workers) == 2
    process.send_signal(signal.SIGHUP)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 0, stderr
    assert not any(alive(pid) for pid in workers)


def test_workers_of_a_killed_cli_do_not_outlive_it(poison_model: Path) -> None:
    port = free_port()
    process = _start_cli(poison_model, port)
    workers = worker_pids(process.pid)
    assert len(workers) == 2
    process.kill()
    process.communicate(timeout=60)

    wait_until(lambda: not any(alive(pid) for pid in workers), timeout=10, message="workers gone")
    wait_until(lambda: not port_is_listening(port), timeout=10, message="port closed")


def test_a_hung_worker_is_replaced(poison_model: Path) -> None:
    port = free_port()
    process = _start_cli(poison_model, port, "-t", "2")
    try:
        workers = worker_pids(process.pid)
        hung = min(workers)
        os.kill(hung, signal.SIGSTOP)  # as stuck as a process gets: it cannot even report

        wait_until(lambda: not alive(hung), timeout=60, message="the hung worker killed")
        wait_until(
            lambda: len(worker_pids(process.pid) - workers) == 1,
            timeout=60,
            message="a replacement started",
        )
        wait_until(lambda: _answers_200(port), timeout=60, message="answering")
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "hung" in stderr
