"""The Open Inference Protocol (KServe V2, JSON only) as pure functions.

A V2 request becomes the same model input an ``/invocations`` request would: inputs named
after the signature's columns become one DataFrame (cast as MLflow casts a
``dataframe_split``), a tensor signature gets an ndarray (or a dict of them), and a model
without a signature gets a DataFrame when its inputs are equal-length columns, else an
ndarray or a dict of ndarrays. Predictions go back as one output tensor per array, per
DataFrame column or per dict entry. The binary tensor extension is not spoken: a request
that asks for binary data gets a 400 saying how to ask for JSON.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from jupyter_serve._version import __version__
from jupyter_serve.protocol._frames import cast_to_schema
from jupyter_serve.protocol._open_inference_outputs import DEFAULT_OUTPUT_NAME, datatype_of
from jupyter_serve.protocol._responses import JSON_CONTENT_TYPE, ScoringResponse
from jupyter_serve.protocol._signature_view import SignatureView, signature_view

SERVER_NAME = "jupyter-serve"
_INTEGER_TYPES = {f"INT{bits}": np.dtype(f"int{bits}") for bits in (8, 16, 32, 64)}
_UNSIGNED_TYPES = {f"UINT{bits}": np.dtype(f"uint{bits}") for bits in (8, 16, 32, 64)}
_FLOAT_TYPES = {f"FP{bits}": np.dtype(f"float{bits}") for bits in (16, 32, 64)}
DATATYPES = ("BOOL", *_UNSIGNED_TYPES, *_INTEGER_TYPES, *_FLOAT_TYPES, "BYTES")
_MLFLOW_TYPE_TO_DATATYPE = {
    "boolean": "BOOL",
    "integer": "INT32",
    "long": "INT64",
    "float": "FP32",
    "double": "FP64",
    "string": "BYTES",
    "binary": "BYTES",
    "datetime": "BYTES",
}
# Request parameters that steer the protocol, never handed to the model as params.
_PROTOCOL_PARAMETERS = frozenset(
    {"content_type", "headers", "binary_data_output", "sequence_id", "priority", "timeout"}
)
_BINARY_REFUSED = (
    "this server speaks the Open Inference Protocol in JSON only (no binary tensor "
    "extension), but the request asks for binary data ({where}). Send tensors as JSON "
    "'data' and ask for JSON outputs: with tritonclient, set_data_from_numpy(..., "
    "binary_data=False) and InferRequestedOutput(name, binary_data=False)."
)


class OpenInferenceError(Exception):
    """A V2 request refused with ``status`` and the message of its ``{"error": ...}`` body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def to_response(self) -> ScoringResponse:
        """The V2 error answer: ``{"error": message}`` with this error's status."""
        return open_inference_error_response(self.status, self.message)


@dataclass(frozen=True)
class InferenceRequest:
    """A parsed ``infer`` request: its ``id``, the model input and params, and the output
    names asked for (None: every output)."""

    id: str | None
    data: Any
    params: dict[str, Any] | None
    requested_outputs: tuple[str, ...] | None


def _json_response(status: int, payload: Any) -> ScoringResponse:
    return ScoringResponse(status, json.dumps(payload).encode("utf-8"), JSON_CONTENT_TYPE)


def open_inference_error_response(status: int, message: str) -> ScoringResponse:
    """``{"error": message}`` with ``status``."""
    return _json_response(status, {"error": message})


def as_open_inference_error(response: ScoringResponse) -> ScoringResponse:
    """An error answer of the MLflow routes reworded as a V2 ``{"error": ...}`` answer (same
    status and headers); success answers and V2 errors are returned unchanged."""
    if response.status < 400:
        return response
    try:
        payload = json.loads(response.body)
    except ValueError:
        payload = response.body.decode("utf-8", "replace")
    if isinstance(payload, dict):
        if isinstance(payload.get("error"), str):
            return response
        message = payload.get("message") or payload.get("detail") or json.dumps(payload)
    else:
        message = str(payload)
    body = json.dumps({"error": str(message)}).encode("utf-8")
    return ScoringResponse(response.status, body, JSON_CONTENT_TYPE, response.headers)


def server_live_response() -> ScoringResponse:
    """The answer to ``GET /v2/health/live``: 200 ``{"live": true}``."""
    return _json_response(200, {"live": True})


def server_ready_response() -> ScoringResponse:
    """The answer to ``GET /v2/health/ready``: 200 ``{"ready": true}`` (a server answers
    only once its model is loaded)."""
    return _json_response(200, {"ready": True})


def server_metadata_response() -> ScoringResponse:
    """The answer to ``GET /v2``: the server's name, version and (no) extensions."""
    return _json_response(200, {"name": SERVER_NAME, "version": __version__, "extensions": []})


def model_ready_response(name: str, version: str | None) -> ScoringResponse:
    """The answer to ``GET /v2/models/{name}[/versions/{v}]/ready`` for the served model."""
    payload: dict[str, Any] = {"name": name, "ready": True}
    if version is not None:
        payload["version"] = version
    return _json_response(200, payload)


def model_not_found_response(
    asked_name: str, asked_version: str | None, name: str, version: str | None
) -> ScoringResponse:
    """404 naming the model (and version) asked for and the one this deployment serves."""
    asked = f"{asked_name!r}" + ("" if asked_version is None else f" version {asked_version!r}")
    served = f"{name!r}" + (" (no registry version)" if version is None else f" version {version}")
    return open_inference_error_response(
        404,
        f"model {asked} is not served here; this deployment serves {served}. Use "
        f"/v2/models/{name}"
        + ("" if version is None else f" or /v2/models/{name}/versions/{version}")
        + ".",
    )


def model_platform(model: Any) -> str:
    """``mlflow-<flavor>`` for a model saved in the MLflow format, else ``jupyter-serve``."""
    flavors = getattr(model, "flavors", None) or {}
    for flavor in flavors:
        if flavor != "python_function":
            return f"mlflow-{flavor}"
    return SERVER_NAME


def _tensor_metadata(spec: Any, default_name: str) -> dict[str, Any]:
    name = spec.name if spec.name is not None else default_name
    spec_type = spec.type
    if isinstance(spec_type, np.dtype):
        return {"name": str(name), "datatype": datatype_of(spec_type), "shape": list(spec.shape)}
    type_name = getattr(spec_type, "value", None)
    datatype = _MLFLOW_TYPE_TO_DATATYPE.get(type_name, "BYTES") if type_name else "BYTES"
    return {"name": str(name), "datatype": datatype, "shape": [-1]}


def _schema_metadata(schema: Any) -> list[dict[str, Any]]:
    specs = list(getattr(schema, "inputs", None) or ())
    return [
        _tensor_metadata(spec, DEFAULT_OUTPUT_NAME if len(specs) == 1 else f"output-{i + 1}")
        for i, spec in enumerate(specs)
    ]


def model_metadata(model: Any, name: str, version: str | None) -> dict[str, Any]:
    """V2 model metadata from the signature: a column maps to a tensor of shape [-1], a
    tensor spec to its dtype and shape. Inputs of unnamed specs are named ``input-<i>``."""
    signature = getattr(model, "signature", None)
    inputs = getattr(signature, "inputs", None)
    input_specs = list(getattr(inputs, "inputs", None) or ())
    return {
        "name": name,
        "versions": [] if version is None else [version],
        "platform": model_platform(model),
        "inputs": [_tensor_metadata(spec, f"input-{i}") for i, spec in enumerate(input_specs)],
        "outputs": _schema_metadata(getattr(signature, "outputs", None)),
    }


def model_metadata_response(model: Any, name: str, version: str | None) -> ScoringResponse:
    """The answer to ``GET /v2/models/{name}[/versions/{v}]``."""
    return _json_response(200, model_metadata(model, name, version))


def array_output_name(model: Any) -> str:
    """The name of the output a lone array of predictions gets: the signature's one output
    name when it has exactly one named output, else ``output-1`` (as the metadata says)."""
    signature = getattr(model, "signature", None)
    specs = list(getattr(getattr(signature, "outputs", None), "inputs", None) or ())
    if len(specs) == 1 and specs[0].name is not None:
        return str(specs[0].name)
    return DEFAULT_OUTPUT_NAME


# --- requests ---------------------------------------------------------------------------


def _bad(message: str) -> OpenInferenceError:
    return OpenInferenceError(400, message)


def _refuse_binary(where: str) -> OpenInferenceError:
    return _bad(_BINARY_REFUSED.format(where=where))


def _check_content_type(content_type: str | None, binary_header: str | None) -> None:
    if binary_header is not None:
        raise _refuse_binary("an Inference-Header-Content-Length header")
    media_type = (content_type or "application/json").split(";", 1)[0].strip().lower()
    if media_type not in ("application/json", ""):
        raise OpenInferenceError(
            415,
            f"unsupported Content-Type {content_type!r}: the Open Inference Protocol is "
            "spoken here in JSON only; send the request as application/json.",
        )


def _flatten(data: Any, name: str) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    if not any(isinstance(item, list) for item in data):
        return data
    flat: list[Any] = []
    for item in data:
        flat.extend(_flatten(item, name))
    return flat


def _as_array(values: list[Any], datatype: str, name: str) -> np.ndarray[Any, Any]:
    def wrong(expected: str) -> OpenInferenceError:
        return _bad(
            f"input {name!r} has datatype {datatype}, but its data holds values that are not "
            f"{expected}; send {expected} or declare the datatype the data has."
        )

    if datatype == "BYTES":
        if not all(isinstance(value, str) for value in values):
            raise wrong("strings")
        return np.array(values, dtype=object)
    if datatype == "BOOL":
        if not all(isinstance(value, bool) for value in values):
            raise wrong("booleans (true/false)")
        return np.array(values, dtype=bool)
    integral = datatype in _INTEGER_TYPES or datatype in _UNSIGNED_TYPES
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong("integers" if integral else "numbers")
        if integral and isinstance(value, float):
            raise wrong("integers")
    dtype = (_INTEGER_TYPES | _UNSIGNED_TYPES | _FLOAT_TYPES)[datatype]
    if integral:
        info = np.iinfo(dtype)
        if any(not info.min <= value <= info.max for value in values):
            raise _bad(
                f"input {name!r} holds a value outside the range of {datatype} "
                f"[{info.min}, {info.max}]; declare a wider datatype."
            )
    return np.array(values, dtype=dtype)


def _parse_tensor(tensor: Any, position: int) -> tuple[str, np.ndarray[Any, Any]]:
    if not isinstance(tensor, dict):
        raise _bad(f"inputs[{position}] must be an object with name, shape, datatype and data.")
    name = tensor.get("name")
    if not isinstance(name, str) or not name:
        raise _bad(f"inputs[{position}] has no 'name'; every input tensor needs a name.")
    missing = [key for key in ("shape", "datatype", "data") if key not in tensor]
    if missing:
        raise _bad(f"input {name!r} has no {', '.join(repr(key) for key in missing)}.")
    parameters = tensor.get("parameters") or {}
    if isinstance(parameters, dict) and "binary_data_size" in parameters:
        raise _refuse_binary(f"input {name!r} has binary_data_size")
    shape, datatype = tensor["shape"], tensor["datatype"]
    if not isinstance(shape, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise _bad(f"input {name!r} has shape {shape!r}; expected a list of non-negative ints.")
    if datatype not in DATATYPES:
        raise _bad(
            f"input {name!r} has the unknown datatype {datatype!r}; expected one of "
            f"{', '.join(DATATYPES)}."
        )
    values = _flatten(tensor["data"], name)
    if len(values) != math.prod(shape):
        raise _bad(
            f"input {name!r} has shape {shape} ({math.prod(shape)} elements) but its data "
            f"holds {len(values)} elements; send as many values as the shape says."
        )
    return name, _as_array(values, datatype, name).reshape(shape)


def _requested_outputs(outputs: Any) -> tuple[str, ...] | None:
    if outputs is None:
        return None
    if not isinstance(outputs, list) or not all(
        isinstance(output, dict) and isinstance(output.get("name"), str) for output in outputs
    ):
        raise _bad("'outputs' must be a list of objects each with a 'name'.")
    for output in outputs:
        if (output.get("parameters") or {}).get("binary_data"):
            raise _refuse_binary(f"output {output['name']!r} asks for binary_data")
    return tuple(output["name"] for output in outputs)


def _column(array: np.ndarray[Any, Any], name: str, rows: int | None) -> Any:
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise _bad(
            f"input {name!r} has shape {list(array.shape)}, but it feeds a column: expected "
            "shape [rows] or [rows, 1]."
        )
    if rows is not None and len(array) != rows:
        raise _bad(
            f"input {name!r} has {len(array)} rows but the inputs before it have {rows}; "
            "every column input needs the same number of rows."
        )
    # Text as a list, as the /invocations parser builds it, so both routes' frames are alike.
    return array.tolist() if array.dtype == object else array


def _frame(tensors: dict[str, np.ndarray[Any, Any]], view: SignatureView) -> pd.DataFrame:
    columns: dict[str, Any] = {}
    rows: int | None = None
    for name, array in tensors.items():
        columns[name] = _column(array, name, rows)
        rows = len(columns[name])
    return cast_to_schema(pd.DataFrame(columns), view)


def _model_input(tensors: dict[str, np.ndarray[Any, Any]], view: SignatureView) -> Any:
    if not tensors:
        raise _bad("the request has no inputs; send at least one input tensor.")
    only = next(iter(tensors.values())) if len(tensors) == 1 else None
    if view.has_schema and not view.is_tensor:
        names = [spec.name for spec in view.specs]
        if only is not None and view.named and next(iter(tensors)) not in names:
            if len(names) == 1:  # a lone column takes the lone input, as MLflow's `inputs`
                return _frame({str(names[0]): only}, view)
            if only.ndim == 2 and only.shape[1] == len(names):
                # one [rows, columns] matrix for a column schema: columns in signature order
                frame = pd.DataFrame(only if only.dtype != object else only.tolist(), columns=names)
                return cast_to_schema(frame, view)
        return _frame(tensors, view)
    if view.is_tensor:
        if only is not None and len(view.specs) == 1:
            return only.astype(view.specs[0].numpy_dtype, copy=False)
        return dict(tensors)
    if only is not None:
        return only
    if all(
        array.ndim == 1 or (array.ndim == 2 and array.shape[1] == 1) for array in tensors.values()
    ):
        lengths = {array.shape[0] for array in tensors.values()}
        if len(lengths) == 1:
            return _frame(tensors, view)
    return dict(tensors)


def _model_params(parameters: Any, view: SignatureView) -> dict[str, Any] | None:
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        raise _bad("'parameters' must be an object.")
    if parameters.get("binary_data_output"):
        raise _refuse_binary("parameters.binary_data_output is true")
    if not view.has_params_schema:
        return None
    params = {k: v for k, v in parameters.items() if k not in _PROTOCOL_PARAMETERS}
    return params or None


def parse_inference_request(
    body: bytes, content_type: str | None, model: Any, *, binary_header: str | None = None
) -> InferenceRequest:
    """The model input, params, id and requested outputs of a V2 ``infer`` body.

    ``binary_header`` is the request's ``Inference-Header-Content-Length`` header, if any.
    Raises OpenInferenceError 400 for a body that is not a valid JSON inference request (bad
    shape, unknown datatype, data not matching the datatype or the shape, binary data), 415
    for a non-JSON Content-Type. Pure and thread-safe.
    """
    _check_content_type(content_type, binary_header)
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise _bad(f"the request body is not valid JSON ({error}); send a JSON object.") from None
    if not isinstance(payload, dict):
        raise _bad("the request body must be a JSON object with an 'inputs' list.")
    inputs = payload.get("inputs")
    if not isinstance(inputs, list):
        raise _bad("the request has no 'inputs' list; send {\"inputs\": [{...}, ...]}.")
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise _bad(f"'id' must be a string, got {request_id!r}.")
    tensors: dict[str, np.ndarray[Any, Any]] = {}
    for position, tensor in enumerate(inputs):
        name, array = _parse_tensor(tensor, position)
        if name in tensors:
            raise _bad(f"input {name!r} is given twice; send each input once.")
        tensors[name] = array
    view = signature_view(model)
    params = _model_params(payload.get("parameters"), view)
    requested = _requested_outputs(payload.get("outputs"))
    return InferenceRequest(request_id, _model_input(tensors, view), params, requested)
