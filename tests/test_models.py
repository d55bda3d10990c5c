"""Saving and loading MLflow model directories with jupyter-serve alone (no MLflow)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sklearn
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline

from jupyter_serve.errors import (
    InvalidModelError,
    MissingDependencyError,
    SchemaEnforcementError,
)
from jupyter_serve.models import (
    LoadedModel,
    from_object,
    infer_signature,
    load_model,
    save_model,
)

EMAILS = pd.DataFrame(
    {
        "text": [
            "free money now",
            "hello friend, lunch today?",
            "win a cash prize now",
            "meeting moved to noon",
            "cheap pills free offer",
            "notes from the review",
        ]
    }
)
LABELS = ["spam", "ham", "spam", "ham", "spam", "ham"]


class DoublingModel:
    """A custom class skops cannot hold: saved with cloudpickle."""

    def predict(self, data: Any) -> Any:
        return np.asarray(data["x"], dtype=float) * 2


@pytest.fixture(scope="module")
def spam_pipeline() -> Pipeline:
    pipeline = Pipeline(
        [
            ("features", ColumnTransformer([("tfidf", TfidfVectorizer(), "text")])),
            ("classifier", LogisticRegression()),
        ]
    )
    return pipeline.fit(EMAILS, LABELS)


@pytest.fixture(scope="module")
def numeric_data() -> tuple[pd.DataFrame, np.ndarray[Any, Any]]:
    rng = np.random.default_rng(7)
    features = pd.DataFrame(rng.normal(size=(40, 3)), columns=["a", "b", "c"])
    target = features["a"] * 2 - features["b"] + 0.1 * rng.normal(size=40)
    return features, target.to_numpy()


def _mlmodel(directory: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((directory / "MLmodel").read_text())
    return loaded


@pytest.mark.parametrize("serialization_format", [None, "skops", "cloudpickle", "pickle"])
def test_round_trip_predicts_identically(
    tmp_path: Path, spam_pipeline: Pipeline, serialization_format: str | None
) -> None:
    saved = save_model(
        spam_pipeline,
        tmp_path / "spam",
        input_example=EMAILS.head(2),
        serialization_format=serialization_format,
    )
    loaded = load_model(saved)

    assert list(loaded.predict(EMAILS)) == list(spam_pipeline.predict(EMAILS))
    expected_format = serialization_format or "skops"
    assert loaded.flavors["sklearn"]["serialization_format"] == expected_format
    assert loaded.path == saved
    assert loaded.model_uuid == _mlmodel(saved)["model_uuid"]
    assert loaded.signature is not None
    assert loaded.signature.input_names() == ["text"]
    assert loaded.serving_input_example == {
        "dataframe_split": {
            "columns": ["text"],
            "data": [["free money now"], ["hello friend, lunch today?"]],
        }
    }
    pd.testing.assert_frame_equal(loaded.input_example, EMAILS.head(2))


def test_saved_directory_has_mlflow_layout(tmp_path: Path, spam_pipeline: Pipeline) -> None:
    saved = save_model(spam_pipeline, tmp_path / "spam", input_example=EMAILS.head(2))

    names = sorted(p.name for p in saved.iterdir())
    assert names == [
        "MLmodel",
        "conda.yaml",
        "input_example.json",
        "model.skops",
        "python_env.yaml",
        "requirements.txt",
        "serving_input_example.json",
    ]
    mlmodel = _mlmodel(saved)
    assert mlmodel["mlflow_version"] == "3.17.2"
    assert mlmodel["flavors"]["python_function"]["loader_module"] == "mlflow.sklearn"
    assert mlmodel["flavors"]["python_function"]["model_path"] == "model.skops"
    assert mlmodel["flavors"]["sklearn"]["pickled_model"] == "model.skops"
    assert mlmodel["model_size_bytes"] > 0
    assert (
        mlmodel["signature"]["inputs"] == '[{"type": "string", "name": "text", "required": true}]'
    )
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_custom_class_falls_back_to_cloudpickle(tmp_path: Path) -> None:
    saved = save_model(DoublingModel(), tmp_path / "double")

    assert _mlmodel(saved)["flavors"]["sklearn"]["serialization_format"] == "cloudpickle"
    assert list(load_model(saved).predict({"x": [1.0, 2.5]})) == [2.0, 5.0]


def test_skops_forced_on_a_custom_class_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidModelError, match="cloudpickle"):
        save_model(DoublingModel(), tmp_path / "double", serialization_format="skops")
    assert list(tmp_path.iterdir()) == []


def test_predict_proba_as_pyfunc_predict_fn(tmp_path: Path, spam_pipeline: Pipeline) -> None:
    saved = save_model(spam_pipeline, tmp_path / "spam", pyfunc_predict_fn="predict_proba")
    loaded = load_model(saved)

    assert loaded.predict_fn_name == "predict_proba"
    np.testing.assert_allclose(loaded.predict(EMAILS), spam_pipeline.predict_proba(EMAILS))
    np.testing.assert_allclose(loaded.predict_proba(EMAILS), spam_pipeline.predict_proba(EMAILS))


def test_regressor_without_predict_proba(tmp_path: Path, numeric_data: Any) -> None:
    features, target = numeric_data
    regressor = LinearRegression().fit(features, target)
    loaded = load_model(save_model(regressor, tmp_path / "reg", input_example=features.head(3)))

    np.testing.assert_allclose(loaded.predict(features), regressor.predict(features))
    assert loaded.predict_proba(features) is None


def test_older_mlmodel_with_data_key(tmp_path: Path, spam_pipeline: Pipeline) -> None:
    saved = save_model(spam_pipeline, tmp_path / "spam", serialization_format="pickle")
    mlmodel = _mlmodel(saved)
    pyfunc = mlmodel["flavors"]["python_function"]
    pyfunc["data"] = pyfunc.pop("model_path")
    del mlmodel["flavors"]["sklearn"]["serialization_format"]
    (saved / "MLmodel").write_text(yaml.safe_dump(mlmodel))

    assert list(load_model(saved).predict(EMAILS)) == list(spam_pipeline.predict(EMAILS))


def test_from_object_wraps_without_writing(tmp_path: Path, spam_pipeline: Pipeline) -> None:
    live = from_object(spam_pipeline, input_example=EMAILS.head(2))

    assert isinstance(live, LoadedModel)
    assert live.path is None and live.flavors == {} and live.raw_model is spam_pipeline
    assert live.signature is not None and live.signature.input_names() == ["text"]
    assert list(live.predict({"text": np.array(["free cash now", "lunch?"])})) == ["spam", "ham"]
    with pytest.raises(SchemaEnforcementError, match="missing inputs"):
        live.predict({"body": np.array(["free cash now"])})


def test_from_object_without_signature_passes_input_through(spam_pipeline: Pipeline) -> None:
    live = from_object(spam_pipeline)

    assert live.signature is None
    assert list(live.predict(EMAILS)) == list(spam_pipeline.predict(EMAILS))


def test_prepare_then_predict_prepared_matches_predict(spam_pipeline: Pipeline) -> None:
    live = from_object(spam_pipeline, signature=infer_signature(EMAILS))
    first, _ = live.prepare_input(pd.DataFrame({"text": ["free money"], "extra": [1]}))
    second, _ = live.prepare_input(pd.DataFrame({"text": ["see you at noon"]}))

    merged = live.predict_prepared(pd.concat([first, second], ignore_index=True))
    assert list(merged) == [*live.predict(first), *live.predict(second)]


class ConfigRecordingClassifier(LogisticRegression):
    """A scikit-learn subclass that notes scikit-learn's configuration as it predicts."""

    def predict(self, X: Any) -> Any:
        self.config_seen = sklearn.get_config()
        return super().predict(X)


class ConfigRecordingModel:
    """Not a scikit-learn estimator: notes the configuration too."""

    def predict(self, data: Any) -> Any:
        self.config_seen = sklearn.get_config()
        return np.zeros(len(data))


def test_scikit_learn_skips_only_its_own_parameter_checks_and_only_while_predicting(
    numeric_data: Any,
) -> None:
    features, target = numeric_data
    estimator = ConfigRecordingClassifier().fit(features, target > 0)
    served = from_object(estimator)

    assert list(served.predict(features)) == list(
        LogisticRegression().fit(features, target > 0).predict(features)
    )
    assert estimator.config_seen["skip_parameter_validation"] is True
    assert sklearn.get_config()["skip_parameter_validation"] is False, "leaked to the caller"
    # The checks of the caller's data still run, with scikit-learn's own message.
    with pytest.raises(ValueError, match="Input X contains NaN"):
        served.predict(features.assign(a=np.nan))

    other = ConfigRecordingModel()
    from_object(other).predict(features)
    assert other.config_seen["skip_parameter_validation"] is False


def test_a_deserialization_switch_mlflow_cannot_read_names_the_values_it_takes(
    tmp_path: Path, spam_pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_model(spam_pipeline, tmp_path / "model")
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "yes")
    with pytest.raises(InvalidModelError, match="expected true, false, 1 or 0"):
        load_model(tmp_path / "model")


def test_directory_without_mlmodel(tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(b"")
    with pytest.raises(InvalidModelError, match="no MLmodel file"):
        load_model(tmp_path)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidModelError, match="not a directory"):
        load_model(tmp_path / "nowhere")


@pytest.mark.parametrize("serialization_format", ["skops", "cloudpickle", "pickle"])
def test_truncated_artifact(
    tmp_path: Path, spam_pipeline: Pipeline, serialization_format: str
) -> None:
    saved = save_model(spam_pipeline, tmp_path / "spam", serialization_format=serialization_format)
    artifact = saved / _mlmodel(saved)["flavors"]["sklearn"]["pickled_model"]
    artifact.write_bytes(artifact.read_bytes()[: artifact.stat().st_size // 2])

    with pytest.raises(InvalidModelError, match="truncated or corrupt") as caught:
        load_model(saved)
    assert str(artifact) in str(caught.value)


def test_unknown_serialization_format(tmp_path: Path, spam_pipeline: Pipeline) -> None:
    saved = save_model(spam_pipeline, tmp_path / "spam")
    mlmodel = _mlmodel(saved)
    mlmodel["flavors"]["sklearn"]["serialization_format"] = "joblib"
    (saved / "MLmodel").write_text(yaml.safe_dump(mlmodel))

    with pytest.raises(InvalidModelError, match="'joblib'"):
        load_model(saved)


def test_object_without_predict(tmp_path: Path) -> None:
    with pytest.raises(InvalidModelError, match="no predict method"):
        save_model(object(), tmp_path / "nothing")
    with pytest.raises(InvalidModelError, match="no predict method"):
        from_object({"weights": [1, 2]})
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_an_existing_path(tmp_path: Path, spam_pipeline: Pipeline) -> None:
    (tmp_path / "spam").mkdir()
    with pytest.raises(InvalidModelError, match="already exists"):
        save_model(spam_pipeline, tmp_path / "spam")


def test_pyfunc_loader_without_mlflow_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The product venv has no MLflow; make that true even where someone installed it.
    monkeypatch.setitem(sys.modules, "mlflow", None)
    (tmp_path / "MLmodel").write_text(
        yaml.safe_dump(
            {
                "flavors": {
                    "python_function": {
                        "loader_module": "mlflow.pyfunc.model",
                        "python_model": "python_model.pkl",
                    }
                }
            }
        )
    )
    with pytest.raises(MissingDependencyError) as caught:
        load_model(tmp_path)
    assert "mlflow" in str(caught.value)
    assert "mlflow.pyfunc.model" in str(caught.value)
