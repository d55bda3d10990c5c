"""The pool's handle on one worker process: start it, read what it says, stop it.

A worker runs in its own session and process group. Signals meant for the process that owns
the pool then never reach the workers: a Jupyter front end interrupting a cell (SIGINT to the
kernel's process group), ipykernel's shutdown (SIGTERM, then SIGKILL, to every child in its
group, again and again until none is left) and Ctrl+C in a terminal all go to the owner, which
stops its workers itself, in order. The workers still never outlive the owner: see
``_worker.py``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from jupyter_serve.server._access_log import ACCESS_LOGGER
from jupyter_serve.server._worker import (
    ACCESS_PREFIX,
    CAPTURE_PREFIX,
    CAPTURE_REQUEST,
    ERROR_PREFIX,
    READY_LINE,
    REMOTE_STOP_LINE,
)

logger = logging.getLogger("jupyter_serve.server")

_LAST_LINES_SECONDS = 1.0


class WorkerProcess:
    """One worker process and the thread reading its stdout (readiness, then metrics).

    Linux delivers the worker's parent-death signal when the *thread* that started it exits,
    so a worker must be started from a thread that lives as long as the worker should.
    """

    def __init__(
        self,
        assignment: dict[str, Any],
        on_remote_stop: Callable[[], None] | None,
        python: str,
        environment: dict[str, str] | None = None,
    ) -> None:
        self._on_remote_stop = on_remote_stop
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            [python, "-m", "jupyter_serve.server._worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
            env=environment,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        # stdin stays open: its end of file tells the worker that we are gone.
        self._stdin: IO[str] = self.process.stdin
        with contextlib.suppress(OSError):  # a worker that died at once: its exit code says why
            self._stdin.write(json.dumps({**assignment, "pool_pid": os.getpid()}) + "\n")
            self._stdin.flush()
        self.ready = threading.Event()  # set on READY, and at the end of its output
        self.serving_since: float | None = None
        self.last_heard = time.monotonic()
        self.error: str | None = None
        self.latest_metrics: dict[str, Any] = {}
        self._capture_lock = threading.Lock()  # one question about the capture at a time
        self._capture_answered = threading.Event()
        self._captured: list[dict[str, Any]] = []
        self._reader = threading.Thread(
            target=self._read, args=(self.process.stdout,), name="jupyter-serve-worker-output"
        )
        self._reader.daemon = True
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def is_alive(self) -> bool:
        return self.process.poll() is None

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            self.last_heard = time.monotonic()
            if line.strip() == READY_LINE:
                self.serving_since = time.monotonic()
                self.ready.set()
            elif line.startswith(ACCESS_PREFIX):
                ACCESS_LOGGER.info(line[len(ACCESS_PREFIX) :].rstrip("\n"))
            elif line.startswith(CAPTURE_PREFIX):
                with contextlib.suppress(ValueError):
                    self._captured = json.loads(line[len(CAPTURE_PREFIX) :])
                self._capture_answered.set()
            elif line.startswith(ERROR_PREFIX):
                self.error = line[len(ERROR_PREFIX) :].strip()
            elif line.strip() == REMOTE_STOP_LINE and self._on_remote_stop is not None:
                try:
                    self._on_remote_stop()
                except Exception:
                    logger.exception("the remote-stop callback failed")
            elif line.startswith("{"):
                with contextlib.suppress(ValueError):  # a line cut short by the worker's death
                    self.latest_metrics = json.loads(line)
        self.ready.set()  # end of output: the worker exited; waiters look at its exit code
        self._capture_answered.set()

    def captured_records(self, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The worker's captured rows, asked for now (empty if it does not answer in time).
        Thread-safe."""
        with self._capture_lock:
            self._capture_answered.clear()
            self._captured = []
            try:
                self._stdin.write(CAPTURE_REQUEST + "\n")
                self._stdin.flush()
            except (OSError, ValueError):  # gone, or stopped: nothing to gather
                return []
            self._capture_answered.wait(timeout)
            return self._captured

    def terminate(self) -> None:
        """Ask the worker to stop (SIGTERM and end of its stdin); do not wait."""
        if self.is_alive():
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
        with contextlib.suppress(OSError):
            self._stdin.close()

    def kill(self) -> None:
        if self.is_alive():
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    def wait_or_kill(self, deadline: float) -> None:
        """Wait for the worker to exit until ``deadline`` (monotonic), then SIGKILL it."""
        try:
            self.process.wait(max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            self.kill()
            self.process.wait()
        with contextlib.suppress(OSError):
            self._stdin.close()
        # Its last lines (the access log's final ones) are read before the pool moves on; the
        # pipe's end of file may come later (another process of ours can hold its write end).
        self._reader.join(_LAST_LINES_SECONDS)

    def describe_exit(self) -> str:
        """How the worker ended, for a log line or an error: exit code or signal, and why."""
        code = self.process.returncode
        if code is None:
            how = "is still running"
        elif code < 0:
            try:
                how = f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"exited with code {code}"
        return f"{how}: {self.error}" if self.error else how
