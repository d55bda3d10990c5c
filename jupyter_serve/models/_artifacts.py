"""The serialized model file: skops, cloudpickle or pickle, written and read as MLflow does.

skops is preferred because loading it executes no arbitrary code. A model is saved with skops only
when every type skops does not trust by default comes from scikit-learn, numpy or scipy; those
types are then recorded as ``skops_trusted_types`` so MLflow and we can load the file. Anything
else (custom classes, lambdas) goes to cloudpickle.

Loading honours MLflow's ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION`` as MLflow 3.17.2 does: unset or
true, models load; false refuses every format, skops included (its trusted types come from the
model's own MLmodel file, so a crafted model can trust anything).
"""

from __future__ import annotations

import importlib
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

from jupyter_serve.errors import InvalidModelError, MissingDependencyError

SKOPS = "skops"
CLOUDPICKLE = "cloudpickle"
PICKLE = "pickle"
FORMATS = (SKOPS, CLOUDPICKLE, PICKLE)
FILE_NAMES = {SKOPS: "model.skops", CLOUDPICKLE: "model.pkl", PICKLE: "model.pkl"}
_TRUSTABLE_PREFIXES = ("sklearn.", "numpy.", "scipy.")
ALLOW_DESERIALIZATION_VARIABLE = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"


def _skops_io() -> Any:
    try:
        # Before skops: on its first import skops names every scipy.special ufunc by scanning
        # sys.modules in order for each one (230 of them), so each module imported before
        # scipy.special costs it time. After pandas, the scan took ~0.3 s in a fresh kernel;
        # before it, about half that. Same modules, same trust lists.
        importlib.import_module("scipy.special")
        import skops.io
    except ImportError as error:  # pragma: no cover - skops is a dependency
        raise MissingDependencyError(
            "reading or writing a skops model needs the `skops` package; pip install skops"
        ) from error
    return skops.io


def try_skops(model: Any, path: Path) -> list[str] | None:
    """Write ``model`` to ``path`` with skops and read it back.

    Returns the non-default types to trust (possibly empty) when skops holds the model safely,
    or None (and no file) when it cannot: the caller then falls back to cloudpickle.
    """
    skops_io = _skops_io()
    try:
        skops_io.dump(model, path)
        untrusted = sorted(skops_io.get_untrusted_types(file=path))
        if not all(name.startswith(_TRUSTABLE_PREFIXES) for name in untrusted):
            raise TypeError(f"types outside scikit-learn/numpy/scipy: {untrusted}")
        restored = skops_io.load(path, trusted=untrusted)
        if type(restored) is not type(model):
            raise TypeError("skops restored an object of another type")
    except Exception:
        path.unlink(missing_ok=True)
        return None
    return untrusted


def dump(model: Any, path: Path, serialization_format: str) -> list[str] | None:
    """Write ``model`` in the given format; returns skops trusted types (None for pickles).

    Raises InvalidModelError when the model cannot be written in the format asked for.
    """
    if serialization_format == SKOPS:
        trusted = try_skops(model, path)
        if trusted is None:
            raise InvalidModelError(
                f"skops cannot safely hold this {type(model).__name__} (custom classes or "
                "functions, or types outside scikit-learn/numpy/scipy); expected a plain "
                "scikit-learn model. Save it with serialization_format='cloudpickle'."
            )
        return trusted
    try:
        with path.open("wb") as stream:
            if serialization_format == PICKLE:
                pickle.dump(model, stream, protocol=pickle.DEFAULT_PROTOCOL)
            else:
                import cloudpickle

                cloudpickle.dump(model, stream, protocol=pickle.DEFAULT_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as error:
        raise InvalidModelError(
            f"{serialization_format} cannot serialize this {type(model).__name__}: {error}. "
            "Use serialization_format='cloudpickle', or make the model picklable."
        ) from error
    return None


def load(path: Path, serialization_format: str, trusted_types: list[str] | None) -> Any:
    """Read a model file; InvalidModelError when it is missing, truncated or corrupt."""
    if serialization_format not in FORMATS:
        raise InvalidModelError(
            f"{path.parent / 'MLmodel'} names the serialization format "
            f"{serialization_format!r}; expected one of {list(FORMATS)}. Re-save the model "
            "with a supported format."
        )
    if not path.is_file():
        raise InvalidModelError(
            f"the model file {path} does not exist; the MLmodel file points at it. "
            "The model directory is incomplete: copy or save it again."
        )
    _require_deserialization_allowed(path)
    try:
        if serialization_format == SKOPS:
            return _load_skops(path, trusted_types)
        with path.open("rb") as stream:
            if serialization_format == PICKLE:
                return pickle.load(stream)
            import cloudpickle

            return cloudpickle.load(stream)
    except (InvalidModelError, MissingDependencyError):
        raise
    except ModuleNotFoundError as error:
        raise MissingDependencyError(
            f"loading {path} needs the Python module {error.name!r}, which is not installed; "
            f"install the package that provides it (see {path.parent / 'requirements.txt'})."
        ) from error
    except Exception as error:
        raise InvalidModelError(
            f"the model file {path} cannot be read as {serialization_format} ({error!r}); it "
            "is truncated or corrupt. Save or copy the model again."
        ) from error


def _require_deserialization_allowed(path: Path) -> None:
    """InvalidModelError when ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION`` forbids loading model
    files, or holds something other than MLflow's true/false/1/0 (case-insensitive)."""
    variable = ALLOW_DESERIALIZATION_VARIABLE
    value = os.environ.get(variable)
    if value is None or value.lower() in ("true", "1"):
        return
    if value.lower() not in ("false", "0"):
        raise InvalidModelError(
            f"{variable} is {value!r}; expected true, false, 1 or 0 (case-insensitive), as "
            "MLflow reads it. Set it to true to load models, or unset it."
        )
    raise InvalidModelError(
        f"loading {path} is refused: {variable} is {value!r}, and loading a model file can "
        "run code from it (skops too: its trusted types come from the model's own MLmodel). "
        f"Only load models from sources you trust; set {variable} to true (or unset it) to "
        "allow loading."
    )


def _load_skops(path: Path, trusted_types: list[str] | None) -> Any:
    skops_io = _skops_io()
    try:
        return skops_io.load(path, trusted=trusted_types)
    except zipfile.BadZipFile as error:
        raise InvalidModelError(
            f"the model file {path} is not a valid skops archive ({error}); it is truncated or "
            "corrupt. Save or copy the model again."
        ) from error
    except Exception as error:
        if type(error).__name__ != "UntrustedTypesFoundException":
            raise
        raise InvalidModelError(
            f"{path} holds types skops does not trust ({error}); expected them to be listed in "
            "`skops_trusted_types` of the sklearn flavor in MLmodel. If you trust this model, "
            "add them there."
        ) from error
