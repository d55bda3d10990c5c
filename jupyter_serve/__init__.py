"""jupyter-serve: model serving inside the Jupyter kernel, wire-compatible with MLflow.

The public API is re-exported here; implementation modules are private.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jupyter_serve._lazy import lazy_attributes
from jupyter_serve._version import __version__
from jupyter_serve.errors import (
    DeploymentError,
    InvalidModelError,
    JupyterServeError,
    MissingDependencyError,
    ModelNotFoundError,
    RegistryError,
    SchemaEnforcementError,
)

if TYPE_CHECKING:
    from jupyter_serve._deployments import Deployment, deployments, serve, stop
    from jupyter_serve._inference_log import read_inference_log
    from jupyter_serve.magics import load_ipython_extension, unload_ipython_extension
    from jupyter_serve.registry import register_model
    from jupyter_serve.widgets import dashboard

# Imported on first use: `import jupyter_serve` stays cheap (no Tornado, no IPython).
_LAZY_ATTRIBUTES = {
    "Deployment": "jupyter_serve._deployments",
    "deployments": "jupyter_serve._deployments",
    "serve": "jupyter_serve._deployments",
    "stop": "jupyter_serve._deployments",
    "load_ipython_extension": "jupyter_serve.magics",
    "unload_ipython_extension": "jupyter_serve.magics",
    "register_model": "jupyter_serve.registry",
    "read_inference_log": "jupyter_serve._inference_log",
    "dashboard": "jupyter_serve.widgets",
}


__getattr__ = lazy_attributes(__name__, _LAZY_ATTRIBUTES, globals())


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Jupyter Server's entry point: the extension lives in :mod:`jupyter_serve.serverext`."""
    return [{"module": "jupyter_serve.serverext"}]


__all__ = [
    "Deployment",
    "DeploymentError",
    "InvalidModelError",
    "JupyterServeError",
    "MissingDependencyError",
    "ModelNotFoundError",
    "RegistryError",
    "SchemaEnforcementError",
    "__version__",
    "dashboard",
    "deployments",
    "load_ipython_extension",
    "read_inference_log",
    "register_model",
    "serve",
    "stop",
    "unload_ipython_extension",
]
