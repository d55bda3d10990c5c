"""MLflow model directories: ``save_model`` writes one, ``load_model`` reads one.

A save is written into a temporary sibling directory and renamed into place, so a crash never
leaves half a model behind. Directories saved by MLflow's sklearn flavor load without MLflow;
other ``python_function`` loaders need MLflow itself.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from jupyter_serve._gc_pause import gc_paused
from jupyter_serve.errors import InvalidModelError, MissingDependencyError
from jupyter_serve.models import _artifacts
from jupyter_serve.models._mlmodel import (
    MLFLOW_COMPATIBLE_VERSION,
    MLMODEL,
    python_version,
    read_example,
    read_mlmodel,
    requirements,
    write_environment,
    write_example,
)
from jupyter_serve.models._schema import ModelSignature

if TYPE_CHECKING:
    from jupyter_serve.models._loaded import LoadedModel

_SKLEARN_LOADER = "mlflow.sklearn"


def _sklearn_version() -> str | None:
    try:
        import sklearn
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        return None
    return str(sklearn.__version__)


def _directory_size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def _write_model(
    model: Any,
    directory: Path,
    signature: ModelSignature | None,
    input_example: Any,
    serialization_format: str | None,
    predict_fn_name: str,
) -> None:
    if serialization_format is not None and serialization_format not in _artifacts.FORMATS:
        raise InvalidModelError(
            f"unknown serialization_format {serialization_format!r}; expected one of "
            f"{list(_artifacts.FORMATS)} or None (skops when it can hold the model)."
        )
    from jupyter_serve.models._signing import signature_for

    document: dict[str, Any] = {}
    if input_example is not None:
        document["saved_input_example_info"] = write_example(directory, input_example)
    # MLflow infers the output schema from `predict` even when pyfunc_predict_fn is another
    # method; so do we, so that both write the same signature for the same model.
    signature = signature_for(model, signature, input_example)
    trusted: list[str] | None = None
    if serialization_format is None:
        trusted = _artifacts.try_skops(model, directory / _artifacts.FILE_NAMES["skops"])
        serialization_format = _artifacts.SKOPS if trusted is not None else _artifacts.CLOUDPICKLE
    if serialization_format != _artifacts.SKOPS or trusted is None:
        model_file = directory / _artifacts.FILE_NAMES[serialization_format]
        trusted = _artifacts.dump(model, model_file, serialization_format)
    file_name = _artifacts.FILE_NAMES[serialization_format]
    flavors = {
        "python_function": {
            "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
            "loader_module": _SKLEARN_LOADER,
            "model_path": file_name,
            "predict_fn": predict_fn_name,
            "python_version": python_version(),
        },
        "sklearn": {
            "code": None,
            "pickled_model": file_name,
            "serialization_format": serialization_format,
            "sklearn_version": _sklearn_version(),
            "skops_trusted_types": trusted or None,
        },
    }
    document = {
        "flavors": flavors,
        "mlflow_version": MLFLOW_COMPATIBLE_VERSION,
        "model_size_bytes": 0,
        "model_uuid": uuid.uuid4().hex,
        **document,
        "signature": signature.to_mlmodel_dict() if signature is not None else None,
        "utc_time_created": str(dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)),
    }
    if signature is None:
        del document["signature"]
    write_environment(directory, requirements(serialization_format))
    document["model_size_bytes"] = _directory_size(directory)
    (directory / MLMODEL).write_text(yaml.safe_dump(document, sort_keys=True), encoding="utf-8")


def save_model(
    model: Any,
    path: str | Path,
    *,
    signature: ModelSignature | None = None,
    input_example: Any = None,
    serialization_format: str | None = None,
    pyfunc_predict_fn: str = "predict",
) -> Path:
    """Write ``model`` as an MLflow model directory at ``path`` and return that path.

    The directory loads in MLflow 3.17.2 (``mlflow.pyfunc.load_model``) and in ``load_model``.
    Without ``serialization_format`` the model is stored with skops when skops can hold it safely,
    else with cloudpickle. Without ``signature`` one is inferred from ``input_example``.
    The directory appears whole or not at all. Raises InvalidModelError when the model has no
    ``predict`` (or no ``pyfunc_predict_fn``) or cannot be serialized, and when ``path`` exists.
    """
    from jupyter_serve.models._loaded import require_predict

    require_predict(model)
    if not callable(getattr(model, pyfunc_predict_fn, None)):
        raise InvalidModelError(
            f"the model has no {pyfunc_predict_fn!r} method; expected pyfunc_predict_fn to name "
            "one of its methods (e.g. 'predict' or 'predict_proba')."
        )
    target = Path(path).absolute()
    if target.exists():
        raise InvalidModelError(
            f"{target} already exists; expected a new path for the model directory. Choose "
            "another path or remove the old directory first."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _write_model(
            model, staging, signature, input_example, serialization_format, pyfunc_predict_fn
        )
        os.chmod(staging, 0o755)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _add_code_path(directory: Path, pyfunc: dict[str, Any]) -> None:
    # Models saved with MLflow's `code_paths` pickle classes from modules shipped in the
    # directory; MLflow puts that folder first on sys.path before unpickling, and so do we.
    code = pyfunc.get("code")
    if code:
        code_path = str(directory / str(code))
        if code_path not in sys.path:
            sys.path.insert(0, code_path)


def _load_with_mlflow(directory: Path, loader: str) -> Any:
    try:
        import mlflow.pyfunc
    except ImportError as error:
        raise MissingDependencyError(
            f"{directory} is a python_function model whose loader is {loader!r}: only "
            "scikit-learn models load without MLflow, and MLflow is not installed here. Either "
            "install it (pip install 'jupyter-serve[mlflow]'), or serve the model from an "
            "environment built with it (--env-manager uv --install-mlflow)."
        ) from error
    try:
        return mlflow.pyfunc.load_model(str(directory))._model_impl
    except ModuleNotFoundError as error:
        raise MissingDependencyError(
            f"MLflow's loader {loader!r} for {directory} needs the Python module {error.name!r}, "
            f"which is not installed; install it (see {directory / 'requirements.txt'})."
        ) from error
    except Exception as error:
        # MLflow's own message says what to do (e.g. set MLFLOW_ALLOW_PICKLE_DESERIALIZATION).
        raise InvalidModelError(
            f"MLflow's loader {loader!r} could not load {directory}: {error}"
        ) from error


def load_model(path: str | Path) -> LoadedModel:
    """Load an MLflow model directory (ours, or MLflow's sklearn flavor) ready to predict.

    Honours the serialization format, ``skops_trusted_types``, ``predict_fn`` and the signature.
    Raises InvalidModelError for a directory without MLmodel, a missing, truncated or corrupt
    model file, or an unknown serialization format; MissingDependencyError when the model needs
    MLflow's own loader and MLflow is not installed.
    """
    started = time.perf_counter()
    with gc_paused():
        model = _load_model(Path(path).absolute())
    model.load_seconds = time.perf_counter() - started
    return model


def _load_model(directory: Path) -> LoadedModel:
    document = read_mlmodel(directory)
    flavors: dict[str, Any] = document["flavors"]
    pyfunc = flavors.get("python_function") or {}
    sklearn_flavor = flavors.get("sklearn")
    loader = pyfunc.get("loader_module") or (_SKLEARN_LOADER if sklearn_flavor else None)
    predict_fn_name = str(pyfunc.get("predict_fn") or "predict")
    signature = (
        ModelSignature.from_mlmodel_dict(document["signature"])
        if isinstance(document.get("signature"), dict)
        else None
    )
    implementation = None
    if loader == _SKLEARN_LOADER:
        _add_code_path(directory, pyfunc)
        flavor = sklearn_flavor or {}
        file_name = pyfunc.get("model_path") or pyfunc.get("data") or flavor.get("pickled_model")
        if not file_name:
            raise InvalidModelError(
                f"{directory / MLMODEL} names no model file (python_function.model_path or "
                "sklearn.pickled_model); expected one. Save the model again."
            )
        raw_model = _artifacts.load(
            directory / str(file_name),
            str(flavor.get("serialization_format") or _artifacts.PICKLE),
            flavor.get("skops_trusted_types"),
        )
    elif loader:
        implementation = _load_with_mlflow(directory, str(loader))
        raw_model = getattr(implementation, "get_raw_model", lambda: implementation)()
    else:
        raise InvalidModelError(
            f"{directory / MLMODEL} has neither a python_function nor an sklearn flavor; "
            "expected a model MLflow can serve. Save it with a python_function flavor."
        )
    # Only now pandas and the enforcement code: the model's own libraries were imported first.
    from jupyter_serve.models._loaded import LoadedModel

    example, serving = read_example(directory, document.get("saved_input_example_info"), signature)
    return LoadedModel(
        raw_model,
        predict_fn_name=predict_fn_name,
        signature=signature,
        path=directory,
        model_uuid=document.get("model_uuid"),
        flavors=flavors,
        input_example=example,
        serving_input_example=serving,
        pyfunc_implementation=implementation,
    )
