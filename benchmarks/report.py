"""RESULTS.md: every target (issues 5, 16, 18), met or not, ours vs MLflow; then the raw figures."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from benchmarks.kernel_bench import KernelResults, LatencySample
from benchmarks.recording_cost import COST_LIMIT_PERCENT, recording_cost, recording_cost_lines
from benchmarks.results import (
    ECHO,
    FLOOR,
    MLFLOW,
    OURS,
    OURS_QUIET,
    OURS_WORKERS,
    SERVER_LABELS,
    BenchResults,
    ServerResult,
)
from benchmarks.wrk import RepeatedRuns

NOT_AVAILABLE = "not available"
CPU_NOTE = (
    "Server CPU per request: user + system CPU time of the server's processes (all workers) "
    "during the run, divided by the requests answered (median of the runs). It depends much "
    "less than requests/s on other work competing for the cores (contention still inflates it "
    "somewhat), so it is the steadier figure to compare: 1000 / it is about what one fully "
    "available core would serve per second."
)
IN_KERNEL_LABEL = "jupyter-serve `%serve clf` in a kernel"


@dataclass(frozen=True)
class TargetRow:
    """One line of the targets table; ``None`` values render as "not available"."""

    measurement: str
    ours: float | None
    mlflow: float | None
    target: str
    met: bool | None
    unit: str


def _format(value: float | None, unit: str) -> str:
    if value is None:
        return NOT_AVAILABLE
    if unit == "req/s":
        return f"{value:,.0f} req/s"
    if unit == "ms":
        return f"{value:.1f} ms" if value < 100 else f"{value:,.0f} ms"
    if unit == "MB":
        return f"{value:+.1f} MB"
    if unit == "%":
        return f"{value:.1f} %"
    return f"{value:g} {unit}"


def _ratio(ours: float | None, mlflow: float | None) -> str:
    if ours is None or mlflow is None or mlflow == 0:
        return "-"
    return f"{ours / mlflow:.2f}x"


def _met(met: bool | None) -> str:
    return {True: "**met**", False: "not met", None: NOT_AVAILABLE}[met]


def _load(results: BenchResults, key: str, connections: int) -> RepeatedRuns | None:
    server = results.servers.get(key)
    return server.load.get(connections) if server else None


def _rps(runs: RepeatedRuns | None) -> float | None:
    return runs.median_rps if runs and runs.failed == 0 else None


def _at_most(value: float | None, limit: float | None) -> bool | None:
    return None if value is None or limit is None else value <= limit


def _at_least(value: float | None, limit: float | None) -> bool | None:
    return None if value is None or limit is None else value >= limit


def _scaled(factor: float, value: float | None) -> float | None:
    return None if value is None else factor * value


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def target_rows(results: BenchResults) -> list[TargetRow]:
    """The targets of issues 5, 16 and 18, each judged against this run's own figures."""
    many = max(results.connections)
    ours_rps = _rps(_load(results, OURS, many))
    echo_rps = _rps(_load(results, ECHO, many))
    workers_rps = _rps(_load(results, OURS_WORKERS, many))
    ours_single, mlflow_single = _load(results, OURS, 1), _load(results, MLFLOW, 1)
    ours_p50 = ours_single.median_p50_ms if ours_single and ours_single.failed == 0 else None
    mlflow_p50 = mlflow_single.median_p50_ms if mlflow_single else None
    mlflow_start = _ms(results.servers[MLFLOW].cold_start_s) if MLFLOW in results.servers else None
    kernel = results.kernel
    added_mb = (
        kernel.rss_after_traffic_mb - kernel.rss_before_mb
        if kernel.rss_after_traffic_mb is not None and kernel.rss_before_mb is not None
        else None
    )
    busy_p99 = kernel.busy.p99_ms if kernel.busy else None
    busy_workers_p99 = kernel.busy_workers.p99_ms if kernel.busy_workers else None
    echo_limit, workers_limit = _scaled(0.8, echo_rps), _scaled(1.6, ours_rps)
    p50_limit = _scaled(0.4, mlflow_p50)
    return [
        TargetRow(
            f"Throughput, {many} connections, 1 process",
            ours_rps,
            _rps(_load(results, MLFLOW, many)),
            f"≥ 0.8 x echo ({_format(echo_limit, 'req/s')})",
            _at_least(ours_rps, echo_limit),
            "req/s",
        ),
        TargetRow(
            "Latency p50, 1 connection",
            ours_p50,
            mlflow_p50,
            f"≤ 0.4 x MLflow ({_format(p50_limit, 'ms')})",
            _at_most(ours_p50, p50_limit),
            "ms",
        ),
        TargetRow(
            f"Throughput, {many} connections, `-w 2`",
            workers_rps,
            _rps(_load(results, MLFLOW, many)),
            f"≥ 1.6 x 1 process ({_format(workers_limit, 'req/s')})",
            _at_least(workers_rps, workers_limit),
            "req/s",
        ),
        TargetRow(
            "`%serve clf` (in memory) → first 200; MLflow: command → first 200",
            _ms(kernel.serve_in_memory_s),
            mlflow_start,
            "≤ 300 ms",
            _at_most(_ms(kernel.serve_in_memory_s), 300.0),
            "ms",
        ),
        TargetRow(
            "`%serve models:/spam/Production` → first 200, kernel has imported pandas and "
            "scikit-learn; MLflow: command → first 200",
            _ms(kernel.serve_registry_s),
            mlflow_start,
            "≤ 1,000 ms",
            _at_most(_ms(kernel.serve_registry_s), 1000.0),
            "ms",
        ),
        TargetRow(
            "`%serve models:/spam/Production` → first 200, fresh kernel (all imports included)",
            _ms(kernel.serve_registry_fresh_kernel_s),
            mlflow_start,
            "≤ 1,000 ms",
            _at_most(_ms(kernel.serve_registry_fresh_kernel_s), 1000.0),
            "ms",
        ),
        TargetRow(
            "p99 while a CPU-bound cell runs, in-kernel server",
            busy_p99,
            None,
            "≤ 20 ms",
            _at_most(busy_p99, 20.0),
            "ms",
        ),
        TargetRow(
            "p99 while a CPU-bound cell runs, `-w 2` process workers",
            busy_workers_p99,
            None,
            "≤ 10 ms",
            _at_most(busy_workers_p99, 10.0),
            "ms",
        ),
        TargetRow(
            "Kernel RSS added by `%serve` of a loaded model (after traffic)",
            added_mb,
            None,
            "≤ 15 MB",
            _at_most(added_mb, 15.0),
            "MB",
        ),
        _recording_cost_row(results, many),
    ]


def _recording_cost_row(results: BenchResults, connections: int) -> TargetRow:
    cost = recording_cost(results, connections)
    figures = (
        f": {cost.on_rps:,.0f} req/s by default, {cost.off_rps:,.0f} with "
        f"`--no-access-log --capture 0`, ratio {cost.ratio:.3f}"
        if cost
        else " (default vs `--no-access-log --capture 0`)"
    )
    cost_percent = cost.cost_percent if cost else None
    return TargetRow(
        f"Access log + capture cost at {connections} connections{figures}",
        cost_percent,
        None,
        f"≤ {COST_LIMIT_PERCENT:g} %",
        _at_most(cost_percent, COST_LIMIT_PERCENT),
        "%",
    )


def _verdict(mismatches: int | None, note: str | None, emails: int) -> str:
    if note is not None:
        return f"{NOT_AVAILABLE} ({_cell(note)})"
    if mismatches is None:
        return f"{NOT_AVAILABLE} (the server did not run: see below)"
    if mismatches == 0:
        return f"identical to MLflow's on all {emails} emails"
    return f"**{mismatches} of {emails} emails differ from MLflow's**"


def _agreement_lines(results: BenchResults) -> list[str]:
    lines = []
    for key in (OURS, OURS_QUIET, OURS_WORKERS):
        server = results.servers.get(key)
        verdict = _verdict(
            server.mismatches if server else None,
            server.agreement_note if server else None,
            results.check_emails,
        )
        lines.append(f"- {server.label if server else SERVER_LABELS[key]}: {verdict}.")
    kernel_note = results.kernel.unavailable.get("predictions")
    verdict = _verdict(results.kernel.mismatches, kernel_note, results.check_emails)
    lines.append(f"- {IN_KERNEL_LABEL}: {verdict}.")
    lines.append(
        "\nEach server is asked once with one request holding every email, and once with one "
        "request per email sent from 16 threads at once (so a batching server merges them)."
    )
    return lines


def _load_table(results: BenchResults) -> list[str]:
    lines = [
        "| server | connections | req/s (median) | req/s spread | p50 (runs' range) | p99 "
        "| failed requests | server CPU per request |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for server in results.servers.values():
        if not server.load:
            reason = server.unavailable or "not measured"
            lines.append(f"| {server.label} | - | {NOT_AVAILABLE}: {_cell(reason)} | | | | |")
        for connections, runs in sorted(server.load.items()):
            lines.append(
                f"| {server.label} | {connections} | {runs.median_rps:,.0f} | "
                f"±{runs.rps_spread_percent / 2:.1f} % | {_p50_with_range(runs)} | "
                f"{runs.median_p99_ms:.2f} ms | {runs.failed} | "
                f"{_cpu_per_request(server, connections)} |"
            )
    for connections, run in sorted(results.kernel.load.items()):
        lines.append(
            f"| {IN_KERNEL_LABEL} (1 run) | {connections} | {run.requests_per_second:,.0f} | - | "
            f"{run.p50_ms:.2f} ms | {run.p99_ms:.2f} ms | {run.failed} | "
            f"{results.kernel.cpu_ms_per_request.get(connections, 0.0):.2f} ms (whole kernel) |"
        )
    return lines


def _cpu_per_request(server: ServerResult, connections: int) -> str:
    figures = server.cpu_ms_per_request.get(connections)
    return f"{statistics.median(figures):.2f} ms" if figures else "-"


def _p50_with_range(runs: RepeatedRuns) -> str:
    p50s = [run.p50_ms for run in runs.runs]
    if len(p50s) == 1:
        return f"{p50s[0]:.2f} ms"
    return f"{runs.median_p50_ms:.2f} ms ({min(p50s):.2f}-{max(p50s):.2f})"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:300]


def _sample(sample: LatencySample | None) -> str:
    if sample is None:
        return NOT_AVAILABLE
    return f"p50 {sample.p50_ms:.2f} ms, p99 {sample.p99_ms:.2f} ms ({sample.count} requests)"


def _kernel_lines(kernel: KernelResults) -> list[str]:
    def mb(value: float | None) -> str:
        return NOT_AVAILABLE if value is None else f"{value:.1f} MB"

    lines = [
        f"- Sequential requests, kernel idle: {_sample(kernel.idle)}; with `-w 2`: "
        f"{_sample(kernel.idle_workers)}.",
        f"- Sequential requests while a pure-Python loop runs in a cell: {_sample(kernel.busy)}; "
        f"with `-w 2`: {_sample(kernel.busy_workers)}.",
        f"- Kernel RSS: {mb(kernel.rss_before_mb)} with the model loaded, "
        f"{mb(kernel.rss_after_start_mb)} once `%serve clf` answered, "
        f"{mb(kernel.rss_after_traffic_mb)} after the requests above and the wrk runs.",
        "- `%serve clf --workers 2` → first 200: "
        + (
            NOT_AVAILABLE
            if kernel.serve_workers_s is None
            else f"{kernel.serve_workers_s * 1000:.0f} ms"
        )
        + ".",
    ]
    lines += [
        f"- Not available — {name}: {_cell(reason)}" for name, reason in kernel.unavailable.items()
    ]
    return lines


def _cold_start_lines(results: BenchResults) -> list[str]:
    lines = []
    for server in results.servers.values():
        if server.key in (ECHO, FLOOR):
            continue
        figure = NOT_AVAILABLE if server.cold_start_s is None else f"{server.cold_start_s:.2f} s"
        lines.append(f"- {server.label}: {figure}")
    return lines


def render_markdown(results: BenchResults) -> str:
    """The whole RESULTS.md text for ``results``."""
    machine = ", ".join(f"{name} {value}" for name, value in results.machine.items())
    cores = results.machine.get("cores (nproc)", "?")
    lines = [
        "# jupyter-serve vs `mlflow models serve`: benchmark results",
        "",
        f"Run {results.date} by `make bench` on: {machine}.",
        "",
        f"Background load: 1-minute load average {results.load_average_start:.1f} at the start "
        f"and {results.load_average_end:.1f} at the end, on {cores} cores (above {cores}, other "
        "work competed for the CPU and every absolute figure is pessimistic; ratios within this "
        f"run stay comparable). The benchmark ran at niceness {results.niceness}.",
        "",
        'Model: `ColumnTransformer(TfidfVectorizer on "text")` + `LogisticRegression`, saved by '
        "MLflow with skops and a signature; every request is the same one-row "
        "`dataframe_split` email. wrk (1 thread) runs on the same 2 cores as the server under "
        f"test; each load case runs {results.repeats} x {results.duration_s:g} s after a warm-up; "
        "figures are medians of those runs, and the spread (half of max - min, relative to the "
        "median) shows the machine's noise.",
        "",
        "## Targets (issues 5, 16 and 18)",
        "",
        "| measurement | jupyter-serve | MLflow | ratio | target | |",
        "|---|---:|---:|---:|---|---|",
    ]
    for row in target_rows(results):
        lines.append(
            f"| {row.measurement} | {_format(row.ours, row.unit)} | "
            f"{_format(row.mlflow, row.unit) if row.mlflow is not None else '-'} | "
            f"{_ratio(row.ours, row.mlflow)} | {row.target} | {_met(row.met)} |"
        )
    lines += ["", "## Access log and capture", "", *recording_cost_lines(results)]
    lines += ["", "## Predictions", "", *_agreement_lines(results)]
    lines += ["", "## Load (wrk, loopback)", "", *_load_table(results), "", CPU_NOTE]
    lines += [
        "",
        "## Start-up: command start → first 200 on /invocations",
        "",
        *_cold_start_lines(results),
    ]
    lines += ["", "## In a real kernel", "", *_kernel_lines(results.kernel)]
    return "\n".join(lines) + "\n"


def server_summary(server: ServerResult) -> str:
    """One line for the console while the run goes on."""
    if server.unavailable:
        return f"{server.label}: {NOT_AVAILABLE} ({server.unavailable[:200]})"
    parts = [f"{server.label}: start {server.cold_start_s or 0:.2f} s"]
    for connections, runs in sorted(server.load.items()):
        parts.append(
            f"{connections} conn {runs.median_rps:,.0f} req/s p50 {runs.median_p50_ms:.2f} ms "
            f"p99 {runs.median_p99_ms:.2f} ms failed {runs.failed}"
        )
    return "; ".join(parts)
