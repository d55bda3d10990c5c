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
from typing import Any

from benchmarks.agreement import collect_predictions, count_mismatches
from benchmarks.kernel_bench import KernelBenchmark, KernelResults
from benchmarks.machine import describe_machine, load_average
from benchmarks.outcome import MeasurementUnavailable
from benchmarks.plot import plot_throughput
from benchmarks.report import render_markdown, server_summary
from benchmarks.results import ECHO, MLFLOW, OURS, OURS_WORKERS, BenchResults, ServerResult
from benchmarks.servers import free_port, running_server
from benchmarks.wrk import run_repeated, run_wrk

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MLFLOW_PYTHON = REPO_ROOT / ".venv-mlflow" / "bin" / "python"
CONNECTIONS = (1, 64)
WARM_UP_S = 3.0


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
        OURS: ours_base,
        OURS_WORKERS: [*ours_base, "-w", "2"],
        ECHO: [sys.executable, "-m", "benchmarks.echo_server", str(port)],
    }


class LoadBenchmark:
    """Each server in turn: start, check its predictions, warm up, drive with wrk, stop."""

    def __init__(self, mlflow_python: Path, work_dir: Path, duration_s: float, repeats: int):
        self._mlflow_python = mlflow_python
        self._work_dir = work_dir
        self._model_dir = work_dir / "model"
        self._payload_file = work_dir / "payload.json"
        self._body = self._payload_file.read_bytes()
        self._emails: list[str] = json.loads((work_dir / "check_emails.json").read_text())
        self._duration_s = duration_s
        self._repeats = repeats
        self._reference: list[Any] | None = None

    @property
    def body(self) -> bytes:
        """The one-row request every load test sends."""
        return self._body

    @property
    def check_emails(self) -> int:
        return len(self._emails)

    def measure(self, key: str) -> ServerResult:
        """Everything about server ``key``; never raises for a server that is missing."""
        result = ServerResult(key=key)
        port = free_port()
        command = server_commands(self._mlflow_python, self._model_dir, port)[key]
        try:
            with running_server(
                key,
                command,
                port=port,
                body=self._body,
                log_file=self._work_dir / f"{key}.log",
                env=self._server_env(key),
            ) as server:
                result.cold_start_s = server.cold_start_s
                if key != ECHO:
                    self._check_predictions(key, port, result)
                run_wrk(server.url, self._payload_file, connections=64, duration_s=WARM_UP_S)
                for connections in CONNECTIONS:
                    result.load[connections] = run_repeated(
                        server.url,
                        self._payload_file,
                        connections=connections,
                        duration_s=self._duration_s,
                        repeats=self._repeats,
                    )
        except MeasurementUnavailable as error:
            result.unavailable = str(error)
        return result

    def _server_env(self, key: str) -> dict[str, str]:
        # `mlflow models serve` execs `uvicorn` from PATH: its venv's bin must come first.
        own_bin = (self._mlflow_python if key == MLFLOW else Path(sys.executable)).parent
        return {"PATH": f"{own_bin}{os.pathsep}{os.environ.get('PATH', '')}"}

    def _check_predictions(self, key: str, port: int, result: ServerResult) -> None:
        predictions = collect_predictions(port, self._emails)
        if key == MLFLOW:
            self._reference = predictions.batched
            result.mismatches = count_mismatches(self._reference, predictions)
        elif self._reference is not None:
            result.mismatches = count_mismatches(self._reference, predictions)


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
    parser.add_argument("--busy-seconds", type=float, default=10.0, help="CPU-bound cell length")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    parser.add_argument(
        "--mlflow-python",
        type=Path,
        default=Path(os.environ.get("JUPYTER_SERVE_MLFLOW_PYTHON", DEFAULT_MLFLOW_PYTHON)),
    )
    parser.add_argument("--only", nargs="*", choices=(MLFLOW, OURS, OURS_WORKERS, ECHO, "kernel"))
    args = parser.parse_args(argv)
    selected = set(args.only or (MLFLOW, OURS, OURS_WORKERS, ECHO, "kernel"))
    started = time.perf_counter()
    load_at_start = load_average()
    with tempfile.TemporaryDirectory(prefix="jupyter-serve-bench-") as scratch:
        work_dir = Path(scratch)
        _log(f"building the model with {args.mlflow_python}")
        build_model(args.mlflow_python, work_dir)
        load = LoadBenchmark(args.mlflow_python, work_dir, args.duration, args.repeats)
        servers: dict[str, ServerResult] = {}
        for key in (MLFLOW, OURS, OURS_WORKERS, ECHO):
            if key in selected:
                _log(f"measuring {key}")
                servers[key] = load.measure(key)
                _log(server_summary(servers[key]))
        kernel = KernelResults()
        if "kernel" in selected:
            _log("measuring %serve in real kernels")
            KernelBenchmark(work_dir / "model", load.body, work_dir, args.busy_seconds).run(kernel)
            _log(f"kernel: {kernel}")
        results = BenchResults(
            date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            machine={
                **describe_machine(args.mlflow_python),
                "load average at the start (1 min)": load_at_start,
            },
            servers=servers,
            kernel=kernel,
            check_emails=load.check_emails,
            duration_s=args.duration,
            repeats=args.repeats,
            connections=CONNECTIONS,
        )
        _write_outputs(results, args.out)
    _log(f"done in {time.perf_counter() - started:.0f} s; see {args.out / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
