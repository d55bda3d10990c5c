"""The few answers only the server gives (the protocol module owns every MLflow one)."""

from __future__ import annotations

import json

from jupyter_serve.protocol import ScoringResponse

_JSON = "application/json"


def _error(status: int, error_code: str, message: str) -> ScoringResponse:
    body = json.dumps({"error_code": error_code, "message": message}).encode()
    return ScoringResponse(status=status, body=body, content_type=_JSON)


def internal_error_response() -> ScoringResponse:
    """500 for a failure of the server itself (details go to the server's log, not the client)."""
    return _error(
        500,
        "INTERNAL_ERROR",
        "The scoring server failed unexpectedly while handling this request; "
        "its log has the details. Retrying may help.",
    )


def forbidden_response() -> ScoringResponse:
    """403 for a request without the deployment's secret."""
    return _error(
        403,
        "PERMISSION_DENIED",
        "This deployment only answers requests that carry its secret in the "
        "X-Jupyter-Serve-Secret header; reach it through the Jupyter server's proxy URL.",
    )


def stopping_response() -> ScoringResponse:
    """202 for an accepted remote stop."""
    return ScoringResponse(status=202, body=b'{"status": "stopping"}', content_type=_JSON)
