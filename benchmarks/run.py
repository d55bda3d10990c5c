"""`make bench`: build the model with MLflow, then measure every server on it, side by side.

Usage: ``python -m benchmarks.run [--duration S] [--repeats N] [--out DIR]``. Pieces that do
not exist yet or fail are reported as "not available"; the run itself only fails when the
reference MLflow cannot even build the model.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.kernel_bench import KernelBenchmark, KernelResults
from benchmarks.load_bench import CONNECTIONS, LoadBenchmark
from benchmarks.machine import describe_machine, load_average
from benchmarks.plot import plot_throughput
from benchmarks.report import render_markdown, server_summary
from benchmarks.results import (
    ECHO,
    FLOOR,
    MLFLOW,
    OURS,
    OURS_QUIET,
    OURS_WORKERS,
    BenchResults,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MLFLOW_PYTHON = REPO_ROOT / ".venv-mlflow" / "bin" / "python"


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def build_model(mlflow_python: Path, work_dir: Path) -> None:
    """Train and save the model with the reference MLflow; exits the run if that fails."""
    done = subprocess.run(
        [str(mlflow_python), "-m", "benchmarks.build_model", str(work_dir)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        check=False,
    )
    if done.returncode != 0:
        sys.exit(
            f"building the benchmark model with {mlflow_python} failed:\n{done.stderr[-3000:]}"
        )


def _write_outputs(results: BenchResults, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "RESULTS.md").write_text(render_markdown(results))
    (out_dir / "results.json").write_text(
        json.dumps(dataclasses.asdict(results), indent=1, default=str) + "\n"
    )
    plot_throughput(results, out_dir / "throughput.png")


def main(argv: list[str] | None = None) -> None:
    """Run every measurement and write RESULTS.md, results.json and throughput.png."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--repeats", type=int, default=3, help="wrk runs per case (median)")
    parser.add_argument(
        "--recording-pairs",
        type=int,
        default=20,
        help="extra runs of the default and the recording-off server, each, at 64 connections",
    )
    parser.add_argument("--busy-seconds", type=float, default=10.0, help="CPU-bound cell length")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    parser.add_argument(
        "--mlflow-python",
        type=Path,
        default=Path(os.environ.get("JUPYTER_SERVE_MLFLOW_PYTHON", DEFAULT_MLFLOW_PYTHON)),
    )
    server_keys = (MLFLOW, OURS, OURS_QUIET, OURS_WORKERS, ECHO, FLOOR)
    parser.add_argument("--only", nargs="*", choices=(*server_keys, "kernel"))
    args = parser.parse_args(argv)
    selected = set(args.only or (*server_keys, "kernel"))
    started = time.perf_counter()
    load_at_start = load_average()
    with tempfile.TemporaryDirectory(prefix="jupyter-serve-bench-") as scratch:
        work_dir = Path(scratch)
        _log(f"building the model with {args.mlflow_python}")
        build_model(args.mlflow_python, work_dir)
        load = LoadBenchmark(
            args.mlflow_python, work_dir, args.duration, args.repeats, args.recording_pairs
        )
        keys = [key for key in server_keys if key in selected]
        servers = load.run(keys, log=_log)
        for server in servers.values():
            _log(server_summary(server))
        kernel = KernelResults()
        if "kernel" in selected:
            _log("measuring %serve in real kernels")
            try:
                KernelBenchmark(
                    work_dir,
                    busy_seconds=args.busy_seconds,
                    wrk_seconds=args.duration,
                    reference=load.reference,
                ).run(kernel)
            except Exception as error:  # the servers' figures must still be written out
                kernel.unavailable["kernel benchmark"] = f"{type(error).__name__}: {error}"
            _log(f"kernel: {kernel}")
        results = BenchResults(
            date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            machine=describe_machine(args.mlflow_python),
            servers=servers,
            kernel=kernel,
            check_emails=load.check_emails,
            duration_s=args.duration,
            repeats=args.repeats,
            connections=CONNECTIONS,
            load_average_start=load_at_start,
            load_average_end=load_average(),
            niceness=os.nice(0),
        )
        _write_outputs(results, args.out)
    _log(f"done in {time.perf_counter() - started:.0f} s; see {args.out / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
