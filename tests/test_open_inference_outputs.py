"""The pure V2 functions: every kind of prediction as output tensors, metadata from every
kind of signature, and requests turned into the model input ``/invocations`` would build."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from jupyter_serve.models import ColSpec, DataType, ModelSignature, Schema, TensorSpec, from_object
from jupyter_serve.protocol import (
    OpenInferenceError,
    model_metadata_response,
    parse_inference_request,
    render_inference_response,
)


def _outputs(predictions: Any, **kwargs: Any) -> list[dict[str, Any]]:
    response = render_inference_response(
        predictions, model_name="m", model_version=None, request_id=None, **kwargs
    )
    assert response.status == 200
    outputs: list[dict[str, Any]] = json.loads(response.body)["outputs"]
    return outputs


def test_arrays_keep_their_shape_and_dtype() -> None:
    probabilities = np.array([[0.25, 0.75], [0.5, 0.5], [1.0, 0.0]])
    assert _outputs(probabilities) == [
        {
            "name": "output-1",
            "datatype": "FP64",
            "shape": [3, 2],
            "data": [0.25, 0.75, 0.5, 0.5, 1.0, 0.0],
        }
    ]
    assert _outputs(np.array([1, 2], dtype=np.int32))[0]["datatype"] == "INT32"
    assert _outputs(np.array([3], dtype=np.uint8))[0]["datatype"] == "UINT8"
    assert _outputs(np.array([True, False]))[0] == {
        "name": "output-1",
        "datatype": "BOOL",
        "shape": [2],
        "data": [True, False],
    }
    half = _outputs(np.array([0.5], dtype=np.float16))[0]
    assert (half["datatype"], half["data"]) == ("FP16", [0.5])


def test_lists_strings_and_objects_are_bytes_tensors() -> None:
    assert _outputs(["spam", "ham"], array_name="label") == [
        {"name": "label", "datatype": "BYTES", "shape": [2], "data": ["spam", "ham"]}
    ]
    assert _outputs(np.array([b"caf\xc3\xa9"], dtype=object))[0]["data"] == ["café"]
    assert _outputs(np.array([1, 2.5], dtype=object))[0]["datatype"] == "FP64"
    when = _outputs(np.array(["2024-05-01T12:00"], dtype="datetime64[ns]"))[0]
    assert (when["datatype"], when["data"]) == ("BYTES", ["2024-05-01T12:00:00"])
    assert _outputs(dt.date(2024, 5, 1))[0]["data"] == ["2024-05-01"]
    assert _outputs(7)[0] == {"name": "output-1", "datatype": "INT64", "shape": [1], "data": [7]}


def test_frames_series_and_dicts_give_one_output_per_column_or_key() -> None:
    frame = pd.DataFrame({"label": ["spam", "ham"], "score": [0.9, 0.2]})
    assert _outputs(frame) == [
        {"name": "label", "datatype": "BYTES", "shape": [2], "data": ["spam", "ham"]},
        {"name": "score", "datatype": "FP64", "shape": [2], "data": [0.9, 0.2]},
    ]
    assert _outputs(pd.Series([1, 0], name="flag"))[0]["name"] == "flag"
    assert _outputs(pd.Series([1, 0]))[0]["name"] == "output-1"
    assert _outputs({"ids": np.array([[1, 2]]), "names": ["x"]}) == [
        {"name": "ids", "datatype": "INT64", "shape": [1, 2], "data": [1, 2]},
        {"name": "names", "datatype": "BYTES", "shape": [1], "data": ["x"]},
    ]


def test_requested_outputs_select_and_order_and_ids_are_echoed() -> None:
    frame = pd.DataFrame({"a": [1], "b": [2], "c": [3]})
    response = render_inference_response(
        frame, model_name="m", model_version="4", request_id="q", requested_outputs=["c", "a"]
    )
    payload = json.loads(response.body)
    assert (payload["model_version"], payload["id"]) == ("4", "q")
    assert [output["name"] for output in payload["outputs"]] == ["c", "a"]


def test_predictions_that_are_no_tensors_are_a_500_with_a_reason() -> None:
    from jupyter_serve.protocol import ScoringError

    with pytest.raises(ScoringError) as ragged:
        _outputs([[1, 2], [3]])
    assert ragged.value.status == 500 and "output-1" in ragged.value.message


def test_metadata_maps_every_column_type_and_tensor_specs() -> None:
    types = ["boolean", "integer", "long", "float", "double", "string", "binary", "datetime"]
    signature = ModelSignature(
        inputs=Schema([ColSpec(DataType(name), name) for name in types]),
        outputs=Schema([TensorSpec(np.dtype("float32"), (-1, 2), "scores")]),
    )
    model = from_object(LinearRegression(), signature=signature)
    metadata = json.loads(model_metadata_response(model, "m", "3").body)
    assert metadata["versions"] == ["3"]
    assert [(spec["name"], spec["datatype"], spec["shape"]) for spec in metadata["inputs"]] == [
        ("boolean", "BOOL", [-1]),
        ("integer", "INT32", [-1]),
        ("long", "INT64", [-1]),
        ("float", "FP32", [-1]),
        ("double", "FP64", [-1]),
        ("string", "BYTES", [-1]),
        ("binary", "BYTES", [-1]),
        ("datetime", "BYTES", [-1]),
    ]
    assert metadata["outputs"] == [{"name": "scores", "datatype": "FP32", "shape": [-1, 2]}]


def _request(inputs: list[dict[str, Any]], model: Any) -> Any:
    return parse_inference_request(json.dumps({"inputs": inputs}).encode(), None, model).data


def test_columns_are_cast_as_the_signature_says() -> None:
    signature = ModelSignature(
        inputs=Schema([ColSpec(DataType.double, "x"), ColSpec(DataType.string, "t")])
    )
    model = from_object(LinearRegression(), signature=signature)
    frame = _request(
        [
            {"name": "t", "shape": [2, 1], "datatype": "BYTES", "data": [["a"], ["b"]]},
            {"name": "x", "shape": [2], "datatype": "INT64", "data": [1, 2]},
        ],
        model,
    )
    assert isinstance(frame, pd.DataFrame)
    assert frame["x"].dtype == np.float64 and frame["t"].tolist() == ["a", "b"]


def test_without_a_signature_columns_become_a_frame_and_a_lone_tensor_an_array() -> None:
    model = from_object(LinearRegression())
    frame = _request(
        [
            {"name": "p", "shape": [2], "datatype": "FP32", "data": [1, 2]},
            {"name": "q", "shape": [2], "datatype": "BOOL", "data": [True, False]},
        ],
        model,
    )
    assert list(frame.columns) == ["p", "q"] and frame["p"].dtype == np.float32
    array = _request([{"name": "x", "shape": [1, 2], "datatype": "INT16", "data": [1, 2]}], model)
    assert isinstance(array, np.ndarray) and array.dtype == np.int16 and array.shape == (1, 2)
    uneven = _request(
        [
            {"name": "p", "shape": [2], "datatype": "FP32", "data": [1, 2]},
            {"name": "q", "shape": [1], "datatype": "FP32", "data": [1]},
        ],
        model,
    )
    assert isinstance(uneven, dict) and sorted(uneven) == ["p", "q"]


def test_a_repeated_input_name_is_refused() -> None:
    tensor = {"name": "p", "shape": [1], "datatype": "FP32", "data": [1]}
    with pytest.raises(OpenInferenceError) as twice:
        _request([tensor, tensor], from_object(LinearRegression()))
    assert twice.value.status == 400 and "given twice" in twice.value.message


def test_values_a_tensor_signature_cannot_take_are_refused() -> None:
    features = np.arange(6, dtype=np.float64).reshape(3, 2)
    model = from_object(LinearRegression().fit(features, [0.0, 1.0, 2.0]), input_example=features)
    tensor = {"name": "x", "shape": [1, 2], "datatype": "BYTES", "data": ["one", "two"]}
    with pytest.raises(OpenInferenceError) as refused:
        _request([tensor], model)
    assert refused.value.status == 400 and "float64" in refused.value.message


def test_any_failure_to_write_predictions_is_a_scoring_error() -> None:
    from jupyter_serve.protocol import ScoringError

    class Unconvertible:
        def __array__(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("no array here")

    with pytest.raises(ScoringError) as failed:
        _outputs(Unconvertible())
    assert failed.value.status == 500 and "no array here" in failed.value.message
