"""The dashboard's traffic chart: requests per second and p50/p99 latency over the last minutes.

A string of inline SVG set as an HTML widget's value, so it renders wherever ipywidgets do
(JupyterLab, Notebook 7, VS Code) with no front-end package of ours. Every colour is a
JupyterLab CSS variable (with a fallback for other front ends) or ``currentColor``, so the
chart follows the light and dark themes.
"""

from __future__ import annotations

import html
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

WINDOW_SECONDS = 300.0
MINUS = "\u2212"
MIN_SAMPLE_SECONDS = 1.0
TEXT_STYLE = "color:var(--jp-ui-font-color1, currentColor);font-size:10px"
GRID_STYLE = "stroke:var(--jp-border-color2, #8884);stroke-width:1"
MUTED_STYLE = "fill:var(--jp-ui-font-color2, currentColor)"
RATE_COLOR = "var(--jp-brand-color1, #1976d2)"
P50_COLOR = "var(--jp-success-color1, #388e3c)"
P99_COLOR = "var(--jp-warn-color1, #f57c00)"


@dataclass(frozen=True)
class TrafficSample:
    """The figures of one deployment at one moment (epoch seconds)."""

    time: float
    requests_per_second: float
    p50_ms: float | None
    p99_ms: float | None


class TrafficHistory:
    """The recent traffic of one deployment: at most one sample a second, the last five minutes.

    The rate is the growth of the server's request count between two samples, so it is exact
    for the interval, not smoothed over the server's ten-second window. Not thread-safe: one
    dashboard writer owns it.
    """

    def __init__(self, window_seconds: float = WINDOW_SECONDS) -> None:
        self.window_seconds = window_seconds
        self.samples: deque[TrafficSample] = deque()
        self._last: tuple[float, int] | None = None

    def add(self, metrics: Mapping[str, Any], now: float) -> bool:
        """Record the server's ``metrics`` snapshot taken at ``now``; returns whether a sample
        was added (not when the last one is under a second old)."""
        requests = int(metrics.get("requests") or 0)
        if self._last is not None and now - self._last[0] < MIN_SAMPLE_SECONDS:
            return False
        latency = metrics.get("latency_ms") or {}
        added = False
        if self._last is not None:
            last_time, last_requests = self._last
            # a restarted server counts from zero again: no negative rate
            rate = max(0, requests - last_requests) / (now - last_time)
            self.samples.append(TrafficSample(now, rate, _ms(latency, "p50"), _ms(latency, "p99")))
            added = True
        self._last = (now, requests)
        while self.samples and self.samples[0].time < now - self.window_seconds:
            self.samples.popleft()
        return added


def _ms(latency: Mapping[str, Any], key: str) -> float | None:
    value = latency.get(key)
    return float(value) if isinstance(value, (int, float)) else None


def nice_ticks(top: float, most: int = 4) -> list[float]:
    """Round tick values from 0 to at least ``top`` (1, 2 or 5 times a power of ten apart)."""
    if not math.isfinite(top) or top <= 0:
        top = 1.0
    raw = top / most
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    count = math.ceil(top / step - 1e-9)
    return [round(i * step, 10) for i in range(count + 1)]


def _tick_label(value: float) -> str:
    return f"{value:g}" if value < 1000 else f"{value / 1000:g}k"


def _time_span(samples: Sequence[TrafficSample]) -> float:
    """The visible span: one minute at first, growing by minutes up to the window."""
    if len(samples) < 2:
        return 60.0
    span = samples[-1].time - samples[0].time
    return float(min(WINDOW_SECONDS, 60 * max(1, math.ceil(span / 60))))


@dataclass(frozen=True)
class _Panel:
    title: str
    top: int
    height: int
    series: list[tuple[str, str, Callable[[TrafficSample], float | None]]]


_LEFT, _RIGHT, _WIDTH = 40, 8, 420


def _panel_svg(panel: _Panel, samples: Sequence[TrafficSample], span: float) -> str:
    now = samples[-1].time if samples else 0.0
    plot_width = _WIDTH - _LEFT - _RIGHT
    values = [v for _, _, get in panel.series for s in samples if (v := get(s)) is not None]
    ticks = nice_ticks(max(values, default=0.0))
    top_value = ticks[-1]
    bottom = panel.top + panel.height

    def y(value: float) -> float:
        return bottom - value / top_value * panel.height

    def x(time: float) -> float:
        return _LEFT + plot_width * (1 - (now - time) / span)

    parts = [
        f'<text x="{_LEFT}" y="{panel.top - 4}" style="{MUTED_STYLE}">'
        f"{html.escape(panel.title)}</text>"
    ]
    for tick in ticks:
        parts.append(
            f'<line x1="{_LEFT}" x2="{_WIDTH - _RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            f'style="{GRID_STYLE}"/>'
            f'<text x="{_LEFT - 4}" y="{y(tick) + 3:.1f}" text-anchor="end" '
            f'style="fill:currentColor">{_tick_label(tick)}</text>'
        )
    for name, color, get in panel.series:
        points = [(s.time, v) for s in samples if (v := get(s)) is not None]
        if len(points) < 2:
            continue
        coordinates = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
        parts.append(
            f'<polyline data-series="{html.escape(name)}" points="{coordinates}" '
            f'style="fill:none;stroke:{color};stroke-width:1.5"/>'
        )
    return "".join(parts)


def _time_axis(span: float, y: int) -> str:
    plot_width = _WIDTH - _LEFT - _RIGHT
    step = 60.0 if span > 120 else 15.0 if span <= 60 else 30.0
    parts = []
    ago = 0.0
    while ago <= span + 1e-9:
        x = _LEFT + plot_width * (1 - ago / span)
        label = f"{MINUS}{ago / 60:g} min" if ago >= 60 else f"{MINUS}{ago:g} s"
        label = "now" if ago == 0 else label
        anchor = "end" if ago == 0 else "middle"
        parts.append(
            f'<text x="{x:.1f}" y="{y}" text-anchor="{anchor}" style="fill:currentColor">'
            f"{label}</text>"
        )
        ago += step
    return "".join(parts)


def _legend(entries: Sequence[tuple[str, str, str]], y: int) -> str:
    parts, x = [], _LEFT
    for name, color, value in entries:
        parts.append(
            f'<rect x="{x}" y="{y - 8}" width="10" height="3" style="fill:{color}"/>'
            f'<text x="{x + 14}" y="{y - 4}" style="fill:currentColor">'
            f"{html.escape(name)} {html.escape(value)}</text>"
        )
        x += 14 + 7 * (len(name) + len(value) + 1) + 12
    return "".join(parts)


def _latest(value: float | None, unit: str) -> str:
    return f"{value:.3g} {unit}".strip() if value is not None else "\u2013"


def traffic_chart_svg(samples: Sequence[TrafficSample]) -> str:
    """The chart of ``samples`` (oldest first): requests/s above, p50 and p99 latency below,
    a shared time axis ("-2 min" ... "now"), y ticks on round values, and a legend with the
    latest figures. Before two samples exist it says so instead of drawing empty axes."""
    rate, latency = RATE_PANEL, LATENCY_PANEL
    height = 166
    entries = [
        (name, color, unit, get(samples[-1]) if samples else None)
        for panel, unit in ((rate, ""), (latency, "ms"))
        for name, color, get in panel.series
    ]
    legend = _legend([(name, color, _latest(v, unit)) for name, color, unit, v in entries], 12)
    if len(samples) < 2:
        body = (
            f'<text x="{_LEFT}" y="70" style="{MUTED_STYLE}">'
            "collecting traffic figures (one sample a second)…</text>"
        )
    else:
        span = _time_span(samples)
        body = (
            _panel_svg(rate, samples, span)
            + _panel_svg(latency, samples, span)
            + _time_axis(span, height - 6)
        )
    return (
        f'<svg class="jupyter-serve-traffic-chart" width="{_WIDTH}" height="{height}" '
        f'viewBox="0 0 {_WIDTH} {height}" role="img" '
        f'aria-label="requests per second and p50/p99 latency over the last minutes" '
        f'style="{TEXT_STYLE};font-family:var(--jp-ui-font-family, sans-serif)">'
        f"{legend}{body}</svg>"
    )


def _rate(sample: TrafficSample) -> float:
    return sample.requests_per_second


def _p50(sample: TrafficSample) -> float | None:
    return sample.p50_ms


def _p99(sample: TrafficSample) -> float | None:
    return sample.p99_ms


RATE_PANEL = _Panel("requests / s", 32, 44, [("requests/s", RATE_COLOR, _rate)])
LATENCY_PANEL = _Panel(
    "latency (ms)", 100, 44, [("p50", P50_COLOR, _p50), ("p99", P99_COLOR, _p99)]
)
