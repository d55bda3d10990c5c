"""The scoring server: Tornado serving one model over the MLflow scoring protocol.

`ScoringServer` runs in a thread of the calling process (the kernel) with its own event loop;
requests that arrive together are merged into one predict call when that gives the same
answer. The handlers only move bytes and headers to and from `jupyter_serve.protocol`.
"""

from __future__ import annotations

from jupyter_serve.server._handlers import SECRET_HEADER, STOP_ROUTE
from jupyter_serve.server._metrics import ServerMetrics
from jupyter_serve.server._options import DEFAULT_MAX_BODY_BYTES, ServerOptions
from jupyter_serve.server._server import ScoringServer

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "SECRET_HEADER",
    "STOP_ROUTE",
    "ScoringServer",
    "ServerMetrics",
    "ServerOptions",
]
