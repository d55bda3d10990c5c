"""Model URIs: the grammar of what ``%serve`` and the CLI accept, parsed into typed references.

Parsing is pure: no file system, no registry. Whether a reference names something real is the
registry's business (``jupyter_serve.registry.resolve_model_uri``). The grammar follows MLflow's
``models:/`` URIs so every URI written for ``mlflow models serve -m`` means the same here:

- ``models:/<name>/<digits>``: one version
- ``models:/<name>/latest`` and ``models:/<name>@latest``: the highest version
- ``models:/<name>/<stage>``: the highest version in that stage (checked at resolution)
- ``models:/<name>@<alias>``: the version carrying that alias
- ``models:/<model_id>``: an MLflow logged model (MLflow backend only)
- ``runs:/<run_id>/<path>``: an MLflow run artifact (MLflow backend only)
- a directory path or ``file://...`` URL: an MLflow model directory
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from jupyter_serve.errors import ModelNotFoundError

__all__ = [
    "ACCEPTED_FORMS",
    "AliasRef",
    "LatestVersionRef",
    "LocalPathRef",
    "LoggedModelRef",
    "ModelRef",
    "RunArtifactRef",
    "StageRef",
    "VersionRef",
    "parse_model_uri",
]

ACCEPTED_FORMS = (
    "models:/<name>/<version>, models:/<name>/latest, models:/<name>/<stage>, "
    "models:/<name>@<alias>, runs:/<run_id>/<path>, a model directory path or file://<path>"
)

_LATEST = "latest"


@dataclass(frozen=True)
class VersionRef:
    """``models:/<name>/<version>``: exactly that version."""

    name: str
    version: int


@dataclass(frozen=True)
class LatestVersionRef:
    """``models:/<name>/latest`` or ``models:/<name>@latest``: the highest version."""

    name: str


@dataclass(frozen=True)
class StageRef:
    """``models:/<name>/<stage>``: the highest version in ``stage``, spelled as the user wrote it.

    The stage name is validated at resolution, where the error can list the four stages.
    """

    name: str
    stage: str


@dataclass(frozen=True)
class AliasRef:
    """``models:/<name>@<alias>``: the version the alias points at."""

    name: str
    alias: str


@dataclass(frozen=True)
class LoggedModelRef:
    """``models:/<model_id>``: an MLflow 3 logged model; only an MLflow backend resolves it."""

    model_id: str


@dataclass(frozen=True)
class RunArtifactRef:
    """``runs:/<run_id>/<path>``: an MLflow run artifact; only an MLflow backend resolves it."""

    run_id: str
    artifact_path: str


@dataclass(frozen=True)
class LocalPathRef:
    """A model directory on this machine (not checked to exist here)."""

    path: Path


ModelRef: TypeAlias = (
    VersionRef
    | LatestVersionRef
    | StageRef
    | AliasRef
    | LoggedModelRef
    | RunArtifactRef
    | LocalPathRef
)


def _malformed(uri: str, why: str) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"cannot read the model URI {uri!r}: {why}. Accepted forms: {ACCEPTED_FORMS}"
    )


def parse_model_uri(uri: str) -> ModelRef:
    """Parse ``uri`` into one typed reference, or raise ``ModelNotFoundError`` naming the forms.

    Text without a scheme is a local path (relative paths are kept relative). ``file://`` URLs
    are percent-decoded. Pure function: touches neither the file system nor a registry.
    """
    text = uri.strip()
    if not text:
        raise _malformed(uri, "it is empty")
    parsed = urllib.parse.urlparse(text, allow_fragments=False)
    scheme = parsed.scheme.lower()
    # A one-letter "scheme" is a Windows drive letter (C:\models\spam), hence a path.
    if not scheme or len(scheme) == 1:
        return LocalPathRef(Path(text).expanduser())
    if scheme == "models":
        return _parse_models_uri(uri, parsed)
    if scheme == "runs":
        return _parse_runs_uri(uri, parsed)
    if scheme == "file":
        return _parse_file_uri(uri, parsed)
    raise _malformed(uri, f"the scheme {parsed.scheme + ':'!r} is not supported")


def _parse_models_uri(uri: str, parsed: urllib.parse.ParseResult) -> ModelRef:
    if parsed.netloc:
        raise _malformed(uri, "a models: URI has no host part; write models:/<name>/... ")
    path = parsed.path
    if not path.startswith("/") or len(path) <= 1:
        raise _malformed(uri, "the model name is missing")
    parts = path[1:].split("/")
    if len(parts) > 2 or not parts[0].strip():
        raise _malformed(uri, "expected models:/<name>/<suffix> or models:/<name>@<alias>")
    if len(parts) == 2:
        name, suffix = parts
        if not suffix.strip():
            raise _malformed(uri, "the version, stage or 'latest' after the name is missing")
        if suffix.isascii() and suffix.isdigit():
            return VersionRef(name, int(suffix))
        if suffix.lower() == _LATEST:
            return LatestVersionRef(name)
        return StageRef(name, suffix)
    if "@" in parts[0]:
        name, alias = parts[0].rsplit("@", 1)
        if not name.strip() or not alias.strip():
            raise _malformed(uri, "expected models:/<name>@<alias> with both parts")
        if alias.lower() == _LATEST:
            return LatestVersionRef(name)
        return AliasRef(name, alias)
    return LoggedModelRef(parts[0])


def _parse_runs_uri(uri: str, parsed: urllib.parse.ParseResult) -> RunArtifactRef:
    # MLflow writes runs:/<run_id>/<path>; a netloc form runs://<run_id>/<path> is not MLflow's.
    if parsed.netloc:
        raise _malformed(uri, "write runs:/<run_id>/<path> (one slash after the colon)")
    run_id, _, artifact_path = parsed.path.lstrip("/").partition("/")
    if not run_id or not artifact_path.strip("/"):
        raise _malformed(uri, "expected runs:/<run_id>/<artifact path>")
    return RunArtifactRef(run_id, artifact_path.strip("/"))


def _parse_file_uri(uri: str, parsed: urllib.parse.ParseResult) -> LocalPathRef:
    if parsed.netloc not in ("", "localhost"):
        raise _malformed(
            uri, f"file URIs must name a local path; the host {parsed.netloc!r} is not local"
        )
    path = urllib.parse.unquote(parsed.path)
    if not path:
        raise _malformed(uri, "the path is missing")
    return LocalPathRef(Path(path).expanduser())
