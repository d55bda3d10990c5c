"""Where `jupyter-serve models serve` must behave as `mlflow models serve` does for a user's
script: the working directory is importable, ``--install-mlflow`` without an environment is
accepted, and a model that needs MLflow names both ways to get it, each of which then works.

Every test runs the real ``jupyter-serve`` console script (not ``python -m``, which would put the
working directory on the path by itself) and talks to it over HTTP.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import requests

from jupyter_serve.environments import CACHE_DIR_VARIABLE
from jupyter_serve.models import save_model
from tests._serve_command import ServeCommand
from tests._support import free_port
from tests.conftest import run_python

JUPYTER_SERVE = str(Path(sys.executable).parent / "jupyter-serve")

MODULE_BESIDE_THE_SCRIPT = """
class Tripler:
    def predict(self, frame):
        return [3 * float(value) for value in frame["x"]]
"""

SAVE_BY_REFERENCE = """
import sys
import pandas as pd
import mymod
from jupyter_serve.models import save_model

save_model(mymod.Tripler(), sys.argv[1], serialization_format="cloudpickle",
           input_example=pd.DataFrame({"x": [1.0]}))
"""

SAVE_PYTHON_MODEL = """
import sys
import pandas as pd
import mlflow.pyfunc

class AddOne(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return [float(value) + 1 for value in model_input["x"]]

mlflow.pyfunc.save_model(sys.argv[1], python_model=AddOne(),
                         input_example=pd.DataFrame({"x": [1.0, 2.0]}))
"""


def _serve(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> ServeCommand:
    return ServeCommand(JUPYTER_SERVE, args, cwd, env)


def _run_to_failure(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [JUPYTER_SERVE, "models", "serve", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's project directory: ``mymod.py`` and a model pickled by reference to it."""
    directory = tmp_path_factory.mktemp("project")
    (directory / "mymod.py").write_text(MODULE_BESIDE_THE_SCRIPT, encoding="utf-8")
    subprocess.run(
        [sys.executable, "-c", SAVE_BY_REFERENCE, "model"],
        cwd=directory,
        check=True,
        timeout=120,
    )
    return directory


@pytest.fixture(scope="module")
def python_model(tmp_path_factory: pytest.TempPathFactory, mlflow_python: Path) -> Path:
    """A custom ``mlflow.pyfunc.PythonModel`` saved by the reference MLflow."""
    path = tmp_path_factory.mktemp("python-model") / "model"
    run_python(mlflow_python, SAVE_PYTHON_MODEL, str(path))
    return path


@pytest.fixture(scope="module")
def sklearn_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.linear_model import LinearRegression

    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0]})
    fitted = LinearRegression().fit(frame, [1.0, 3.0, 5.0])
    return save_model(fitted, tmp_path_factory.mktemp("sklearn") / "model", input_example=frame)


@pytest.fixture
def served() -> Iterator[list[ServeCommand]]:
    started: list[ServeCommand] = []
    yield started
    for server in started:
        server.stop()


def test_the_model_really_needs_the_module_beside_it(project: Path, tmp_path: Path) -> None:
    done = _run_to_failure(["-m", str(project / "model"), "-p", "0"], cwd=tmp_path)
    assert done.returncode == 1
    assert "'mymod'" in done.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_model_pickled_against_a_module_in_the_working_directory_loads(
    project: Path, served: list[ServeCommand], workers: str
) -> None:
    port = free_port()
    served.append(_serve(["-m", "model", "-p", str(port), "-w", workers], cwd=project))
    url = served[0].wait_for_url()
    answer = requests.post(f"{url}/invocations", json={"inputs": {"x": [1.0, 2.5]}}, timeout=30)
    assert (answer.status_code, answer.json()) == (200, {"predictions": [3.0, 7.5]})


@pytest.mark.parametrize(
    "flags", [[], ["--env-manager", "local"], ["--no-conda"]], ids=["default", "local", "no-conda"]
)
def test_install_mlflow_without_an_environment_is_accepted_with_one_note(
    sklearn_model: Path, tmp_path: Path, served: list[ServeCommand], flags: list[str]
) -> None:
    server = _serve(["-m", str(sklearn_model), "-p", "0", "--install-mlflow", *flags], tmp_path)
    served.append(server)
    url = server.wait_for_url()
    assert requests.get(f"{url}/ping", timeout=30).status_code == 200
    stderr = server.stop()
    assert server.process.returncode == 0
    assert stderr.strip().splitlines() == [
        "jupyter-serve: note: --install-mlflow has no effect without --env-manager virtualenv, "
        "uv or conda: the model is served from the current environment, with the MLflow it has "
        "(if any)."
    ]


def test_a_python_model_without_mlflow_names_both_ways_out(
    python_model: Path, tmp_path: Path
) -> None:
    assert importlib.util.find_spec("mlflow") is None, "the product venv must not have MLflow"
    done = _run_to_failure(["-m", str(python_model), "-p", "0"], cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "loader is 'mlflow.pyfunc.model'" in lines[0]
    assert "pip install 'jupyter-serve[mlflow]'" in lines[0]
    assert "--env-manager uv --install-mlflow" in lines[0]


def test_a_python_model_serves_from_an_environment_built_with_mlflow(
    python_model: Path, tmp_path: Path, served: list[ServeCommand]
) -> None:
    server = _serve(
        ["-m", str(python_model), "-p", "0", "--env-manager", "uv", "--install-mlflow"],
        tmp_path,
        env={CACHE_DIR_VARIABLE: str(tmp_path / "envs")},
    )
    served.append(server)
    url = server.wait_for_url(timeout=600)
    answer = requests.post(f"{url}/invocations", json={"inputs": {"x": [1.0, 41.0]}}, timeout=60)
    assert (answer.status_code, answer.json()) == (200, {"predictions": [2.0, 42.0]})
