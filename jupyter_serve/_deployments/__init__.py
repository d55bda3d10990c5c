"""Deployments in this process: start, swap, stop, discovery files (private; the public names
are re-exported by ``jupyter_serve``).

There is deliberately no ``jupyter_serve.deployments`` module: that name is the public
function listing deployments, and a submodule of the same name would shadow it.
"""

from jupyter_serve._deployments._api import (
    add_change_listener,
    deployments,
    serve,
    serve_source,
    stop,
)
from jupyter_serve._deployments._deployment import FAILED, RUNNING, STARTING, STOPPED, Deployment
from jupyter_serve._deployments._sample_request import curl_command, sample_invocation_body
from jupyter_serve._deployments._sources import ModelSource, load_source, load_uri, wrap_object
from jupyter_serve._deployments._table import DeploymentTable

__all__ = [
    "FAILED",
    "RUNNING",
    "STARTING",
    "STOPPED",
    "Deployment",
    "DeploymentTable",
    "ModelSource",
    "add_change_listener",
    "curl_command",
    "deployments",
    "load_source",
    "load_uri",
    "sample_invocation_body",
    "serve",
    "serve_source",
    "stop",
    "wrap_object",
]
