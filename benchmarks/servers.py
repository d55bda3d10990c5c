"""Servers under test as child processes: start, time to the first 200, stop.

Each server runs in its own session (process group) so stopping it also stops the workers it
forked (uvicorn's, ours with ``-w N``).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.outcome import MeasurementUnavailable


def _stat_fields(pid: str) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: fields start after the last ")".
    return text[text.rindex(")") + 2 :].split()


def process_tree_cpu_seconds(root_pid: int) -> float:
    """User + system CPU seconds used so far by ``root_pid`` and all its live descendants.

    Read from /proc (Linux). CPU time per request depends much less than requests/s on other
    work competing for the cores, so it is the steadier figure on a shared machine.
    """
    parents: dict[int, int] = {}
    cpu_ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(entry.name)
        if fields is None:
            continue
        # After the name: state, ppid, ... utime is field 14 and stime field 15 of the line.
        parents[int(entry.name)] = int(fields[1])
        cpu_ticks[int(entry.name)] = int(fields[11]) + int(fields[12])
    tree = {root_pid}
    grew = True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= children
        grew = bool(children)
    return sum(cpu_ticks.get(pid, 0) for pid in tree) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def post_json(port: int, body: bytes, *, timeout: float = 10.0) -> tuple[int, bytes]:
    """POST ``body`` to /invocations on 127.0.0.1:``port``; (status, body). OSError if no server."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(
            "POST", "/invocations", body=body, headers={"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wait_first_success(
    port: int, body: bytes, *, started: float, deadline_s: float, process: subprocess.Popen[bytes]
) -> float:
    """Poll /invocations until it answers 200; seconds since ``started`` (a perf_counter).

    Raises MeasurementUnavailable when the process exits or the deadline passes first.
    """
    last_answer = "no answer"
    while time.perf_counter() - started < deadline_s:
        if process.poll() is not None:
            raise MeasurementUnavailable(f"the server exited with code {process.returncode}")
        try:
            status, answer = post_json(port, body, timeout=5.0)
        except (OSError, http.client.HTTPException) as error:
            last_answer = str(error)
        else:
            if status == 200:
                return time.perf_counter() - started
            last_answer = f"{status} {answer[:200]!r}"
        time.sleep(0.005)  # polling interval, not synchronisation: the loop checks the answer
    raise MeasurementUnavailable(
        f"no 200 from /invocations within {deadline_s:.0f} s (last: {last_answer})"
    )


@dataclass(frozen=True)
class RunningServer:
    """A server that answered its first 200; ``cold_start_s`` is command start to that 200."""

    name: str
    port: int
    cold_start_s: float
    pid: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/invocations"


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


@contextlib.contextmanager
def running_server(
    name: str,
    command: Sequence[str],
    *,
    port: int,
    body: bytes,
    log_file: Path,
    deadline_s: float = 120.0,
    env: dict[str, str] | None = None,
) -> Iterator[RunningServer]:
    """Start ``command`` (which must listen on ``port``), yield once /invocations answers 200.

    The server's output goes to ``log_file``; on failure the message quotes its tail.
    """
    with log_file.open("wb") as log:
        started = time.perf_counter()
        try:
            process = subprocess.Popen(
                list(command),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **(env or {})},
            )
        except OSError as error:
            raise MeasurementUnavailable(f"{name}: cannot run {command[0]}: {error}") from error
        try:
            try:
                cold_start = wait_first_success(
                    port, body, started=started, deadline_s=deadline_s, process=process
                )
            except MeasurementUnavailable as error:
                log.flush()
                lines = log_file.read_text(errors="replace").strip().splitlines()
                tail = " / ".join(line.strip() for line in lines[-3:])[-600:]
                raise MeasurementUnavailable(f"{name}: {error}; log tail: {tail}") from error
            yield RunningServer(name=name, port=port, cold_start_s=cold_start, pid=process.pid)
        finally:
            _stop(process)
