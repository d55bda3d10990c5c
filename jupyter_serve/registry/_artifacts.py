"""Model artifacts on their way into a registry: staged, checked, then moved in whole.

A registry never writes into its final artifact directories piece by piece: the model is
saved or copied into a private staging directory first and checked to load, and only then
renamed into place (one atomic rename), so a failure anywhere leaves no half directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

import yaml

from jupyter_serve.errors import InvalidModelError, MissingDependencyError
from jupyter_serve.uris import LocalPathRef, parse_model_uri

MLMODEL_FILE = "MLmodel"


def is_model_source_path(model: Any) -> bool:
    """True when ``model`` names a directory (a path or text) rather than being a live object."""
    return isinstance(model, (str, os.PathLike))


def source_directory(model: str | os.PathLike[str]) -> Path:
    """The MLflow model directory ``model`` names; ``InvalidModelError`` if it is not one."""
    text = os.fspath(model)
    reference = parse_model_uri(text)
    if not isinstance(reference, LocalPathRef):
        raise InvalidModelError(
            f"register a model from a live object or an MLflow model directory, not {text!r}; "
            "to copy a registered version, resolve it first with resolve_model_uri(uri).path"
        )
    return check_model_directory(reference.path)


def check_model_directory(path: Path) -> Path:
    """``path`` made absolute if it is a directory holding an MLmodel file.

    Raises ``InvalidModelError`` saying what is there instead.
    """
    absolute = path.expanduser().absolute()
    if not absolute.exists():
        raise InvalidModelError(
            f"no model directory at {absolute}: nothing exists there; give the path of an "
            "MLflow model directory (one holding an MLmodel file)"
        )
    if not absolute.is_dir():
        raise InvalidModelError(
            f"{absolute} is a file, not a model directory; give the directory holding MLmodel"
        )
    if not (absolute / MLMODEL_FILE).is_file():
        raise InvalidModelError(
            f"{absolute} has no MLmodel file, so it is not an MLflow model directory; save the "
            "model with jupyter_serve.register_model or mlflow.<flavor>.save_model first"
        )
    return absolute


def read_mlmodel(model_dir: Path) -> dict[str, Any]:
    """The parsed MLmodel file of ``model_dir``; ``InvalidModelError`` if it is unreadable."""
    mlmodel = model_dir / MLMODEL_FILE
    try:
        content = yaml.safe_load(mlmodel.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise InvalidModelError(
            f"{mlmodel} cannot be read as YAML ({error}); the model directory is corrupt"
        ) from error
    if not isinstance(content, dict) or not isinstance(content.get("flavors"), dict):
        raise InvalidModelError(
            f"{mlmodel} has no 'flavors' mapping, so no loader can read this model; "
            "the model directory is corrupt or not an MLflow model"
        )
    return content


def signature_summary(model_dir: Path) -> str | None:
    """A one-line human summary of the model's signature, e.g. ``text: string -> string``.

    ``None`` when the model has no signature or it cannot be read.
    """
    try:
        signature = read_mlmodel(model_dir).get("signature")
    except InvalidModelError:
        return None
    if not isinstance(signature, dict) or not signature.get("inputs"):
        return None
    inputs = _describe_schema(signature.get("inputs"))
    outputs = _describe_schema(signature.get("outputs"))
    return f"{inputs} -> {outputs}" if outputs else inputs


def _describe_schema(schema_json: Any) -> str:
    try:
        columns = json.loads(schema_json) if isinstance(schema_json, str) else schema_json
    except ValueError:
        return "?"
    if not isinstance(columns, list):
        return ""
    described = []
    for column in columns:
        if not isinstance(column, dict):
            continue
        kind = column.get("type", "?")
        if kind == "tensor":
            spec = column.get("tensor-spec", {})
            kind = f"tensor {spec.get('dtype', '?')}{tuple(spec.get('shape', ()))}"
        name = column.get("name")
        described.append(f"{name}: {kind}" if name is not None else str(kind))
    return ", ".join(described)


STALE_STAGING_SECONDS = 24 * 3600


def make_staging_dir(staging_root: Path) -> Path:
    """A new private directory under ``staging_root`` (on the registry's file system).

    Staging directories a day old belong to processes killed mid-registration: removed here.
    """
    staging_root.mkdir(parents=True, exist_ok=True)
    _remove_stale(staging_root)
    return Path(tempfile.mkdtemp(prefix="incoming-", dir=staging_root))


def _remove_stale(staging_root: Path) -> None:
    cutoff = time.time() - STALE_STAGING_SECONDS
    for leftover in staging_root.glob("incoming-*"):
        with contextlib.suppress(OSError):
            if leftover.stat().st_mtime < cutoff:
                shutil.rmtree(leftover, ignore_errors=True)


def stage_model(
    model: Any,
    staging_dir: Path,
    *,
    signature: Any = None,
    input_example: Any = None,
) -> tuple[Path, str]:
    """Write ``model`` as an MLflow model directory inside ``staging_dir``, checked to load.

    Returns the staged directory and a description of where the model came from. Raises
    ``InvalidModelError`` for an object without ``predict``, a directory that is not an MLflow
    model, or an artifact that does not load. The caller removes ``staging_dir`` on failure.
    """
    target = staging_dir / "model"
    if is_model_source_path(model):
        source_dir = source_directory(model)
        read_mlmodel(source_dir)
        try:
            shutil.copytree(source_dir, target, symlinks=False)
        except OSError as error:
            raise InvalidModelError(
                f"cannot copy the model directory {source_dir} into the registry ({error}); "
                "check that every file in it is readable and that the registry's disk has room"
            ) from error
        source = str(source_dir)
    else:
        if not callable(getattr(model, "predict", None)):
            raise InvalidModelError(
                f"an object of type {type(model).__module__}.{type(model).__qualname__} has no "
                "predict method, so it cannot be served; register a fitted estimator, a "
                "pipeline, or any object with predict(), or an MLflow model directory"
            )
        # Imported here: resolving URIs must stay cheap, and the models package pulls in pandas.
        from jupyter_serve.models import save_model

        save_model(model, target, signature=signature, input_example=input_example)
        source = f"live object {type(model).__module__}.{type(model).__qualname__}"
    try:
        read_mlmodel(target)
        _check_loads(target)
    except InvalidModelError as error:
        # Name the user's directory, not the private staging copy the check ran on.
        where = source if is_model_source_path(model) else "the saved model"
        raise InvalidModelError(
            f"cannot register {where}: " + str(error).replace(str(target), where)
        ) from error
    return target, source


def _check_loads(model_dir: Path) -> None:
    """Load the staged model once, so a corrupt artifact is refused before it is registered."""
    from jupyter_serve.models import load_model

    try:
        load_model(model_dir)
    except MissingDependencyError:
        # Not corrupt, only unservable in this environment: keep it, serving will say why.
        return
    except InvalidModelError:
        raise
    except Exception as error:
        raise InvalidModelError(
            f"the model at {model_dir} does not load ({type(error).__name__}: {error}); "
            "the artifact is corrupt or needs a package that is not installed"
        ) from error


def version_dir_name(name: str, version: int, staged: Path) -> str:
    """Where ``version`` of ``name`` lives, relative to the registry root.

    Any model name maps inside ``models/`` (see `name_segment`). The staging directory's
    unique suffix keeps two names that differ only in case apart on case-insensitive file
    systems.
    """
    token = staged.parent.name.rsplit("-", 1)[-1]
    return f"models/{name_segment(name)}/{version}-{token}"


# File names hold at most 255 bytes on common file systems; a quoted name grows up to 9-fold.
_MAX_SEGMENT = 200
_KEPT_PREFIX = 160


def name_segment(name: str) -> str:
    """``name`` as one file name: percent-quoted, no leading dot, at most 200 bytes (a longer
    one keeps its start and adds a digest of the whole name, so names stay apart)."""
    quoted = urllib.parse.quote(name, safe="", errors="surrogatepass")
    if quoted.startswith("."):
        quoted = "%2E" + quoted[1:]
    if len(quoted) <= _MAX_SEGMENT:
        return quoted
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:24]
    return f"{quoted[:_KEPT_PREFIX]}~{digest}"


def discard_directory(root: Path, path: Path) -> None:
    """Remove a version's directory; renamed into ``root/.trash`` first so it vanishes at once
    even if the removal is interrupted."""
    trash = root / ".trash"
    try:
        trash.mkdir(exist_ok=True)
        doomed = Path(tempfile.mkdtemp(prefix="deleted-", dir=trash))
        os.rename(path, doomed / "model")
    except OSError:
        doomed = path
    shutil.rmtree(doomed, ignore_errors=True)
