"""``GET /openapi.json``: an OpenAPI 3.1 document of every route of a deployment, and the
``/docs`` page (Swagger UI) that renders it.

MLflow 3.17.2's server answers both routes too (FastAPI's): its document lists /ping,
/health, /version and /invocations with no request schema, and its page loads Swagger UI from
a CDN. Ours keeps MLflow's operation ids (clients generated from its document keep their
method names), adds the Open Inference Protocol's routes and ours, and describes
``/invocations`` with this model's own signature and saved input example. Every URL is
relative, so the page and "Try it out" work the same at ``/docs`` and under the Jupyter
server's proxy (``{base_url}jupyter-serve/proxy/<id>/docs``), and nothing leaves the machine.
"""

from __future__ import annotations

import csv
import html
import io
import json
import threading
from typing import TYPE_CHECKING, Any

from jupyter_serve._version import __version__
from jupyter_serve.server._openapi_paths import other_paths
from jupyter_serve.server._openapi_schemas import invocation_body_schemas

if TYPE_CHECKING:
    from jupyter_serve.server._handlers import ServingState

SECRET_SCHEME = "deploymentSecret"
_cache_lock = threading.Lock()
_documents: dict[int, tuple[object, bytes]] = {}
_CACHE_LIMIT = 64


def openapi_document_bytes(state: ServingState) -> bytes:
    """The document for the model ``state`` serves now, as JSON bytes; built once per served
    model (a swap builds it anew). Thread-safe."""
    served = state.current
    with _cache_lock:
        cached = _documents.get(id(state))
    if cached is not None and cached[0] is served:
        return cached[1]
    body = json.dumps(openapi_document(state), default=str).encode("utf-8")
    with _cache_lock:
        if len(_documents) >= _CACHE_LIMIT:
            _documents.clear()
        _documents[id(state)] = (served, body)
    return body


def openapi_document(state: ServingState) -> dict[str, Any]:
    """The OpenAPI 3.1 document (a JSON-able dict) of the deployment ``state`` serves."""
    from jupyter_serve.server._open_inference_handlers import served_model_name

    served, options = state.current, state.options
    model = served.model
    name = served_model_name(options.model_name, served.model_uri)
    version = f" version {served.version}" if served.version else ""
    schemas = invocation_body_schemas(getattr(model, "signature", None))
    schemas["Error"] = {
        "type": "object",
        "description": "MLflow's error answer.",
        "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}},
    }
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": f"{name} (jupyter-serve)",
            "version": __version__,
            "description": (
                f"Scoring API of `{served.model_uri}`{version}, served by jupyter-serve: "
                "MLflow's scoring protocol (`mlflow models serve`), the Open Inference "
                "Protocol (`/v2`), Prometheus metrics and this document."
            ),
        },
        "servers": [{"url": ".", "description": "this deployment"}],
        "paths": {
            "/invocations": {"post": _invocations_operation(model)},
            **other_paths(name, served.version),
        },
        "components": {"schemas": schemas},
    }
    if options.require_secret:
        document["components"]["securitySchemes"] = {
            SECRET_SCHEME: {"type": "apiKey", "in": "header", "name": "X-Jupyter-Serve-Secret"}
        }
        document["security"] = [{SECRET_SCHEME: []}]
        for operations in document["paths"].values():
            for operation in operations.values():
                operation["responses"]["403"] = _error_response("The secret is missing.")
    return document


def _invocations_operation(model: Any) -> dict[str, Any]:
    json_media: dict[str, Any] = {
        "schema": {
            "oneOf": [
                {"$ref": f"#/components/schemas/{form}"}
                for form in ("DataframeSplit", "DataframeRecords", "Instances", "Inputs")
            ]
        }
    }
    example = saved_input_example(model)
    if example is not None:
        json_media["example"] = example
    csv_media: dict[str, Any] = {"schema": {"type": "string"}}
    csv_example = csv_text(example)
    if csv_example is not None:
        csv_media["example"] = csv_example
    return {
        "summary": "Transformation",
        "description": "Predict with the model, as `mlflow models serve` does: a DataFrame "
        "(`dataframe_split`, `dataframe_records`), tensors or columns (`instances`, `inputs`) "
        "with optional `params`, or CSV with a header row. The example is the model's saved "
        "input example.",
        "operationId": "transformation_invocations_post",
        "requestBody": {
            "required": True,
            "content": {"application/json": json_media, "text/csv": csv_media},
        },
        "responses": {
            "200": {
                "description": "The predictions.",
                "content": {
                    "application/json": {
                        "schema": {"type": "object", "properties": {"predictions": {}}}
                    }
                },
            },
            "400": _error_response("The body does not fit the protocol or the signature."),
            "413": _error_response("The body is larger than the server's limit."),
            "415": _error_response("The Content-Type is neither JSON nor CSV."),
            "500": _error_response("The model failed to predict."),
            "504": _error_response("The prediction took longer than the request timeout."),
        },
    }


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def saved_input_example(model: Any) -> Any:
    """The JSON body saved with the model (MLflow's ``serving_input_example.json``), or one
    built from its saved ``input_example`` DataFrame; None when the model has neither."""
    example = getattr(model, "serving_input_example", None)
    if isinstance(example, (bytes, str)):
        try:
            example = json.loads(example)
        except ValueError:
            return None
    if isinstance(example, dict):
        return example
    frame = getattr(model, "input_example", None)
    to_json = getattr(frame, "to_json", None)
    if callable(to_json) and hasattr(frame, "columns"):
        return {"dataframe_split": json.loads(to_json(orient="split", index=False))}
    return None


def csv_text(example: Any) -> str | None:
    """The CSV body (a header row, then the rows) of a ``dataframe_split`` or
    ``dataframe_records`` example of plain values; None for other examples."""
    if not isinstance(example, dict):
        return None
    split = example.get("dataframe_split")
    records = example.get("dataframe_records")
    if isinstance(split, dict) and isinstance(split.get("columns"), list):
        columns, rows = split["columns"], split.get("data") or []
    elif isinstance(records, list) and records and isinstance(records[0], dict):
        columns = list(records[0])
        rows = [[record.get(column) for column in columns] for record in records]
    else:
        return None
    if any(isinstance(v, (dict, list)) for row in rows for v in row):
        return None
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buffer.getvalue()


def docs_page(state: ServingState) -> bytes:
    """The Swagger UI page: its scripts and styles from this deployment, by relative URL."""
    from jupyter_serve.server._open_inference_handlers import served_model_name

    served = state.current
    title = html.escape(f"{served_model_name(state.options.model_name, served.model_uri)} - API")
    return _PAGE.format(title=title).encode("utf-8")


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" type="text/css" href="docs/swagger-ui.css">
<link rel="icon" type="image/png" href="docs/favicon-32x32.png" sizes="32x32">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js" charset="UTF-8"></script>
<script src="docs/swagger-initializer.js" charset="UTF-8"></script>
</body>
</html>
"""

# Every URL relative to the page's own, so that it works under any prefix (the Jupyter proxy).
# Through the proxy, Jupyter's XSRF check wants its _xsrf cookie echoed in a header on POSTs,
# as JupyterLab does (the proxy strips it before the deployment).
INITIALIZER_SCRIPT = b"""window.onload = function () {
  var here = window.location.href.split("#")[0].split("?")[0];
  window.ui = SwaggerUIBundle({
    url: new URL("openapi.json", here).href,
    oauth2RedirectUrl: new URL("docs/oauth2-redirect", here).href,
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    requestInterceptor: function (request) {
      var xsrf = document.cookie.match(/(?:^|;\\s*)_xsrf=([^;]*)/);
      if (xsrf) {
        request.headers["X-XSRFToken"] = decodeURIComponent(xsrf[1]);
      }
      return request;
    },
  });
};
"""
