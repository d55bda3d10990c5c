"""`jupyter-serve models serve` as a user runs it: a real process, real HTTP, real signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from sklearn.linear_model import LogisticRegression

from jupyter_serve.registry import register_model

SERVE_COMMAND = [sys.executable, "-m", "jupyter_serve.cli", "models", "serve"]
COLUMNS = ["a", "b"]


@pytest.fixture(scope="module")
def classifier() -> LogisticRegression:
    features = pd.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0) % 3}, columns=COLUMNS)
    return LogisticRegression().fit(features, (features["a"] > 19).astype(int))


@pytest.fixture(scope="module")
def registry_dir(tmp_path_factory: pytest.TempPathFactory, classifier: LogisticRegression) -> Path:
    """One registry for the module, holding ``clf`` version 1 (registering is not cheap)."""
    root = tmp_path_factory.mktemp("cli-registry")
    previous = os.environ.get("JUPYTER_SERVE_REGISTRY")
    os.environ["JUPYTER_SERVE_REGISTRY"] = str(root)
    try:
        example = pd.DataFrame([[1.0, 2.0]], columns=COLUMNS)
        register_model(classifier, "clf", stage="Production", input_example=example)
    finally:
        if previous is None:
            del os.environ["JUPYTER_SERVE_REGISTRY"]
        else:
            os.environ["JUPYTER_SERVE_REGISTRY"] = previous
    return root


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _environment(registry: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "JUPYTER_SERVE_REGISTRY": str(registry), **extra}


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*SERVE_COMMAND, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_for_ping(url: str, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited early: {process.communicate()[1]}")
        try:
            if requests.get(url + "/ping", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url}/ping never answered")


def _run_to_failure(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SERVE_COMMAND, *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.fixture
def serving(registry_dir: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = _free_port()
    process = _start(
        ["-m", "models:/clf/Production", "-p", str(port), "--log-requests"],
        _environment(registry_dir),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_ping(url, process)
        yield url, process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)


def test_serves_a_registered_model_and_stops_cleanly_on_sigterm(
    serving: tuple[str, subprocess.Popen[str]], classifier: LogisticRegression
) -> None:
    url, process = serving
    rows = [[3.0, 1.0], [30.0, 2.0]]
    response = requests.post(
        url + "/invocations",
        json={"dataframe_split": {"columns": COLUMNS, "data": rows}},
        timeout=30,
    )
    expected = classifier.predict(pd.DataFrame(rows, columns=COLUMNS)).tolist()
    assert (response.status_code, response.json()) == (200, {"predictions": expected})
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert url in stdout
    assert "POST /invocations 200" in stderr  # --log-requests
    assert "Traceback" not in stderr


def test_port_in_use_is_one_clear_line(registry_dir: Path) -> None:
    with socket.socket() as occupier:
        occupier.bind(("127.0.0.1", 0))
        occupier.listen()
        port = occupier.getsockname()[1]
        done = _run_to_failure(
            ["-m", "models:/clf/1", "--port", str(port)], _environment(registry_dir)
        )
    assert done.returncode != 0
    assert f"port {port}" in done.stderr and "already in use" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_unknown_model_is_one_clear_line(registry_dir: Path) -> None:
    done = _run_to_failure(["-m", "models:/nope/1", "-p", "0"], _environment(registry_dir))
    assert done.returncode != 0
    assert "nope" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_model_that_fails_to_load_is_one_clear_line(tmp_path: Path, registry_dir: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "MLmodel").write_text(
        "flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n"
        "    model_path: model.skops\n  sklearn:\n    pickled_model: model.skops\n"
        "    serialization_format: skops\n"
    )
    (broken / "model.skops").write_bytes(b"not a skops file")
    done = _run_to_failure(["-m", str(broken), "-p", "0"], _environment(registry_dir))
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_mlflows_deserialization_switch_set_to_false_refuses_the_model_in_one_line(
    registry_dir: Path,
) -> None:
    environment = {**_environment(registry_dir), "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false"}
    done = _run_to_failure(["-m", "models:/clf/1", "-p", "0"], environment)
    assert done.returncode != 0
    assert "is refused: MLFLOW_ALLOW_PICKLE_DESERIALIZATION is 'false'" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_workers_that_cannot_load_the_model_are_one_clear_line(
    tmp_path: Path, registry_dir: Path
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "MLmodel").write_text(
        "flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n"
        "    model_path: model.skops\n  sklearn:\n    pickled_model: model.skops\n"
        "    serialization_format: skops\n"
    )
    (broken / "model.skops").write_bytes(b"not a skops file")
    done = _run_to_failure(["-m", str(broken), "-p", "0", "-w", "2"], _environment(registry_dir))
    assert done.returncode != 0
    assert "2 of 2 worker processes" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_unbindable_host_is_one_clear_line(registry_dir: Path) -> None:
    done = _run_to_failure(
        ["-m", "models:/clf/1", "-h", "203.0.113.7", "-p", "0"], _environment(registry_dir)
    )
    assert done.returncode != 0
    assert "203.0.113.7" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--env-manager", "nosuch"], "nosuch"),
        (["--enable-mlserver", "--env-manager", "uv"], "--enable-mlserver"),
        (["--enable-mlserver", "-p", "0"], "--enable-mlserver"),
        (["--max-batch-size", "0"], "--max-batch-size"),
        (["--max-batch-wait", "-5"], "--max-batch-wait"),
        (["-t", "1", "--max-batch-wait", "2000"], "--max-batch-wait"),
    ],
)
def test_unsupported_options_are_refused_clearly(
    registry_dir: Path, flags: list[str], named: str
) -> None:
    # The env managers themselves are tested in test_environments.py.
    done = _run_to_failure(["-m", "models:/clf/1", *flags], _environment(registry_dir))
    assert done.returncode != 0
    assert named in done.stderr and "error:" in done.stderr
    assert "Traceback" not in done.stderr


def test_mlflow_environment_variables_set_the_defaults_and_sigint_exits_zero(
    registry_dir: Path,
) -> None:
    port = _free_port()
    env = _environment(
        registry_dir,
        MLFLOW_PORT=str(port),
        MLFLOW_HOST="127.0.0.1",
        MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT="5",
    )
    process = _start(["-m", "models:/clf/latest", "--env-manager", "local", "--no-conda"], env)
    try:
        _wait_for_ping(f"http://127.0.0.1:{port}", process)
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr


def test_help_is_double_dash_only_since_dash_h_is_the_host() -> None:
    done = subprocess.run([*SERVE_COMMAND, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "-h HOST, --host HOST" in done.stdout
    assert "--model-uri" in done.stdout


def test_workers_share_the_port_and_a_crashed_worker_is_replaced(registry_dir: Path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    process = _start(
        ["-m", "models:/clf/1", "-p", str(port), "-w", "2"], _environment(registry_dir)
    )
    try:
        # /ping answers as soon as one worker is up; the command prints where it serves once
        # every worker is ready, and a worker killed before that fails the whole start.
        assert process.stdout is not None
        assert "serving models:/clf/1" in process.stdout.readline()
        workers = _child_pids(process.pid)
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while True:
            current = _child_pids(process.pid)
            if len(current) == 2 and workers[0] not in current:
                break
            assert time.monotonic() < deadline, "the killed worker was never replaced"
            time.sleep(0.1)
        _wait_for_ping(url, process)
        body = {"dataframe_split": {"columns": COLUMNS, "data": [[1.0, 1.0]]}}
        for _ in range(10):
            assert requests.post(url + "/invocations", json=body, timeout=30).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert _child_pids(process.pid) == []
    for pid in current:
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid)


def _child_pids(parent: int) -> list[int]:
    # Each thread lists the children it started (workers are replaced from another thread).
    pids: list[int] = []
    for children in Path(f"/proc/{parent}/task").glob("*/children"):
        try:
            pids.extend(int(pid) for pid in children.read_text().split())
        except FileNotFoundError:
            continue
    return sorted(pids)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
