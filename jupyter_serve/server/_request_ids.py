"""Request IDs: the client's ``X-Request-ID`` when it is safe to echo, else a new one.

A new ID is this process's random prefix and a counter: unique across processes and restarts
for all practical purposes, and a fraction of a microsecond to make (a uuid4 costs ~2 µs).
A client's ID is echoed only when it is at most 128 characters of ``[A-Za-z0-9._:-]``, so that
it can never break a log line, a header or a JSON document.
"""

from __future__ import annotations

import itertools
import re
import secrets

from tornado.httputil import HTTPHeaders

REQUEST_ID_HEADER = "X-Request-ID"
MAX_REQUEST_ID_LENGTH = 128
_SAFE_REQUEST_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_REQUEST_ID_LENGTH}}}")
_PREFIX = secrets.token_hex(6) + "-"
_counter = itertools.count(1)  # next() on it is atomic under the GIL


def new_request_id() -> str:
    """A request ID no other request of this or another process has. Thread-safe."""
    return f"{_PREFIX}{next(_counter):x}"


def request_id_of(headers: HTTPHeaders) -> str:
    """The ID of the request with these headers: the client's when safe, else a new one."""
    offered = headers.get(REQUEST_ID_HEADER)
    if offered is not None and _SAFE_REQUEST_ID.fullmatch(offered):
        return offered
    return new_request_id()


def request_id_for(connection: object, headers: HTTPHeaders) -> str:
    """The ID of the request with ``headers`` on ``connection``: the connection's own when it
    keeps one (the scoring server's do, so that every answer of a request carries one ID),
    else `request_id_of` the headers."""
    kept = getattr(connection, "request_id", None)
    return kept() if callable(kept) else request_id_of(headers)
