"""Differential tests against the real MLflow 3.17.2 (its own venv, via ``mlflow_python``).

Both directions of the model format, signatures read by each side, signature inference, and
schema enforcement outcomes, compared case by case. The MLflow side runs in ONE subprocess (each
MLflow import costs seconds): it receives the very same fitted models (pickled), saves them with
``mlflow.sklearn.save_model``, loads ours with ``mlflow.pyfunc.load_model``, and reports every
prediction and error as JSON. Inputs are built on both sides from the same source text.
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import run_python
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline

from jupyter_serve.errors import InvalidModelError, MissingDependencyError, SchemaEnforcementError
from jupyter_serve.models import (
    DataType,
    ModelSignature,
    ParamSchema,
    ParamSpec,
    Schema,
    from_object,
    infer_signature,
    load_model,
    save_model,
)

pytestmark = pytest.mark.mlflow

# Executed on both sides: the probe inputs each model is asked to predict on.
CASES_SOURCE = r"""
import json
import numpy as np, pandas as pd
text_cases = {
    "exact": pd.DataFrame({"text": ["free money now", "see you at lunch", "win cash"]}),
    "extra column": pd.DataFrame({"text": ["free money now"], "sender": ["x@example.com"]}),
    "missing column": pd.DataFrame({"body": ["free money now"]}),
    "ints in text column": pd.DataFrame({"text": [1, 2]}),
    "object strings": pd.DataFrame({"text": np.array(["cheap pills", "notes"], dtype=object)}),
    "dict of arrays": {"text": np.array(["free money", "meeting notes"])},
    "list of strings": ["free money", "meeting notes"],
    "scalar": "free money now",
}
numeric_cases = {
    "exact": pd.DataFrame({"a": [0.5, -1.0], "b": [1.5, 2.0], "c": [0.0, 3.0]}),
    "reordered": pd.DataFrame({"c": [0.0], "a": [0.5], "b": [1.5]}),
    "int64 into double": pd.DataFrame({"a": [1, 2], "b": [3, 4], "c": [5, 6]}),
    "int64 zeros and ones": pd.DataFrame({"a": [0, 1], "b": [1, 0], "c": [1, 1]}),
    "int32 into double": pd.DataFrame({"a": np.array([1, 2], dtype=np.int32),
                                       "b": np.array([3, 4], dtype=np.int32),
                                       "c": np.array([5, 6], dtype=np.int32)}),
    "float32 into double": pd.DataFrame({"a": np.array([1.5], dtype=np.float32),
                                         "b": np.array([2.5], dtype=np.float32),
                                         "c": np.array([3.5], dtype=np.float32)}),
    "uncastable string": pd.DataFrame({"a": ["abc"], "b": [1.0], "c": [2.0]}),
    "numeric strings in object": pd.DataFrame({"a": np.array([1.5, "2.5"], dtype=object),
                                               "b": [1.0, 2.0], "c": [2.0, 3.0]}),
    "missing column": pd.DataFrame({"a": [0.5], "b": [1.5]}),
    "extra column": pd.DataFrame({"a": [0.5], "b": [1.5], "c": [0.0], "d": ["x"]}),
    "nan value": pd.DataFrame({"a": [np.nan], "b": [1.5], "c": [0.0]}),
    "records dict": {"a": 0.5, "b": 1.5, "c": 0.0},
    "dict of arrays": {"a": np.array([0.5, 1.0]), "b": np.array([1.5, 2.0]),
                       "c": np.array([0.0, 1.0])},
    "bools into double": pd.DataFrame({"a": [True], "b": [1.5], "c": [0.0]}),
}
tensor_cases = {
    "exact": np.array([[0.5, 1.5, 0.0], [1.0, 2.0, 3.0]]),
    "int64 array": np.array([[1, 2, 3]]),
    "float32 array": np.array([[1.0, 2.0, 3.0]], dtype=np.float32),
    "wrong width": np.array([[0.5, 1.5]]),
    "one dimension": np.array([0.5, 1.5, 0.0]),
    "frame of three columns": pd.DataFrame({"x": [0.5], "y": [1.5], "z": [0.0]}),
    "frame of one column": pd.DataFrame({"x": [0.5, 1.0]}),
    "list": [[0.5, 1.5, 0.0]],
}
param_cases = {
    "no params": None,
    "int into double": {"threshold": 1},
    "string into double": {"threshold": "high"},
    "unknown param": {"unknown": 3},
    "int into string": {"mode": 3},
    "list param": {"weights": [1, 2]},
    "scalar for list": {"weights": 1.0},
}
signature_zoo = {
    "all column types": {"inputs": json.dumps([
        {"type": t, "name": t, "required": t != "binary"}
        for t in ["boolean", "integer", "long", "float", "double", "string", "binary", "datetime"]
    ])},
    "unnamed columns": {"inputs": '[{"type": "double", "required": true}]'},
    "nested columns": {"inputs": json.dumps([
        {"type": "array", "items": {"type": "string"}, "name": "tags", "required": True},
        {"type": "object", "properties": {"k": {"type": "long", "required": True}},
         "name": "meta", "required": False},
        {"type": "map", "values": {"type": "double"}, "name": "scores", "required": True},
        {"type": "any", "name": "anything", "required": True},
    ])},
    "named tensors": {"inputs": json.dumps([
        {"name": "image", "type": "tensor", "tensor-spec": {"dtype": "uint8", "shape": [-1, 2, 2]}},
        {"name": "label", "type": "tensor", "tensor-spec": {"dtype": "str", "shape": [-1]}},
    ]), "outputs": '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 10]}}]'},
    "params": {
      "inputs": '[{"type": "string", "name": "q", "required": true}]',
      "params": json.dumps([
        {"name": "k", "type": "long", "default": 3, "shape": None},
        {"name": "t", "type": "float", "default": 0.5, "shape": None},
        {"name": "on", "type": "boolean", "default": True, "shape": None},
        {"name": "ws", "type": "double", "default": [1.0, 2.0], "shape": [-1]},
        {"name": "when", "type": "datetime", "default": "2024-01-02T03:04:05", "shape": None},
        {"name": "name", "dtype": "string", "default": "x", "shape": None},
      ]),
    },
}
def columns(*specs):
    return json.dumps([{"type": t, "name": n, "required": r} for n, t, r in specs])

enforcement_cases = [
    ("iso strings into datetime", columns(("d", "datetime", True)),
     pd.DataFrame({"d": np.array(["2024-01-02", "2024-03-04T05:06:07"], dtype=object)})),
    ("str dtype into datetime", columns(("d", "datetime", True)),
     pd.DataFrame({"d": ["2024-01-02"]})),
    ("seconds into datetime", columns(("d", "datetime", True)),
     pd.DataFrame({"d": np.array(["2024-01-02"], dtype="datetime64[s]")})),
    ("optional column missing", columns(("a", "double", True), ("b", "string", False)),
     pd.DataFrame({"a": [1.5]})),
    ("optional column present", columns(("a", "double", True), ("b", "string", False)),
     pd.DataFrame({"b": ["x"], "a": [1.5]})),
    ("booleans with None", columns(("f", "boolean", True)),
     pd.DataFrame({"f": np.array([True, None], dtype=object)})),
    ("int64 into integer", columns(("i", "integer", True)), pd.DataFrame({"i": [1, 2]})),
    ("int32 into long", columns(("i", "long", True)),
     pd.DataFrame({"i": np.array([1, 2], dtype=np.int32)})),
    ("uint8 into long", columns(("i", "long", True)),
     pd.DataFrame({"i": np.array([1, 2], dtype=np.uint8)})),
    ("uint64 into long", columns(("i", "long", True)),
     pd.DataFrame({"i": np.array([1, 2], dtype=np.uint64)})),
    ("int16 into double", columns(("x", "double", True)),
     pd.DataFrame({"x": np.array([1, 2], dtype=np.int16)})),
    ("nullable Int64 into long", columns(("i", "long", True)),
     pd.DataFrame({"i": pd.array([1, 2], dtype="Int64")})),
    ("float64 into float", columns(("x", "float", True)), pd.DataFrame({"x": [1.5]})),
    ("zeros and ones into float", columns(("x", "float", True)), pd.DataFrame({"x": [0, 1]})),
    ("bytes into binary", columns(("b", "binary", True)),
     pd.DataFrame({"b": np.array([b"ab", b"c"], dtype=object)})),
    ("None in string", columns(("s", "string", True)),
     pd.DataFrame({"s": np.array(["a", None], dtype=object)})),
    ("floats into string", columns(("s", "string", True)), pd.DataFrame({"s": [1.5]})),
    ("unnamed columns take the first ones", '[{"type": "double"}, {"type": "long"}]',
     pd.DataFrame({"p": [1.5], "q": [2], "r": ["x"]})),
    ("unnamed columns too few", '[{"type": "double"}, {"type": "long"}]',
     pd.DataFrame({"p": [1.5]})),
    ("array column", json.dumps([{"type": "array", "items": {"type": "string"}, "name": "t",
                                  "required": True}]),
     pd.DataFrame({"t": [["a", "b"], ["c"]]})),
    ("array of long given floats", json.dumps([{"type": "array", "items": {"type": "long"},
                                                "name": "t", "required": True}]),
     pd.DataFrame({"t": [[1.5, 2.0]]})),
    ("array of double given ints", json.dumps([{"type": "array", "items": {"type": "double"},
                                                "name": "t", "required": True}]),
     pd.DataFrame({"t": [[1, 2], [3]]})),
    ("array column given a scalar", json.dumps([{"type": "array", "items": {"type": "string"},
                                                 "name": "t", "required": True}]),
     pd.DataFrame({"t": ["abc"]})),
    ("object column", json.dumps([{"type": "object", "name": "o", "required": True,
                                   "properties": {"k": {"type": "double", "required": True},
                                                  "s": {"type": "string", "required": False}}}]),
     pd.DataFrame({"o": [{"k": 1.5, "s": "x"}, {"k": 2.0}]})),
    ("object column missing property", json.dumps([{"type": "object", "name": "o",
        "required": True, "properties": {"k": {"type": "double", "required": True}}}]),
     pd.DataFrame({"o": [{"s": "x"}]})),
    ("map column", json.dumps([{"type": "map", "values": {"type": "long"}, "name": "m",
                                "required": True}]),
     pd.DataFrame({"m": [{"a": 1, "b": 2}]})),
    ("scalar dict becomes one row", columns(("a", "double", True), ("s", "string", True)),
     {"a": 1.5, "s": "x"}),
    ("series", columns(("score", "double", True)), pd.Series([1.0, 2.0], name="score")),
    ("list of rows", columns(("a", "long", True)), [{"a": 1}, {"a": 2}]),
    ("empty frame", columns(("a", "double", True)), pd.DataFrame({"a": []})),
]

def describe(result):
    if not isinstance(result, pd.DataFrame):
        return {"type": type(result).__name__}
    return {
        "columns": [str(c) for c in result.columns],
        "dtypes": [str(t) for t in result.dtypes],
        "values": [[None if v is None or (isinstance(v, float) and v != v) else str(v)
                    for v in row] for row in result.astype(object).values.tolist()],
    }

signature_examples = {
    "frame": pd.DataFrame({"i": [1, 2], "f": [0.5, 1.5], "s": ["x", "y"], "b": [True, False],
                           "f32": np.array([1.0, 2.0], dtype=np.float32),
                           "i32": np.array([1, 2], dtype=np.int32)}),
    "frame with missing": pd.DataFrame({"s": ["x", None], "f": [1.0, np.nan]}),
    "dict of lists": {"a": [1, 2], "b": ["x", "y"]},
    "dict of scalars": {"a": 1.5, "b": "x"},
    "list of strings": ["a", "b"],
    "list of dicts": [{"a": 1, "b": "x"}, {"a": 2}],
    "2-D array": np.array([[1.0, 2.0], [3.0, 4.0]]),
    "int array": np.array([1, 2, 3]),
    "dict of arrays": {"x": np.array([[1, 2]]), "y": np.array(["a", "b"])},
    "series": pd.Series([1.0, 2.0], name="score"),
    "string scalar": "hello",
    "datetimes and bytes": pd.DataFrame({"d": pd.to_datetime(["2024-01-02", "2024-02-03"]),
                                         "b": [b"ab", b"c"]}),
    "list column": pd.DataFrame({"tags": [["a", "b"], ["c"]]}),
    "object column": pd.DataFrame({"o": [{"k": 1}, {"k": 2, "s": "x"}]}),
    "empty list": [],
    "bool array": np.array([True, False]),
    "float32 2-D array": np.zeros((2, 3, 4), dtype=np.float32),
    "nested dict": {"q": "text", "opts": {"k": 1, "w": [0.5]}},
    "mixed list": [1, "a"],
}
"""

MLFLOW_SIDE = r"""
import json, os, pickle, sys, warnings
os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"
warnings.simplefilter("ignore")
import logging; logging.disable(logging.WARNING)
import numpy as np, pandas as pd
import mlflow, mlflow.pyfunc, mlflow.sklearn
from mlflow.models import Model, infer_signature
from mlflow.models.signature import ModelSignature
from mlflow.types import ParamSchema, ParamSpec

work = sys.argv[1]
exec(open(os.path.join(work, "cases.py")).read())
plan = json.load(open(os.path.join(work, "plan.json")))
models = pickle.load(open(os.path.join(work, "models.pkl"), "rb"))
cases_by_kind = {"text": text_cases, "numeric": numeric_cases, "tensor": tensor_cases}

def as_json(value):
    if isinstance(value, (pd.DataFrame, pd.Series)):
        value = value.to_numpy()
    return np.asarray(value).tolist()

def outcome(model, data, params=None):
    try:
        return {"ok": as_json(model.predict(data, params=params))}
    except mlflow.exceptions.MlflowException as e:
        return {"error": "schema", "message": str(e)[:300]}
    except Exception as e:
        return {"error": "model", "message": repr(e)[:300]}

report = {"ours": {}, "theirs": {}, "inferred": {}}
for name, entry in plan["ours"].items():
    model = mlflow.pyfunc.load_model(os.path.join(work, "ours", name))
    result = {"signature": Model.load(os.path.join(work, "ours", name)).signature.to_dict()}
    result["cases"] = {c: outcome(model, d) for c, d in cases_by_kind[entry["kind"]].items()}
    if entry.get("params"):
        probe = cases_by_kind[entry["kind"]]["exact"]
        result["params"] = {c: outcome(model, probe, p) for c, p in param_cases.items()}
    report["ours"][name] = result

for name, entry in plan["theirs"].items():
    sk_model = models[entry["model"]]
    example = cases_by_kind[entry["kind"]]["exact"]
    path = os.path.join(work, "theirs", name)
    if entry.get("example_params"):
        example = (example, {"k": 3, "ratio": 0.5})
    mlflow.sklearn.save_model(
        sk_model, path, serialization_format=entry["format"], input_example=example,
        pyfunc_predict_fn=entry.get("predict_fn", "predict"),
        skops_trusted_types=entry.get("trusted"), pip_requirements=["scikit-learn"],
    )
    model = mlflow.pyfunc.load_model(path)
    result = {"cases": {c: outcome(model, d) for c, d in cases_by_kind[entry["kind"]].items()}}
    report["theirs"][name] = result

sys.path.insert(0, work)
import interop_custom
mlflow.sklearn.save_model(
    interop_custom.Doubler(), os.path.join(work, "theirs", "custom_code"),
    serialization_format="cloudpickle", pip_requirements=["scikit-learn"],
    code_paths=[os.path.join(work, "interop_custom.py")],
)
custom = mlflow.pyfunc.load_model(os.path.join(work, "theirs", "custom_code"))
report["custom_code"] = outcome(custom, numeric_cases["exact"])

class Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        scale = (params or {}).get("scale", 1.0)
        return (model_input["a"] * scale + model_input["b"]).to_numpy()

echo_signature = infer_signature(numeric_cases["exact"], params={"scale": 1.0})
mlflow.pyfunc.save_model(os.path.join(work, "theirs", "python_model"), python_model=Echo(),
                         signature=echo_signature, pip_requirements=["pandas"])
echo = mlflow.pyfunc.load_model(os.path.join(work, "theirs", "python_model"))
report["python_model"] = {
    "mlflow": outcome(echo, numeric_cases["exact"], {"scale": 2}),
    "mlflow bad param": outcome(echo, numeric_cases["exact"], {"scale": "x"}),
}
sys.path.insert(0, plan["repo"])
from jupyter_serve.models import load_model as js_load_model
ours = js_load_model(os.path.join(work, "theirs", "python_model"))
report["python_model"]["ours"] = {"ok": as_json(ours.predict(numeric_cases["exact"], {"scale": 2}))}
try:
    ours.predict(numeric_cases["exact"], {"scale": "x"})
    report["python_model"]["ours bad param"] = {"ok": None}
except Exception as e:
    report["python_model"]["ours bad param"] = {"error": type(e).__name__}

for name, example in signature_examples.items():
    report["inferred"][name] = infer_signature(example).to_dict()
report["inferred"]["with output"] = infer_signature(
    text_cases["exact"], np.array(["spam", "ham", "spam"])).to_dict()
report["inferred"]["with params"] = infer_signature(
    text_cases["exact"], params={"k": 3, "t": 0.5, "name": "x", "flag": True, "ws": [1.0, 2.0]}
).to_dict()
from mlflow.models.utils import _enforce_schema
from mlflow.types import Schema
report["enforced"] = {}
for name, schema_json, data in enforcement_cases:
    try:
        report["enforced"][name] = describe(_enforce_schema(data, Schema.from_json(schema_json)))
    except mlflow.exceptions.MlflowException as e:
        report["enforced"][name] = {"error": "schema", "message": str(e)[:300]}
    except Exception as e:
        report["enforced"][name] = {"error": type(e).__name__, "message": str(e)[:300]}
report["zoo"] = {n: ModelSignature.from_dict(d).to_dict() for n, d in signature_zoo.items()}
json.dump(report, open(os.path.join(work, "report.json"), "w"))
"""

# A model class living in a module shipped with the model (MLflow's `code_paths`).
CUSTOM_MODULE = """
import numpy as np


class Doubler:
    def predict(self, data):
        return np.asarray(data["a"], dtype=float) * 2
"""

SPAM_TEXTS = [
    "free money now",
    "hello friend, lunch today?",
    "win a cash prize now",
    "meeting moved to noon",
    "cheap pills free offer",
    "notes from the review",
]
SPAM_LABELS = ["spam", "ham", "spam", "ham", "spam", "ham"]
PARAMS = ParamSchema(
    [
        ParamSpec("threshold", DataType.double, 0.5),
        ParamSpec("mode", DataType.string, "fast"),
        ParamSpec("weights", DataType.double, [0.5, 0.5], (-1,)),
    ]
)


def _cases() -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(CASES_SOURCE, namespace)
    return namespace


def _fitted_models() -> dict[str, Any]:
    rng = np.random.default_rng(11)
    features = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    labels = (features["a"] + features["b"] > 0).map({True: "yes", False: "no"})
    target = features["a"] * 2 - features["c"]
    text = Pipeline(
        [
            ("features", ColumnTransformer([("tfidf", TfidfVectorizer(), "text")])),
            ("classifier", LogisticRegression()),
        ]
    ).fit(pd.DataFrame({"text": SPAM_TEXTS}), SPAM_LABELS)
    return {
        "text": text,
        "classifier": RandomForestClassifier(n_estimators=5, random_state=0).fit(features, labels),
        "regressor": LinearRegression().fit(features, target),
        "array_regressor": LinearRegression().fit(features.to_numpy(), target),
    }


# What we save (MLflow loads it) and what MLflow saves (we load it).
OURS: dict[str, dict[str, Any]] = {
    "text_skops": {"model": "text", "kind": "text", "format": None},
    "text_proba": {"model": "text", "kind": "text", "format": None, "predict_fn": "predict_proba"},
    "classifier_cloudpickle": {"model": "classifier", "kind": "numeric", "format": "cloudpickle"},
    "regressor_pickle": {"model": "regressor", "kind": "numeric", "format": "pickle"},
    "regressor_params": {"model": "regressor", "kind": "numeric", "format": None, "params": True},
    "regressor_tensor": {"model": "array_regressor", "kind": "tensor", "format": None},
    "regressor_example_params": {
        "model": "regressor",
        "kind": "numeric",
        "format": "cloudpickle",
        "example_params": True,
    },
}
THEIRS: dict[str, dict[str, Any]] = {
    "text_skops": {"model": "text", "kind": "text", "format": "skops"},
    "text_cloudpickle": {"model": "text", "kind": "text", "format": "cloudpickle"},
    "text_pickle": {"model": "text", "kind": "text", "format": "pickle"},
    "text_proba": {
        "model": "text",
        "kind": "text",
        "format": "skops",
        "predict_fn": "predict_proba",
    },
    "classifier_skops": {
        "model": "classifier",
        "kind": "numeric",
        "format": "skops",
        "trusted": ["sklearn.tree._tree.Tree"],
    },
    "regressor_cloudpickle": {"model": "regressor", "kind": "numeric", "format": "cloudpickle"},
    "regressor_tensor": {"model": "array_regressor", "kind": "tensor", "format": "pickle"},
    "regressor_example_params": {
        "model": "regressor",
        "kind": "numeric",
        "format": "cloudpickle",
        "example_params": True,
    },
}


class Interop:
    def __init__(self, work: Path, report: dict[str, Any], cases: dict[str, Any]) -> None:
        self.work = work
        self.report = report
        self.cases = cases

    def cases_of(self, kind: str) -> dict[str, Any]:
        return dict(self.cases[f"{kind}_cases"])


@pytest.fixture(scope="module")
def interop(mlflow_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Interop:
    work = tmp_path_factory.mktemp("interop")
    cases = _cases()
    models = _fitted_models()
    (work / "cases.py").write_text(CASES_SOURCE)
    (work / "interop_custom.py").write_text(CUSTOM_MODULE)
    (work / "models.pkl").write_bytes(pickle.dumps(models))
    for name, entry in OURS.items():
        kind_cases = cases[f"{entry['kind']}_cases"]
        model = models[entry["model"]]
        signature = None
        if entry.get("params"):
            example = kind_cases["exact"]
            inferred = infer_signature(example, model.predict(example))
            signature = ModelSignature(inferred.inputs, inferred.outputs, PARAMS)
        example = kind_cases["exact"]
        if entry.get("example_params"):
            example = (example, {"k": 3, "ratio": 0.5})
        save_model(
            model,
            work / "ours" / name,
            signature=signature,
            input_example=example,
            serialization_format=entry["format"],
            pyfunc_predict_fn=entry.get("predict_fn", "predict"),
        )
    plan = {"ours": OURS, "theirs": THEIRS, "repo": str(Path(__file__).resolve().parent.parent)}
    (work / "plan.json").write_text(json.dumps(plan))
    run_python(mlflow_python, MLFLOW_SIDE, str(work), timeout=600)
    return Interop(work, json.loads((work / "report.json").read_text()), cases)


def _our_outcome(model: Any, data: Any, params: dict[str, Any] | None = None) -> dict[str, Any]:
    try:
        prediction = model.predict(data, params)
    except SchemaEnforcementError as error:
        return {"error": "schema", "message": str(error)}
    except Exception as error:
        return {"error": "model", "message": repr(error)}
    if isinstance(prediction, (pd.DataFrame, pd.Series)):
        prediction = prediction.to_numpy()
    return {"ok": np.asarray(prediction).tolist()}


def _assert_same_outcome(case: str, ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    assert ("ok" in ours) == ("ok" in theirs), f"{case}: we {ours}, MLflow {theirs}"
    if "ok" not in ours:
        assert ours["error"] == theirs["error"], f"{case}: we {ours}, MLflow {theirs}"
        return
    expected, actual = theirs["ok"], ours["ok"]
    if expected and isinstance(np.asarray(expected).flat[0], str):
        assert actual == expected, case
    else:
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-9, err_msg=case)


@pytest.mark.parametrize("name", sorted(OURS))
def test_mlflow_loads_what_we_save(interop: Interop, name: str) -> None:
    """MLflow's pyfunc predicts on our directories exactly as we do, errors included."""
    loaded = load_model(interop.work / "ours" / name)
    theirs = interop.report["ours"][name]["cases"]
    for case, data in interop.cases_of(OURS[name]["kind"]).items():
        ours = _our_outcome(loaded, data)
        _assert_same_outcome(case, ours, theirs[case])
        if ours.get("error") == "schema":
            assert ours["message"][:300] == theirs[case]["message"], case
    assert any("ok" in outcome for outcome in theirs.values())


@pytest.mark.parametrize("name", sorted(THEIRS))
def test_we_load_what_mlflow_saves(interop: Interop, name: str) -> None:
    """Each serialization format MLflow writes loads here and predicts identically."""
    loaded = load_model(interop.work / "theirs" / name)
    entry = THEIRS[name]
    assert loaded.flavors["sklearn"]["serialization_format"] == entry["format"]
    assert loaded.predict_fn_name == entry.get("predict_fn", "predict")
    assert loaded.signature is not None and loaded.serving_input_example is not None
    theirs = interop.report["theirs"][name]["cases"]
    for case, data in interop.cases_of(entry["kind"]).items():
        _assert_same_outcome(case, _our_outcome(loaded, data), theirs[case])


def test_params_enforcement_matches_mlflow(interop: Interop) -> None:
    loaded = load_model(interop.work / "ours" / "regressor_params")
    probe = interop.cases_of("numeric")["exact"]
    theirs = interop.report["ours"]["regressor_params"]["params"]
    for case, params in interop.cases["param_cases"].items():
        ours = _our_outcome(loaded, probe, params)
        _assert_same_outcome(case, ours, theirs[case])
        if "error" in ours:
            assert ours["message"][:300] == theirs[case]["message"], case
    assert theirs["string into double"]["error"] == "schema"


def _parsed(signature: dict[str, Any]) -> dict[str, Any]:
    return {key: json.loads(value) if value else None for key, value in signature.items()}


@pytest.mark.parametrize("name", sorted(OURS))
def test_mlflow_reads_our_signatures(interop: Interop, name: str) -> None:
    ours = yaml.safe_load((interop.work / "ours" / name / "MLmodel").read_text())["signature"]
    assert _parsed(interop.report["ours"][name]["signature"]) == _parsed(ours)


@pytest.mark.parametrize("name", sorted(THEIRS))
def test_we_read_mlflow_signatures(interop: Interop, name: str) -> None:
    theirs = yaml.safe_load((interop.work / "theirs" / name / "MLmodel").read_text())["signature"]
    loaded = load_model(interop.work / "theirs" / name)
    assert loaded.signature is not None
    assert _parsed(loaded.signature.to_mlmodel_dict()) == _parsed(theirs)


def test_save_time_signature_inference_matches_mlflow(interop: Interop) -> None:
    """Without an explicit signature both sides infer the same one from the same example."""
    for ours_name, theirs_name in [
        ("text_skops", "text_skops"),
        ("text_proba", "text_proba"),
        ("classifier_cloudpickle", "classifier_skops"),
        ("regressor_pickle", "regressor_cloudpickle"),
        ("regressor_tensor", "regressor_tensor"),
        ("regressor_example_params", "regressor_example_params"),
    ]:
        ours = yaml.safe_load((interop.work / "ours" / ours_name / "MLmodel").read_text())
        theirs = yaml.safe_load((interop.work / "theirs" / theirs_name / "MLmodel").read_text())
        assert _parsed(ours["signature"]) == _parsed(theirs["signature"]), ours_name
        assert ours["saved_input_example_info"] == theirs["saved_input_example_info"]
        for file_name in ("input_example.json", "serving_input_example.json"):
            ours_file = interop.work / "ours" / ours_name / file_name
            theirs_file = interop.work / "theirs" / theirs_name / file_name
            assert json.loads(ours_file.read_text()) == json.loads(theirs_file.read_text())


def test_infer_signature_matches_mlflow(interop: Interop) -> None:
    inferred = interop.report["inferred"]
    for name, example in interop.cases["signature_examples"].items():
        assert _parsed(infer_signature(example).to_mlmodel_dict()) == _parsed(inferred[name]), name
    text = interop.cases_of("text")["exact"]
    with_output = infer_signature(text, np.array(["spam", "ham", "spam"]))
    assert _parsed(with_output.to_mlmodel_dict()) == _parsed(inferred["with output"])
    with_params = infer_signature(
        text, params={"k": 3, "t": 0.5, "name": "x", "flag": True, "ws": [1.0, 2.0]}
    )
    assert _parsed(with_params.to_mlmodel_dict()) == _parsed(inferred["with params"])


def test_python_model_loads_through_mlflow_when_installed(interop: Interop) -> None:
    """A custom PythonModel needs MLflow's loader: inside MLflow's venv we use it, params too."""
    report = interop.report["python_model"]
    assert report["ours"] == report["mlflow"]
    assert report["mlflow"]["ok"] == [2 * 0.5 + 1.5, 2 * -1.0 + 2.0]
    assert report["mlflow bad param"]["error"] == "schema"
    assert report["ours bad param"] == {"error": "SchemaEnforcementError"}


def test_python_model_without_mlflow_names_what_is_missing(
    interop: Interop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(MissingDependencyError) as caught:
        load_model(interop.work / "theirs" / "python_model")
    message = str(caught.value)
    assert "mlflow.pyfunc.model" in message and "MLflow is not installed" in message
    assert "pip install 'jupyter-serve[mlflow]'" in message
    assert "--env-manager uv --install-mlflow" in message


def test_signature_zoo_round_trips_like_mlflow(interop: Interop) -> None:
    """Every column type, optional and nested columns, named tensors, typed params."""
    for name, entries in interop.cases["signature_zoo"].items():
        ours = ModelSignature.from_mlmodel_dict(entries).to_mlmodel_dict()
        assert _parsed(ours) == _parsed(interop.report["zoo"][name]), name


class _Identity:
    def predict(self, data: Any) -> Any:
        return data


def test_enforcement_converts_exactly_like_mlflow(interop: Interop) -> None:
    """Column casting and conversion compared value by value with MLflow's `_enforce_schema`."""
    describe = interop.cases["describe"]
    for name, schema_json, data in interop.cases["enforcement_cases"]:
        signature = ModelSignature(Schema.from_json(schema_json))
        model = from_object(_Identity(), signature=signature)
        try:
            ours = describe(model.prepare_input(data)[0])
        except SchemaEnforcementError as error:
            ours = {"error": "schema", "message": str(error)}
        theirs = interop.report["enforced"][name]
        if "error" in theirs:
            assert ours.get("error") == "schema", f"{name}: we {ours}, MLflow {theirs}"
            reason = ours["message"].split("'. Error: ", 1)[1]
            assert reason[:300] == theirs["message"], name
        else:
            assert ours == theirs, name


def test_model_with_code_paths_loads_its_shipped_module(
    interop: Interop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    try:
        loaded = load_model(interop.work / "theirs" / "custom_code")
        outcome = _our_outcome(loaded, interop.cases_of("numeric")["exact"])
    finally:
        sys.modules.pop("interop_custom", None)
    assert outcome == interop.report["custom_code"] == {"ok": [1.0, -2.0]}


DESERIALIZATION_SWITCH_SCRIPT = r"""
import json, os, sys
import mlflow.pyfunc

variable, values, directories = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
outcomes = {}
for value in values:
    if value is None:
        os.environ.pop(variable, None)
    else:
        os.environ[variable] = value
    for name, directory in directories.items():
        try:
            mlflow.pyfunc.load_model(directory)
            outcomes[f"{value}/{name}"] = "loaded"
        except Exception as error:
            outcomes[f"{value}/{name}"] = "refused" if variable in str(error) else repr(error)
print(json.dumps(outcomes))
"""


def test_the_deserialization_switch_loads_and_refuses_what_mlflow_does(
    mlflow_python: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    variable = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"
    frame = pd.DataFrame({"text": ["free money now", "see you at lunch"]})
    pipeline = Pipeline(
        [
            ("features", ColumnTransformer([("tfidf", TfidfVectorizer(), "text")])),
            ("classifier", LogisticRegression()),
        ]
    ).fit(frame, ["spam", "ham"])
    directories = {}
    for serialization_format in ("skops", "cloudpickle", "pickle"):
        directory = tmp_path / serialization_format
        save_model(pipeline, directory, serialization_format=serialization_format)
        directories[serialization_format] = str(directory)
    values: list[str | None] = [None, "true", "1", "false", "0", "False"]

    ours = {}
    for value in values:
        if value is None:
            monkeypatch.delenv(variable, raising=False)
        else:
            monkeypatch.setenv(variable, value)
        for name, directory in directories.items():
            try:
                load_model(directory)
                ours[f"{value}/{name}"] = "loaded"
            except InvalidModelError as error:
                ours[f"{value}/{name}"] = "refused" if variable in str(error) else repr(error)
    monkeypatch.delenv(variable, raising=False)
    theirs = json.loads(
        run_python(
            mlflow_python,
            DESERIALIZATION_SWITCH_SCRIPT,
            variable,
            json.dumps(values),
            json.dumps(directories),
        )
        .strip()
        .splitlines()[-1]
    )

    assert ours == theirs
    assert {ours[f"false/{name}"] for name in directories} == {"refused"}
    assert {ours[f"None/{name}"] for name in directories} == {"loaded"}
