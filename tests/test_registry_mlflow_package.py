"""The MLflow backend on a database URI, where it goes through the ``mlflow`` package.

The product venv has no mlflow (it is the optional extra), so this runs the product's
interpreter with the reference MLflow venv's packages appended to ``sys.path`` (same pandas,
numpy and scikit-learn versions): what a user gets from ``pip install 'jupyter-serve[mlflow]'``.
One subprocess fills a ``sqlite:///`` registry with MLflow's client, resolves every form with
ours and with MLflow's, and registers a version from our side.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import run_python

pytestmark = pytest.mark.mlflow

BOTH_SIDES = r"""
import json, os, sys
sys.path.append(sys.argv[1])
import mlflow, pandas as pd
from mlflow import MlflowClient
from mlflow.store.artifact.utils.models import get_model_name_and_version
from sklearn.dummy import DummyRegressor

from jupyter_serve.models import load_model
from jupyter_serve.registry import MlflowRegistry, register_model

uri = sys.argv[2]
mlflow.set_tracking_uri(uri)
client = MlflowClient()
X = pd.DataFrame({"x": [1.0, 2.0]})
def constant(value):
    return DummyRegressor(strategy="constant", constant=value).fit(X, [0.0, 0.0])
runs = {}
for k in (1, 2, 3):
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(constant(10.0 * k), name="model", input_example=X,
                                        registered_model_name="pkg",
                                        pip_requirements=["scikit-learn"])
        runs[k] = (run.info.run_id, info.model_id)
client.transition_model_version_stage("pkg", "2", "Production")
client.set_registered_model_alias("pkg", "champion", "1")

ours = MlflowRegistry(uri)
uris = ["models:/pkg/3", "models:/pkg/latest", "models:/pkg/production", "models:/pkg@champion",
        f"models:/{runs[2][1]}", f"runs:/{runs[3][0]}/model"]
out = {"mlflow": {}, "ours": {}}
for model_uri in uris:
    version = None
    if not model_uri.startswith(("runs:", "models:/m-")):
        version = int(get_model_name_and_version(client, model_uri)[1])
    out["mlflow"][model_uri] = [version, list(mlflow.pyfunc.load_model(model_uri).predict(X))]
    resolved = ours.resolve(model_uri)
    out["ours"][model_uri] = [resolved.version, list(load_model(resolved.path).predict(X))]
try:
    ours.resolve("models:/pkg@gold")
except Exception as error:
    out["unknown_alias"] = f"{type(error).__name__}: {error}"

new = register_model(constant(99.0), "pkg", registry_uri=uri, stage="Staging", alias="fresh")
seen = client.get_model_version_by_alias("pkg", "fresh")
out["registered"] = [new, int(seen.version), seen.current_stage,
                     list(mlflow.pyfunc.load_model("models:/pkg@fresh").predict(X))]
print(json.dumps(out))
"""


def test_a_sqlite_registry_resolves_and_registers_through_the_mlflow_package(
    mlflow_python: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site_packages = next((mlflow_python.parent.parent / "lib").glob("python3*/site-packages"))
    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root, ./mlruns, lands here
    monkeypatch.setenv("JUPYTER_SERVE_MLFLOW_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    output = run_python(Path(sys.executable), BOTH_SIDES, str(site_packages), uri, timeout=300)
    answers = json.loads(output.strip().splitlines()[-1])
    assert answers["ours"] == answers["mlflow"]
    assert answers["ours"]["models:/pkg/production"] == [2, [20.0, 20.0]]
    assert answers["ours"]["models:/pkg@champion"] == [1, [10.0, 10.0]]
    assert answers["unknown_alias"] == (
        f"ModelNotFoundError: model 'pkg' has no alias 'gold' in the MLflow registry at {uri}; "
        "aliases: champion -> version 1"
    )
    assert answers["registered"] == [4, 4, "Staging", [99.0, 99.0]]
