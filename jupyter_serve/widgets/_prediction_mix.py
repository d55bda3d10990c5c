"""The mix of a deployment's recent predictions, drawn from its captured traffic.

Class labels (strings, booleans, few distinct numbers) are counted, one bar each; many
distinct numbers (a regressor) become a histogram. Failed rows are a bar of their own in the
error colour: what the model was asked and could not answer is part of the mix.
"""

from __future__ import annotations

import html
import json
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from jupyter_serve.widgets._traffic_chart import MUTED_STYLE, TEXT_STYLE

BAR_COLOR = "var(--jp-brand-color1, #1976d2)"
ERROR_COLOR = "var(--jp-error-color1, #d32f2f)"
MOST_CLASSES = 8
HISTOGRAM_BINS = 10
ERRORS_LABEL = "errors"
_WIDTH, _LABEL_WIDTH, _ROW = 300, 110, 16


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _label(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return str(value)


def prediction_counts(
    predictions: Sequence[Any], errors: Sequence[Any]
) -> tuple[str, list[tuple[str, int]]]:
    """``("classes" | "histogram", [(label, count), ...])`` for the rows' predictions; a row
    whose error is set counts under ``"errors"`` (last)."""
    answered = [p for p, e in zip(predictions, errors, strict=True) if _is_blank(e)]
    failed = len(predictions) - len(answered)
    numbers = [float(p) for p in answered if _is_number(p)]
    kind = "classes"
    if numbers and len(numbers) == len(answered) and len(set(numbers)) > MOST_CLASSES:
        kind, bars = "histogram", _histogram(numbers)
    else:
        counted = Counter(_label(p) for p in answered).most_common()
        bars = counted[:MOST_CLASSES]
        rest = sum(count for _, count in counted[MOST_CLASSES:])
        if rest:
            bars.append((f"{len(counted) - MOST_CLASSES} others", rest))
    if failed:
        bars.append((ERRORS_LABEL, failed))
    return kind, bars


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _histogram(numbers: list[float]) -> list[tuple[str, int]]:
    low, high = min(numbers), max(numbers)
    width = (high - low) / HISTOGRAM_BINS
    counts = [0] * HISTOGRAM_BINS
    for number in numbers:
        counts[min(HISTOGRAM_BINS - 1, int((number - low) / width))] += 1
    return [
        (f"{low + i * width:.3g} \u2013 {low + (i + 1) * width:.3g}", count)
        for i, count in enumerate(counts)
    ]


def prediction_mix_svg(frame: Any) -> str:
    """Horizontal bars of the prediction mix of ``frame`` (a captured-traffic DataFrame with
    ``prediction`` and ``error`` columns), each labelled with its count."""
    if frame is None or len(frame) == 0:
        return ""
    kind, bars = prediction_counts(list(frame["prediction"]), list(frame["error"]))
    title = f"predictions of the last {len(frame)} rows" + (
        " (histogram)" if kind == "histogram" else ""
    )
    most = max(count for _, count in bars) or 1
    height = 20 + _ROW * len(bars)
    parts = [f'<text x="0" y="11" style="{MUTED_STYLE}">{html.escape(title)}</text>']
    for index, (label, count) in enumerate(bars):
        y = 18 + index * _ROW
        color = ERROR_COLOR if label == ERRORS_LABEL else BAR_COLOR
        length = (_WIDTH - _LABEL_WIDTH - 40) * count / most
        shown = label if len(label) <= 16 else label[:15] + "…"
        parts.append(
            f'<g data-label="{html.escape(label)}" data-count="{count}">'
            f"<title>{html.escape(label)}: {count}</title>"
            f'<text x="{_LABEL_WIDTH - 4}" y="{y + 10}" text-anchor="end" '
            f'style="fill:currentColor">{html.escape(shown)}</text>'
            f'<rect x="{_LABEL_WIDTH}" y="{y + 1}" width="{length:.1f}" height="{_ROW - 4}" '
            f'style="fill:{color}"/>'
            f'<text x="{_LABEL_WIDTH + length + 4:.1f}" y="{y + 10}" '
            f'style="fill:currentColor">{count}</text></g>'
        )
    return (
        f'<svg class="jupyter-serve-prediction-mix" width="{_WIDTH}" height="{height}" '
        f'role="img" aria-label="{html.escape(title)}" '
        f'style="{TEXT_STYLE};font-family:var(--jp-ui-font-family, sans-serif)">'
        f"{''.join(parts)}</svg>"
    )
