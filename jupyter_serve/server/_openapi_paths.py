"""The OpenAPI path items of every route but ``/invocations``: MLflow's (with MLflow's own
operation ids), the Open Inference Protocol's, and ``/metrics``, ``/openapi.json``, ``/docs``.
"""

from __future__ import annotations

from typing import Any

_V2_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}},
}
# The Open Inference Protocol's tensor data types.
_V2_DATATYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32"]
_V2_DATATYPES += ["INT64", "FP16", "FP32", "FP64", "BYTES"]
_V2_TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype", "data"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"type": "string", "enum": _V2_DATATYPES},
        "parameters": {"type": "object"},
        "data": {},
    },
}
_V2_TENSOR_METADATA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
    },
}


def _json(schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"application/json": {} if schema is None else {"schema": schema}}


def _get(
    summary: str, operation_id: str, ok: dict[str, Any], *, description: str = ""
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "operationId": operation_id,
        "responses": {"200": ok},
    }
    if description:
        operation["description"] = description
    return {"get": operation}


def _v2_errors(*statuses: str) -> dict[str, Any]:
    return {status: {"description": "Refused.", "content": _json(_V2_ERROR)} for status in statuses}


def _model_paths(prefix: str, suffix_id: str, name: str, version: str) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": "model_name", "in": "path", "required": True, "schema": _NAME, "example": name}
    ]
    if "{model_version}" in prefix:
        parameters.append(
            {
                "name": "model_version",
                "in": "path",
                "required": True,
                "schema": _NAME,
                "example": version,
            }
        )
    metadata = _get(
        "Model metadata",
        f"v2_model_metadata{suffix_id}",
        {
            "description": "The model's name, versions, platform, inputs and outputs.",
            "content": _json(
                {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "versions": {"type": "array", "items": {"type": "string"}},
                        "platform": {"type": "string"},
                        "inputs": {"type": "array", "items": _V2_TENSOR_METADATA},
                        "outputs": {"type": "array", "items": _V2_TENSOR_METADATA},
                    },
                }
            ),
        },
    )
    ready = _get(
        "Model readiness",
        f"v2_model_ready{suffix_id}",
        {
            "description": "The model is ready.",
            "content": _json(
                {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
                }
            ),
        },
    )
    infer = {
        "post": {
            "summary": "Inference (Open Inference Protocol)",
            "description": "KServe V2 inference with JSON tensors; the binary tensor "
            "extension (application/octet-stream with Inference-Header-Content-Length) is "
            "accepted too.",
            "operationId": f"v2_infer{suffix_id}",
            "requestBody": {
                "required": True,
                "content": _json(
                    {
                        "type": "object",
                        "required": ["inputs"],
                        "properties": {
                            "id": {"type": "string"},
                            "parameters": {"type": "object"},
                            "inputs": {"type": "array", "items": _V2_TENSOR},
                            "outputs": {"type": "array", "items": {"type": "object"}},
                        },
                    }
                ),
            },
            "responses": {
                "200": {
                    "description": "The model's outputs.",
                    "content": _json(
                        {
                            "type": "object",
                            "required": ["model_name", "outputs"],
                            "properties": {
                                "model_name": {"type": "string"},
                                "model_version": {"type": "string"},
                                "id": {"type": "string"},
                                "outputs": {"type": "array", "items": _V2_TENSOR},
                            },
                        }
                    ),
                },
                **_v2_errors("400", "404", "413", "415", "500", "504"),
            },
        }
    }
    paths = {prefix: metadata, prefix + "/ready": ready, prefix + "/infer": infer}
    for item in paths.values():
        for operation in item.values():
            operation["parameters"] = parameters
            operation["responses"].update(
                {k: v for k, v in _v2_errors("404").items() if k not in operation["responses"]}
            )
    return paths


_NAME = {"type": "string", "pattern": "^[^/]+$"}


def other_paths(model_name: str, model_version: str | None) -> dict[str, Any]:
    """Path items of every route but ``/invocations``; ``model_name`` and ``model_version``
    (of the served model) are the examples of the V2 path parameters."""
    mlflow_ping = _get(
        "Ping",
        "ping_ping_get",
        {"description": 'The server is up and its model loaded (body: "\\n").', "content": _json()},
    )
    mlflow_health = _get(
        "Ping",
        "ping_health_get",
        {"description": 'The server is up and its model loaded (body: "\\n").', "content": _json()},
    )
    version = _get(
        "Version",
        "version_version_get",
        {"description": "The jupyter-serve version, as bare text.", "content": _json()},
    )
    return {
        "/ping": mlflow_ping,
        "/health": mlflow_health,
        "/version": version,
        "/v2/health/live": _get(
            "Server liveness",
            "v2_server_live",
            {
                "description": "The server is live.",
                "content": _json({"type": "object", "properties": {"live": {"type": "boolean"}}}),
            },
        ),
        "/v2/health/ready": _get(
            "Server readiness",
            "v2_server_ready",
            {
                "description": "The server is ready.",
                "content": _json({"type": "object", "properties": {"ready": {"type": "boolean"}}}),
            },
        ),
        "/v2": _get(
            "Server metadata",
            "v2_server_metadata",
            {
                "description": "The server's name, version and protocol extensions.",
                "content": _json(
                    {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "version": {"type": "string"},
                            "extensions": {"type": "array", "items": {"type": "string"}},
                        },
                    }
                ),
            },
        ),
        **_model_paths("/v2/models/{model_name}", "", model_name, model_version or "1"),
        **_model_paths(
            "/v2/models/{model_name}/versions/{model_version}",
            "_version",
            model_name,
            model_version or "1",
        ),
        "/metrics": _get(
            "Prometheus metrics",
            "metrics",
            {
                "description": "Requests, latency, in-flight and queued requests, predict "
                "calls and their rows, and the model, in the Prometheus text format.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
        ),
        "/openapi.json": _get(
            "This document",
            "openapi",
            {"description": "The OpenAPI 3.1 document of this deployment.", "content": _json()},
        ),
        "/docs": _get(
            "Swagger UI",
            "docs",
            {
                "description": "An interactive page of this document.",
                "content": {"text/html": {"schema": {"type": "string"}}},
            },
        ),
    }
