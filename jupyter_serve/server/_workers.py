"""`-w N`: N worker processes sharing one port (SO_REUSEPORT), each with its own model.

Process workers escape the GIL: a CPU-bound cell in the kernel, or a prediction in one worker,
does not slow the others. One supervisor thread owns the workers: it starts them, replaces
any that dies or stops answering (a worker is hung when it has not reported for
`_hung_after`), and stops them all when the pool stops. A worker that keeps dying (a request
that kills its process, say) is replaced after a pause that doubles with each death in a row,
up to `_MAX_BACKOFF_SECONDS`; but while no worker is left to answer, one is replaced at once,
so the port keeps answering as long as the model can load, and while no worker serves the
pool answers 503 itself, saying why (`_unavailable.py`). Each worker reports its metrics
once a second on its stdout; the pool adds them up.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from jupyter_serve.errors import DeploymentError
from jupyter_serve.server._metric_files import (
    create_metrics_dir,
    forget_worker,
    remove_metrics_dir,
    worker_environment,
)
from jupyter_serve.server._options import ServerOptions
from jupyter_serve.server._server import (
    bind_listening_sockets,
    block_until_signalled,
    drain_timeout,
)
from jupyter_serve.server._unavailable import UnavailableResponder
from jupyter_serve.server._worker_process import WorkerProcess

logger = logging.getLogger("jupyter_serve.server")

_READY_TIMEOUT_SECONDS = 60.0
_STOP_TIMEOUT_SECONDS = 10.0
_SUPERVISE_INTERVAL_SECONDS = 0.1
_FIRST_BACKOFF_SECONDS = 0.5
_MAX_BACKOFF_SECONDS = 10.0
_STABLE_AFTER_SECONDS = 30.0  # a worker serving this long ends a streak of deaths
_MIN_HUNG_AFTER_SECONDS = 10.0


@dataclass
class _Slot:
    """One of the pool's N places: its current worker, and the deaths in a row there."""

    worker: WorkerProcess | None
    deaths_in_a_row: int = 0
    failed_to_start: bool = False
    restart_at: float = 0.0


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
            "workers": sum(1 for worker in workers if worker.is_alive()),
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
        self._slots: list[_Slot] = []
        self._retired = {"requests": 0, "errors": 0}
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._unavailable: UnavailableResponder | None = None
        self._last_death = ""
        self._start_failure: str | None = None
        self._supervisor: threading.Thread | None = None
        # Every worker writes its counts here, so that a scrape of any one sums them all.
        self._metrics_dir: str | None = None
        self._hung_after = max(_MIN_HUNG_AFTER_SECONDS, 2 * options.timeout)
        self.metrics = PooledMetrics(self)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def is_running(self) -> bool:
        supervisor = self._supervisor
        return supervisor is not None and supervisor.is_alive() and not self._stopping.is_set()

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
            # The supervisor starts every worker: Linux ties a worker's life to the thread
            # that started it (see _worker.py), and this one lives exactly as long as the pool.
            self._supervisor = threading.Thread(
                target=self._supervise, name=f"jupyter-serve-{self.port}-supervisor", daemon=True
            )
            self._supervisor.start()
        self._started.wait()
        if self._start_failure is not None:
            self._supervisor.join()
            raise DeploymentError(self._start_failure)

    def stop(self) -> None:
        """Stop every worker and free the port: each drains (SIGTERM; it finishes the requests
        it already read, up to the drain timeout), and is killed 10 s after that."""
        self._stopping.set()
        supervisor = self._supervisor
        if supervisor is not None and supervisor is not threading.current_thread():
            supervisor.join()

    def serve_forever(self) -> None:
        """Start if needed, block until SIGINT, SIGTERM or SIGHUP (the terminal closed), then
        stop every worker. Signals are only handled when called from the main thread."""
        if self._supervisor is None:
            self.start()
        hung_up = threading.Event()
        previous: Any = None
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGHUP"):
            previous = signal.signal(signal.SIGHUP, lambda *_: hung_up.set())
        try:
            block_until_signalled(lambda: self.is_running and not hung_up.is_set())
        finally:
            if previous is not None:
                signal.signal(signal.SIGHUP, previous)
            self.stop()

    def worker_pids(self) -> list[int]:
        """Process ids of the current workers (dead ones not yet replaced included)."""
        return [worker.pid for worker in self._snapshot_workers()[0]]

    def _assignment(self) -> dict[str, Any]:
        options = {**asdict(self.options), "port": self.port}
        return {
            "model_path": self._model_path,
            "model_uri": self.model_uri,
            "version": self.version,
            "options": options,
        }

    def _spawn(self) -> WorkerProcess:
        if self._metrics_dir is None:
            self._metrics_dir = create_metrics_dir()
        environment = worker_environment(self._metrics_dir)
        return WorkerProcess(self._assignment(), self._on_remote_stop, self._python, environment)

    def captured_records(self) -> list[dict[str, Any]]:
        """Every live worker's captured rows, gathered now over its stdin and stdout (they
        stay in the workers until asked), oldest first. Thread-safe."""
        workers = self._snapshot_workers()[0]
        records = [record for worker in workers for record in worker.captured_records()]
        records.sort(key=lambda record: record["time"])
        return records

    def _snapshot_workers(self) -> tuple[list[WorkerProcess], dict[str, int]]:
        with self._lock:
            workers = [slot.worker for slot in self._slots if slot.worker is not None]
            return workers, dict(self._retired)

    def _supervise(self) -> None:
        try:
            if self._start_workers():
                while not self._stopping.wait(_SUPERVISE_INTERVAL_SECONDS):
                    self._replace_dead_workers(time.monotonic())
                    self._answer_while_none_serves()
        except BaseException:
            logger.exception("the supervisor of the workers on %s failed", self.url)
            raise
        finally:
            if self._unavailable is not None:
                self._unavailable.close()
            self._stop_workers()
            if self._metrics_dir is not None:
                remove_metrics_dir(self._metrics_dir)
            self._started.set()

    def _start_workers(self) -> bool:
        with self._lock:
            self._slots = [_Slot(self._spawn()) for _ in range(self.options.workers)]
        workers = self._snapshot_workers()[0]
        deadline = time.monotonic() + _READY_TIMEOUT_SECONDS
        for worker in workers:
            while not worker.ready.wait(0.1):
                if self._stopping.is_set() or time.monotonic() > deadline:
                    break
        failed = [worker for worker in workers if worker.serving_since is None]
        failed += [w for w in workers if w.serving_since is not None and not w.is_alive()]
        if failed or self._stopping.is_set():
            if not self._stopping.is_set():
                reasons = {worker.error for worker in failed if worker.error}
                reason = (
                    "; ".join(sorted(reasons))
                    if reasons
                    else "exit codes "
                    + ", ".join(str(worker.process.poll()) for worker in failed)
                    + " (their output above may say why)"
                )
                self._start_failure = (
                    f"{len(failed)} of {self.options.workers} worker processes for "
                    f"{self.model_uri} failed to start on {self.url}: {reason}"
                )
            else:
                self._start_failure = f"the worker pool for {self.model_uri} was stopped"
            return False
        self._started.set()
        return True

    def _replace_dead_workers(self, now: float) -> None:
        for slot in self._slots:
            worker = slot.worker
            if worker is None:
                continue
            if worker.is_alive():
                self._check_alive_worker(slot, worker, now)
            else:
                self._retire(slot, worker, now)
        if all(slot.worker is None for slot in self._slots):
            # Nobody answers on the port: a worker that served before comes back at once.
            soonest = min(self._slots, key=lambda slot: slot.restart_at)
            if not soonest.failed_to_start:
                soonest.restart_at = min(soonest.restart_at, now)
        for slot in self._slots:
            if slot.worker is None and now >= slot.restart_at and not self._stopping.is_set():
                replacement = self._spawn()
                with self._lock:
                    slot.worker = replacement

    def _check_alive_worker(self, slot: _Slot, worker: WorkerProcess, now: float) -> None:
        if worker.serving_since is None:
            if now - worker.started_at > _READY_TIMEOUT_SECONDS:
                worker.error = f"it did not start serving within {_READY_TIMEOUT_SECONDS:g} s"
                worker.kill()
            return
        if now - worker.serving_since > _STABLE_AFTER_SECONDS:
            slot.deaths_in_a_row = 0
        if now - worker.last_heard > self._hung_after:
            worker.error = (
                f"it was hung (no report for {now - worker.last_heard:.0f} s; its requests "
                "were past their timeout)"
            )
            worker.kill()

    def _retire(self, slot: _Slot, worker: WorkerProcess, now: float) -> None:
        slot.failed_to_start = worker.serving_since is None
        slot.deaths_in_a_row += 1
        delay = min(_FIRST_BACKOFF_SECONDS * 2 ** (slot.deaths_in_a_row - 1), _MAX_BACKOFF_SECONDS)
        slot.restart_at = now + delay
        with self._lock:
            self._retired["requests"] += worker.latest_metrics.get("requests", 0)
            self._retired["errors"] += worker.latest_metrics.get("errors", 0)
            slot.worker = None
        if self._metrics_dir is not None:
            forget_worker(self._metrics_dir, worker.pid)
        self._last_death = worker.describe_exit()
        log = logger.error if slot.failed_to_start else logger.warning
        log(
            "worker %d %s %s; replacing it%s (%d in a row)",
            worker.pid,
            "failed to start:" if slot.failed_to_start else "of " + self.url,
            worker.describe_exit(),
            f" in {delay:g} s unless no other worker is serving" if delay else "",
            slot.deaths_in_a_row,
        )

    def _answer_while_none_serves(self) -> None:
        serving = any(
            slot.worker is not None and slot.worker.serving_since is not None
            for slot in self._slots
        )
        if serving and self._unavailable is not None:
            self._unavailable.close()
            self._unavailable = None
        elif not serving and self._unavailable is None and not self._stopping.is_set():
            reason = f"all {len(self._slots)} died, the last one {self._last_death}"
            try:
                self._unavailable = UnavailableResponder(self.host, self.port, reason)
            except DeploymentError as error:
                logger.error("no worker serves %s, and the pool cannot answer: %s", self.url, error)

    def _stop_workers(self) -> None:
        workers = self._snapshot_workers()[0]
        for worker in workers:
            worker.terminate()
        # Each worker drains: it lets its requests in flight finish, up to the drain timeout.
        deadline = time.monotonic() + drain_timeout(self.options) + _STOP_TIMEOUT_SECONDS
        for worker in workers:
            worker.wait_or_kill(deadline)
