"""Isolated environments (``--env-manager uv|virtualenv|conda``) as a user meets them.

The model needs ``tabulate``, which the product venv does not have: it fails when served from
the kernel's environment and answers right from its own uv environment, built from its
requirements.txt by a real ``uv`` (downloading from PyPI on a fresh cache), through the real
CLI and through ``jupyter_serve.serve``. One environment is built for the whole module (a
module-scoped cache directory); a second build of it only happens in the concurrency test,
from uv's warm wheel cache.
"""

from __future__ import annotations

import io
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests

import jupyter_serve
from jupyter_serve.environments import (
    CACHE_DIR_VARIABLE,
    TextProgress,
    prepare_environment,
    read_environment_spec,
)
from jupyter_serve.errors import DeploymentError
from jupyter_serve.models import load_model, save_model

SERVE_COMMAND = [sys.executable, "-m", "jupyter_serve.cli", "models", "serve"]
BODY = {"dataframe_split": {"columns": ["x"], "data": [[1.0], [2.5]]}}
EXPECTED = {"predictions": [2.0, 5.0]}  # doubled, and tabulate 0.9.0 was the one imported


def _tabulated_doubler() -> Any:
    # Defined in a function so cloudpickle stores the class by value: the worker in the built
    # environment cannot import this test module.
    class TabulatedDoubler:
        def predict(self, frame: pd.DataFrame) -> list[float]:
            import tabulate  # only the model's own environment has it

            offset = 0.0 if tabulate.__version__ == "0.9.0" else 1000.0
            return [2 * float(value) + offset for value in frame["x"]]

    return TabulatedDoubler()


def _save(path: Path, extra_requirement: str) -> Path:
    saved = save_model(
        _tabulated_doubler(),
        path,
        serialization_format="cloudpickle",
        input_example=pd.DataFrame({"x": [1.0, 2.0]}),
    )
    with open(saved / "requirements.txt", "a", encoding="utf-8") as requirements:
        requirements.write(f"\n{extra_requirement}\n")
    return saved


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save(tmp_path_factory.mktemp("env-model") / "model", "tabulate==0.9.0")


@pytest.fixture(scope="module")
def envs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("envs")


@pytest.fixture
def cache(envs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CACHE_DIR_VARIABLE, str(envs_dir))
    return envs_dir


def _built_environments(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir())


def _processes_running_from(directory: Path) -> list[int]:
    """Process ids whose command line names ``directory`` (the environment's interpreter)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(directory) in command:
            found.append(int(entry.name))
    return found


class ServeProcess:
    """``jupyter-serve models serve`` in a subprocess, its output lines read as they come."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [*SERVE_COMMAND, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.stdout: queue.Queue[str] = queue.Queue()
        self.stderr_lines: list[str] = []
        assert self.process.stdout is not None and self.process.stderr is not None
        threading.Thread(target=self._pump, args=(self.process.stdout,), daemon=True).start()
        self._stderr_reader = threading.Thread(
            target=lambda: self.stderr_lines.extend(self.process.stderr or []), daemon=True
        )
        self._stderr_reader.start()

    def _pump(self, stream: Any) -> None:
        for line in stream:
            self.stdout.put(line)

    def wait_for_url(self, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.stdout.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None:
                    raise AssertionError(f"serve exited early: {self.stderr()}") from None
                continue
            if " at http://" in line:
                return line.split(" at ", 1)[1].split()[0]
        raise AssertionError(f"serve never said where it serves: {''.join(self.stderr_lines)}")

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=60)

    def stderr(self) -> str:
        self._stderr_reader.join(timeout=10)
        return "".join(self.stderr_lines)


def _serve_with_cli(model_dir: Path, envs: Path) -> tuple[str, int]:
    """Serve through the CLI, check the answer, stop; return its stderr and exit code."""
    env = {**os.environ, CACHE_DIR_VARIABLE: str(envs)}
    server = ServeProcess(["-m", str(model_dir), "--env-manager", "uv", "-p", "0"], env)
    try:
        url = server.wait_for_url()
        answer = requests.post(f"{url}/invocations", json=BODY, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json() == EXPECTED
        assert requests.get(f"{url}/ping", timeout=10).status_code == 200
    finally:
        code = server.interrupt()
    return server.stderr(), code


def test_the_model_fails_in_the_kernels_own_environment(model_dir: Path) -> None:
    deployment = jupyter_serve.serve(str(model_dir), name="kernel-env")
    try:
        answer = requests.post(f"{deployment.url}/invocations", json=BODY, timeout=30)
    finally:
        jupyter_serve.stop("kernel-env")
    assert answer.status_code == 400
    assert "tabulate" in answer.json()["stack_trace"]


def test_cli_builds_a_uv_environment_then_reuses_it(model_dir: Path, cache: Path) -> None:
    key = read_environment_spec(model_dir, "uv").key
    existed = (cache / key).exists()

    first, first_code = _serve_with_cli(model_dir, cache)
    second, second_code = _serve_with_cli(model_dir, cache)

    assert first_code == 0 and second_code == 0
    if not existed:  # another test of this module may have built it first
        assert f"creating environment {key}" in first
        assert "installing" in first and f"environment {key} done in" in first
    assert f"reusing environment {key}" in second
    assert "creating environment" not in second and "installing" not in second
    assert _built_environments(cache) == [key]
    assert _processes_running_from(cache / key) == []
    isolated = subprocess.run(
        [str(cache / key / "bin" / "python"), "-c", "import ipykernel"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "No module named 'ipykernel'" in isolated.stderr  # none of the kernel's packages


def test_serve_runs_the_model_in_its_uv_environment(model_dir: Path, cache: Path) -> None:
    deployment = jupyter_serve.serve(str(model_dir), name="isolated", env_manager="uv")
    environment = cache / read_environment_spec(model_dir, "uv").key
    try:
        workers = _processes_running_from(environment)
        assert len(workers) == 1  # -w 1 still runs out of the kernel
        answer = requests.post(f"{deployment.url}/invocations", json=BODY, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json() == EXPECTED
        deadline = time.monotonic() + 30
        while deployment.metrics["requests"] < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert deployment.metrics["requests"] >= 1
    finally:
        jupyter_serve.stop("isolated")
    assert deployment.status == "stopped"
    assert _processes_running_from(environment) == []


SAVE_IN_ENVIRONMENT = """
import sys
import pandas as pd
import tabulate
from jupyter_serve.models import load_model, save_model

class TableWidth:
    # Holds a function of tabulate: unpickling needs tabulate, which the kernel lacks.
    def __init__(self):
        self.render = tabulate.tabulate

    def predict(self, frame):
        return [len(self.render([[value]], tablefmt="plain")) for value in frame["x"]]

TableWidth.__module__ = "__main__"
saved = save_model(TableWidth(), sys.argv[1], serialization_format="cloudpickle",
                   input_example=pd.DataFrame({"x": [1.0]}))
with open(saved / "requirements.txt", "a") as requirements:
    requirements.write("\\ntabulate==0.9.0\\n")
"""


def test_a_model_the_kernel_cannot_load_serves_from_its_environment(
    model_dir: Path, cache: Path, tmp_path: Path
) -> None:
    environment = prepare_environment(model_dir, "uv", progress=TextProgress(io.StringIO()))
    unloadable = tmp_path / "unloadable"
    subprocess.run(
        [str(environment.python), "-c", SAVE_IN_ENVIRONMENT, str(unloadable)],
        check=True,
        timeout=120,
    )
    with pytest.raises(Exception, match="tabulate"):
        load_model(unloadable)

    deployment = jupyter_serve.serve(str(unloadable), name="unloadable", env_manager="uv")
    try:
        answer = requests.post(
            f"{deployment.url}/invocations", json={"inputs": {"x": [7.0, 12.5]}}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"predictions": [1, 4]}  # tabulate prints "7" and "12.5"
        with pytest.raises(DeploymentError, match="runs only in the worker processes"):
            deployment.predict(pd.DataFrame({"x": [1.0]}))
    finally:
        jupyter_serve.stop("unloadable")


def test_percent_serve_shows_a_progress_bar_and_serves_from_the_environment(
    model_dir: Path, envs_dir: Path, tmp_path: Path
) -> None:
    from tests._support import Kernel

    kernel = Kernel(
        tmp_path / "runtime", tmp_path / "registry", {CACHE_DIR_VARIABLE: str(envs_dir)}
    )
    try:
        kernel.ok("%load_ext jupyter_serve\nimport jupyter_serve")
        shown = kernel.ok(f"%serve {model_dir} --env-manager uv --name iso", timeout=300)
        assert any("IntProgress" in plain for plain in shown.plain), shown.plain
        url = kernel.ok("print(jupyter_serve.deployments()[0].url)").stdout.strip()
        answer = requests.post(f"{url}/invocations", json=BODY, timeout=30)
        assert answer.json() == EXPECTED
        kernel.ok("%unserve iso")
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/ping", timeout=5)
    finally:
        kernel.shutdown()
    assert _processes_running_from(envs_dir) == []


def test_conda_without_conda_fails_at_once(model_dir: Path, tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "CONDA_EXE" and not key.startswith("CONDA")
    }
    env["PATH"] = os.path.dirname(sys.executable)  # ours only: no conda anywhere on it
    assert shutil.which("conda", path=env["PATH"]) is None
    env[CACHE_DIR_VARIABLE] = str(tmp_path / "envs")

    done = subprocess.run(
        [*SERVE_COMMAND, "-m", str(model_dir), "--env-manager", "conda", "-p", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )

    assert done.returncode != 0
    assert "needs conda" in done.stderr and "`conda`" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "envs").exists()


def test_a_requirement_that_cannot_be_installed_leaves_nothing(
    tmp_path: Path, model_dir: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    with open(broken / "requirements.txt", "a", encoding="utf-8") as requirements:
        requirements.write("tabulate==99.0.0\n")
    envs = tmp_path / "envs"

    done = subprocess.run(
        [*SERVE_COMMAND, "-m", str(broken), "--env-manager", "uv", "-p", "0"],
        capture_output=True,
        text=True,
        env={**os.environ, CACHE_DIR_VARIABLE: str(envs)},
        timeout=300,
    )

    assert done.returncode == 1
    error_lines = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(error_lines) == 1, done.stderr
    assert "could not install the model's requirements" in error_lines[0]
    assert "tabulate==99.0.0" in error_lines[0]
    assert "serving" not in done.stdout
    assert _built_environments(envs) == []


def test_a_python_version_this_machine_lacks_is_named(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_DIR_VARIABLE, str(tmp_path / "envs"))
    old_python = tmp_path / "old-python"
    shutil.copytree(model_dir, old_python)
    python_env = old_python / "python_env.yaml"
    python_env.write_text(re.sub(r"python: .*", "python: 3.4.10", python_env.read_text()))

    with pytest.raises(DeploymentError) as raised:
        prepare_environment(old_python, "uv", progress=TextProgress(io.StringIO()))

    message = str(raised.value)
    assert "needs Python 3.4" in message and "3.4.10" in message
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in message  # what we have
    assert "--env-manager local" in message
    assert _built_environments(tmp_path / "envs") == []


def test_two_processes_building_one_environment_build_it_once(
    model_dir: Path, tmp_path: Path
) -> None:
    envs = tmp_path / "envs"
    script = (
        "import sys; from jupyter_serve.environments import prepare_environment; "
        "print(prepare_environment(sys.argv[1], 'uv').reused)"
    )
    env = {**os.environ, CACHE_DIR_VARIABLE: str(envs)}
    builders = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(model_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    results = [builder.communicate(timeout=300) for builder in builders]

    assert [builder.returncode for builder in builders] == [0, 0], results
    assert sorted(stdout.strip() for stdout, _ in results) == ["False", "True"]
    assert sum("creating environment" in stderr for _, stderr in results) == 1
    assert _built_environments(envs) == [read_environment_spec(model_dir, "uv").key]


def test_the_cache_key_follows_the_requirements_and_install_mlflow(
    model_dir: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    shutil.copytree(model_dir, other)
    (other / "requirements.txt").write_text(
        (model_dir / "requirements.txt").read_text().replace("0.9.0", "0.8.10")
    )

    plain = read_environment_spec(model_dir, "uv")
    with_mlflow = read_environment_spec(model_dir, "uv", install_mlflow=True)

    assert plain.key == read_environment_spec(model_dir, "uv").key
    assert len({plain.key, with_mlflow.key, read_environment_spec(other, "uv").key}) == 3
    assert "tabulate==0.9.0" in plain.model_requirements
    assert plain.skipped_requirements == ["mlflow==3.17.2"]
    assert "mlflow==3.17.2" in with_mlflow.model_requirements
    assert with_mlflow.skipped_requirements == []


def test_unknown_env_managers_and_install_mlflow_alone_are_refused(model_dir: Path) -> None:
    with pytest.raises(DeploymentError, match="'pip'"):
        jupyter_serve.serve(str(model_dir), env_manager="pip")
    with pytest.raises(DeploymentError, match="install_mlflow needs env_manager"):
        jupyter_serve.serve(str(model_dir), install_mlflow=True)
    assert jupyter_serve.deployments() == []


@pytest.fixture(autouse=True)
def _no_deployment_left() -> Iterator[None]:
    yield
    jupyter_serve.stop(all=True)
