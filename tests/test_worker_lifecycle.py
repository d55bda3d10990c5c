"""`-w N` worker processes over their whole life, as users meet it: real kernels, a real
`jupyter server`, the real CLI, real signals.

Workers must stop with whatever owns them, however it ends (graceful kernel shutdown, DELETE
through the Jupyter server, SIGKILL, a closed terminal), must not be touched by signals meant
for their owner (a front end interrupting a cell), and must keep the port answering when a
request kills the worker that predicts it, again and again.
"""

from __future__ import annotations

import contextlib
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
import requests
from _support import (
    Kernel,
    discovery_files,
    free_port,
    jupyter_server_process,
    port_is_listening,
    wait_until,
)
from jupyter_client.blocking import BlockingKernelClient

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
    status, body, _ = _post_answer(port, text, timeout)
    return status, body


def _post_answer(port: int, text: str, timeout: float = 30) -> tuple[int, Any, str | None]:
    """Status, JSON body and X-Request-ID of one prediction request."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(
            "POST", "/invocations", _body(text), {"Content-Type": "application/json"}
        )
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read()), answer.getheader("X-Request-ID")
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
        # The last worker standing is replaced at once: the port refuses connections only
        # while one worker starts (seconds), not for the length of a back-off.
        deadline = time.monotonic() + 20
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


def _catches(pid: int, signum: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signum - 1)))
    return False


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


TOKEN = "lifecycle-token-0123456789"


@contextlib.contextmanager
def jupyter_server(home: Path) -> Iterator[tuple[str, Path]]:
    """A real `jupyter server` (only what this test needs loaded): its URL and runtime dir."""
    runtime_dir, config_dir = home / "runtime", home / "config"
    config_dir.mkdir(parents=True)
    unneeded = ("jupyterlab", "jupyter_lsp", "notebook_shim", "jupyter_server_terminals")
    (config_dir / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": dict.fromkeys(unneeded, False)}})
    )
    port = free_port()
    environment = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(runtime_dir),
        "JUPYTER_CONFIG_DIR": str(config_dir),
        "JUPYTER_SERVE_REGISTRY": str(home / "registry"),
        "PYTHONWARNINGS": "ignore",
    }
    with jupyter_server_process(home, port, TOKEN, environment) as url:
        yield url, runtime_dir


def _api(method: str, url: str, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"token {TOKEN}"}
    return requests.request(method, url, headers=headers, timeout=60, **kwargs)


def test_delete_through_the_jupyter_server_stops_the_kernel_its_workers_and_its_record(
    tmp_path: Path,
) -> None:
    with jupyter_server(tmp_path) as (url, runtime_dir):
        started = _api("POST", url + "api/kernels", json={"name": "python3"})
        assert started.status_code == 201, started.text
        kernel_id = started.json()["id"]
        client = BlockingKernelClient(connection_file=str(runtime_dir / f"kernel-{kernel_id}.json"))
        client.load_connection_file()
        client.start_channels(hb=False)
        try:
            client.wait_for_ready(timeout=60)
            printed: list[str] = []
            reply = client.execute_interactive(
                POISON_MODEL_SOURCE + "import os, jupyter_serve\n"
                "deployment = jupyter_serve.serve(PoisonOnRequest(), workers=2)\n"
                "print(os.getpid(), deployment.port)\n",
                timeout=120,
                output_hook=lambda m: printed.append(m["content"].get("text", "")),
            )
        finally:
            client.stop_channels()
        assert reply["content"]["status"] == "ok", printed
        kernel_pid, port = (int(word) for word in "".join(printed).split())
        assert _answers_200(port)
        workers = worker_pids(kernel_pid)
        assert len(workers) == 2
        [record] = discovery_files(runtime_dir)

        deleted = _api("DELETE", url + f"api/kernels/{kernel_id}")

        assert deleted.status_code == 204
        wait_until(lambda: not alive(kernel_pid), timeout=30, message="kernel gone")
        assert not any(alive(pid) for pid in workers)
        # Only a kernel that ran its exit hooks withdraws its record: a killed one leaves it.
        assert not record.exists()
        assert not port_is_listening(port)


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


def test_while_no_worker_serves_the_port_answers_503_saying_why(poison_model: Path) -> None:
    port = free_port()
    process = _start_cli(poison_model, port)
    try:
        for pid in worker_pids(process.pid):
            os.kill(pid, signal.SIGKILL)
        answers: list[tuple[int, Any, str | None]] = []

        def answered_200() -> bool:
            try:
                answers.append(_post_answer(port, "hello"))
            except (ConnectionError, http.client.HTTPException, TimeoutError):
                return False
            return answers[-1][0] == 200

        wait_until(answered_200, timeout=60, message="a 200 from a replacement")
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    unavailable = [(body, request_id) for status, body, request_id in answers if status == 503]
    assert unavailable, answers
    assert unavailable[0][0]["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert "killed by SIGKILL" in unavailable[0][0]["message"]
    assert {status for status, _, _ in answers} == {503, 200}
    ids = [request_id for _, request_id in unavailable]
    assert all(ids) and len(set(ids)) == len(ids), ids  # every 503 has an ID of its own


def test_a_closed_terminal_stops_the_cli_and_its_workers(poison_model: Path) -> None:
    port = free_port()
    process = _start_cli(poison_model, port)
    workers = worker_pids(process.pid)
    assert len(workers) == 2
    # The command says it serves just before it starts handling signals.
    wait_until(lambda: _catches(process.pid, signal.SIGHUP), message="SIGHUP handled")
    process.send_signal(signal.SIGHUP)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 0, stderr
    assert not any(alive(pid) for pid in workers)


def test_workers_of_a_killed_cli_do_not_outlive_it_even_when_hung(poison_model: Path) -> None:
    port = free_port()
    process = _start_cli(poison_model, port)
    workers = worker_pids(process.pid)
    assert len(workers) == 2
    hung = min(workers)
    try:
        os.kill(hung, signal.SIGSTOP)  # it can neither read nor write: only the kernel acts
        process.kill()
        process.communicate(timeout=60)

        wait_until(
            lambda: not any(alive(pid) for pid in workers), timeout=10, message="workers gone"
        )
        wait_until(lambda: not port_is_listening(port), timeout=10, message="port closed")
    finally:
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


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
