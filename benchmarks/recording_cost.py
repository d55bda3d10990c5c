"""What the per-request recording costs: the default server (access log on stdout, sent to a
file, and the last 1,000 rows captured) against the same server with ``--no-access-log
--capture 0``, both driven in every round and in the extra pairs at 64 connections, one right
after the other.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from benchmarks.results import (
    OURS,
    OURS_QUIET,
    RECORDING_PAIR_CONNECTIONS,
    SERVER_LABELS,
    BenchResults,
)

COST_LIMIT_PERCENT = 5.0  # issues 16 and 18: access log and capture, each under 5 %


@dataclass(frozen=True)
class RecordingCost:
    """Both variants at one connection count; ``round_ratios`` are on / off, round by round."""

    connections: int
    on_rps: float
    off_rps: float
    round_ratios: tuple[float, ...]
    on_cpu_ms: float | None
    off_cpu_ms: float | None

    @property
    def ratio(self) -> float:
        """Median of the rounds' ratios: each compares two runs seconds apart, so background
        load that drifts across the run cancels out of it better than out of the medians."""
        return statistics.median(self.round_ratios)

    @property
    def cost_percent(self) -> float:
        """Throughput lost to recording, in percent (negative: the noise favoured it)."""
        return 100.0 * (1.0 - self.ratio)


def recording_cost(results: BenchResults, connections: int) -> RecordingCost | None:
    """Both variants' figures at ``connections``: the rounds' runs, and at
    `RECORDING_PAIR_CONNECTIONS` the extra pairs too. None unless both ran without a failure."""
    on, off = results.servers.get(OURS), results.servers.get(OURS_QUIET)
    on_runs = on.load.get(connections) if on else None
    off_runs = off.load.get(connections) if off else None
    if on is None or off is None or on_runs is None or off_runs is None:
        return None
    if on_runs.failed or off_runs.failed or off_runs.median_rps == 0:
        return None
    on_all, off_all = list(on_runs.runs), list(off_runs.runs)
    on_cpu = list(on.cpu_ms_per_request.get(connections, []))
    off_cpu = list(off.cpu_ms_per_request.get(connections, []))
    if connections == RECORDING_PAIR_CONNECTIONS and len(on.paired_runs) == len(off.paired_runs):
        on_all += on.paired_runs
        off_all += off.paired_runs
        on_cpu += on.paired_cpu_ms_per_request
        off_cpu += off.paired_cpu_ms_per_request
    if any(run.failed for run in on_all + off_all):
        return None
    if len(on_all) == len(off_all) and all(run.requests_per_second > 0 for run in off_all):
        ratios = tuple(
            a.requests_per_second / b.requests_per_second
            for a, b in zip(on_all, off_all, strict=True)
        )
    else:  # a run is missing, so rounds no longer pair up: compare the medians
        ratios = (on_runs.median_rps / off_runs.median_rps,)
    return RecordingCost(
        connections=connections,
        on_rps=statistics.median(run.requests_per_second for run in on_all),
        off_rps=statistics.median(run.requests_per_second for run in off_all),
        round_ratios=ratios,
        on_cpu_ms=_median(on_cpu),
        off_cpu_ms=_median(off_cpu),
    )


def _median(values: list[float] | None) -> float | None:
    return statistics.median(values) if values else None


def _cpu(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def recording_cost_lines(results: BenchResults) -> list[str]:
    """The RESULTS.md section: both variants at every connection count, and the ratio."""
    lines = [
        f"Default `{SERVER_LABELS[OURS]}` (access log on stdout, which the harness sends to a "
        "file as `> serve.log` would; last 1,000 scored rows captured) against "
        f"`{SERVER_LABELS[OURS_QUIET]}`. Every round runs both, one right after the other "
        "(which one first alternates), and so does each extra pair at "
        f"{RECORDING_PAIR_CONNECTIONS} connections; the ratio is the median of the pairs' "
        "ratios (their range in brackets), the other figures medians.",
        "",
        "| connections | pairs | default req/s | recording off req/s | ratio (pairs) | cost "
        "| server CPU per request, default / off |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for connections in sorted(results.connections):
        cost = recording_cost(results, connections)
        if cost is None:
            lines.append(f"| {connections} | not available | | | | | |")
            continue
        spread = (
            f" ({min(cost.round_ratios):.3f}-{max(cost.round_ratios):.3f})"
            if len(cost.round_ratios) > 1
            else ""
        )
        lines.append(
            f"| {connections} | {len(cost.round_ratios)} | {cost.on_rps:,.0f} | "
            f"{cost.off_rps:,.0f} | {cost.ratio:.3f}"
            f"{spread} | {cost.cost_percent:.1f} % | {_cpu(cost.on_cpu_ms)} / "
            f"{_cpu(cost.off_cpu_ms)} |"
        )
    return lines
