"""Live traffic figures of one server: cheap to record, safe to read from any thread."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

_LATENCY_WINDOW = 2048  # most recent requests the percentiles are computed over
_THROUGHPUT_WINDOW_SECONDS = 10.0


class ServerMetrics:
    """Counts requests, errors and in-flight requests; keeps recent latencies.

    Every method is thread-safe: the server thread records, widgets and the deployments table
    read `snapshot()` from elsewhere. Recording costs one lock round-trip and an append.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests = 0
        self._errors = 0
        self._in_flight = 0
        self._queued = 0
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
        self._queued = queued

    def request_started(self) -> None:
        """Count one request as in flight until `request_finished` is called for it."""
        with self._lock:
            self._in_flight += 1

    def request_finished(self, status: int, latency_seconds: float) -> None:
        """Record a finished request: its HTTP status (>= 400 is an error) and its latency."""
        second = int(time.monotonic())
        with self._lock:
            self._in_flight -= 1
            self._requests += 1
            if status >= 400:
                self._errors += 1
            self._recent_latencies.append(latency_seconds)
            if self._per_second and self._per_second[-1][0] == second:
                self._per_second[-1][1] += 1
            else:
                self._per_second.append([second, 1])

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
