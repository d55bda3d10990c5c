"""The binary tensor data extension as pure functions, against tritonclient's own encoder
(``generate_request_body``) and decoder (``parse_response_body``), for every datatype."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton

from jupyter_serve.protocol import OpenInferenceError, parse_inference_request
from jupyter_serve.protocol._open_inference_outputs import render_inference_response

ARRAYS: dict[str, np.ndarray[Any, Any]] = {
    "BOOL": np.array([[True, False], [False, True]]),
    "UINT8": np.array([0, 255], dtype=np.uint8),
    "UINT16": np.array([1, 65535], dtype=np.uint16),
    "UINT32": np.array([2, 2**32 - 1], dtype=np.uint32),
    "UINT64": np.array([3, 2**64 - 1], dtype=np.uint64),
    "INT8": np.array([-128, 127], dtype=np.int8),
    "INT16": np.array([-(2**15), 5], dtype=np.int16),
    "INT32": np.array([[-(2**31)], [7]], dtype=np.int32),
    "INT64": np.array([-(2**63), 2**63 - 1], dtype=np.int64),
    "FP16": np.array([0.5, -1.25], dtype=np.float16),
    "FP32": np.array([[1.5, np.inf, -0.0]], dtype=np.float32),
    "FP64": np.array([np.pi, -1e300, np.nan]),
    "BYTES": np.array([["héllo", ""], ["wörld", "x" * 300]], dtype=object),
}


class NoSignature:
    """A model without a signature: several inputs reach it as a dict of arrays."""

    def predict(self, data: Any) -> Any:
        return data


def _parse(inputs: list[triton.InferInput], **options: Any) -> Any:
    body, header_length = triton.InferenceServerClient.generate_request_body(inputs, **options)
    header = None if header_length is None else str(header_length)
    return parse_inference_request(body, None, NoSignature(), binary_header=header)


def test_every_datatype_sent_binary_by_tritonclient_arrives_intact() -> None:
    inputs = []
    for position, (datatype, array) in enumerate(ARRAYS.items()):
        tensor = triton.InferInput(f"in-{datatype}", list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=position % 3 != 2)  # some stay JSON
        inputs.append(tensor)
    request = _parse(inputs)
    assert request.binary_outputs is None  # no outputs asked: every output binary
    for datatype, array in ARRAYS.items():
        received = request.data[f"in-{datatype}"]
        assert received.shape == array.shape
        if datatype == "BYTES":
            assert received.tolist() == array.tolist()
        else:
            assert received.dtype == array.dtype
            np.testing.assert_array_equal(received, array)


def test_an_outputs_binary_data_flag_wins_over_the_request_level_one() -> None:
    tensor = triton.InferInput("x", [2], "FP64")
    tensor.set_data_from_numpy(np.array([1.0, 2.0]))
    outputs = [
        triton.InferRequestedOutput("p"),
        triton.InferRequestedOutput("q", binary_data=False),
    ]
    request = _parse([tensor], outputs=outputs)
    assert request.requested_outputs == ("p", "q")
    assert request.binary_outputs == frozenset({"p"})


def test_a_binary_bool_byte_other_than_one_is_true() -> None:
    tensor = {"name": "b", "shape": [3], "datatype": "BOOL"}
    body = json.dumps({"inputs": [{**tensor, "parameters": {"binary_data_size": 3}}]}).encode()
    request = parse_inference_request(
        body + b"\x00\x02\x01", None, NoSignature(), binary_header=str(len(body))
    )
    assert request.data.tolist() == [False, True, True]
    assert request.data.view(np.uint8).tolist() == [0, 1, 1]


def test_a_bad_header_length_is_refused() -> None:
    with pytest.raises(OpenInferenceError) as refused:
        parse_inference_request(b'{"inputs": []}', None, NoSignature(), binary_header="-3")
    assert refused.value.status == 400
    assert "Inference-Header-Content-Length is '-3'" in refused.value.message


def test_binary_answers_decode_in_tritonclient_for_every_output_kind() -> None:
    predictions = pd.DataFrame(
        {
            "flag": [True, False],
            "score": np.array([0.25, np.nan], dtype=np.float32),
            "count": np.array([3, -4], dtype=np.int64),
            "label": ["spam", "hé"],
            "when": pd.to_datetime(["2024-01-02", "2025-03-04"]),
        }
    )
    answer = render_inference_response(
        predictions, model_name="m", model_version="2", request_id="r", binary_outputs=None
    )
    assert answer.content_type == "application/octet-stream"
    [(header_name, header_length)] = answer.headers
    assert header_name == "Inference-Header-Content-Length"
    result = triton.InferenceServerClient.parse_response_body(
        answer.body, header_length=int(header_length)
    )
    assert result.get_response()["model_version"] == "2"
    assert result.as_numpy("flag").tolist() == [True, False]
    score = result.as_numpy("score")
    assert score.dtype == np.float32 and score[0] == 0.25 and np.isnan(score[1])
    assert result.as_numpy("count").tolist() == [3, -4]
    assert result.as_numpy("label").tolist() == [b"spam", "hé".encode()]
    assert result.as_numpy("when")[0] == b"2024-01-02T00:00:00"


def test_only_the_outputs_asked_binary_are_binary() -> None:
    predictions = {"p": np.array([1.0, 2.0]), "q": np.array([3, 4])}
    mixed = render_inference_response(
        predictions,
        model_name="m",
        model_version=None,
        request_id=None,
        requested_outputs=("q", "p"),
        binary_outputs=frozenset({"p"}),
    )
    result = triton.InferenceServerClient.parse_response_body(
        mixed.body, header_length=int(dict(mixed.headers)["Inference-Header-Content-Length"])
    )
    assert [output["name"] for output in result.get_response()["outputs"]] == ["q", "p"]
    assert result.get_output("q")["data"] == [3, 4]
    assert "data" not in result.get_output("p")
    assert result.as_numpy("p").tolist() == [1.0, 2.0]
    plain = render_inference_response(
        predictions, model_name="m", model_version=None, request_id=None
    )
    assert plain.content_type == "application/json" and plain.headers == ()
