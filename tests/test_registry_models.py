"""Registering live objects and refusing broken artifacts, through the real models package."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from test_registry import registry_snapshot, write_model_dir

from jupyter_serve.errors import InvalidModelError
from jupyter_serve.models import load_model
from jupyter_serve.registry import (
    EmbeddedRegistry,
    register_model,
    resolve_model_uri,
    signature_summary,
)


@pytest.fixture(scope="module")
def classifier() -> LogisticRegression:
    features = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [1.0, 0.0, 1.0, 0.0]})
    return LogisticRegression().fit(features, [0, 0, 1, 1])


def test_a_live_estimator_is_saved_with_an_inferred_signature_and_served_back(
    classifier: LogisticRegression, isolated_jupyter_dirs: Path
) -> None:
    example = pd.DataFrame({"x": [2.5], "y": [0.5]})
    assert register_model(classifier, "clf", stage="Production", input_example=example) == 1
    resolved = resolve_model_uri("models:/clf/Production")
    assert resolved.path.is_relative_to(isolated_jupyter_dirs)
    assert (resolved.path / "MLmodel").is_file()
    summary = signature_summary(resolved.path)
    assert summary is not None and summary.startswith("x: double, y: double")
    loaded = load_model(resolved.path)
    assert list(loaded.predict(example)) == list(classifier.predict(example))
    version = EmbeddedRegistry().get_version("clf", 1)
    assert version.source == "live object sklearn.linear_model._logistic.LogisticRegression"


def test_a_truncated_artifact_is_refused_and_leaves_the_registry_as_it_was(
    tmp_path: Path,
) -> None:
    registry = EmbeddedRegistry()
    registry.register_model(write_model_dir(tmp_path / "good"), "spam")
    before = registry_snapshot(registry)
    broken = write_model_dir(tmp_path / "broken")
    pickled = broken / "model.pkl"
    pickled.write_bytes(pickled.read_bytes()[:40])
    with pytest.raises(InvalidModelError) as caught:
        registry.register_model(broken, "spam")
    assert str(caught.value).startswith(f"cannot register {broken}: ")
    assert f"{pickled} cannot be read" in str(caught.value)
    with pytest.raises(InvalidModelError, match="has no predict method"):
        registry.register_model({"weights": [1, 2]}, "spam")
    assert registry_snapshot(registry) == before
