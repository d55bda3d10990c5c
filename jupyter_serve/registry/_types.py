"""What every registry backend speaks: stages, versions, resolved models, the interface."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from jupyter_serve.errors import RegistryError

_ALIAS_PATTERN = re.compile(r"[\w\-]+")
_VERSION_LIKE_ALIAS = re.compile(r"[vV]\d+")
MAX_ALIAS_LENGTH = 255
MAX_MODEL_NAME_LENGTH = 256
_RESERVED_IN_NAMES = {
    "/": "MLflow refuses in model names (model URIs separate the name from the version by it)",
    ":": "MLflow refuses in model names (model URIs reserve it)",
    "@": "would read as an alias in models:/<name>@<alias>",
    "?": "would start a query in a models:/ URI, so no URI could name the model",
    "\\": "is a path separator on Windows, where MLflow's file registry refuses it",
}
# Control characters, line and paragraph separators, surrogates without their pair.
_UNPRINTABLE = frozenset({"Cc", "Zl", "Zp", "Cs"})


class Stage(str, Enum):
    """The four MLflow model stages. Deprecated in MLflow for aliases, still resolved by both."""

    NONE = "None"
    STAGING = "Staging"
    PRODUCTION = "Production"
    ARCHIVED = "Archived"

    @classmethod
    def parse(cls, text: str | Stage | None) -> Stage:
        """The stage named ``text`` in any case (``None`` means ``Stage.NONE``).

        Raises ``RegistryError`` listing the four stages for anything else.
        """
        if text is None:
            return cls.NONE
        if isinstance(text, Stage):
            return text
        for stage in cls:
            if stage.value.lower() == str(text).strip().lower():
                return stage
        raise RegistryError(
            f"{text!r} is not a model stage; the stages are "
            f"{', '.join(s.value for s in cls)} (any letter case)"
        )

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model. ``path`` is its MLflow model directory."""

    name: str
    version: int
    stage: Stage
    aliases: tuple[str, ...]
    path: Path
    created_at: float
    source: str
    description: str | None = None


@dataclass(frozen=True)
class ResolvedModel:
    """The outcome of resolving a URI: the directory to load, and which version it was if any."""

    uri: str
    path: Path
    name: str | None = None
    version: int | None = None


def validate_model_name(name: str) -> str:
    """``name`` if usable as a registered model name, else ``RegistryError`` naming the rule.

    MLflow's rules (``mlflow.utils.validation._validate_model_name`` and its registry stores):
    no ``/`` or ``:``, not ``.`` or ``..`` nor starting with ``..`` (names may become paths),
    at most 256 characters (the length of its database column). Ours on top, for names that
    every model URI, listing and file system can carry: no ``@`` (it starts an alias), ``?``
    (it starts a URI query), ``\\`` (a path separator on Windows, where MLflow's file
    registry refuses it), control characters, line breaks or unpaired surrogates, and no
    spaces at either end.
    """
    if not isinstance(name, str) or not name.strip():
        raise RegistryError("a model name is required; give a non-empty name such as 'spam'")
    if len(name) > MAX_MODEL_NAME_LENGTH:
        raise RegistryError(
            f"the model name is {len(name)} characters long; a model name has at most "
            f"{MAX_MODEL_NAME_LENGTH} (the length MLflow's registry stores)"
        )
    shown = repr(name)
    if name != name.strip():
        raise RegistryError(f"the model name {shown} starts or ends with spaces; remove them")
    for bad, why in _RESERVED_IN_NAMES.items():
        if bad in name:
            raise RegistryError(
                f"the model name {shown} contains {bad!r}, which {why}; choose a name "
                f"without {bad!r}"
            )
    unprintable = next((c for c in name if unicodedata.category(c) in _UNPRINTABLE), None)
    if unprintable is not None:
        raise RegistryError(
            f"the model name {shown} contains the character U+{ord(unprintable):04X}; model "
            "names hold no control characters, line breaks or unpaired surrogates"
        )
    if name == "." or name.startswith(".."):
        raise RegistryError(
            f"the model name {shown} would read as a path: MLflow refuses names that are "
            "'.' or '..' or start with '..'; choose another name"
        )
    return name


def version_number(version: int | str) -> int:
    """``version`` as an int (MLflow's clients pass versions as text), else ``RegistryError``."""
    if isinstance(version, bool):
        raise RegistryError(f"{version!r} is not a version number; versions are 1, 2, 3, ...")
    if isinstance(version, int):
        return version
    text = str(version).strip()
    if text.isascii() and text.isdigit():
        return int(text)
    raise RegistryError(f"{version!r} is not a version number; versions are 1, 2, 3, ...")


def validate_alias(alias: str) -> str:
    """``alias`` if it can be set, else ``RegistryError`` (MLflow's rules, ``latest`` reserved)."""
    if not isinstance(alias, str) or not alias:
        raise RegistryError("an alias name is required, e.g. 'champion'")
    if not _ALIAS_PATTERN.fullmatch(alias):
        raise RegistryError(
            f"invalid alias {alias!r}: alias names may contain only letters, digits, "
            "underscores (_) and dashes (-)"
        )
    if len(alias) > MAX_ALIAS_LENGTH:
        raise RegistryError(f"the alias is {len(alias)} characters; at most {MAX_ALIAS_LENGTH}")
    if alias.lower() == "latest":
        raise RegistryError(
            "the alias 'latest' is reserved (models:/<name>@latest is always the highest "
            "version); choose another name"
        )
    if _VERSION_LIKE_ALIAS.fullmatch(alias):
        raise RegistryError(
            f"the alias {alias!r} looks like a version number, which MLflow reserves; "
            "choose another name"
        )
    return alias


@runtime_checkable
class Registry(Protocol):
    """A model registry backend. Every method is safe to call from several threads at once."""

    def register_model(
        self,
        model: Any,
        name: str,
        *,
        stage: str | Stage | None = None,
        alias: str | None = None,
        input_example: Any = None,
        signature: Any = None,
        archive_existing_versions: bool = False,
        description: str | None = None,
    ) -> int:
        """Store ``model`` (a live object or an MLflow model directory) as the next version."""
        ...

    def get_version(self, name: str, version: int) -> ModelVersion:
        """One version; ``ModelNotFoundError`` naming what exists when there is no such one."""
        ...

    def list_models(self) -> list[str]:
        """Registered model names, sorted."""
        ...

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, lowest first; ``ModelNotFoundError`` for unknown names."""
        ...

    def transition_stage(
        self,
        name: str,
        version: int,
        stage: str | Stage,
        *,
        archive_existing_versions: bool = False,
    ) -> ModelVersion:
        """Move a version to ``stage``; optionally archive the others already there."""
        ...

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point ``alias`` at ``version``, moving it from any other version."""
        ...

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove ``alias``; ``ModelNotFoundError`` when the model has no such alias."""
        ...

    def delete_version(self, name: str, version: int) -> None:
        """Remove one version, its artifacts and its aliases."""
        ...

    def delete_model(self, name: str) -> None:
        """Remove a model with all its versions."""
        ...

    def resolve(self, uri: str) -> ResolvedModel:
        """The model directory ``uri`` names; ``ModelNotFoundError`` naming what exists if none."""
        ...
