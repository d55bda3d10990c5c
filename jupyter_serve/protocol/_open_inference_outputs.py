"""Predictions as Open Inference Protocol output tensors (JSON, row-major ``data``).

An array is one output of its own shape; a DataFrame is one output of shape [rows] per
column; a Series one output named after it; a dict one output per key; a list is read as an
array. Text, bytes (UTF-8), dates and other objects are ``BYTES`` strings. NaN and infinities
are written as the MLflow routes write them (bare ``NaN``/``Infinity`` tokens).
"""

from __future__ import annotations

import datetime as dt
import json
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from jupyter_serve.protocol._errors import ScoringError
from jupyter_serve.protocol._responses import JSON_CONTENT_TYPE, ScoringResponse

DEFAULT_OUTPUT_NAME = "output-1"
BINARY_HEADER = "Inference-Header-Content-Length"
BINARY_CONTENT_TYPE = "application/octet-stream"
BINARY_DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("bool"),
    **{f"UINT{bits}": np.dtype(f"<u{bits // 8}") for bits in (8, 16, 32, 64)},
    **{f"INT{bits}": np.dtype(f"<i{bits // 8}") for bits in (8, 16, 32, 64)},
    **{f"FP{bits}": np.dtype(f"<f{bits // 8}") for bits in (16, 32, 64)},
}
_BYTES_LENGTH = struct.Struct("<I")


def _unrenderable(why: str) -> ScoringError:
    return ScoringError(
        500,
        "INTERNAL_ERROR",
        f"The model's predictions cannot be sent as Open Inference Protocol tensors ({why}). "
        "Make the model return arrays, lists, DataFrames, Series or dicts of those.",
    )


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return str(value)


def _typed(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """An object array of plain numbers or booleans as the numeric array it really is."""
    if array.dtype != object or array.size == 0:
        return array
    inferred = pd.api.types.infer_dtype(array.ravel(), skipna=False)
    if inferred in ("integer", "floating", "mixed-integer-float", "boolean"):
        return np.array(array.tolist())
    return array


def datatype_of(dtype: np.dtype[Any]) -> str:
    """The V2 datatype of a numpy dtype (text, bytes, objects and dates are ``BYTES``)."""
    if dtype.kind == "b":
        return "BOOL"
    if dtype.kind in "iuf":
        prefix = {"i": "INT", "u": "UINT", "f": "FP"}[dtype.kind]
        return f"{prefix}{dtype.itemsize * 8}"
    return "BYTES"


def _tensor(name: str, values: Any) -> dict[str, Any]:
    if isinstance(values, pd.Series):
        values = values.to_numpy()
    try:
        array = _typed(np.asarray(values))
    except ValueError as error:  # ragged nested lists
        raise _unrenderable(f"output {name!r}: {error}") from error
    if array.ndim == 0:
        array = array.reshape(1)
    datatype = datatype_of(array.dtype)
    flat = array.ravel()
    data: list[Any]
    if array.dtype.kind == "M":  # tolist() would give integer nanoseconds
        data = [pd.Timestamp(value).isoformat() for value in flat]
    elif array.dtype.kind == "m":
        data = [str(pd.Timedelta(value)) for value in flat]
    elif datatype == "BYTES":
        data = [_text(value) for value in flat.tolist()]
    elif array.dtype.kind == "f" and array.dtype.itemsize < 8:
        data = flat.astype(np.float64).tolist()
    else:
        data = flat.tolist()
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def output_tensors(
    predictions: Any, *, array_name: str = DEFAULT_OUTPUT_NAME
) -> list[dict[str, Any]]:
    """The V2 output tensors of ``predictions``; ``array_name`` names the output of a lone
    array, list, scalar or unnamed Series. Raises ScoringError 500 for predictions that are no
    tensors (ragged lists, None). Thread-safe."""
    if predictions is None:
        raise _unrenderable("the model returned None")
    if isinstance(predictions, pd.DataFrame):
        return [_tensor(str(column), predictions[column]) for column in predictions.columns]
    if isinstance(predictions, pd.Series):
        name = array_name if predictions.name is None else str(predictions.name)
        return [_tensor(name, predictions)]
    if isinstance(predictions, dict):
        return [_tensor(str(key), value) for key, value in predictions.items()]
    return [_tensor(array_name, predictions)]


def render_inference_response(
    predictions: Any,
    *,
    model_name: str,
    model_version: str | None,
    request_id: str | None,
    requested_outputs: Sequence[str] | None = None,
    array_name: str = DEFAULT_OUTPUT_NAME,
    binary_outputs: frozenset[str] | None = frozenset(),
) -> ScoringResponse:
    """200 with the V2 inference response for ``predictions``: ``model_name``,
    ``model_version`` and ``id`` when known, and the ``outputs`` (only those requested, in the
    order asked). Outputs named in ``binary_outputs`` (every one when None) are sent in the
    binary tensor data extension; when none is, the answer is plain JSON. Raises
    ScoringError 400 when an output is asked that the model does not produce, 500 when the
    predictions are no tensors. Thread-safe."""
    try:
        outputs = output_tensors(predictions, array_name=array_name)
    except ScoringError:
        raise
    except Exception as error:
        # Only ScoringError may leave: a merged batch answers its other requests regardless.
        raise _unrenderable(f"{type(error).__name__}: {error}") from error
    if requested_outputs is not None:
        by_name = {output["name"]: output for output in outputs}
        unknown = [name for name in requested_outputs if name not in by_name]
        if unknown:
            raise ScoringError(
                400,
                "BAD_REQUEST",
                f"the request asks for output(s) {unknown}, but the model's outputs are "
                f"{list(by_name)}; ask for those or leave 'outputs' out to get all.",
            )
        outputs = [by_name[name] for name in requested_outputs]
    payload: dict[str, Any] = {"model_name": model_name}
    if model_version is not None:
        payload["model_version"] = model_version
    if request_id is not None:
        payload["id"] = request_id
    payload["outputs"] = outputs
    if binary_outputs is None or any(output["name"] in binary_outputs for output in outputs):
        return binary_inference_response(payload, binary_outputs)
    return ScoringResponse(200, json.dumps(payload).encode("utf-8"), JSON_CONTENT_TYPE)


def encode_tensor_data(datatype: str, data: list[Any]) -> bytes:
    """The raw bytes of an output tensor's flat ``data``: a little-endian array, or for
    BYTES each element's UTF-8 text behind its 4-byte length. Thread-safe."""
    if datatype == "BYTES":
        encoded = [str(value).encode("utf-8") for value in data]
        return b"".join(_BYTES_LENGTH.pack(len(value)) + value for value in encoded)
    return np.asarray(data, dtype=BINARY_DTYPES[datatype]).tobytes()


def binary_inference_response(
    payload: dict[str, Any], binary_outputs: frozenset[str] | None
) -> ScoringResponse:
    """200 with ``payload`` (a V2 inference response whose outputs carry JSON ``data``)
    sent in the binary extension: the outputs named in ``binary_outputs`` (every output when
    None) lose ``data`` and gain ``parameters.binary_data_size``, their bytes follow the
    JSON header in order. Thread-safe."""
    raw: list[bytes] = []
    outputs = []
    for output in payload["outputs"]:
        if binary_outputs is not None and output["name"] not in binary_outputs:
            outputs.append(output)
            continue
        data = encode_tensor_data(output["datatype"], output["data"])
        raw.append(data)
        header = {key: value for key, value in output.items() if key != "data"}
        header["parameters"] = {**output.get("parameters", {}), "binary_data_size": len(data)}
        outputs.append(header)
    header_bytes = json.dumps({**payload, "outputs": outputs}).encode("utf-8")
    return ScoringResponse(
        200,
        header_bytes + b"".join(raw),
        BINARY_CONTENT_TYPE,
        ((BINARY_HEADER, str(len(header_bytes))),),
    )
