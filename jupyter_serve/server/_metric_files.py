"""A worker's counts in its pool's shared metrics directory, so one scrape sums every worker.

With ``-w N`` a scrape lands on one worker, which must answer for all of them. Each worker
writes its counts, as they change, to its own files in the pool's directory, in
prometheus_client's multiprocess format (``counter_<pid>.db``, ``histogram_<pid>.db``,
``gauge_livesum_<pid>.db``, one memory-mapped value per metric and labels); the worker that
is scraped reads every file with prometheus_client's ``MultiProcessCollector``. A write is one
packed double into the mapped file: no system call, so the hot path keeps its speed. The
files of a worker that died stay (its counts still count); the pool drops its gauges.

prometheus_client's own metric objects do the same writes, at several times the cost per
request: `ServerMetrics` counts, and hands the new values to `MetricFiles`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from jupyter_serve.server._metrics import Histogram

# The pool's metrics directory, set in its workers' environment.
METRICS_DIR_ENV = "JUPYTER_SERVE_METRICS_DIR"
# prometheus_client's own variable: metric objects the model's code creates in a worker
# then write to the same directory, and are summed in the same scrape.
PROMETHEUS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = ("jupyter_serve_requests", "Requests answered, by route and HTTP status code.")
LATENCY = (
    "jupyter_serve_request_duration_seconds",
    "Time from a request's headers to its answer, in seconds, by route.",
)
IN_FLIGHT = ("jupyter_serve_requests_in_flight", "Requests received and not yet answered.")
QUEUED = ("jupyter_serve_requests_queued", "Requests waiting for a prediction thread.")
PREDICT_CALLS = (
    "jupyter_serve_predict_calls",
    "Predict calls made on the model (requests merged into one call count once).",
)
BATCH_ROWS = ("jupyter_serve_predict_batch_rows", "Input rows per predict call.")


def bound_label(bound: float | None) -> str:
    """The ``le`` label of a histogram bucket's upper bound (None: the +Inf bucket), spelled
    as prometheus_client spells it."""
    from prometheus_client.utils import floatToGoString

    return "+Inf" if bound is None else str(floatToGoString(bound))  # type: ignore[no-untyped-call]


class _ValueFile(Protocol):
    def write_value(self, key: str, value: float, timestamp: float) -> None: ...


def _open_value_file(path: str) -> _ValueFile:
    from prometheus_client.mmap_dict import MmapedDict

    opened: _ValueFile = MmapedDict(path)  # type: ignore[no-untyped-call]
    return opened


class MetricFiles:
    """This process's files in a pool's metrics directory. Not thread-safe: `ServerMetrics`
    calls it under its lock."""

    def __init__(self, directory: str) -> None:
        from prometheus_client.mmap_dict import mmap_key

        self.directory = directory
        self._key = mmap_key
        pid = os.getpid()
        self._counters = _open_value_file(os.path.join(directory, f"counter_{pid}.db"))
        self._histograms = _open_value_file(os.path.join(directory, f"histogram_{pid}.db"))
        self._gauges = _open_value_file(os.path.join(directory, f"gauge_livesum_{pid}.db"))
        self._request_keys: dict[tuple[str, int], str] = {}
        self._latency_keys: dict[str, tuple[list[str], str]] = {}
        self._in_flight_key = self._sample_key(IN_FLIGHT, "", {})
        self._queued_key = self._sample_key(QUEUED, "", {})
        self._predict_calls_key = self._sample_key(PREDICT_CALLS, "_total", {})
        self._batch_keys: tuple[list[str], str] | None = None
        for key in (self._in_flight_key, self._queued_key):
            self._gauges.write_value(key, 0.0, 0.0)
        self._counters.write_value(self._predict_calls_key, 0.0, 0.0)

    def _sample_key(self, metric: tuple[str, str], suffix: str, labels: dict[str, str]) -> str:
        name, help_text = metric
        return self._key(name, name + suffix, list(labels), list(labels.values()), help_text)

    def _histogram_keys(
        self, metric: tuple[str, str], labels: dict[str, str], bounds: Iterable[float]
    ) -> tuple[list[str], str]:
        buckets = [
            self._sample_key(metric, "_bucket", {**labels, "le": bound_label(bound)})
            for bound in (*bounds, None)
        ]
        return buckets, self._sample_key(metric, "_sum", labels)

    def set_in_flight(self, in_flight: int) -> None:
        self._gauges.write_value(self._in_flight_key, float(in_flight), 0.0)

    def set_queued(self, queued: int) -> None:
        self._gauges.write_value(self._queued_key, float(queued), 0.0)

    def request_finished(
        self, key: tuple[str, int], count: int, in_flight: int, latency: Histogram, bucket: int
    ) -> None:
        """Write the new count of requests of ``key`` (route, status), the in-flight gauge,
        and bucket ``bucket`` and the sum of the route's ``latency`` histogram."""
        request_key = self._request_keys.get(key)
        if request_key is None:
            labels = {"route": key[0], "code": str(key[1])}
            request_key = self._request_keys[key] = self._sample_key(REQUESTS, "_total", labels)
        self._counters.write_value(request_key, float(count), 0.0)
        self.set_in_flight(in_flight)
        route = key[0]
        latency_keys = self._latency_keys.get(route)
        if latency_keys is None:
            latency_keys = self._histogram_keys(LATENCY, {"route": route}, latency.bounds)
            self._latency_keys[route] = latency_keys
            self._write_histogram(latency_keys, latency)
        else:
            self._histograms.write_value(
                latency_keys[0][bucket], float(latency.counts[bucket]), 0.0
            )
            self._histograms.write_value(latency_keys[1], latency.total, 0.0)

    def predict_started(self, calls: int, rows: Histogram, bucket: int) -> None:
        self._counters.write_value(self._predict_calls_key, float(calls), 0.0)
        if self._batch_keys is None:
            self._batch_keys = self._histogram_keys(BATCH_ROWS, {}, rows.bounds)
            self._write_histogram(self._batch_keys, rows)
        else:
            self._histograms.write_value(
                self._batch_keys[0][bucket], float(rows.counts[bucket]), 0.0
            )
            self._histograms.write_value(self._batch_keys[1], rows.total, 0.0)

    def _write_histogram(self, keys: tuple[list[str], str], histogram: Histogram) -> None:
        for key, count in zip(keys[0], histogram.counts, strict=True):
            self._histograms.write_value(key, float(count), 0.0)
        self._histograms.write_value(keys[1], histogram.total, 0.0)

    def collect(self) -> Iterable[Metric]:
        """Every worker's metrics in the directory, summed (prometheus_client's reading of
        its multiprocess files)."""
        from prometheus_client.multiprocess import MultiProcessCollector

        collector: Any = MultiProcessCollector(None, self.directory)  # type: ignore[no-untyped-call]
        metrics: Iterable[Metric] = collector.collect()
        return metrics


def create_metrics_dir() -> str:
    """A new private directory for one pool's metric files; `remove_metrics_dir` it when the
    pool stops."""
    return tempfile.mkdtemp(prefix="jupyter-serve-metrics-")


def worker_environment(directory: str) -> dict[str, str]:
    """The environment of a pool's worker process: this one's, plus the metrics directory."""
    return {**os.environ, METRICS_DIR_ENV: directory, PROMETHEUS_DIR_ENV: directory}


def forget_worker(directory: str, pid: int) -> None:
    """Drop the gauges (in flight, queued) of a worker that exited; its counts stay."""
    from prometheus_client.multiprocess import mark_process_dead

    mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


def remove_metrics_dir(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)
