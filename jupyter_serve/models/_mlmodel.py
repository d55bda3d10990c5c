"""The MLmodel file, the environment files and the input example files of a model directory.

Field names and file layout are those MLflow 3.17.2 writes with ``mlflow.sklearn.save_model``;
``MLFLOW_COMPATIBLE_VERSION`` is the MLflow version these directories are written for.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

# No pandas here (it is imported where examples are built): reading an MLmodel file must not
# import it, so that load_model can import the model's own libraries first (_artifacts._skops_io).
import numpy as np
import yaml

from jupyter_serve.errors import InvalidModelError
from jupyter_serve.models._schema import ModelSignature

MLFLOW_COMPATIBLE_VERSION = "3.17.2"
MLMODEL = "MLmodel"
INPUT_EXAMPLE = "input_example.json"
SERVING_INPUT_EXAMPLE = "serving_input_example.json"
_PIP_VERSION = "23.2.1"
_SETUPTOOLS_VERSION = "65.5.0"


def python_version() -> str:
    return "{}.{}.{}".format(*sys.version_info[:3])


def read_mlmodel(directory: Path) -> dict[str, Any]:
    """The parsed MLmodel file of ``directory``; InvalidModelError when missing or malformed."""
    mlmodel_path = directory / MLMODEL
    if not directory.is_dir():
        raise InvalidModelError(
            f"{directory} is not a directory; expected an MLflow model directory holding an "
            "MLmodel file. Pass the directory the model was saved to."
        )
    if not mlmodel_path.is_file():
        raise InvalidModelError(
            f"{directory} has no MLmodel file, so it is not an MLflow model directory; pass the "
            "directory that mlflow.sklearn.save_model or jupyter_serve.models.save_model wrote."
        )
    try:
        document = yaml.safe_load(mlmodel_path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise InvalidModelError(
            f"{mlmodel_path} is not valid YAML ({error}); expected an MLflow MLmodel file. "
            "Save the model again."
        ) from error
    if not isinstance(document, dict) or not isinstance(document.get("flavors"), dict):
        raise InvalidModelError(
            f"{mlmodel_path} has no `flavors` mapping; expected an MLflow MLmodel file. "
            "Save the model again."
        )
    return document


def _pinned(distribution: str) -> str | None:
    try:
        return f"{distribution}=={metadata.version(distribution)}"
    except metadata.PackageNotFoundError:
        return None


def requirements(serialization_format: str) -> list[str]:
    """The pip requirements MLflow would record for an sklearn model in this format."""
    names = ["numpy", "pandas", "scikit-learn", "scipy"]
    names.append("skops" if serialization_format == "skops" else "cloudpickle")
    pinned = [p for name in names if (p := _pinned(name)) is not None]
    return [f"mlflow=={MLFLOW_COMPATIBLE_VERSION}", *sorted(pinned)]


def write_environment(directory: Path, pip_requirements: list[str]) -> None:
    """Write requirements.txt, python_env.yaml and conda.yaml as MLflow lays them out."""
    (directory / "requirements.txt").write_text("\n".join(pip_requirements), encoding="utf-8")
    python_env = {
        "python": python_version(),
        "build_dependencies": [
            f"pip=={_PIP_VERSION}",
            f"setuptools=={_SETUPTOOLS_VERSION}",
            "wheel",
        ],
        "dependencies": ["-r requirements.txt"],
    }
    (directory / "python_env.yaml").write_text(
        yaml.safe_dump(python_env, sort_keys=False), encoding="utf-8"
    )
    conda = {
        "channels": ["conda-forge"],
        "dependencies": [
            f"python={python_version()}",
            f"pip<={_PIP_VERSION}",
            {"pip": pip_requirements},
        ],
        "name": "mlflow-env",
    }
    (directory / "conda.yaml").write_text(yaml.safe_dump(conda, sort_keys=False), encoding="utf-8")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (dt.date, dt.datetime)):  # pandas.Timestamp is a datetime
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _nulls_for_nans(array: np.ndarray[Any, Any]) -> Any:
    if np.issubdtype(array.dtype, np.number):
        return _replace_nans(array)
    return array.tolist()


def _replace_nans(array: np.ndarray[Any, Any]) -> Any:
    nan_mask = np.isnan(array)
    boxed = array.astype(object)
    boxed[nan_mask] = None
    return boxed.tolist()


def split_example(example: Any) -> tuple[Any, dict[str, Any] | None]:
    """(data, params) of an input example; MLflow accepts ``(data, params_dict)`` tuples."""
    if isinstance(example, tuple) and len(example) == 2 and isinstance(example[1], dict):
        return example[0], example[1]
    return example, None


def example_payloads(example: Any) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """(saved_input_example_info, input_example.json content, serving body) for an example.

    ``example`` may be ``(data, params)``. Raises InvalidModelError for an example of a type
    MLflow cannot store.
    """
    import pandas as pd

    example, params = split_example(example)
    info: dict[str, Any] = {"artifact_path": INPUT_EXAMPLE}
    if params:
        info["params"] = "true"
    if isinstance(example, pd.DataFrame):
        split = example.where(example.notnull(), None).to_dict(orient="split")
        del split["index"]
        if [*example.columns] == [*range(len(example.columns))]:
            del split["columns"]
        info.update(type="dataframe", pandas_orient="split" if "columns" in split else "values")
        stored: Any = split
        serving: dict[str, Any] = {"dataframe_split": split}
    elif isinstance(example, np.ndarray):
        info["type"] = "ndarray"
        stored = _nulls_for_nans(example)
        serving = {"inputs": stored}
    elif isinstance(example, dict) and any(isinstance(v, np.ndarray) for v in example.values()):
        if not all(isinstance(v, np.ndarray) for v in example.values()):
            raise InvalidModelError(
                "the input example mixes numpy arrays and other values in one dict; expected "
                "all arrays or none. Pass a DataFrame or a dict of arrays."
            )
        info["type"] = "ndarray"
        stored = {k: _nulls_for_nans(v) for k, v in example.items()}
        serving = {"inputs": stored}
    elif isinstance(example, (dict, list)) or np.isscalar(example):
        info["type"] = "json_object"
        stored = example
        serving = {"inputs": example}
    else:
        raise InvalidModelError(
            f"an input example of type {type(example).__name__} cannot be stored; expected a "
            "pandas DataFrame, a numpy array, a dict, a list or a scalar."
        )
    if params:
        stored = {"inputs": stored, "params": params}
        serving = {**serving, "params": params}
    info["serving_input_path"] = SERVING_INPUT_EXAMPLE
    return info, stored, serving


def write_example(directory: Path, example: Any) -> dict[str, Any]:
    """Write input_example.json and serving_input_example.json; returns their MLmodel info."""
    info, stored, serving = example_payloads(example)
    (directory / INPUT_EXAMPLE).write_text(
        json.dumps(stored, default=_json_default), encoding="utf-8"
    )
    (directory / SERVING_INPUT_EXAMPLE).write_text(
        json.dumps(serving, default=_json_default, indent=2), encoding="utf-8"
    )
    return info


def read_example(
    directory: Path, info: dict[str, Any] | None, signature: ModelSignature | None
) -> tuple[Any, dict[str, Any] | None]:
    """(input example, serving body) stored in a model directory; (None, None) when absent.

    An unreadable example is treated as absent: it never stops a model from serving.
    """
    if not info or not (directory / str(info.get("artifact_path", INPUT_EXAMPLE))).is_file():
        return None, None
    try:
        stored = json.loads((directory / info["artifact_path"]).read_text(encoding="utf-8"))
        if info.get("serving_input_path") and (directory / info["serving_input_path"]).is_file():
            serving = json.loads((directory / info["serving_input_path"]).read_text("utf-8"))
        else:
            serving = None
    except (OSError, ValueError):
        return None, None
    if info.get("params"):
        stored = stored.get("inputs", stored) if isinstance(stored, dict) else stored
    kind = info.get("type")
    example: Any = stored
    if kind == "dataframe":
        import pandas as pd

        example = pd.DataFrame(stored.get("data", []), columns=stored.get("columns"))
        serving = serving or {"dataframe_split": stored}
    elif kind == "ndarray":
        example = (
            {k: np.array(v) for k, v in stored.items()}
            if isinstance(stored, dict)
            else np.array(stored)
        )
        serving = serving or {"inputs": stored}
    elif kind == "json_object":
        serving = serving or {"inputs": stored}
    return example, serving
