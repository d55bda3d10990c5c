"""`%serve` in real kernels: start-up to the first 200, memory, and latency while a cell runs.

Four fresh kernels, so no measurement inherits another's imports:
  1. registers the model in the embedded registry (the user's earlier session);
  2. `%serve models:/spam/Production` in a kernel that imported what training needs (pandas,
     scikit-learn), and in a fresh kernel that only loaded the extension (imports included);
  3. a kernel that already holds the model (`clf`, plus pandas, as after training):
     `%serve clf` start-up and RSS, then sequential requests from this process while the
     kernel idles and while a CPU-bound pure-Python cell runs; then the same with `-w 2`.
"""

from __future__ import annotations

import http.client
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.agreement import collect_predictions, count_mismatches
from benchmarks.kernel_driver import BenchKernel
from benchmarks.outcome import MeasurementUnavailable
from benchmarks.servers import free_port, process_tree_cpu_seconds
from benchmarks.stats import percentile
from benchmarks.wrk import WrkRun, run_wrk

KERNEL_HELPERS = """
import http.client, json, os, time
def _bench_rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
def _bench_first_200(port, body, deadline_s=30.0):
    started = time.perf_counter()
    while time.perf_counter() - started < deadline_s:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("POST", "/invocations", body=body,
                               headers={"Content-Type": "application/json"})
            if connection.getresponse().status == 200:
                return time.perf_counter()
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.002)
    raise RuntimeError("no 200 from /invocations")
"""

LOAD_MODEL_CELL = """
import pandas as pd
import skops.io
_bench_file = {model_file!r}
clf = skops.io.load(_bench_file, trusted=skops.io.get_untrusted_types(file=_bench_file))
clf.predict(pd.DataFrame({{"text": ["warm up the pipeline once, as training would"]}}))
"""

SERVE_AND_TIME_CELL = """
_bench_rss_before = _bench_rss_mb()
_bench_t0 = time.perf_counter()
%serve {source} --name {name} --port {port} {options}
_bench_t1 = _bench_first_200({port}, {body!r})
print("BENCH_JSON " + json.dumps({{"first_200_s": _bench_t1 - _bench_t0,
    "rss_before_mb": _bench_rss_before, "rss_after_mb": _bench_rss_mb()}}))
"""

BUSY_CELL = """
print("BUSY_CELL_STARTED", flush=True)
_bench_end = time.perf_counter() + {seconds}
_bench_spins = 0
while time.perf_counter() < _bench_end:
    _bench_spins += 1
"""

# What a notebook that trained the model has already imported.
TRAINING_IMPORTS_CELL = """
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
"""

REGISTER_CELL = """
import jupyter_serve
try:
    _bench_register = jupyter_serve.register_model
except AttributeError:
    from jupyter_serve.registry import register_model as _bench_register
_bench_register(clf, "spam", stage="Production")
"""


@dataclass(frozen=True)
class LatencySample:
    """Sequential request latencies in milliseconds."""

    count: int
    p50_ms: float
    p99_ms: float


@dataclass
class KernelResults:
    """Every kernel-side measurement, or why it is missing (``unavailable[name]``)."""

    serve_in_memory_s: float | None = None
    serve_registry_s: float | None = None
    serve_registry_fresh_kernel_s: float | None = None
    serve_workers_s: float | None = None
    rss_before_mb: float | None = None
    rss_after_start_mb: float | None = None
    rss_after_traffic_mb: float | None = None
    idle: LatencySample | None = None
    busy: LatencySample | None = None
    idle_workers: LatencySample | None = None
    busy_workers: LatencySample | None = None
    mismatches: int | None = None
    load: dict[int, WrkRun] = field(default_factory=dict)
    cpu_ms_per_request: dict[int, float] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)


def sequential_latencies(port: int, body: bytes, *, seconds: float) -> LatencySample:
    """Send requests one after another on one keep-alive connection for ``seconds``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    try:
        _send_sequentially(connection, body, deadline, latencies)
    except (OSError, http.client.HTTPException) as error:
        raise MeasurementUnavailable(f"a sequential request failed: {error}") from error
    finally:
        connection.close()
    return LatencySample(
        count=len(latencies), p50_ms=percentile(latencies, 50), p99_ms=percentile(latencies, 99)
    )


def _send_sequentially(
    connection: http.client.HTTPConnection, body: bytes, deadline: float, latencies: list[float]
) -> None:
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        connection.request(
            "POST", "/invocations", body=body, headers={"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise MeasurementUnavailable(f"/invocations answered {response.status}")
        latencies.append((time.perf_counter() - started) * 1000.0)


def _attempt(results: KernelResults, name: str, step: Callable[[], object]) -> bool:
    try:
        step()
    except MeasurementUnavailable as error:
        results.unavailable[name] = str(error)
        return False
    return True


class KernelBenchmark:
    """The kernel scenarios against one saved model; ``run()`` never raises for a missing piece."""

    def __init__(
        self,
        work_dir: Path,
        *,
        busy_seconds: float,
        wrk_seconds: float,
        reference: list[Any] | None,
    ) -> None:
        """``work_dir`` holds what build_model wrote; ``reference``: MLflow's predictions."""
        self._model_file = work_dir / "model" / "model.skops"
        self._payload_file = work_dir / "payload.json"
        self._body = self._payload_file.read_bytes()
        self._emails: list[str] = json.loads((work_dir / "check_emails.json").read_text())
        self._reference = reference
        self._work_dir = work_dir
        self._busy_seconds = busy_seconds
        self._wrk_seconds = wrk_seconds
        self._env = {
            **os.environ,
            "JUPYTER_SERVE_REGISTRY": str(work_dir / "registry"),
            "JUPYTER_RUNTIME_DIR": str(work_dir / "runtime"),
            "PYTHONWARNINGS": "ignore",
        }

    def _kernel(self) -> BenchKernel:
        kernel = BenchKernel(self._env, Path.cwd(), self._work_dir / "kernels.log")
        kernel.run(KERNEL_HELPERS)
        return kernel

    def _serve_timed(
        self, kernel: BenchKernel, source: str, name: str, options: str = ""
    ) -> tuple[int, dict[str, float]]:
        port = free_port()
        cell = SERVE_AND_TIME_CELL.format(
            source=source, name=name, port=port, options=options, body=self._body
        )
        return port, kernel.run_for_result(cell)

    def _idle_latency(self, port: int) -> LatencySample:
        return sequential_latencies(port, self._body, seconds=3.0)

    def _busy_latency(self, kernel: BenchKernel, port: int) -> LatencySample:
        cell = kernel.start_cell(BUSY_CELL.format(seconds=self._busy_seconds))
        kernel.wait_for_text(cell, "BUSY_CELL_STARTED", timeout=30)
        sample = sequential_latencies(port, self._body, seconds=self._busy_seconds - 2.0)
        kernel.finish_cell(cell, timeout=self._busy_seconds + 60)
        return sample

    def run(self, results: KernelResults) -> None:
        """Fill ``results``; each scenario that cannot run records why in ``unavailable``."""
        for scenario in (self._registry_scenario, self._in_memory_scenario):
            try:
                scenario(results)
            except MeasurementUnavailable as error:
                results.unavailable.setdefault(scenario.__name__.strip("_"), str(error))

    def _registry_scenario(self, results: KernelResults) -> None:
        registering = self._kernel()
        try:
            registering.run(LOAD_MODEL_CELL.format(model_file=str(self._model_file)))
            if not _attempt(results, "register", lambda: registering.run(REGISTER_CELL)):
                results.unavailable["serve_registry"] = "registering the model failed"
                return
        finally:
            registering.shutdown()
        for field_name, setup in (
            ("serve_registry_fresh_kernel_s", ""),
            ("serve_registry_s", TRAINING_IMPORTS_CELL),
        ):
            self._serve_registry_in_new_kernel(results, field_name, setup)

    def _serve_registry_in_new_kernel(
        self, results: KernelResults, field_name: str, setup: str
    ) -> None:
        kernel = self._kernel()
        try:
            kernel.run(setup + "\n%load_ext jupyter_serve")

            def serve_registry() -> None:
                _, timing = self._serve_timed(kernel, "models:/spam/Production", "registry")
                setattr(results, field_name, timing["first_200_s"])

            _attempt(results, field_name, serve_registry)
        finally:
            kernel.shutdown()

    def _in_memory_scenario(self, results: KernelResults) -> None:
        kernel = self._kernel()
        try:
            kernel.run(LOAD_MODEL_CELL.format(model_file=str(self._model_file)))
            kernel.run("%load_ext jupyter_serve")
            self._in_process_server(kernel, results)
            self._process_workers(kernel, results)
        finally:
            kernel.shutdown()

    def _in_process_server(self, kernel: BenchKernel, results: KernelResults) -> None:
        port, timing = self._serve_timed(kernel, "clf", "inmemory")
        results.serve_in_memory_s = timing["first_200_s"]
        results.rss_before_mb = timing["rss_before_mb"]
        results.rss_after_start_mb = timing["rss_after_mb"]
        _attempt(results, "idle", lambda: setattr(results, "idle", self._idle_latency(port)))
        _attempt(results, "predictions", lambda: self._check_predictions(port, results))
        for connections in (1, 64):
            _attempt(
                results, f"wrk_{connections}", self._load_step(kernel, port, connections, results)
            )
        results.rss_after_traffic_mb = kernel.run_for_result(
            'print("BENCH_JSON " + json.dumps({"rss_mb": _bench_rss_mb()}))'
        )["rss_mb"]
        _attempt(
            results, "busy", lambda: setattr(results, "busy", self._busy_latency(kernel, port))
        )
        _attempt(results, "unserve", lambda: kernel.run("%unserve inmemory"))

    def _load_step(
        self, kernel: BenchKernel, port: int, connections: int, results: KernelResults
    ) -> Callable[[], None]:
        def drive() -> None:
            url = f"http://127.0.0.1:{port}/invocations"
            cpu_before = process_tree_cpu_seconds(kernel.pid)
            run = run_wrk(
                url, self._payload_file, connections=connections, duration_s=self._wrk_seconds
            )
            cpu_ms = (process_tree_cpu_seconds(kernel.pid) - cpu_before) * 1000.0
            results.load[connections] = run
            results.cpu_ms_per_request[connections] = cpu_ms / max(1, run.requests)

        return drive

    def _check_predictions(self, port: int, results: KernelResults) -> None:
        if self._reference is None:
            raise MeasurementUnavailable("MLflow gave no reference predictions")
        answers = collect_predictions(port, self._emails)
        results.mismatches = count_mismatches(self._reference, answers)

    def _process_workers(self, kernel: BenchKernel, results: KernelResults) -> None:
        def workers() -> None:
            port, timing = self._serve_timed(kernel, "clf", "workers", "--workers 2")
            results.serve_workers_s = timing["first_200_s"]
            results.idle_workers = self._idle_latency(port)
            results.busy_workers = self._busy_latency(kernel, port)

        _attempt(results, "workers", workers)
