"""The scoring server: Tornado serving one model over the MLflow scoring protocol.

`ScoringServer` runs in a thread of the calling process (the kernel) with its own event loop;
`WorkerPool` runs worker processes sharing one port. Requests that arrive together are merged
into one predict call when that gives the same answer. The handlers only move bytes and
headers to and from `jupyter_serve.protocol`.

Names are imported on first use, so that the CLI can add its ``models serve`` command without
importing Tornado and pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jupyter_serve._lazy import lazy_attributes

if TYPE_CHECKING:
    from jupyter_serve.server._command import add_serve_parser, run_serve
    from jupyter_serve.server._handlers import SECRET_HEADER, STOP_ROUTE
    from jupyter_serve.server._metrics import ServerMetrics
    from jupyter_serve.server._options import DEFAULT_MAX_BODY_BYTES, ServerOptions
    from jupyter_serve.server._server import ScoringServer
    from jupyter_serve.server._workers import PooledMetrics, WorkerPool

_LAZY_ATTRIBUTES = {
    "add_serve_parser": "jupyter_serve.server._command",
    "run_serve": "jupyter_serve.server._command",
    "SECRET_HEADER": "jupyter_serve.server._handlers",
    "STOP_ROUTE": "jupyter_serve.server._handlers",
    "ServerMetrics": "jupyter_serve.server._metrics",
    "DEFAULT_MAX_BODY_BYTES": "jupyter_serve.server._options",
    "ServerOptions": "jupyter_serve.server._options",
    "ScoringServer": "jupyter_serve.server._server",
    "PooledMetrics": "jupyter_serve.server._workers",
    "WorkerPool": "jupyter_serve.server._workers",
}


__getattr__ = lazy_attributes(__name__, _LAZY_ATTRIBUTES, globals())


__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "SECRET_HEADER",
    "STOP_ROUTE",
    "PooledMetrics",
    "ScoringServer",
    "ServerMetrics",
    "ServerOptions",
    "WorkerPool",
    "add_serve_parser",
    "run_serve",
]
