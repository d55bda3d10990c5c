"""``models serve --enable-mlserver`` for real: the real MLServer and its MLflow runtime, scored
with a real V2 client, from the venv that has the ``jupyter-serve[mlserver]`` extra
(``.venv-mlserver``, built by ``make``, which names it in $JUPYTER_SERVE_MLSERVER_PYTHON).

That venv also holds MLflow, so it is where the first way out for models that need MLflow
(``pip install 'jupyter-serve[mlflow]'``: MLflow beside jupyter-serve) is tried too. The product
venv itself must stay without either: there, the flag is one line naming the extra.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
import tritonclient.http as v2_client
from sklearn.linear_model import LogisticRegression

from jupyter_serve.models import save_model
from tests._serve_command import ServeCommand
from tests._support import free_port, port_is_listening
from tests.conftest import REPO_ROOT, run_python

COLUMNS = ["a", "b"]
ROWS = [[1.0, 1.0], [30.0, 2.0], [12.0, 0.0]]

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


@pytest.fixture(scope="session")
def mlserver_python() -> Path:
    """The interpreter of the venv with jupyter-serve[mlserver] (never the product's venv).

    `make test` builds it and sets JUPYTER_SERVE_MLSERVER_PYTHON. A missing one is a failure,
    not a skip: --enable-mlserver is tested for real or not at all.
    """
    configured = os.environ.get("JUPYTER_SERVE_MLSERVER_PYTHON")
    candidate = Path(configured) if configured else REPO_ROOT / ".venv-mlserver" / "bin" / "python"
    if not candidate.exists():
        pytest.fail(
            f"the MLServer interpreter {candidate} does not exist; run `make test` (it builds "
            ".venv-mlserver) or set JUPYTER_SERVE_MLSERVER_PYTHON"
        )
    return candidate


@pytest.fixture(scope="module")
def classifier() -> LogisticRegression:
    features = pd.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0) % 3}, columns=COLUMNS)
    return LogisticRegression().fit(features, (features["a"] > 19).astype(int))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, classifier: LogisticRegression) -> Path:
    example = pd.DataFrame(ROWS[:1], columns=COLUMNS)
    return save_model(
        classifier, tmp_path_factory.mktemp("mlserver") / "model", input_example=example
    )


@pytest.fixture
def served() -> Iterator[list[ServeCommand]]:
    started: list[ServeCommand] = []
    yield started
    for server in started:
        server.stop()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found.extend(int(child) for child in children.read_text().split())
        except FileNotFoundError:
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_without_the_extra_the_flag_is_one_line_naming_it(model_dir: Path, tmp_path: Path) -> None:
    assert importlib.util.find_spec("mlserver") is None, "the product venv must not have MLServer"
    command = [sys.executable, "-m", "jupyter_serve", "models", "serve", "--enable-mlserver"]
    done = subprocess.run(
        [*command, "-m", str(model_dir), "-p", str(free_port())],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "pip install 'jupyter-serve[mlserver]'" in lines[0]
    assert "already answers the V2 inference protocol natively at /v2" in lines[0]


def test_mlserver_serves_the_model_over_v2_honouring_mlserver_variables(
    mlserver_python: Path,
    model_dir: Path,
    classifier: LogisticRegression,
    tmp_path: Path,
    served: list[ServeCommand],
) -> None:
    port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    server = ServeCommand(
        mlserver_python.parent / "jupyter-serve",
        ["-m", str(model_dir), "--enable-mlserver", "-p", str(port)],
        tmp_path,
        env={
            "MLSERVER_MODEL_NAME": "spam",
            "MLSERVER_GRPC_PORT": str(grpc_port),
            "MLSERVER_METRICS_PORT": str(metrics_port),
        },
    )
    served.append(server)
    assert server.wait_for_url(timeout=600) == f"http://127.0.0.1:{port}"
    expected = classifier.predict(pd.DataFrame(ROWS, columns=COLUMNS)).tolist()

    client = v2_client.InferenceServerClient(url=f"127.0.0.1:{port}")
    assert client.is_server_live() and client.is_model_ready("spam")
    inputs = []
    for index, name in enumerate(COLUMNS):
        tensor = v2_client.InferInput(name, [len(ROWS), 1], "FP64")
        tensor.set_data_from_numpy(np.array([[row[index]] for row in ROWS]), binary_data=False)
        inputs.append(tensor)
    result = client.infer("spam", inputs)
    output = result.get_response()["outputs"][0]["name"]
    assert result.as_numpy(output).ravel().tolist() == expected

    plain = requests.post(
        f"http://127.0.0.1:{port}/v2/models/spam/infer",
        json={
            "inputs": [
                {"name": name, "shape": [len(ROWS), 1], "datatype": "FP64", "data": column}
                for name, column in zip(COLUMNS, np.transpose(ROWS).tolist(), strict=True)
            ]
        },
        timeout=60,
    )
    assert plain.status_code == 200, plain.text
    assert np.ravel(plain.json()["outputs"][0]["data"]).tolist() == expected
    assert requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30).ok

    mlserver_processes = _children(server.process.pid)
    assert mlserver_processes
    stderr = server.stop()
    assert server.process.returncode == 0, stderr[-4000:]
    assert "jupyter-serve: stopped" in server.stdout
    assert not any(_alive(pid) for pid in mlserver_processes)
    assert not port_is_listening(port)


def test_a_python_model_serves_where_mlflow_is_installed_beside_jupyter_serve(
    mlserver_python: Path, tmp_path: Path, served: list[ServeCommand]
) -> None:
    python_model = tmp_path / "python-model"
    run_python(mlserver_python, SAVE_PYTHON_MODEL, str(python_model))
    server = ServeCommand(
        mlserver_python.parent / "jupyter-serve",
        ["-m", str(python_model), "-p", "0"],
        tmp_path,
    )
    served.append(server)
    url = server.wait_for_url(timeout=300)
    answer = requests.post(f"{url}/invocations", json={"inputs": {"x": [1.0, 41.0]}}, timeout=60)
    assert (answer.status_code, answer.json()) == (200, {"predictions": [2.0, 42.0]})
    # Where MLflow is installed, /version answers its version, as `mlflow models serve` would.
    version = requests.get(f"{url}/version", timeout=60)
    installed = run_python(
        mlserver_python, "from importlib.metadata import version; print(version('mlflow'))"
    ).strip()
    assert (version.status_code, version.text) == (200, installed)
