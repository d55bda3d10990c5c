"""Ours on Ray Serve against a plain Ray Serve app around ``mlflow.pyfunc``, same cluster.

Usage: ``python -m benchmarks.ray_bench [--ray-python .venv-ray/bin/python]``. Starts a local
cluster on loopback (as tests/test_ray_target.py does), registers the spam model in a temporary
embedded registry, and for each app and 1 then 2 replicas drives ``/invocations`` with wrk at 1
and 16 connections. Writes benchmarks/results/ray.md. Not part of ``make test``: it takes
minutes, and the plain app's replicas install MLflow on the cluster first.

The plain app is what a user writes by hand: load the model with ``mlflow.pyfunc``, build a
DataFrame from ``dataframe_split``, return ``{"predictions": ...}``. Only one app runs at a
time, each replica reserving one of the cluster's two CPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.wrk import WrkRun, run_wrk
from jupyter_serve.targets.ray import Scaling, ServingArgs, replica_requirements
from jupyter_serve.targets.ray._applications import RayCluster, _merged
from jupyter_serve.targets.ray._packages import zip_directory

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).with_name("results") / "ray.md"
MLFLOW_VERSION = "3.17.2"
BODY = {"dataframe_split": {"columns": ["text"], "data": [["win a free prize now"]]}}
PLAIN_APP = """
import mlflow.pyfunc
import pandas as pd
from ray import serve
from starlette.requests import Request


@serve.deployment
class PlainMlflow:
    def __init__(self, model_dir: str) -> None:
        self.model = mlflow.pyfunc.load_model(model_dir)

    async def __call__(self, request: Request) -> dict:
        split = (await request.json())["dataframe_split"]
        frame = pd.DataFrame(split["data"], columns=split["columns"])
        return {"predictions": list(self.model.predict(frame))}


def build(args: dict) -> object:
    return PlainMlflow.bind(args.get("model_dir", "."))
"""


@dataclass(frozen=True)
class Row:
    app: str
    replicas: int
    connections: int
    run: WrkRun


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _log(message: str) -> None:
    print(f"[ray-bench] {message}", file=sys.stderr, flush=True)


def _start_cluster(ray_bin: Path, temp_dir: Path) -> tuple[dict[str, str], str, str]:
    gcs, dashboard, http = _free_port(), _free_port(), _free_port()
    env = {
        **os.environ,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_ADDRESS": f"127.0.0.1:{gcs}",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    subprocess.run(
        [
            str(ray_bin / "ray"), "start", "--head", "--num-cpus", "2",
            "--node-ip-address", "127.0.0.1", "--port", str(gcs),
            "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
            "--temp-dir", str(temp_dir), "--disable-usage-stats",
        ],
        env=env, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    subprocess.run(
        [str(ray_bin / "serve"), "start", "--http-host", "127.0.0.1", "--http-port", str(http)],
        env=env, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return env, f"ray+http://127.0.0.1:{dashboard}", f"http://127.0.0.1:{http}"


def _register_model(registry: Path) -> Path:
    env = {**os.environ, "JUPYTER_SERVE_REGISTRY": str(registry)}
    script = (
        "from jupyter_serve.demo import ensure_demo_model\n"
        "from jupyter_serve.registry import resolve_model_uri\n"
        "ensure_demo_model(); print(resolve_model_uri('models:/spam/1').path)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, check=True, capture_output=True, text=True
    )
    return Path(done.stdout.strip().splitlines()[-1])


def _plain_application(cluster: RayCluster, model_dir: Path, work: Path, replicas: int) -> Any:
    module_dir = work / "plain_mlflow_app"
    module_dir.mkdir(exist_ok=True)
    (module_dir / "__init__.py").write_text(PLAIN_APP)
    module, model = (
        zip_directory(module_dir, include_parent=True),
        zip_directory(model_dir, include_parent=False),
    )
    for package in (module, model):
        cluster.dashboard.upload_package(package.uri, package.content)
    requirements = [*replica_requirements(model_dir), f"mlflow=={MLFLOW_VERSION}"]
    return {
        "name": "plain",
        "route_prefix": "/plain",
        "import_path": "plain_mlflow_app:build",
        "runtime_env": {
            "working_dir": model.uri,
            "py_modules": [module.uri],
            "pip": {"packages": requirements, "pip_check": False},
        },
        "deployments": [
            {"name": "PlainMlflow", "num_replicas": replicas, "ray_actor_options": {"num_cpus": 1}}
        ],
    }


def _put_and_wait(cluster: RayCluster, application: dict[str, Any], url: str) -> float:
    started = time.monotonic()
    details = cluster.dashboard.serve_details()
    name = application["name"]
    cluster.dashboard.put_applications(_merged(details, keep_out=name, add=application))
    while time.monotonic() - started < 1800:
        app = cluster.dashboard.serve_details().get("applications", {}).get(name, {})
        deployment: dict[str, Any] = next(iter((app.get("deployments") or {}).values()), {})
        running = [r for r in deployment.get("replicas") or [] if r.get("state") == "RUNNING"]
        wanted = application["deployments"][0].get("num_replicas", 1)
        if app.get("status") == "RUNNING" and len(running) == wanted and _answers(url):
            return time.monotonic() - started
        if app.get("status") == "DEPLOY_FAILED":
            raise RuntimeError(f"{name} failed: {app.get('message')}")
        time.sleep(1)
    raise RuntimeError(f"{name} not running after 30 minutes")


def _answers(url: str) -> bool:
    request = urllib.request.Request(
        url + "/invocations",
        data=json.dumps(BODY).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _predict(url: str) -> bytes:
    request = urllib.request.Request(
        url + "/invocations",
        data=json.dumps(BODY).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body: bytes = response.read()
        return body


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ray-python", type=Path, default=REPO / ".venv-ray" / "bin" / "python")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    args = parser.parse_args(argv)
    ray_bin = args.ray_python.parent
    rows: list[Row] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ray-bench-") as tmp:
        work = Path(tmp)
        model_dir = _register_model(work / "registry")
        env, target, serve_url = _start_cluster(ray_bin, work / "ray")
        try:
            cluster = RayCluster(target)
            body_file = work / "body.json"
            body_file.write_text(json.dumps(BODY))
            answers: dict[str, bytes] = {}
            for app in ("ours", "plain"):
                url = f"{serve_url}/{'spam' if app == 'ours' else 'plain'}"
                for replicas in (1, 2):
                    if app == "ours":
                        application = cluster.build_application(
                            model_dir,
                            ServingArgs("spam", "models:/spam/1", "1"),
                            Scaling(replicas=replicas),
                            replica_requirements(model_dir),
                        )
                    else:
                        application = _plain_application(cluster, model_dir, work, replicas)
                    seconds = _put_and_wait(cluster, application, url)
                    notes.append(f"{app}, {replicas} replica(s): ready in {seconds:.0f} s")
                    _log(notes[-1])
                    answers[app] = _predict(url)
                    for connections in (1, 16):
                        run = run_wrk(
                            url + "/invocations",
                            body_file,
                            connections=connections,
                            duration_s=args.duration,
                        )
                        rows.append(Row(app, replicas, connections, run))
                        _log(f"{app} r={replicas} c={connections}: {run.requests_per_second:.0f}/s")
                cluster.dashboard.put_applications(
                    _merged(
                        cluster.dashboard.serve_details(), keep_out=application["name"], add=None
                    )
                )
        finally:
            subprocess.run(
                [str(ray_bin / "ray"), "stop", "--force"], env=env, capture_output=True, timeout=120
            )
    _write(rows, notes, answers)


def _write(rows: list[Row], notes: list[str], answers: dict[str, bytes]) -> None:
    lines = [
        "# Ray Serve: jupyter-serve replicas vs a plain `mlflow.pyfunc` app",
        "",
        "`python -m benchmarks.ray_bench` on a local 2-CPU Ray 2.60 cluster (loopback), the demo",
        "spam model, one-row `dataframe_split` bodies, wrk through Serve's HTTP proxy.",
        "",
        "| app | replicas | connections | req/s | p50 ms | p99 ms | non-2xx |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        run = row.run
        lines.append(
            f"| {row.app} | {row.replicas} | {row.connections} | {run.requests_per_second:.0f} "
            f"| {run.p50_ms:.1f} | {run.p99_ms:.1f} | {run.failed} |"
        )
    lines += ["", "Time from the config write to the first 200 (packages, pip, replicas):", ""]
    lines += [f"- {note}" for note in notes]
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    lines += [
        "",
        f"Load average when written: {load} (a shared 2-core machine: pessimistic figures).",
        "At one connection both apps wait on Ray's HTTP proxy hop (an empty Ray deployment",
        "does about the same); with 16 connections the replica matters: ours merges the",
        "requests that queue up into one predict call, the plain app predicts one by one.",
    ]
    lines += ["", "The same request's answer:", ""]
    lines += [f"- {app}: `{body.decode()}`" for app, body in answers.items()]
    RESULTS.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _log(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
