"""Turning a parsed model URI into a model directory, with errors that list what exists."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from jupyter_serve.errors import InvalidModelError, ModelNotFoundError, RegistryError
from jupyter_serve.registry._artifacts import check_model_directory
from jupyter_serve.registry._types import ModelVersion, ResolvedModel, Stage
from jupyter_serve.uris import (
    ACCEPTED_FORMS,
    AliasRef,
    LatestVersionRef,
    LocalPathRef,
    LoggedModelRef,
    ModelRef,
    RunArtifactRef,
    StageRef,
    VersionRef,
)

if TYPE_CHECKING:
    from jupyter_serve.registry._embedded import EmbeddedRegistry


def resolve_local_path(uri: str, reference: LocalPathRef) -> ResolvedModel:
    """A directory URI checked to hold an MLflow model; touches no registry."""
    path = reference.path.expanduser().absolute()
    if not path.exists():
        raise ModelNotFoundError(
            f"no model at {uri!r}: {path} does not exist (text without a scheme is read as a "
            f"directory path). Accepted forms: {ACCEPTED_FORMS}"
        )
    try:
        path = check_model_directory(path)
    except InvalidModelError as error:
        raise InvalidModelError(f"cannot serve {uri!r}: {error}") from error
    return ResolvedModel(uri=uri, path=path)


def refuse_mlflow_only(uri: str, reference: RunArtifactRef | LoggedModelRef) -> ModelNotFoundError:
    """The error for URIs only an MLflow tracking server can answer."""
    if isinstance(reference, RunArtifactRef):
        what = "runs:/ URIs name an artifact of an MLflow run"
    else:
        what = (
            f"models:/{reference.model_id} names an MLflow logged model by id (for a "
            f"registered model write models:/{reference.model_id}/latest or models:/name@alias)"
        )
    return ModelNotFoundError(
        f"cannot resolve {uri!r} in the embedded registry: {what}, which only the MLflow "
        "registry backend can resolve; use a models:/<name>/... URI of the embedded registry or "
        "a model directory path"
    )


def resolve_registered(
    registry: EmbeddedRegistry, db: sqlite3.Connection, uri: str, reference: ModelRef
) -> ResolvedModel:
    """The version of ``registry`` that ``reference`` (parsed from ``uri``) points at."""
    match reference:
        case VersionRef(name, version):
            found = registry._get_version(db, name, version)
        case LatestVersionRef(name):
            found = _highest(registry, db, name, uri, stage=None)
        case StageRef(name, stage_text):
            try:
                stage = Stage.parse(stage_text)
            except RegistryError as error:
                raise ModelNotFoundError(
                    f"cannot resolve {uri!r}: {stage_text!r} is not a version number, 'latest' "
                    f"or a stage; the stages are {', '.join(s.value for s in Stage)}"
                ) from error
            found = _highest(registry, db, name, uri, stage=stage)
        case AliasRef(name, alias):
            found = _aliased(registry, db, name, alias)
        case _:
            raise AssertionError(f"not a registry reference: {reference!r}")
    if not found.path.is_dir():
        raise InvalidModelError(
            f"{uri!r} is version {found.version} of {found.name!r}, but its artifacts are "
            f"missing from {found.path} (removed outside jupyter-serve?); delete that version "
            "and register the model again"
        )
    return ResolvedModel(uri=uri, path=found.path, name=found.name, version=found.version)


def _highest(
    registry: EmbeddedRegistry,
    db: sqlite3.Connection,
    name: str,
    uri: str,
    *,
    stage: Stage | None,
) -> ModelVersion:
    registry._require_model(db, name)
    versions = registry._versions(db, name)
    if not versions:
        raise ModelNotFoundError(
            f"cannot resolve {uri!r}: model {name!r} has no versions (all were deleted); "
            "register a new one"
        )
    matching = [v for v in versions if stage is None or v.stage is stage]
    if not matching:
        listed = ", ".join(f"{v.version} ({v.stage.value})" for v in versions)
        raise ModelNotFoundError(
            f"no version of {name!r} is in stage {stage.value if stage else ''!r}; "
            f"versions: {listed}"
        )
    return matching[-1]


def _aliased(
    registry: EmbeddedRegistry, db: sqlite3.Connection, name: str, alias: str
) -> ModelVersion:
    registry._require_model(db, name)
    versions = registry._versions(db, name)
    for version in versions:
        if alias in version.aliases:
            return version
    existing = [(a, v.version) for v in versions for a in v.aliases]
    near = [a for a, _ in existing if a.lower() == alias.lower()]
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    listed = (
        "aliases: " + ", ".join(f"{a} -> version {n}" for a, n in sorted(existing))
        if existing
        else "it has no aliases; set one with set_alias or `jupyter-serve models alias`"
    )
    raise ModelNotFoundError(f"model {name!r} has no alias {alias!r}{hint}; {listed}")
