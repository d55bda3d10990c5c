"""What can be served: a model URI the registry resolves, or a live model object.

Turning either into a loaded model is the slow, fallible part of starting a deployment, so it
happens before anything is started: a bad source leaves nothing behind.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_serve.discovery import is_valid_deployment_name

if TYPE_CHECKING:
    from jupyter_serve.models import LoadedModel

IN_MEMORY_SCHEME = "in-memory:"
_NOT_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class ModelSource:
    """A model ready to serve, with what to call it and where it came from."""

    model: LoadedModel
    model_uri: str
    version: str | None
    default_name: str
    path: Path | None = None  # the model directory, when loaded from one


def name_from(text: str, fallback: str = "model") -> str:
    """A valid deployment name derived from ``text`` (a model name, a variable, a path)."""
    candidate = _NOT_NAME_CHARACTERS.sub("-", text).strip("-_.")[:64]
    return candidate if candidate and is_valid_deployment_name(candidate) else fallback


def load_uri(uri: str, env_manager: str = "local") -> ModelSource:
    """Resolve ``uri`` in the registry and load it; ``ModelNotFoundError`` when it is nothing.

    For another ``env_manager`` than local the model is described, not loaded: it runs (and
    may only load) in its own environment.
    """
    from jupyter_serve.registry import resolve_model_uri

    resolved = resolve_model_uri(uri)
    model: LoadedModel
    if env_manager == "local":
        from jupyter_serve.models import load_model

        model = load_model(resolved.path)
    else:
        from jupyter_serve.environments import describe_model

        model = describe_model(resolved.path, env_manager)
    version = None if resolved.version is None else str(resolved.version)
    label = resolved.name or Path(os.fspath(resolved.path)).name
    return ModelSource(model, resolved.uri or uri, version, name_from(label), Path(resolved.path))


def wrap_object(obj: Any, label: str | None = None) -> ModelSource:
    """Serve a live object (anything with ``predict``); ``InvalidModelError`` otherwise.

    ``label`` names the object (a notebook variable); the class name stands in without one.
    """
    from jupyter_serve.models import LoadedModel, from_object

    model = obj if isinstance(obj, LoadedModel) else from_object(obj)
    shown = label or type(getattr(model, "raw_model", obj)).__name__
    return ModelSource(model, f"{IN_MEMORY_SCHEME}{shown}", None, name_from(label or shown.lower()))


def load_source(source: Any, label: str | None = None) -> ModelSource:
    """A URI (``str`` or path) is resolved in the registry; anything else is a live model."""
    if isinstance(source, (str, os.PathLike)):
        return load_uri(os.fspath(source))
    return wrap_object(source, label)
