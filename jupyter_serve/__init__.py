"""jupyter-serve: model serving inside the Jupyter kernel, wire-compatible with MLflow.

The public API is re-exported here; implementation modules are private.
"""

from __future__ import annotations

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

__all__ = [
    "DeploymentError",
    "InvalidModelError",
    "JupyterServeError",
    "MissingDependencyError",
    "ModelNotFoundError",
    "RegistryError",
    "SchemaEnforcementError",
    "__version__",
]
