"""Tiny inline SVG charts for the dashboard: no plotting library, no round trip, no flicker.

The chart is a string of SVG set as an HTML widget's value; the front end swaps it in place.
"""

from __future__ import annotations

import html
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

HISTORY_POINTS = 60
_FRAME_COLOR = "var(--jp-border-color2, #ddd)"


@dataclass
class TrafficHistory:
    """The recent throughput and latency of one deployment, sampled by the dashboard writer."""

    throughput: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY_POINTS))
    p99_ms: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY_POINTS))
    _last_requests: int | None = None
    _last_time: float | None = None

    def add(self, requests: int, p99_ms: float | None, now: float) -> None:
        """Record a sample: total request count so far and the current p99, at time ``now``."""
        if (
            self._last_requests is not None
            and self._last_time is not None
            and now > self._last_time
        ):
            rate = max(0, requests - self._last_requests) / (now - self._last_time)
            self.throughput.append(rate)
            self.p99_ms.append(p99_ms or 0.0)
        self._last_requests = requests
        self._last_time = now


def _polyline(values: Sequence[float], width: int, height: int) -> str:
    top = max(values) or 1.0
    step = width / max(1, HISTORY_POINTS - 1)
    offset = width - step * (len(values) - 1)
    points = " ".join(
        f"{offset + i * step:.1f},{height - 2 - (v / top) * (height - 4):.1f}"
        for i, v in enumerate(values)
    )
    return points


def sparkline_svg(values: Sequence[float], *, label: str, unit: str, color: str) -> str:
    """An SVG sparkline of ``values`` (oldest first) with its latest value written beside it."""
    width, height = 120, 28
    title = html.escape(label)
    latest = f"{values[-1]:.1f} {unit}" if values else "-"
    line = ""
    if len(values) >= 2:
        line = (
            f'<polyline fill="none" stroke="{color}" stroke-width="1.5" '
            f'points="{_polyline(values, width, height)}"/>'
        )
    return (
        f'<span title="{title}" style="display:inline-flex;align-items:center;gap:4px">'
        f'<svg width="{width}" height="{height}" role="img" aria-label="{title}">'
        f'<rect width="{width}" height="{height}" fill="none" stroke="{_FRAME_COLOR}"/>'
        f"{line}</svg>"
        f'<span style="font-size:11px;min-width:64px">{html.escape(latest)}</span></span>'
    )
