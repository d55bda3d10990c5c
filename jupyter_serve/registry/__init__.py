"""Model registries: where ``models:/name/...`` URIs are looked up and new versions stored.

One interface (``Registry``), backends behind it. The embedded backend is the default: a
directory (``$JUPYTER_SERVE_REGISTRY``, else Jupyter's data dir) holding a SQLite file and
MLflow model directories, shared safely by every kernel and process of the user. Directory
paths and ``file://`` URIs resolve without any registry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jupyter_serve.registry._artifacts import signature_summary
from jupyter_serve.registry._embedded import REGISTRY_ENV, EmbeddedRegistry, default_registry_root
from jupyter_serve.registry._lookup import resolve_local_path
from jupyter_serve.registry._types import (
    ModelVersion,
    Registry,
    ResolvedModel,
    Stage,
    validate_alias,
    validate_model_name,
)
from jupyter_serve.uris import LocalPathRef, parse_model_uri

__all__ = [
    "REGISTRY_ENV",
    "EmbeddedRegistry",
    "ModelVersion",
    "Registry",
    "ResolvedModel",
    "Stage",
    "default_registry",
    "default_registry_root",
    "register_model",
    "resolve_model_uri",
    "signature_summary",
    "validate_alias",
    "validate_model_name",
]


def default_registry() -> Registry:
    """The registry this process uses, honouring ``JUPYTER_SERVE_REGISTRY`` at call time.

    Cheap: nothing is created on disk until the registry is first used.
    """
    return EmbeddedRegistry(default_registry_root())


def resolve_model_uri(uri: str | Path, registry: Registry | None = None) -> ResolvedModel:
    """The MLflow model directory ``uri`` names.

    Directory paths and ``file://`` URIs are checked on disk without touching any registry;
    ``models:/`` URIs are looked up in ``registry`` (default: ``default_registry()``). Raises
    ``ModelNotFoundError`` naming what was asked and what exists, ``InvalidModelError`` for a
    directory that is not an MLflow model. Thread-safe.
    """
    text = str(uri)
    reference = parse_model_uri(text)
    if isinstance(reference, LocalPathRef):
        return resolve_local_path(text, reference)
    return (registry or default_registry()).resolve(text)


def register_model(
    model: Any,
    name: str,
    *,
    stage: str | Stage | None = None,
    alias: str | None = None,
    input_example: Any = None,
    signature: Any = None,
    archive_existing_versions: bool = False,
) -> int:
    """Register ``model`` as the next version of ``name`` in the default registry.

    ``model`` is a fitted estimator or pipeline, any object with ``predict``, or the path of
    an MLflow model directory. Returns the new version number (1, 2, 3, ...). On any error
    the registry is left as it was.
    """
    return default_registry().register_model(
        model,
        name,
        stage=stage,
        alias=alias,
        input_example=input_example,
        signature=signature,
        archive_existing_versions=archive_existing_versions,
    )
