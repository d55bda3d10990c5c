"""The Jupyter Server extension: a deployments API and an authenticated proxy to deployments.

Routes, all under the server's ``base_url`` and behind its authentication:

- ``GET jupyter-serve/api/deployments``: the deployments of this server's kernels, and the
  remote ones (with ``target``, ``status`` and ``replicas``);
- ``DELETE jupyter-serve/api/deployments/<id>``: stop one (undeploy a remote one), 204 once done;
- ``ANY jupyter-serve/proxy/<id>/<path>``: relayed to that deployment's server.

It runs in the Jupyter server's process and knows deployments only through the discovery
files the kernels write (:mod:`jupyter_serve.discovery`).
"""

from __future__ import annotations

from typing import Any

from jupyter_server.utils import url_path_join

from jupyter_serve.serverext._api import DeploymentHandler, DeploymentListHandler, proxy_url
from jupyter_serve.serverext._base import AUTH_RESOURCE
from jupyter_serve.serverext._headers import SECRET_HEADER
from jupyter_serve.serverext._proxy import DeploymentProxyHandler
from jupyter_serve.serverext._settings import JupyterServeProxy
from jupyter_serve.serverext._upstream import UpstreamClient

__all__ = [
    "AUTH_RESOURCE",
    "SECRET_HEADER",
    "JupyterServeProxy",
    "proxy_url",
    "route_table",
]


def route_table(
    base_url: str, settings: JupyterServeProxy, upstream: UpstreamClient
) -> list[tuple[str, Any, dict[str, Any]]]:
    """The extension's Tornado routes under ``base_url``."""
    shared = {"settings": settings, "upstream": upstream}
    return [
        (
            url_path_join(base_url, r"jupyter-serve/api/deployments/?"),
            DeploymentListHandler,
            {"settings": settings},
        ),
        (
            url_path_join(base_url, r"jupyter-serve/api/deployments/([^/]+)/?"),
            DeploymentHandler,
            shared,
        ),
        (url_path_join(base_url, r"jupyter-serve/proxy/.*"), DeploymentProxyHandler, shared),
    ]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Called by Jupyter Server at start-up: register the routes."""
    settings = JupyterServeProxy(parent=serverapp)
    upstream = UpstreamClient(settings)
    web_app = serverapp.web_app
    web_app.add_handlers(".*$", route_table(web_app.settings["base_url"], settings, upstream))
    serverapp.log.info(
        "jupyter-serve: deployments API and proxy at %sjupyter-serve/", web_app.settings["base_url"]
    )
