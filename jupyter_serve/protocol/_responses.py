"""Answers of the scoring server that carry no prediction, and the response value itself."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import metadata

from jupyter_serve._version import __version__

JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class ScoringResponse:
    """One HTTP answer: status, body bytes, Content-Type, and any extra headers."""

    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()


_PING = ScoringResponse(200, b"\n", JSON_CONTENT_TYPE)
_NOT_FOUND = ScoringResponse(404, b'{"detail":"Not Found"}', JSON_CONTENT_TYPE)


def ping_response() -> ScoringResponse:
    """The answer to ``GET /ping`` and ``GET /health``: 200 with body ``"\\n"``, as MLflow."""
    return _PING


@cache
def version_response() -> ScoringResponse:
    """The answer to ``GET /version``: 200 with the version of the MLflow installed beside us
    (what ``mlflow models serve`` answers in this environment, and what MLflow's own clients
    and tests expect), or jupyter-serve's version where MLflow is not installed."""
    return ScoringResponse(200, served_version().encode("utf-8"), JSON_CONTENT_TYPE)


def served_version() -> str:
    for distribution in ("mlflow", "mlflow-skinny"):
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return __version__


def not_found_response() -> ScoringResponse:
    """The answer to an unknown path: 404 ``{"detail":"Not Found"}``, byte for byte MLflow's."""
    return _NOT_FOUND


def method_not_allowed_response(allowed: Sequence[str]) -> ScoringResponse:
    """The answer to a known path with the wrong method: 405 plus an ``Allow`` header."""
    return ScoringResponse(
        405,
        b'{"detail":"Method Not Allowed"}',
        JSON_CONTENT_TYPE,
        (("Allow", ", ".join(allowed)),),
    )


def _error_body(error_code: str, message: str) -> bytes:
    return json.dumps({"error_code": error_code, "message": message}).encode("utf-8")


def timeout_response(timeout_seconds: float) -> ScoringResponse:
    """504 with a JSON error body (MLflow sends plain text under a JSON Content-Type)."""
    message = (
        f"Request processing time exceeded limit: the prediction took longer than "
        f"{timeout_seconds:g} seconds. Send fewer rows per request or start the server with "
        "a larger --timeout."
    )
    return ScoringResponse(504, _error_body("DEADLINE_EXCEEDED", message), JSON_CONTENT_TYPE)


def body_too_large_response(limit_bytes: int) -> ScoringResponse:
    """413 with a JSON error body naming the limit."""
    message = (
        f"The request body is larger than the server's limit of {limit_bytes} bytes. Send "
        "fewer rows per request or raise the server's body size limit."
    )
    return ScoringResponse(413, _error_body("RESOURCE_EXHAUSTED", message), JSON_CONTENT_TYPE)
