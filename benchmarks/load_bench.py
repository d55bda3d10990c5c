"""Every server under wrk, interleaved: round after round, each server gets the same case.

All servers start first (one at a time, so each cold start is timed alone; an idle server
costs no CPU), then each round runs every (connections, server) case back to back. Background
load on a shared machine then hits every server alike, and the medians stay comparable.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.agreement import collect_predictions, count_mismatches
from benchmarks.outcome import MeasurementUnavailable
from benchmarks.results import (
    ECHO,
    FLOOR,
    MLFLOW,
    OURS,
    OURS_QUIET,
    OURS_WORKERS,
    RECORDING_PAIR_CONNECTIONS,
    ServerResult,
)
from benchmarks.servers import (
    RunningServer,
    free_port,
    process_tree_cpu_seconds,
    running_server,
)
from benchmarks.wrk import RepeatedRuns, WrkRun, run_wrk

CONNECTIONS = (1, 64)
WARM_UP_S = 3.0


def server_commands(mlflow_python: Path, model_dir: Path, port: int) -> dict[str, list[str]]:
    """The command line of each server under test, all on 127.0.0.1:``port``."""
    ours = str(Path(sys.executable).parent / "jupyter-serve")
    ours_base = [ours, "models", "serve", "-m", str(model_dir), "-p", str(port)]
    return {
        MLFLOW: [
            str(mlflow_python.parent / "mlflow"),
            *("models", "serve", "-m", str(model_dir), "--env-manager", "local"),
            *("-p", str(port), "-h", "127.0.0.1", "-w", "1"),
        ],
        # Default options: access log on stdout (the harness sends it to a file, as
        # `> serve.log` would) and the last 1,000 rows captured.
        OURS: ours_base,
        OURS_QUIET: [*ours_base, "--no-access-log", "--capture", "0"],
        OURS_WORKERS: [*ours_base, "-w", "2"],
        ECHO: [sys.executable, "-m", "benchmarks.echo_server", str(port)],
        FLOOR: [sys.executable, "-m", "benchmarks.floor_server", str(port)],
    }


def round_order(
    live: dict[str, RunningServer], round_number: int
) -> list[tuple[str, RunningServer]]:
    """The servers in the order round ``round_number`` (from 1) drives them: reversed every
    other round, so that no server always follows the same one (a server that just took 64
    connections may still be answering its backlog while the next one is measured)."""
    order = list(live.items())
    return order if round_number % 2 else order[::-1]


class LoadBenchmark:
    """Start, check, warm up and drive the servers; ``run()`` never raises for a missing one."""

    def __init__(
        self,
        mlflow_python: Path,
        work_dir: Path,
        duration_s: float,
        repeats: int,
        recording_pairs: int = 0,
    ):
        self._mlflow_python = mlflow_python
        self._work_dir = work_dir
        self._model_dir = work_dir / "model"
        self._payload_file = work_dir / "payload.json"
        self._body = self._payload_file.read_bytes()
        self._emails: list[str] = json.loads((work_dir / "check_emails.json").read_text())
        self._duration_s = duration_s
        self._repeats = repeats
        self._recording_pairs = recording_pairs
        self._reference: list[Any] | None = None

    @property
    def body(self) -> bytes:
        """The one-row request every load test sends."""
        return self._body

    @property
    def reference(self) -> list[Any] | None:
        """MLflow's predictions of the check emails, once MLflow answered them."""
        return self._reference

    @property
    def check_emails(self) -> int:
        return len(self._emails)

    def run(self, keys: list[str], log: Callable[[str], None] = print) -> dict[str, ServerResult]:
        """Measure the servers named by ``keys`` (MLflow first: it is the reference)."""
        results = {key: ServerResult(key=key) for key in keys}
        with contextlib.ExitStack() as stack:
            live: dict[str, RunningServer] = {}
            for key in keys:
                try:
                    live[key] = stack.enter_context(self._start(key))
                    results[key].cold_start_s = live[key].cold_start_s
                    self._check_predictions(results[key], live[key].port)
                    run_wrk(live[key].url, self._payload_file, connections=64, duration_s=WARM_UP_S)
                except MeasurementUnavailable as error:
                    results[key].unavailable = str(error)
                    live.pop(key, None)
                if results[key].unavailable:
                    log(f"{key}: not available: {results[key].unavailable}")
                else:
                    log(f"{key}: answered its first 200 after {results[key].cold_start_s:.2f} s")
            runs = self._drive(live, results, log)
            if OURS in live and OURS_QUIET in live:
                self._drive_recording_pairs(live[OURS], live[OURS_QUIET], results, log)
        for (key, connections), key_runs in runs.items():
            if key_runs:
                results[key].load[connections] = RepeatedRuns(connections, tuple(key_runs))
        return results

    def _drive(
        self,
        live: dict[str, RunningServer],
        results: dict[str, ServerResult],
        log: Callable[[str], None],
    ) -> dict[tuple[str, int], list[WrkRun]]:
        runs: dict[tuple[str, int], list[WrkRun]] = {
            (key, connections): [] for key in live for connections in CONNECTIONS
        }
        for round_number in range(1, self._repeats + 1):
            for connections in CONNECTIONS:
                for key, server in round_order(live, round_number):
                    measured = self._measure(
                        key, server, connections, results, log, f"round {round_number}"
                    )
                    if measured is not None:
                        runs[key, connections].append(measured[0])
                        results[key].cpu_ms_per_request.setdefault(connections, []).append(
                            measured[1]
                        )
        return runs

    def _drive_recording_pairs(
        self,
        on: RunningServer,
        off: RunningServer,
        results: dict[str, ServerResult],
        log: Callable[[str], None],
    ) -> None:
        for pair in range(self._recording_pairs):
            twins = [(OURS, on), (OURS_QUIET, off)]
            for key, server in twins if pair % 2 else twins[::-1]:  # who goes first alternates
                measured = self._measure(
                    key, server, RECORDING_PAIR_CONNECTIONS, results, log, f"pair {pair + 1}"
                )
                if measured is None:
                    return
                results[key].paired_runs.append(measured[0])
                results[key].paired_cpu_ms_per_request.append(measured[1])

    def _measure(
        self,
        key: str,
        server: RunningServer,
        connections: int,
        results: dict[str, ServerResult],
        log: Callable[[str], None],
        label: str,
    ) -> tuple[WrkRun, float] | None:
        """One wrk run and the server's CPU milliseconds per request in it; None (and the
        server marked unavailable) when wrk could not measure it."""
        cpu_before = process_tree_cpu_seconds(server.pid)
        try:
            run = run_wrk(
                server.url, self._payload_file, connections=connections, duration_s=self._duration_s
            )
        except MeasurementUnavailable as error:
            results[key].unavailable = str(error)
            return None
        cpu_ms = (process_tree_cpu_seconds(server.pid) - cpu_before) * 1000.0
        cpu_per_request = cpu_ms / run.requests if run.requests else 0.0
        log(
            f"{label}, {key}, {connections} conn: "
            f"{run.requests_per_second:,.0f} req/s, p50 {run.p50_ms:.2f} ms, "
            f"p99 {run.p99_ms:.2f} ms, failed {run.failed}, "
            f"server CPU {cpu_per_request:.2f} ms/request"
        )
        return run, cpu_per_request

    def _start(self, key: str) -> contextlib.AbstractContextManager[RunningServer]:
        port = free_port()
        # `mlflow models serve` execs `uvicorn` from PATH: its venv's bin must come first.
        own_bin = (self._mlflow_python if key == MLFLOW else Path(sys.executable)).parent
        return running_server(
            key,
            server_commands(self._mlflow_python, self._model_dir, port)[key],
            port=port,
            body=self._body,
            log_file=self._work_dir / f"{key}.log",
            env={"PATH": f"{own_bin}{os.pathsep}{os.environ.get('PATH', '')}"},
        )

    def _check_predictions(self, result: ServerResult, port: int) -> None:
        if result.key in (ECHO, FLOOR):
            return  # neither predicts with the model
        try:
            predictions = collect_predictions(port, self._emails)
        except MeasurementUnavailable as error:
            result.agreement_note = str(error)
            return
        if result.key == MLFLOW:
            self._reference = predictions.batched
        if self._reference is None:
            result.agreement_note = "MLflow gave no reference predictions"
            return
        result.mismatches = count_mismatches(self._reference, predictions)
