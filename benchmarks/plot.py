"""throughput.png: requests/s of each server at each connection count, median with spread."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on CI machines

import matplotlib.pyplot as plt

from benchmarks.results import BenchResults


def plot_throughput(results: BenchResults, path: Path) -> None:
    """Grouped bars, one group per connection count; error bars span min..max of the runs."""
    servers = [server for server in results.servers.values() if server.load]
    connections = sorted(results.connections)
    figure, axes = plt.subplots(figsize=(9, 4.8))
    width = 0.8 / max(1, len(servers))
    for index, server in enumerate(servers):
        positions, heights, low, high = [], [], [], []
        for slot, count in enumerate(connections):
            runs = server.load.get(count)
            if runs is None:
                continue
            values = [run.requests_per_second for run in runs.runs]
            positions.append(slot + (index - (len(servers) - 1) / 2) * width)
            heights.append(runs.median_rps)
            low.append(runs.median_rps - min(values))
            high.append(max(values) - runs.median_rps)
        bars = axes.bar(positions, heights, width, yerr=[low, high], capsize=3, label=server.label)
        axes.bar_label(bars, labels=[f"{h:,.0f}" for h in heights], fontsize=7, padding=2)
    axes.set_xticks(range(len(connections)), [f"{count} connection(s)" for count in connections])
    axes.set_ylabel("requests/s (median of runs)")
    axes.set_title(
        f"One-row spam predictions over loopback, "
        f"{results.machine.get('cores (nproc)', '?')} cores, {results.date}"
    )
    if servers:
        axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
