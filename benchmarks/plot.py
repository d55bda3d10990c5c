"""throughput.png: requests/s per server and connection count, and p50 latency at 1 connection."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on CI machines

import matplotlib.pyplot as plt

from benchmarks.report import IN_KERNEL_LABEL
from benchmarks.results import BenchResults


@dataclass(frozen=True)
class _Series:
    label: str
    # connections -> (median, lowest, highest) requests/s, and median p50 in ms
    rps: dict[int, tuple[float, float, float]]
    p50_ms: dict[int, float]


def _series(results: BenchResults) -> list[_Series]:
    series = []
    for server in results.servers.values():
        if not server.load:
            continue
        rps = {
            count: (
                runs.median_rps,
                min(run.requests_per_second for run in runs.runs),
                max(run.requests_per_second for run in runs.runs),
            )
            for count, runs in server.load.items()
        }
        p50 = {count: runs.median_p50_ms for count, runs in server.load.items()}
        series.append(_Series(server.label, rps, p50))
    kernel_load = results.kernel.load
    if kernel_load:
        rps = {c: (r.requests_per_second,) * 3 for c, r in kernel_load.items()}
        series.append(
            _Series(
                IN_KERNEL_LABEL.replace("`", ""), rps, {c: r.p50_ms for c, r in kernel_load.items()}
            )
        )
    return series


def plot_throughput(results: BenchResults, path: Path) -> None:
    """Grouped bars (error bars span the runs' min..max) and a p50 latency panel."""
    series = _series(results)
    connections = sorted(results.connections)
    figure, (left, right) = plt.subplots(
        1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [2, 1]}
    )
    width = 0.8 / max(1, len(series))
    for index, one in enumerate(series):
        offset = (index - (len(series) - 1) / 2) * width
        slots = [slot for slot, count in enumerate(connections) if count in one.rps]
        figures = [one.rps[connections[slot]] for slot in slots]
        bars = left.bar(
            [slot + offset for slot in slots],
            [median for median, _, _ in figures],
            width,
            yerr=[
                [median - low for median, low, _ in figures],
                [high - median for median, _, high in figures],
            ],
            capsize=3,
            label=one.label,
            color=f"C{index}",
        )
        left.bar_label(bars, labels=[f"{m:,.0f}" for m, _, _ in figures], fontsize=7, padding=2)
    left.set_xticks(range(len(connections)), [f"{count} connection(s)" for count in connections])
    left.set_ylabel("requests/s (median of runs)")
    left.set_title("Throughput")
    if series:
        left.legend(fontsize=8)
    single = [(i, one.label, one.p50_ms[1]) for i, one in enumerate(series) if 1 in one.p50_ms]
    bars = right.barh(
        [label for _, label, _ in single],
        [p50 for _, _, p50 in single],
        color=[f"C{index}" for index, _, _ in single],
    )
    right.bar_label(bars, labels=[f"{p50:.2f} ms" for _, _, p50 in single], fontsize=7, padding=2)
    right.invert_yaxis()
    right.tick_params(axis="y", labelsize=7)
    right.set_xlabel("p50 latency at 1 connection, ms")
    right.set_title("Latency")
    figure.suptitle(
        f"One-row spam predictions over loopback, "
        f"{results.machine.get('cores (nproc)', '?')} cores, {results.date}"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
