"""The MLflow 3.17.2 scoring protocol as pure functions: bytes and headers in, bytes out.

No Tornado, no I/O, no logging: the server calls these on its hot path. Where MLflow is
buggy we answer better and say so: a missing Content-Type is a 415 with a clear message
(MLflow: 500), and 415/504/413 bodies are the error JSON (MLflow: plain text).
"""

from __future__ import annotations

from jupyter_serve.protocol._content_type import SUPPORTED_MEDIA_TYPES
from jupyter_serve.protocol._errors import ScoringError
from jupyter_serve.protocol._frames import PlainColumns
from jupyter_serve.protocol._invoke import (
    invoke,
    prepare_input,
    prepare_plain_columns,
    run_prediction,
)
from jupyter_serve.protocol._open_inference import (
    OpenInferenceError,
    array_output_name,
    as_open_inference_error,
    model_metadata_response,
    model_not_found_response,
    model_ready_response,
    open_inference_error_response,
    server_live_response,
    server_metadata_response,
    server_ready_response,
)
from jupyter_serve.protocol._open_inference_inputs import (
    InferenceRequest,
    parse_inference_request,
)
from jupyter_serve.protocol._open_inference_outputs import render_inference_response
from jupyter_serve.protocol._parsing import ScoringRequest, parse_invocation
from jupyter_serve.protocol._rendering import render_predictions
from jupyter_serve.protocol._responses import (
    ScoringResponse,
    body_too_large_response,
    method_not_allowed_response,
    not_found_response,
    ping_response,
    timeout_response,
    version_response,
)

__all__ = [
    "SUPPORTED_MEDIA_TYPES",
    "InferenceRequest",
    "OpenInferenceError",
    "PlainColumns",
    "ScoringError",
    "ScoringRequest",
    "ScoringResponse",
    "array_output_name",
    "as_open_inference_error",
    "body_too_large_response",
    "invoke",
    "method_not_allowed_response",
    "model_metadata_response",
    "model_not_found_response",
    "model_ready_response",
    "not_found_response",
    "open_inference_error_response",
    "parse_inference_request",
    "parse_invocation",
    "ping_response",
    "prepare_input",
    "prepare_plain_columns",
    "render_inference_response",
    "render_predictions",
    "run_prediction",
    "server_live_response",
    "server_metadata_response",
    "server_ready_response",
    "timeout_response",
    "version_response",
]
