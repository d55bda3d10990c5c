"""`-w N`: N worker processes sharing one port (SO_REUSEPORT), each with its own model.

Process workers escape the GIL: a CPU-bound cell in the kernel, or a prediction in one worker,
does not slow the others. The pool is supervised: a worker that dies is replaced (at most
`_MAX_RESTARTS_PER_MINUTE` times a minute, so a model that crashes at once cannot spin), and
every worker stops with the pool. Each worker reports its metrics once a second on its stdout;
the pool adds them up.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from jupyter_serve.errors import DeploymentError
from jupyter_serve.server._options import ServerOptions
from jupyter_serve.server._server import bind_listening_sockets, block_until_signalled
from jupyter_serve.server._worker import ERROR_PREFIX, READY_LINE, REMOTE_STOP_LINE

logger = logging.getLogger("jupyter_serve.server")

_READY_TIMEOUT_SECONDS = 60.0
_STOP_TIMEOUT_SECONDS = 10.0
_SUPERVISE_INTERVAL_SECONDS = 0.5
_MAX_RESTARTS_PER_MINUTE = 5


class _Worker:
    """One worker process and the thread reading its stdout (readiness, then metrics)."""

    def __init__(
        self,
        assignment: dict[str, Any],
        on_remote_stop: Callable[[], None] | None,
        python: str = sys.executable,
    ) -> None:
        self._on_remote_stop = on_remote_stop
        self.process = subprocess.Popen(
            [python, "-m", "jupyter_serve.server._worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(assignment) + "\n")
        self.process.stdin.close()
        self.ready = threading.Event()  # set on READY, and at the end of its output
        self.serving = False
        self.given_up = False  # the pool stopped replacing this dead worker, for now
        self.error: str | None = None
        self.latest_metrics: dict[str, Any] = {}
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            if line.strip() == READY_LINE:
                self.serving = True
                self.ready.set()
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

    def wait_ready(self, timeout: float) -> bool:
        # Not the exit status alone: a failed worker closes its output just before it exits.
        return self.ready.wait(timeout) and self.serving and self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(_STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(_STOP_TIMEOUT_SECONDS)


class PooledMetrics:
    """The workers' figures added up: counts and throughput summed, latency percentiles the
    worst worker's (an upper bound). `snapshot()` is thread-safe."""

    def __init__(self, pool: WorkerPool) -> None:
        self._pool = pool
        self.started_at = time.time()

    def snapshot(self) -> dict[str, Any]:
        """Same keys as `ServerMetrics.snapshot()`, plus ``workers`` (how many are alive)."""
        workers, retired = self._pool._snapshot_workers()
        reports = [worker.latest_metrics for worker in workers if worker.latest_metrics]
        latency: dict[str, float | None] = {}
        for key in ("p50", "p90", "p99"):
            values = [r["latency_ms"][key] for r in reports if r["latency_ms"][key] is not None]
            latency[key] = max(values) if values else None
        return {
            "requests": retired["requests"] + sum(r["requests"] for r in reports),
            "errors": retired["errors"] + sum(r["errors"] for r in reports),
            "in_flight": sum(r["in_flight"] for r in reports),
            "queued": sum(r.get("queued", 0) for r in reports),
            "latency_ms": latency,
            "requests_per_second": round(sum(r["requests_per_second"] for r in reports), 3),
            "started_at": self.started_at,
            "workers": sum(1 for worker in workers if worker.process.poll() is None),
        }


class WorkerPool:
    """Serves one model directory from ``options.workers`` processes on one port.

    Same lifecycle as `ScoringServer` (``start``, ``stop``, ``serve_forever``, ``url``,
    ``metrics``); the model is loaded by each worker from ``model_path``, in ``python`` (an
    interpreter whose environment can import jupyter_serve; default: this one). A remote stop
    (``/-/jupyter-serve/stop`` with the secret) reaching any worker calls ``on_remote_stop``
    from a pool thread, as `ScoringServer` does. ``start`` and ``stop`` are thread-safe;
    ``stop`` is idempotent (and may be called from ``on_remote_stop``).
    """

    def __init__(
        self,
        model_path: str | Path,
        options: ServerOptions,
        *,
        model_uri: str,
        version: str | None = None,
        on_remote_stop: Callable[[], None] | None = None,
        python: str | None = None,
    ) -> None:
        self.options = options
        self._python = python or sys.executable
        self._on_remote_stop = on_remote_stop
        self.host = options.host
        self.port = options.port
        self.model_uri = model_uri
        self.version = version
        self._model_path = str(Path(model_path).absolute())
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._retired = {"requests": 0, "errors": 0}
        self._restarts: deque[float] = deque()
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self.metrics = PooledMetrics(self)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def is_running(self) -> bool:
        supervisor = self._supervisor
        return supervisor is not None and supervisor.is_alive()

    def start(self) -> None:
        """Start every worker; return once each accepts connections. Raises `DeploymentError`
        when the port is taken (by anyone, even another pool) or a worker cannot serve."""
        with self._lock:
            if self._supervisor is not None or self._stopping.is_set():
                raise DeploymentError(
                    f"the worker pool for {self.model_uri} was already started; create a new "
                    "one to serve again."
                )
            # Bound without SO_REUSEPORT, the probe fails if anyone listens there, even a
            # reuse-port group that would otherwise silently share our port.
            probe = bind_listening_sockets(self.host, self.port)
            self.port = probe[0].getsockname()[1]
            for sock in probe:
                sock.close()
            self._workers = [
                _Worker(self._assignment(), self._on_remote_stop, self._python)
                for _ in range(self.options.workers)
            ]
            failed = [w for w in self._workers if not w.wait_ready(_READY_TIMEOUT_SECONDS)]
            if failed:
                for worker in self._workers:
                    worker.stop()
                reasons = {worker.error for worker in failed if worker.error}
                reason = (
                    "; ".join(sorted(reasons))
                    if reasons
                    else "exit codes "
                    + ", ".join(str(worker.process.returncode) for worker in failed)
                    + " (their output above may say why)"
                )
                raise DeploymentError(
                    f"{len(failed)} of {self.options.workers} worker processes for "
                    f"{self.model_uri} failed to start on {self.url}: {reason}"
                )
            self._supervisor = threading.Thread(
                target=self._supervise, name=f"jupyter-serve-{self.port}-supervisor", daemon=True
            )
            self._supervisor.start()

    def stop(self) -> None:
        """Stop every worker (SIGTERM, then SIGKILL after 10 s) and free the port."""
        self._stopping.set()
        supervisor = self._supervisor
        if supervisor is not None and supervisor is not threading.current_thread():
            supervisor.join()
        with self._lock:
            workers = list(self._workers)
        for worker in workers:
            worker.stop()

    def serve_forever(self) -> None:
        """Start if needed, block until SIGINT/SIGTERM, then stop every worker."""
        if self._supervisor is None:
            self.start()
        try:
            block_until_signalled(lambda: self.is_running)
        finally:
            self.stop()

    def worker_pids(self) -> list[int]:
        """Process ids of the current workers."""
        with self._lock:
            return [worker.process.pid for worker in self._workers]

    def _assignment(self) -> dict[str, Any]:
        options = {**asdict(self.options), "port": self.port}
        return {
            "model_path": self._model_path,
            "model_uri": self.model_uri,
            "version": self.version,
            "options": options,
        }

    def _snapshot_workers(self) -> tuple[list[_Worker], dict[str, int]]:
        with self._lock:
            return list(self._workers), dict(self._retired)

    def _supervise(self) -> None:
        while not self._stopping.wait(_SUPERVISE_INTERVAL_SECONDS):
            for index, worker in enumerate(self._snapshot_workers()[0]):
                if worker.process.poll() is None or self._stopping.is_set():
                    continue
                if not self._may_restart():
                    if not worker.given_up:
                        worker.given_up = True
                        logger.error(
                            "workers keep exiting (worker %d: code %s); not replacing them "
                            "for a minute",
                            worker.process.pid,
                            worker.process.returncode,
                        )
                    continue
                logger.warning(
                    "worker %d exited with code %s; starting a replacement",
                    worker.process.pid,
                    worker.process.returncode,
                )
                replacement = _Worker(self._assignment(), self._on_remote_stop, self._python)
                with self._lock:
                    self._retired["requests"] += worker.latest_metrics.get("requests", 0)
                    self._retired["errors"] += worker.latest_metrics.get("errors", 0)
                    self._workers[index] = replacement
                replacement.wait_ready(_READY_TIMEOUT_SECONDS)

    def _may_restart(self) -> bool:
        now = time.monotonic()
        while self._restarts and self._restarts[0] < now - 60:
            self._restarts.popleft()
        if len(self._restarts) >= _MAX_RESTARTS_PER_MINUTE:
            return False
        self._restarts.append(now)
        return True
