"""V2 ``infer`` requests to the model input an ``/invocations`` request would give.

Inputs named after the signature's columns become one DataFrame, cast as MLflow casts a
``dataframe_split`` (so V2 and MLflow requests for the same rows build alike frames and merge
in one predict call); a lone input for a one-column schema is that column; a lone
[rows, columns] matrix for a column schema gives the columns in signature order; a tensor
signature gets an ndarray cast to its dtype (or a dict of them). Datatypes are checked
strictly against the JSON values: a client's mistake is a 400 naming the input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from jupyter_serve.protocol._frames import cast_to_schema
from jupyter_serve.protocol._json_body import JsonLimitError, decode_json, holds_lone_surrogates
from jupyter_serve.protocol._open_inference import OpenInferenceError
from jupyter_serve.protocol._open_inference_binary import BinaryTensorReader, split_binary_body
from jupyter_serve.protocol._signature_view import SignatureView, signature_view

_INTEGER_TYPES = {f"INT{bits}": np.dtype(f"int{bits}") for bits in (8, 16, 32, 64)}
_UNSIGNED_TYPES = {f"UINT{bits}": np.dtype(f"uint{bits}") for bits in (8, 16, 32, 64)}
_FLOAT_TYPES = {f"FP{bits}": np.dtype(f"float{bits}") for bits in (16, 32, 64)}
DATATYPES = ("BOOL", *_UNSIGNED_TYPES, *_INTEGER_TYPES, *_FLOAT_TYPES, "BYTES")
# Limits of a shape, below numpy's (64 dimensions; sizes whose product, zeros left out, fits
# in an index): a shape beyond them describes no array, even an empty one.
MAX_DIMENSIONS = 32
MAX_ELEMENTS = 2**48
# Request parameters that steer the protocol, never handed to the model as params.
_PROTOCOL_PARAMETERS = frozenset(
    {"content_type", "headers", "binary_data_output", "sequence_id", "priority", "timeout"}
)


@dataclass(frozen=True)
class InferenceRequest:
    """A parsed ``infer`` request: its ``id``, the model input and params, the output
    names asked for (None: every output), and which outputs to send as binary data (None:
    every output; empty: none, the whole answer is JSON)."""

    id: str | None
    data: Any
    params: dict[str, Any] | None
    requested_outputs: tuple[str, ...] | None
    binary_outputs: frozenset[str] | None = frozenset()


def _bad(message: str) -> OpenInferenceError:
    return OpenInferenceError(400, message)


def _check_content_type(content_type: str | None) -> None:
    media_type = (content_type or "application/json").split(";", 1)[0].strip().lower()
    if media_type not in ("application/json", ""):
        raise OpenInferenceError(
            415,
            f"unsupported Content-Type {content_type!r}: the Open Inference Protocol is "
            "spoken here in JSON, or in its binary tensor extension with an "
            "Inference-Header-Content-Length header; send the request as application/json.",
        )


def _nests_as(data: Any, shape: list[int]) -> bool:
    if not shape:
        return not isinstance(data, list)
    if not isinstance(data, list) or len(data) != shape[0]:
        return False
    return all(_nests_as(item, shape[1:]) for item in data)


def _flatten(data: Any, shape: list[int], name: str) -> list[Any]:
    """The values of ``data`` in row-major order: given flat, or nested exactly as ``shape``."""
    values: list[Any] = data if isinstance(data, list) else [data]
    if not any(isinstance(item, list) for item in values):
        return values
    if not _nests_as(values, shape):
        raise _bad(
            f"input {name!r} has nested data that is not shaped {shape}; send the data flat "
            "(row-major) or nested exactly as the shape says."
        )
    flat: list[Any] = []
    for item in values:
        flat.extend(_flatten(item, shape[1:], name))
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
    try:
        if datatype == "FP64":  # a Python float is one: only a huge int can overflow
            return np.array(values, dtype=dtype)
        with np.errstate(over="raise"):
            return np.array(values, dtype=dtype)
    except (OverflowError, FloatingPointError):
        largest = np.finfo(dtype).max
        raise _bad(
            f"input {name!r} holds a value outside the range of {datatype} "
            f"[{-largest:.4g}, {largest:.4g}]; "
            + ("declare a wider datatype." if datatype != "FP64" else "send values within it.")
        ) from None


def _parse_tensor(
    tensor: Any, position: int, binary: BinaryTensorReader | None
) -> tuple[str, np.ndarray[Any, Any]]:
    if not isinstance(tensor, dict):
        raise _bad(f"inputs[{position}] must be an object with name, shape, datatype and data.")
    name = tensor.get("name")
    if not isinstance(name, str) or not name:
        raise _bad(f"inputs[{position}] has no 'name'; every input tensor needs a name.")
    parameters = tensor.get("parameters") or {}
    binary_size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
    required = ("shape", "datatype") if binary_size is not None else ("shape", "datatype", "data")
    missing = [key for key in required if key not in tensor]
    if missing:
        raise _bad(f"input {name!r} has no {', '.join(repr(key) for key in missing)}.")
    shape, datatype = tensor["shape"], tensor["datatype"]
    _check_shape(shape, name)
    if datatype not in DATATYPES:
        raise _bad(
            f"input {name!r} has the unknown datatype {datatype!r}; expected one of "
            f"{', '.join(DATATYPES)}."
        )
    if binary_size is not None:
        if "data" in tensor:
            raise _bad(
                f"input {name!r} has both 'data' and parameters.binary_data_size; send its "
                "values one way only."
            )
        if binary is None:
            raise _bad(
                f"input {name!r} has binary_data_size but the request has no "
                "Inference-Header-Content-Length header; send the header's length in it, or "
                "the values as JSON 'data'."
            )
        return name, binary.read(name, binary_size, datatype, shape)
    values = _flatten(tensor["data"], shape, name)
    if len(values) != math.prod(shape):
        raise _bad(
            f"input {name!r} has shape {shape} ({math.prod(shape)} elements) but its data "
            f"holds {len(values)} elements; send as many values as the shape says."
        )
    return name, _as_array(values, datatype, name).reshape(shape)


def _check_shape(shape: Any, name: str) -> None:
    if not isinstance(shape, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise _bad(f"input {name!r} has shape {shape!r}; expected a list of non-negative ints.")
    if len(shape) > MAX_DIMENSIONS:
        raise _bad(
            f"input {name!r} has {len(shape)} dimensions; a shape has at most {MAX_DIMENSIONS}."
        )
    if math.prod(n for n in shape if n) > MAX_ELEMENTS:
        raise _bad(
            f"input {name!r} has shape {shape}, whose sizes multiply to more than 2**48 "
            "elements even with its zeros left out; no array has that shape. Send the "
            "shape of the data."
        )


def _requested_outputs(
    outputs: Any, binary_by_default: bool
) -> tuple[tuple[str, ...] | None, frozenset[str] | None]:
    """The output names asked for, and those to send binary (an output's own
    ``binary_data`` wins over the request's ``binary_data_output``)."""
    if outputs is None:
        return None, (None if binary_by_default else frozenset())
    if not isinstance(outputs, list) or not all(
        isinstance(output, dict) and isinstance(output.get("name"), str) for output in outputs
    ):
        raise _bad("'outputs' must be a list of objects each with a 'name'.")
    binary = set()
    for output in outputs:
        parameters = output.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise _bad(f"output {output['name']!r} has 'parameters' that are not an object.")
        if parameters.get("binary_data", binary_by_default):
            binary.add(output["name"])
    return tuple(output["name"] for output in outputs), frozenset(binary)


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


# Columns already of the type the schema cast would give them: (schema kind, numpy kind).
_ALREADY_CAST = frozenset({("double", "float64"), ("long", "int64"), ("string", "object")})


def _frame(tensors: dict[str, np.ndarray[Any, Any]], view: SignatureView) -> pd.DataFrame:
    columns: dict[str, Any] = {}
    rows: int | None = None
    for name, array in tensors.items():
        columns[name] = _column(array, name, rows)
        rows = len(columns[name])
    index = pd.RangeIndex(rows or 0)
    specs = view.by_name()
    if all(
        name in specs and (specs[name].kind, tensors[name].dtype.name) in _ALREADY_CAST
        for name in tensors
    ):
        # Nothing to cast (BYTES data were checked to be str): skip the cast's column copies.
        frame: pd.DataFrame = pd.DataFrame(columns, index=index)
        return frame
    return cast_to_schema(pd.DataFrame(columns, index=index), view)


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
            dtype = view.specs[0].numpy_dtype
            try:
                return only.astype(dtype, copy=False)
            except (TypeError, ValueError) as error:
                raise _bad(
                    f"input {next(iter(tensors))!r} cannot be cast to the model's tensor type "
                    f"{dtype} ({error}); send values of that type."
                ) from None
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
    if not view.has_params_schema:
        return None
    params = {k: v for k, v in parameters.items() if k not in _PROTOCOL_PARAMETERS}
    return params or None


def parse_inference_request(
    body: bytes, content_type: str | None, model: Any, *, binary_header: str | None = None
) -> InferenceRequest:
    """The model input, params, id and requested outputs of a V2 ``infer`` body.

    ``binary_header`` is the request's ``Inference-Header-Content-Length`` header, if any:
    then the body is a JSON header and raw tensors (the binary tensor data extension, any
    Content-Type). Raises OpenInferenceError 400 for a body that is not a valid inference
    request (bad shape, unknown datatype, data not matching the datatype or the shape,
    binary sizes that do not add up, JSON beyond the limits of `decode_json`, a lone
    surrogate escape), 415 for a non-JSON Content-Type without the binary header. Pure and
    thread-safe.
    """
    try:
        return _parse_inference_request(body, content_type, model, binary_header)
    except RecursionError:
        # A document nested just under the decoder's limit, met deeper in the stack.
        raise _bad(
            "the request nests lists or objects too deeply to be read; send less nesting."
        ) from None


def _parse_inference_request(
    body: bytes, content_type: str | None, model: Any, binary_header: str | None
) -> InferenceRequest:
    binary: BinaryTensorReader | None = None
    if binary_header is None:
        _check_content_type(content_type)
        header = body
    else:
        header, raw = split_binary_body(body, binary_header)
        binary = BinaryTensorReader(raw)
    try:
        payload = decode_json(header)
    except ValueError as error:  # UnicodeDecodeError is one
        raise _bad(f"the request body is not valid JSON ({error}); send a JSON object.") from None
    except JsonLimitError as error:
        raise _bad(error.message[0].lower() + error.message[1:]) from None
    if holds_lone_surrogates(header):
        raise _bad(
            "the request body holds a lone UTF-16 surrogate escape (\\ud800 to \\udfff "
            "without its pair), which is no character; send text as valid Unicode."
        )
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
        name, array = _parse_tensor(tensor, position, binary)
        if name in tensors:
            raise _bad(f"input {name!r} is given twice; send each input once.")
        tensors[name] = array
    if binary is not None:
        binary.check_consumed()
    view = signature_view(model)
    parameters = payload.get("parameters")
    params = _model_params(parameters, view)
    binary_by_default = isinstance(parameters, dict) and bool(parameters.get("binary_data_output"))
    requested, binary_outputs = _requested_outputs(payload.get("outputs"), binary_by_default)
    return InferenceRequest(
        request_id, _model_input(tensors, view), params, requested, binary_outputs
    )
