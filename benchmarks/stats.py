"""Percentiles of latency samples, without numpy (the harness stays light)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, linear between ranks (numpy's default).

    ValueError on an empty sample: a latency figure made of nothing must not look like zero.
    """
    if not values:
        raise ValueError("percentile of an empty sample: no request was measured")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be within 0..100, got {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
