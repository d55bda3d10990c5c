"""Signatures as users meet them: the MLmodel text, input names, params, malformed files."""

from __future__ import annotations

import datetime as dt
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LinearRegression

from jupyter_serve.errors import InvalidModelError, SchemaEnforcementError
from jupyter_serve.models import (
    ColSpec,
    DataType,
    ModelSignature,
    ParamSchema,
    ParamSpec,
    Schema,
    TensorSpec,
    from_object,
    infer_signature,
    load_model,
    save_model,
)

FEATURES = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})


@pytest.fixture(scope="module")
def regressor() -> LinearRegression:
    return LinearRegression().fit(FEATURES, [0.0, 1.0, 2.0, 3.0])


def test_mlmodel_text_is_mlflows_json_strings() -> None:
    signature = ModelSignature(
        Schema([ColSpec(DataType.string, "text"), ColSpec(DataType.long, "n", required=False)]),
        Schema([TensorSpec(np.dtype("float64"), (-1, 2))]),
        ParamSchema([ParamSpec("when", DataType.datetime, dt.datetime(2024, 1, 2))]),
    )

    assert signature.to_mlmodel_dict() == {
        "inputs": '[{"type": "string", "name": "text", "required": true}, '
        '{"type": "long", "name": "n", "required": false}]',
        "outputs": '[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 2]}}]',
        "params": '[{"name": "when", "default": "2024-01-02T00:00:00", "shape": null, '
        '"type": "datetime"}]',
    }
    assert ModelSignature.from_mlmodel_dict(signature.to_mlmodel_dict()) == signature
    assert signature.input_names() == ["text", "n"]


def test_input_names_only_for_named_columns() -> None:
    assert infer_signature(np.zeros((2, 3))).input_names() is None
    assert infer_signature(["a", "b"]).input_names() is None
    assert infer_signature(FEATURES).input_names() == ["a", "b"]


def test_malformed_signature_in_mlmodel(tmp_path: Path, regressor: LinearRegression) -> None:
    saved = save_model(regressor, tmp_path / "reg", input_example=FEATURES)
    mlmodel = yaml.safe_load((saved / "MLmodel").read_text())
    mlmodel["signature"]["inputs"] = '[{"type": "decimal", "name": "a"}]'
    (saved / "MLmodel").write_text(yaml.safe_dump(mlmodel))

    with pytest.raises(InvalidModelError, match="unknown column type 'decimal'"):
        load_model(saved)


def test_params_defaults_filled_and_unknown_ignored(
    regressor: LinearRegression, caplog: pytest.LogCaptureFixture
) -> None:
    signature = ModelSignature(
        infer_signature(FEATURES).inputs,
        params=ParamSchema(
            [ParamSpec("threshold", DataType.double, 0.5), ParamSpec("k", DataType.long, 3)]
        ),
    )
    model = from_object(regressor, signature=signature)

    with caplog.at_level(logging.WARNING):
        _, params = model.prepare_input(FEATURES, {"k": np.int32(5), "colour": "red"})
    assert params == {"threshold": 0.5, "k": 5}
    assert "colour" in caplog.text
    with pytest.raises(SchemaEnforcementError, match="threshold"):
        model.prepare_input(FEATURES, {"threshold": "high"})


def test_params_without_params_schema_are_dropped(regressor: LinearRegression) -> None:
    model = from_object(regressor, input_example=FEATURES)
    assert model.prepare_input(FEATURES, {"k": 1})[1] == {}
    assert model.prepare_input(FEATURES)[1] is None


def test_matching_frame_passes_through_unchanged(regressor: LinearRegression) -> None:
    model = from_object(regressor, input_example=FEATURES)
    prepared, _ = model.prepare_input(FEATURES)
    assert prepared is FEATURES


def test_casting_keeps_the_row_index(regressor: LinearRegression) -> None:
    model = from_object(regressor, input_example=FEATURES)
    frame = pd.DataFrame(
        {"b": np.array([1, 0], dtype=np.int32), "a": [2.0, 3.0], "extra": ["x", "y"]},
        index=[10, 11],
    )
    prepared, _ = model.prepare_input(frame)
    assert list(prepared.columns) == ["a", "b"]
    assert list(prepared.index) == [10, 11]
    assert prepared["b"].dtype == np.float64
    np.testing.assert_allclose(model.predict(frame), regressor.predict(prepared))


def test_prepare_input_from_many_threads(regressor: LinearRegression) -> None:
    """The server calls prepare_input from several threads: answers must not mix."""
    model = from_object(regressor, input_example=FEATURES)
    inputs = [
        FEATURES,
        FEATURES.astype(np.float32),
        FEATURES.assign(extra="x"),
        {"a": np.array([5.0]), "b": np.array([6.0])},
        pd.DataFrame({"a": ["bad"], "b": [1.0]}),
    ]

    def outcome(data: object) -> object:
        try:
            return model.predict(data).tolist()
        except SchemaEnforcementError:
            return "refused"

    expected = [outcome(data) for data in inputs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(outcome, inputs * 40))
    assert results == expected * 40
    assert expected[-1] == "refused"
