"""Model registries: where ``models:/name/...`` URIs are looked up and new versions stored.

One interface (``Registry``), backends behind it. The embedded backend is the default: a
directory (``$JUPYTER_SERVE_REGISTRY``, else Jupyter's data dir) holding a SQLite file and
MLflow model directories, shared safely by every kernel and process of the user. The MLflow
backend is chosen by a registry URI: ``--registry-uri`` (CLI, ``%serve``), else
``$MLFLOW_REGISTRY_URI``, else ``$MLFLOW_TRACKING_URI``. Directory paths and ``file://`` URIs
resolve without any registry.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_serve._lazy import lazy_attributes
from jupyter_serve.registry._artifacts import signature_summary
from jupyter_serve.registry._embedded import REGISTRY_ENV, EmbeddedRegistry, default_registry_root
from jupyter_serve.registry._lookup import resolve_local_path
from jupyter_serve.registry._mlflow_cache import CACHE_ENV as MLFLOW_CACHE_ENV
from jupyter_serve.registry._types import (
    ModelVersion,
    Registry,
    ResolvedModel,
    Stage,
    validate_alias,
    validate_model_name,
)
from jupyter_serve.uris import LocalPathRef, parse_model_uri

if TYPE_CHECKING:
    from jupyter_serve.registry._mlflow import MlflowRegistry

# The MLflow backend (its REST client, urllib.request, ...) is imported only when a registry
# URI asks for it: serving from the embedded registry never needs it.
__getattr__ = lazy_attributes(
    __name__, {"MlflowRegistry": "jupyter_serve.registry._mlflow"}, globals()
)

__all__ = [
    "MLFLOW_CACHE_ENV",
    "REGISTRY_ENV",
    "REGISTRY_URI_ENVS",
    "EmbeddedRegistry",
    "MlflowRegistry",
    "ModelVersion",
    "Registry",
    "ResolvedModel",
    "Stage",
    "default_registry",
    "default_registry_root",
    "register_model",
    "registry_uri_from_environment",
    "registry_uri_scope",
    "resolve_model_uri",
    "signature_summary",
    "validate_alias",
    "validate_model_name",
]


REGISTRY_URI_ENVS = ("MLFLOW_REGISTRY_URI", "MLFLOW_TRACKING_URI")
_scoped_registry_uri: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "jupyter_serve_registry_uri", default=None
)


def registry_uri_from_environment() -> str | None:
    """``$MLFLOW_REGISTRY_URI``, else ``$MLFLOW_TRACKING_URI``, else ``None`` (read now)."""
    for variable in REGISTRY_URI_ENVS:
        value = os.environ.get(variable, "").strip()
        if value:
            return value
    return None


@contextlib.contextmanager
def registry_uri_scope(registry_uri: str | None) -> Iterator[None]:
    """Within the block (this thread or task only), ``default_registry()`` uses
    ``registry_uri`` (an MLflow registry) when it is not ``None``; used for ``--registry-uri``."""
    token = _scoped_registry_uri.set(registry_uri or _scoped_registry_uri.get())
    try:
        yield
    finally:
        _scoped_registry_uri.reset(token)


def default_registry(registry_uri: str | None = None) -> Registry:
    """The registry to use, chosen at call time: ``registry_uri`` if given, else the one of
    an enclosing ``registry_uri_scope``, else ``$MLFLOW_REGISTRY_URI`` or
    ``$MLFLOW_TRACKING_URI`` (an ``MlflowRegistry``), else the embedded registry
    (``$JUPYTER_SERVE_REGISTRY``).

    Cheap for the embedded registry and for http(s) MLflow servers (nothing is contacted
    yet); a database URI without the mlflow package raises ``MissingDependencyError`` at once.
    """
    explicit = registry_uri or _scoped_registry_uri.get()
    chosen = explicit or registry_uri_from_environment()
    if not chosen:
        return EmbeddedRegistry(default_registry_root())
    from jupyter_serve.registry._mlflow import MlflowRegistry

    if explicit:
        return MlflowRegistry(explicit)
    tracking = os.environ.get("MLFLOW_TRACKING_URI", "").strip() or None
    return MlflowRegistry(chosen, tracking_uri=tracking)


def resolve_model_uri(
    uri: str | Path, registry: Registry | None = None, *, registry_uri: str | None = None
) -> ResolvedModel:
    """The MLflow model directory ``uri`` names.

    Directory paths and ``file://`` URIs are checked on disk without touching any registry;
    ``models:/`` and ``runs:/`` URIs are looked up in ``registry`` (default:
    ``default_registry(registry_uri)``; an MLflow registry downloads the model into its local
    cache and returns that directory). Raises
    ``ModelNotFoundError`` naming what was asked and what exists, ``InvalidModelError`` for a
    directory that is not an MLflow model. Thread-safe.
    """
    text = str(uri)
    reference = parse_model_uri(text)
    if isinstance(reference, LocalPathRef):
        return resolve_local_path(text, reference)
    return (registry or default_registry(registry_uri)).resolve(text)


def register_model(
    model: Any,
    name: str,
    *,
    stage: str | Stage | None = None,
    alias: str | None = None,
    input_example: Any = None,
    signature: Any = None,
    archive_existing_versions: bool = False,
    registry_uri: str | None = None,
) -> int:
    """Register ``model`` as the next version of ``name`` in ``default_registry(registry_uri)``
    (the embedded registry, or an MLflow registry named by ``registry_uri`` or the
    environment, where a new run holds the model and the registered model is created if
    missing).

    ``model`` is a fitted estimator or pipeline, any object with ``predict``, or the path of
    an MLflow model directory. Returns the new version number (1, 2, 3, ...). On any error
    the registry is left as it was.
    """
    return default_registry(registry_uri).register_model(
        model,
        name,
        stage=stage,
        alias=alias,
        input_example=input_example,
        signature=signature,
        archive_existing_versions=archive_existing_versions,
    )
