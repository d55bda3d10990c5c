"""The answers of the connection limits: a stalled body, an oversized head, a full body budget.

Worded like every other error of the server (MLflow's ``error_code`` and ``message``), each
naming the limit and what to do.
"""

from __future__ import annotations

import json
from http.client import responses

from jupyter_serve.protocol import ScoringResponse
from jupyter_serve.server._request_ids import REQUEST_ID_HEADER, new_request_id

_JSON = "application/json"


def _error(status: int, error_code: str, message: str) -> ScoringResponse:
    body = json.dumps({"error_code": error_code, "message": message}).encode()
    return ScoringResponse(status=status, body=body, content_type=_JSON)


def malformed_request_response() -> ScoringResponse:
    """400 for bytes that are not an HTTP/1.1 request (Tornado's parser refused them)."""
    return _error(
        400,
        "BAD_REQUEST",
        "The request is not valid HTTP/1.1: its request line, a header or its chunked body "
        "framing could not be parsed. Send a well-formed HTTP/1.1 request.",
    )


def body_stalled_response(stall_seconds: float) -> ScoringResponse:
    """408 for a request body that stopped arriving."""
    return _error(
        408,
        "BAD_REQUEST",
        f"The request body stopped arriving: no byte of it came for {stall_seconds:g} seconds, "
        "the server's limit (body_stall_timeout). Send the body without pauses.",
    )


def uri_too_long_response(limit_bytes: int) -> ScoringResponse:
    """414 for a request line that does not fit the header limit."""
    return _error(
        414,
        "BAD_REQUEST",
        f"The request line (method and URL) is longer than the server's limit of {limit_bytes} "
        "bytes for a request's head. Send the data in the request body instead of the URL.",
    )


def headers_too_large_response(limit_bytes: int) -> ScoringResponse:
    """431 for request headers over the header limit."""
    return _error(
        431,
        "BAD_REQUEST",
        f"The request's headers are larger than the server's limit of {limit_bytes} bytes. "
        "Send fewer or smaller headers.",
    )


def bodies_over_budget_response(
    body_bytes: int | None, held_bytes: int, budget_bytes: int
) -> ScoringResponse:
    """503 for a body that does not fit the server's budget for bodies received at once."""
    size = "of unknown size" if body_bytes is None else f"of {body_bytes} bytes"
    response = _error(
        503,
        "TEMPORARILY_UNAVAILABLE",
        f"The server is busy receiving other large requests: it already holds {held_bytes} "
        f"bytes of request bodies, and this body {size} would take it past its limit of "
        f"{budget_bytes} bytes at once (max_body_bytes_in_flight). Retry in a moment, or send "
        "fewer rows per request.",
    )
    return ScoringResponse(
        status=response.status,
        body=response.body,
        content_type=response.content_type,
        headers=(("Retry-After", "1"),),
    )


def serialize_closing(response: ScoringResponse) -> bytes:
    """``response`` as HTTP/1.1 bytes that end the connection (written below Tornado)."""
    reason = responses.get(response.status, "Error")
    head = (
        f"HTTP/1.1 {response.status} {reason}\r\n"
        f"Content-Type: {response.content_type}\r\n"
        f"Content-Length: {len(response.body)}\r\n"
        f"{REQUEST_ID_HEADER}: {new_request_id()}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + response.body
