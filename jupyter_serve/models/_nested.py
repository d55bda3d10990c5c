"""Values of array, object and map columns checked element by element, as MLflow 3.17.2 does.

The types are MLflow's JSON specs (``{"type": "array", "items": {...}}`` and so on), read from the
signature. Scalars inside are cast with the same rules as whole columns; lists stay lists and
numpy arrays stay arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from jupyter_serve.errors import SchemaEnforcementError
from jupyter_serve.models._columns import cast_column
from jupyter_serve.models._schema import DataType

_SCALAR_NAMES = frozenset(t.value for t in DataType)


def _is_missing(value: Any) -> bool:
    if isinstance(value, float):
        return bool(np.isnan(value))
    return value is None or value is pd.NA or value is pd.NaT


def _scalar(data: Any, target: DataType, required: bool) -> Any:
    if not required and _is_missing(data):
        return None
    if not np.isscalar(data):
        raise SchemaEnforcementError(f"Expected data to be scalar, got {type(data).__name__}")
    try:
        return cast_column("", pd.Series(data), target)[0]
    except SchemaEnforcementError as error:
        raise SchemaEnforcementError(
            f"Failed to enforce schema of data `{data!s}` with dtype `{target.value}`"
        ) from error


def _array(data: Any, spec: dict[str, Any], required: bool) -> Any:
    items = spec.get("items") or {"type": "any"}
    if (not required or items.get("type") == "any") and (
        data is None or (isinstance(data, (list, np.ndarray)) and len(data) == 0)
    ):
        return data
    if not isinstance(data, (list, np.ndarray)):
        raise SchemaEnforcementError(
            f"Expected data to be list or numpy array, got {type(data).__name__}"
        )
    enforced: Any
    if items.get("type") in _SCALAR_NAMES:
        target = DataType(items["type"])
        enforced = (
            cast_column("", pd.Series(data), target).to_numpy(dtype=target.to_numpy())
            if len(data) > 0
            else data
        )
    else:
        enforced = [enforce_value(x, items, required) for x in data]
    if isinstance(data, list) and isinstance(enforced, np.ndarray):
        return enforced.tolist()
    if isinstance(data, np.ndarray) and isinstance(enforced, list):
        return np.array(enforced)
    return enforced


def _object(data: Any, spec: dict[str, Any], required: bool) -> Any:
    if not required and (data is None or data == {}):
        return data
    if not isinstance(data, dict):
        raise SchemaEnforcementError(
            f"Failed to enforce schema of '{data}' with type 'object'. "
            f"Expected data to be dictionary, got {type(data).__name__}"
        )
    properties: dict[str, dict[str, Any]] = spec.get("properties") or {}
    required_names = {k for k, p in properties.items() if p.get("required", True)}
    if missing := required_names - set(data):
        raise SchemaEnforcementError(f"Missing required properties: {missing}")
    if invalid := data.keys() - properties.keys():
        raise SchemaEnforcementError(
            f"Invalid properties not defined in the schema found: {invalid}"
        )
    for key, value in data.items():
        prop = properties[key]
        try:
            data[key] = enforce_value(value, prop, bool(prop.get("required", True)))
        except SchemaEnforcementError as error:
            raise SchemaEnforcementError(
                f"Failed to enforce schema for key `{key}`. Expected type {prop.get('type')}, "
                f"received type {type(value).__name__}"
            ) from error
    return data


def _map(data: Any, spec: dict[str, Any], required: bool) -> Any:
    values = spec.get("values") or {"type": "any"}
    if (not required or values.get("type") == "any") and (data is None or data == {}):
        return data
    if not isinstance(data, dict):
        raise SchemaEnforcementError(f"Expected data to be a dict, got {type(data).__name__}")
    if not all(isinstance(k, str) for k in data):
        raise SchemaEnforcementError("Expected all keys in the map type data are string type.")
    return {k: enforce_value(v, values, required) for k, v in data.items()}


def enforce_value(data: Any, spec: dict[str, Any], required: bool = True) -> Any:
    """``data`` checked (and its scalars cast) against one MLflow type spec.

    Raises SchemaEnforcementError on a mismatch. ``any`` (and Spark vectors) pass unchecked.
    """
    kind = spec.get("type")
    if kind in _SCALAR_NAMES:
        return _scalar(data, DataType(kind), required)
    if kind == "array":
        return _array(data, spec, required)
    if kind == "object":
        return _object(data, spec, required)
    if kind == "map":
        return _map(data, spec, required)
    return data


def enforce_nested_column(values: pd.Series, spec: dict[str, Any], required: bool) -> pd.Series:
    """A column of nested values, each checked against ``spec``; the index is kept."""
    enforced: pd.Series = pd.Series(
        [enforce_value(value, spec, required) for value in values],
        index=values.index,
        name=values.name,
    )
    return enforced
