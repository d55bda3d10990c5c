"""The Open Inference Protocol (KServe V2) as pure functions: health, server and model
metadata (from the signature), readiness and V2 errors. Requests are read by
``_open_inference_inputs``, predictions written by ``_open_inference_outputs``; both speak
JSON and Triton's binary tensor data extension (``_open_inference_binary``).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from jupyter_serve._version import __version__
from jupyter_serve.protocol._open_inference_outputs import DEFAULT_OUTPUT_NAME, datatype_of
from jupyter_serve.protocol._responses import JSON_CONTENT_TYPE, ScoringResponse

SERVER_NAME = "jupyter-serve"
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


class OpenInferenceError(Exception):
    """A V2 request refused with ``status`` and the message of its ``{"error": ...}`` body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def to_response(self) -> ScoringResponse:
        """The V2 error answer: ``{"error": message}`` with this error's status."""
        return open_inference_error_response(self.status, self.message)


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
    """The answer to ``GET /v2``: the server's name, version and extensions (Triton's name
    for the binary tensor data extension)."""
    payload = {"name": SERVER_NAME, "version": __version__, "extensions": ["binary_tensor_data"]}
    return _json_response(200, payload)


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
