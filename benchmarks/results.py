"""What one `make bench` run measured, as plain data for the report and the plot."""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks.kernel_bench import KernelResults
from benchmarks.wrk import RepeatedRuns, WrkRun

MLFLOW = "mlflow"
OURS = "ours"
OURS_WORKERS = "ours_w2"
# The default server with the per-request recording off: what the access log and capture cost.
OURS_QUIET = "ours_quiet"
# A 5 % cost is within one run's noise on a shared 2-core machine (rounds of the same server
# differ by 10-20 %), so the two variants get this many extra pairs of runs at this many
# connections, besides the rounds every server gets.
RECORDING_PAIR_CONNECTIONS = 64
ECHO = "echo"
FLOOR = "floor"

SERVER_LABELS = {
    MLFLOW: "mlflow models serve (1 worker)",
    OURS: "jupyter-serve (1 process)",
    OURS_QUIET: "jupyter-serve --no-access-log --capture 0",
    OURS_WORKERS: "jupyter-serve -w 2",
    ECHO: "bare Tornado JSON echo",
    FLOOR: "jupyter-serve, model that does no work",
}


@dataclass
class ServerResult:
    """One server under wrk: cold start, agreement with MLflow, and the load cases."""

    key: str
    cold_start_s: float | None = None
    mismatches: int | None = None
    agreement_note: str | None = None
    load: dict[int, RepeatedRuns] = field(default_factory=dict)
    # connections -> CPU milliseconds the server's processes used per request, one per run
    cpu_ms_per_request: dict[int, list[float]] = field(default_factory=dict)
    # The recording cost's extra pairs (`OURS` and `OURS_QUIET` only): runs at
    # `RECORDING_PAIR_CONNECTIONS`, each right before or after its twin's, and their CPU.
    paired_runs: list[WrkRun] = field(default_factory=list)
    paired_cpu_ms_per_request: list[float] = field(default_factory=list)
    unavailable: str | None = None

    @property
    def label(self) -> str:
        return SERVER_LABELS.get(self.key, self.key)


@dataclass
class BenchResults:
    """The whole run: the machine, each server, the kernel scenarios and the settings used."""

    date: str
    machine: dict[str, str]
    servers: dict[str, ServerResult]
    kernel: KernelResults
    check_emails: int
    duration_s: float
    repeats: int
    connections: tuple[int, ...]
    load_average_start: float = 0.0
    load_average_end: float = 0.0
    niceness: int = 0
