"""Live traffic figures of one server: cheap to record, safe to read from any thread.

The one recording path of a server's traffic: the widgets read `ServerMetrics.snapshot()`,
``GET /metrics`` reads the same counts through `_prometheus.ServingCollector`. Recording is
plain integer arithmetic under one lock (a Prometheus client metric object costs several
times more per request); in a worker of a pool the counts are also written to the pool's
shared metrics directory, in prometheus_client's multiprocess file format, so that one scrape
sums every worker.
"""

from __future__ import annotations

import os
import re
import threading
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Sequence
from typing import Any

from jupyter_serve.server._metric_files import METRICS_DIR_ENV, MetricFiles

_LATENCY_WINDOW = 2048  # most recent requests the percentiles are computed over
_THROUGHPUT_WINDOW_SECONDS = 10.0
# Upper bounds (seconds) of the request latency histogram: a batched request takes ~1 ms.
LATENCY_BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
LATENCY_BUCKETS += (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Upper bounds of the rows-per-predict-call histogram.
BATCH_ROWS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 65536)
_EXACT_ROUTES = frozenset(
    {
        "/invocations", "/ping", "/health", "/version", "/metrics", "/openapi.json", "/docs",
        "/v2/health/live", "/v2/health/ready", "/v2", "/-/jupyter-serve/stop",
    }
)  # fmt: skip
_MODEL_PATH = re.compile(r"/v2/models/[^/]+(?:/versions/[^/]+)?(/ready|/infer)?/?")
UNMATCHED_ROUTE = "unmatched"


def route_label(path: str) -> str:
    """The route template a request path belongs to (``/v2/models/{model_name}/infer``), or
    ``"unmatched"``: a bounded set of labels, whatever paths clients send."""
    if path == "/invocations":  # the hot path, first
        return path
    path = path.partition("?")[0]
    if path in _EXACT_ROUTES:
        return path
    if path == "/v2/":
        return "/v2"
    if path.startswith("/docs/"):
        return "/docs/{asset}"
    match = _MODEL_PATH.fullmatch(path)
    if match is not None:
        return "/v2/models/{model_name}" + (match.group(1) or "")
    return UNMATCHED_ROUTE


def input_rows(data: Any) -> int:
    """Rows in one request's prepared model input (a DataFrame, array, `PlainColumns`, or a
    mapping of named tensors); 1 for anything without a length."""
    if isinstance(data, dict):
        data = next(iter(data.values()), None)
    if getattr(data, "ndim", 1) == 0:
        return 1
    try:
        return len(data)
    except TypeError:
        return 1


class Histogram:
    """Counts per bucket (not cumulative; the last one is +Inf) and the sum of observations.
    Not thread-safe: `ServerMetrics` holds its lock around it."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> int:
        """Count ``value``; returns the index of its bucket."""
        index = bisect_left(self.bounds, value)
        self.counts[index] += 1
        self.total += value
        return index


class ServerMetrics:
    """Counts requests, errors and in-flight requests; keeps recent latencies.

    Every method is thread-safe: the server thread records, widgets and the deployments table
    read `snapshot()` from elsewhere. Recording costs one lock round-trip and an append.
    """

    def __init__(self, metrics_dir: str | None = None) -> None:
        """``metrics_dir``: a pool's shared directory to write the counts to as well
        (default: the ``JUPYTER_SERVE_METRICS_DIR`` environment variable a pool gives its
        workers; none in a kernel)."""
        self._lock = threading.Lock()
        self._requests = 0
        self._errors = 0
        self._in_flight = 0
        self._queued = 0
        self._by_route_and_status: dict[tuple[str, int], int] = {}
        self._latency_by_route: dict[str, Histogram] = {}
        self._predict_calls = 0
        self._batch_rows = Histogram(BATCH_ROWS_BUCKETS)
        directory = metrics_dir if metrics_dir is not None else os.environ.get(METRICS_DIR_ENV)
        self.files = MetricFiles(directory) if directory else None
        # (finish time from time.monotonic(), latency in seconds) of recent requests
        self._recent_latencies: deque[float] = deque(maxlen=_LATENCY_WINDOW)
        # [whole second of time.monotonic(), requests finished in it], for the throughput
        self._per_second: deque[list[int]] = deque(maxlen=int(_THROUGHPUT_WINDOW_SECONDS) + 2)
        self.started_at = time.time()

    @property
    def in_flight(self) -> int:
        """Requests received and not yet answered."""
        return self._in_flight

    def set_queued(self, queued: int) -> None:
        """Record how many requests now wait for a prediction thread."""
        changed, self._queued = queued != self._queued, queued
        if changed and self.files is not None:  # the batcher reports it twice per request
            with self._lock:
                self.files.set_queued(queued)

    def request_started(self) -> None:
        """Count one request as in flight until `request_finished` is called for it."""
        with self._lock:
            self._in_flight += 1
            if self.files is not None:
                self.files.set_in_flight(self._in_flight)

    def request_finished(
        self, status: int, latency_seconds: float, path: str = "/invocations"
    ) -> None:
        """Record a finished request: its HTTP status (>= 400 is an error), its latency, and
        the path it asked for (counted by route)."""
        route = route_label(path)
        key = (route, status)
        second = int(time.monotonic())
        with self._lock:
            self._in_flight -= 1
            self._requests += 1
            if status >= 400:
                self._errors += 1
            count = self._by_route_and_status.get(key, 0) + 1
            self._by_route_and_status[key] = count
            latency = self._latency_by_route.get(route)
            if latency is None:
                latency = self._latency_by_route[route] = Histogram(LATENCY_BUCKETS)
            bucket = latency.observe(latency_seconds)
            self._recent_latencies.append(latency_seconds)
            if self._per_second and self._per_second[-1][0] == second:
                self._per_second[-1][1] += 1
            else:
                self._per_second.append([second, 1])
            if self.files is not None:
                self.files.request_finished(key, count, self._in_flight, latency, bucket)

    def predict_started(self, inputs: Sequence[Any]) -> None:
        """Count one predict call on ``inputs`` (the prepared inputs of the requests merged
        into it) and its rows. Called on the server's event loop."""
        rows = sum(input_rows(data) for data in inputs)
        with self._lock:
            self._predict_calls += 1
            bucket = self._batch_rows.observe(rows)
            if self.files is not None:
                self.files.predict_started(self._predict_calls, self._batch_rows, bucket)

    def prometheus_counts(self) -> dict[str, Any]:
        """A consistent copy of the counts `GET /metrics` exposes: ``by_route_and_status``,
        ``latency_by_route`` ({route: (bucket counts, sum)}), ``in_flight``, ``queued``,
        ``predict_calls``, ``batch_rows`` ((bucket counts, sum))."""
        with self._lock:
            return {
                "by_route_and_status": dict(self._by_route_and_status),
                "latency_by_route": {
                    route: (list(h.counts), h.total) for route, h in self._latency_by_route.items()
                },
                "in_flight": self._in_flight,
                "queued": self._queued,
                "predict_calls": self._predict_calls,
                "batch_rows": (list(self._batch_rows.counts), self._batch_rows.total),
            }

    def snapshot(self) -> dict[str, Any]:
        """The figures now: ``requests``, ``errors``, ``in_flight``, ``queued`` (waiting for a
        prediction thread), ``latency_ms`` with
        ``p50``/``p90``/``p99`` over the last 2048 requests (None before the first),
        ``requests_per_second`` over the last 10 s, and ``started_at`` (epoch seconds)."""
        window_start = time.monotonic() - _THROUGHPUT_WINDOW_SECONDS
        with self._lock:
            latencies = sorted(self._recent_latencies)
            in_window = sum(count for second, count in self._per_second if second >= window_start)
            requests, errors, in_flight = self._requests, self._errors, self._in_flight
        # Before the server has run for a whole window, divide by the time it has run.
        elapsed = min(_THROUGHPUT_WINDOW_SECONDS, max(time.time() - self.started_at, 1e-3))
        return {
            "requests": requests,
            "errors": errors,
            "in_flight": in_flight,
            "queued": self._queued,
            "latency_ms": {
                "p50": _percentile_ms(latencies, 0.50),
                "p90": _percentile_ms(latencies, 0.90),
                "p99": _percentile_ms(latencies, 0.99),
            },
            "requests_per_second": round(in_window / elapsed, 3),
            "started_at": self.started_at,
        }


def _percentile_ms(sorted_seconds: list[float], fraction: float) -> float | None:
    if not sorted_seconds:
        return None
    index = min(len(sorted_seconds) - 1, int(fraction * len(sorted_seconds)))
    return round(sorted_seconds[index] * 1000.0, 3)
