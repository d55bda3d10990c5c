"""The Ray Serve replica: our own scoring server on loopback, behind Ray's HTTP proxy.

Imported only on a Ray cluster (the application's ``import_path``); nothing on the kernel side
imports this module, and it is the only one of ours that imports Ray.

Each replica loads the model directory it was given (the runtime environment's working
directory) and runs a `ScoringServer` on 127.0.0.1 with a free port, in a thread of the replica
process. Ray's proxy hands every request under the application's route prefix to
`ScoringReplica.__call__`, which forwards method, path, query, headers and body to that server
unchanged and returns its status, headers and body unchanged. So every route (``/ping``,
``/invocations`` in every format, ``/v2/...``, the 404s and 405s) is answered by the very code
of ``jupyter-serve models serve``, batching included: nothing of the protocol is written twice.
The loopback hop costs a fraction of a millisecond next to Ray's proxy hop (see the module's
report in benchmarks/results/ray.md).
"""

from __future__ import annotations

import os
import secrets
from typing import Any

import aiohttp

# Installed on the cluster only (ray[serve]); the kernel never imports this module.
from ray import serve  # type: ignore[import-not-found,unused-ignore]
from starlette.requests import Request  # type: ignore[import-not-found,unused-ignore]
from starlette.responses import Response  # type: ignore[import-not-found,unused-ignore]

from jupyter_serve.models import load_model
from jupyter_serve.server._options import ServerOptions
from jupyter_serve.server._server import ScoringServer

# Not forwarded either way: they describe one connection, not the request or its answer.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
    }
)
# Set by Ray's proxy for its own connection to the client.
_ANSWER_HEADERS_RAY_SETS = frozenset({"date", "server"})
# aiohttp adds these unless told not to; the server must see only what the client sent.
_NO_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")


class ScoringReplica:
    """One replica: loads the model, starts the scoring server, forwards requests to it."""

    def __init__(
        self,
        *,
        model_dir: str,
        model_uri: str,
        version: str | None,
        name: str,
        timeout: float = 60.0,
        max_batch_size: int = 64,
        max_batch_wait: float = 0.0,
    ) -> None:
        from jupyter_serve._serving_process import tune_for_serving

        model = load_model(os.path.abspath(model_dir))
        tune_for_serving()
        options = ServerOptions(
            host="127.0.0.1",
            port=0,
            timeout=timeout,
            # Guards the server's remote-stop route: nobody outside this replica knows it.
            secret=secrets.token_urlsafe(32),
            model_name=name,
            max_batch_size=max_batch_size,
            max_batch_wait=max_batch_wait,
        )
        self._server = ScoringServer(model, options, model_uri=model_uri, version=version)
        self._server.start()
        self._base = self._server.url
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, request: Request) -> Response:
        if self._session is None:
            # Created on the replica's own event loop, on its first request.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, force_close=False),
                auto_decompress=False,
                skip_auto_headers=_NO_AUTO_HEADERS,
                timeout=aiohttp.ClientTimeout(total=None),
            )
        headers = [
            (name, value)
            for name, value in request.headers.items()
            if name.lower() not in _HOP_BY_HOP
        ]
        async with self._session.request(
            request.method,
            self._base + _path_under_prefix(request.scope),
            data=await request.body(),
            headers=headers,
            allow_redirects=False,
            compress=None,
        ) as answer:
            body = await answer.read()
            response = Response(content=body, status_code=answer.status)
            response.raw_headers += [
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in answer.headers.items()
                if name.lower() not in _HOP_BY_HOP and name.lower() not in _ANSWER_HEADERS_RAY_SETS
            ]
            return response

    def check_health(self) -> None:
        """Ray's health check: a replica whose server has ended is replaced."""
        if not self._server.is_running:
            raise RuntimeError(f"the scoring server of this replica ({self._base}) has stopped")

    def __del__(self) -> None:
        server = getattr(self, "_server", None)
        if server is not None:
            server.stop()


def _path_under_prefix(scope: dict[str, Any]) -> str:
    """The request's path and query as the client sent them, minus the application's route
    prefix (Ray's proxy sets it as the ASGI ``root_path``)."""
    root = scope.get("root_path", "") or ""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else scope.get("path", "/")
    if root and path.startswith(root):
        path = path[len(root) :]
    if not path.startswith("/"):
        path = "/" + path
    query = scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


def build_application(args: dict[str, Any]) -> Any:
    """Ray Serve's application builder (``import_path``): ``args`` are the config's ``args``.

    The deployment's replicas, autoscaling and actor options come from the config's
    ``deployments`` entry, which overrides these defaults.
    """
    deployment = serve.deployment(name="ScoringReplica", max_ongoing_requests=64)(ScoringReplica)
    return deployment.bind(
        model_dir=str(args.get("model_dir", ".")),
        model_uri=str(args["model_uri"]),
        version=None if args.get("version") is None else str(args["version"]),
        name=str(args["name"]),
        timeout=float(args.get("timeout", 60.0)),
        max_batch_size=int(args.get("max_batch_size", 64)),
        max_batch_wait=float(args.get("max_batch_wait", 0.0)),
    )
