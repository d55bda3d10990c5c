"""``GET /metrics``: a deployment's figures in the Prometheus text format.

A view, not a second count: `ServingCollector` reads what `ServerMetrics` recorded (in a pool,
every worker's files; see `_metric_files`) when a scrape comes, plus what the served model
says about itself. Each server has its own `CollectorRegistry`: several deployments live in
one kernel, and the process-wide default registry would mix them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from jupyter_serve.server._metric_files import (
    BATCH_ROWS,
    IN_FLIGHT,
    LATENCY,
    PREDICT_CALLS,
    QUEUED,
    REQUESTS,
    bound_label,
)
from jupyter_serve.server._metrics import BATCH_ROWS_BUCKETS, LATENCY_BUCKETS

if TYPE_CHECKING:
    from jupyter_serve.server._handlers import ServingState

CONTENT_TYPE = CONTENT_TYPE_LATEST
MODEL_INFO = ("jupyter_serve_model", "The model this deployment serves.")
MODEL_LOAD_SECONDS = (
    "jupyter_serve_model_load_seconds",
    "Seconds it took to load the served model from its directory (this worker's).",
)


class ServingCollector(Collector):
    """The figures of one deployment, read at each scrape. Thread-safe (reads only)."""

    def __init__(self, state: ServingState) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        metrics = self._state.metrics
        if metrics.files is not None:
            yield from metrics.files.collect()
        else:
            yield from _families(metrics.prometheus_counts())
        yield from self._model_families()

    def _model_families(self) -> Iterator[Metric]:
        from jupyter_serve.server._open_inference_handlers import served_model_name

        served = self._state.current
        info = InfoMetricFamily(*MODEL_INFO, labels=())
        info.add_metric(
            [],
            {
                "model_uri": served.model_uri,
                "model_name": served_model_name(self._state.options.model_name, served.model_uri),
                "model_version": served.version or "",
            },
        )
        yield info
        load_seconds = getattr(served.model, "load_seconds", None)
        if isinstance(load_seconds, float):
            yield GaugeMetricFamily(*MODEL_LOAD_SECONDS, value=load_seconds)


def _families(counts: dict[str, Any]) -> Iterator[Metric]:
    requests = CounterMetricFamily(*REQUESTS, labels=("route", "code"))
    for (route, status), count in sorted(counts["by_route_and_status"].items()):
        requests.add_metric([route, str(status)], count)
    yield requests
    latency = HistogramMetricFamily(*LATENCY, labels=("route",))
    for route, (bucket_counts, total) in sorted(counts["latency_by_route"].items()):
        latency.add_metric([route], _cumulative(LATENCY_BUCKETS, bucket_counts), total)
    yield latency
    yield GaugeMetricFamily(*IN_FLIGHT, value=counts["in_flight"])
    yield GaugeMetricFamily(*QUEUED, value=counts["queued"])
    yield CounterMetricFamily(*PREDICT_CALLS, value=counts["predict_calls"])
    batch_rows = HistogramMetricFamily(*BATCH_ROWS, labels=())
    bucket_counts, total = counts["batch_rows"]
    batch_rows.add_metric([], _cumulative(BATCH_ROWS_BUCKETS, bucket_counts), total)
    yield batch_rows


def _cumulative(bounds: tuple[float, ...], counts: list[int]) -> list[tuple[str, float]]:
    buckets, running = [], 0
    for bound, count in zip((*bounds, None), counts, strict=True):
        running += count
        buckets.append((bound_label(bound), float(running)))
    return buckets


def registry_for(state: ServingState) -> CollectorRegistry:
    """A registry of this deployment's figures alone."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServingCollector(state))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry's figures now, in the Prometheus text format (`CONTENT_TYPE`)."""
    return generate_latest(registry)
