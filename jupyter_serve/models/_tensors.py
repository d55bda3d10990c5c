"""Tensor-based signatures: shape and dtype checks as MLflow 3.17.2's pyfunc makes them.

Numpy input must already have the declared dtype (MLflow does not cast tensors); a DataFrame
column of scalars or lists is reshaped and cast to the declared shape and dtype.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pandas as pd

from jupyter_serve.errors import SchemaEnforcementError
from jupyter_serve.models._schema import TensorSpec


def _clean(dtype: np.dtype[Any]) -> np.dtype[Any]:
    if dtype.char == "U":
        return np.dtype("str")
    if dtype.char == "S":
        return np.dtype("bytes")
    return dtype


def _is_sparse(value: Any) -> bool:
    try:
        sparse = importlib.import_module("scipy.sparse")
    except ImportError:  # pragma: no cover - scipy comes with scikit-learn
        return False
    return isinstance(value, (sparse.csr_matrix, sparse.csc_matrix))


def enforce_tensor_spec(values: Any, spec: TensorSpec) -> Any:
    """``values`` when its shape and dtype fit ``spec``; else SchemaEnforcementError."""
    expected_shape, expected_type = spec.shape, spec.type
    actual_shape = values.shape
    actual_type = values.dtype if isinstance(values, np.ndarray) else values.data.dtype
    if len(expected_shape) == 1 and expected_shape[0] == -1 and expected_type == np.dtype("O"):
        return values
    if (
        len(expected_shape) > 1
        and -1 in expected_shape[1:]
        and len(actual_shape) == 1
        and actual_type == np.dtype("O")
    ):
        return values
    if len(expected_shape) != len(actual_shape) or any(
        e not in (-1, a) for e, a in zip(expected_shape, actual_shape, strict=True)
    ):
        raise SchemaEnforcementError(
            f"Shape of input {actual_shape} does not match expected shape {expected_shape}."
        )
    if _clean(actual_type) != expected_type:
        raise SchemaEnforcementError(
            f"dtype of input {actual_type} does not match expected dtype {expected_type}"
        )
    return values


def _column_to_tensor(name: str | None, column: pd.Series, spec: TensorSpec) -> Any:
    label = f"input {name}" if name else "the unnamed input"
    if spec.shape[0] != -1 or -1 in spec.shape[1:]:
        raise SchemaEnforcementError(
            "For pandas dataframe input, the first dimension of shape must be a variable "
            "dimension and other dimensions must be fixed, but in model signature the shape "
            f"of {label} is {spec.shape}."
        )
    first = column.iloc[0]
    if np.isscalar(first):
        if spec.shape in ((-1,), (-1, 1)):
            try:
                array = np.array(column, dtype=spec.type).reshape(spec.shape)
            except (ValueError, TypeError) as error:
                raise SchemaEnforcementError(
                    f"column {name!r} cannot be cast to {spec.type}: {error}"
                ) from error
            return enforce_tensor_spec(array, spec)
        raise SchemaEnforcementError(
            f"The input pandas dataframe column '{name}' contains scalar values, which requires "
            f"the shape to be (-1,) or (-1, 1), but got tensor spec shape of {spec.shape}."
        )
    if isinstance(first, (list, np.ndarray)):
        try:
            stacked = np.vstack(column.tolist()).reshape(spec.shape)
            if isinstance(first, list):
                stacked = stacked.astype(spec.type)
        except ValueError as error:
            raise SchemaEnforcementError(
                f"The value in the Input DataFrame column '{name}' could not be converted to the "
                f"expected shape of: '{spec.shape}'. Ensure that each of the input list elements "
                f"are of uniform length and can be coerced to the tensor type '{spec.type}'"
            ) from error
        if len(stacked) != len(column):
            raise SchemaEnforcementError(
                f"The value in the Input DataFrame column '{name}' could not be converted to the "
                f"expected shape of: '{spec.shape}'."
            )
        return stacked
    raise SchemaEnforcementError(
        "Because the model signature requires tensor spec input, the input pandas dataframe "
        "values should be either scalar value, python list containing scalar values or numpy "
        "array containing scalar values, other types are not supported."
    )


def enforce_tensor_schema(data: Any, specs: list[TensorSpec], named: bool) -> Any:
    """Input for a tensor-based signature, reshaped/cast like MLflow; raises on a mismatch."""
    if named:
        if isinstance(data, dict):
            result: dict[str, Any] = {}
            for spec in specs:
                value = data[spec.name]
                if not isinstance(value, np.ndarray):
                    raise SchemaEnforcementError(
                        "This model contains a tensor-based model signature with input names, "
                        "which suggests a dictionary input mapping input name to a numpy array, "
                        f"but a dict with value type {type(value)} was found."
                    )
                result[str(spec.name)] = enforce_tensor_spec(value, spec)
            return result
        if isinstance(data, pd.DataFrame):
            return {
                str(spec.name): _column_to_tensor(spec.name, data[spec.name], spec)
                for spec in specs
            }
        raise SchemaEnforcementError(
            "This model contains a tensor-based model signature with input names, which suggests "
            "a dictionary input mapping input name to tensor, or a pandas DataFrame input "
            "containing columns mapping input name to flattened list value from tensor, but an "
            f"input of type {type(data)} was found."
        )
    spec = specs[0]
    if isinstance(data, pd.DataFrame):
        if data.empty:
            raise SchemaEnforcementError("Input DataFrame is empty.")
        if len(data.columns) == 1:
            return _column_to_tensor(None, data[data.columns[0]], spec)
        if spec.shape != (-1, len(data.columns)):
            raise SchemaEnforcementError(
                "This model contains a model signature with an unnamed input. Since the input "
                "data is a pandas DataFrame containing multiple columns, the input shape must be "
                "of the structure (-1, number_of_dataframe_columns). Instead, the input DataFrame "
                f"passed had {len(data.columns)} columns and an input shape of {spec.shape} with "
                "all values within the DataFrame of scalar type. Please adjust the passed in "
                "DataFrame to match the expected structure"
            )
        return enforce_tensor_spec(data.to_numpy(), spec)
    if isinstance(data, np.ndarray) or _is_sparse(data):
        return enforce_tensor_spec(data, spec)
    raise SchemaEnforcementError(
        "This model contains a tensor-based model signature with no input names, which suggests "
        "a numpy array input or a pandas dataframe input with proper column values, but an "
        f"input of type {type(data)} was found."
    )
