"""Casting one input column to its schema type, with MLflow 3.17.2's rules.

Allowed: object -> string, narrower -> wider of the same kind, (u)int up to 6 bytes -> double,
int64 columns of only 0/1 -> float/double, any datetime64 precision -> datetime64[ns], objects ->
datetime. Anything else (floats into ints, doubles into floats, text into numbers) is refused:
those casts change values, so MLflow refuses them and so do we.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from jupyter_serve.errors import SchemaEnforcementError
from jupyter_serve.models._schema import DataType

_NS = np.dtype("datetime64[ns]")
_OBJECT = np.dtype("object")


def column_needs_cast(dtype: Any, target: DataType) -> bool:
    """False when a column of ``dtype`` passes ``cast_column`` unchanged (the cheap path)."""
    if target in (DataType.string, DataType.binary):
        return not (dtype == _OBJECT or isinstance(dtype, pd.StringDtype))
    if target == DataType.datetime:
        return bool(dtype != _NS)
    return not (dtype == target.to_pandas() or dtype == target.to_numpy())


def cast_column(name: Any, values: pd.Series, target: DataType) -> pd.Series:
    """``values`` as the schema type ``target``; SchemaEnforcementError when MLflow refuses."""
    if values.dtype == _OBJECT and target not in (DataType.binary, DataType.string):
        values = values.infer_objects()
    dtype = values.dtype
    if target == DataType.string and (dtype == _OBJECT or isinstance(dtype, pd.StringDtype)):
        return values
    if target == DataType.binary and isinstance(dtype, pd.StringDtype):
        return values
    if dtype == target.to_pandas() or dtype == target.to_numpy():
        return values
    numpy_type = target.to_numpy()
    if target == DataType.binary and dtype.kind == numpy_type.kind:
        return values
    if target == DataType.datetime and dtype.kind == "M":
        try:
            return values.astype(_NS)
        except TypeError as error:
            raise SchemaEnforcementError(
                f"column {name!r} holds timezone-aware datetimes; the model expects "
                f"timezone-naive ones ({error}). Convert them to naive datetimes."
            ) from error
    if target == DataType.datetime and dtype == _OBJECT:
        try:
            return values.astype(_NS, errors="raise")
        except (ValueError, TypeError) as error:
            raise SchemaEnforcementError(
                f"Failed to convert column {name} from type {dtype} to {target.value}: the "
                "model expects datetimes. Send ISO-8601 date strings."
            ) from error
    if target == DataType.boolean and dtype == _OBJECT:
        return values
    if target == DataType.double and dtype == _OBJECT:
        # MLflow lets object columns (Decimals, and numeric strings with them) through
        # pd.to_numeric here, because an object dtype compares equal to decimal.Decimal.
        try:
            return pd.to_numeric(values, errors="raise")
        except (ValueError, TypeError) as error:
            raise SchemaEnforcementError(
                f"Failed to convert column {name} from type {dtype} to {target.value}: {error}. "
                "Send numbers for this column."
            ) from error
    if _is_upcast(dtype, numpy_type) or (
        dtype == np.int64
        and numpy_type in (np.float32, np.float64)
        and all(pd.isnull(x) or x in (0, 1) for x in values)
    ):
        return values.astype(numpy_type, errors="raise")
    hint = ""
    if (
        dtype == np.float64
        and numpy_type.kind in ("i", "u")
        and values.hasnans
        and all(pd.isnull(x) or int(x) == x for x in values)
    ):
        hint = (
            " Hint: the type mismatch is likely caused by missing values: integer columns "
            "cannot hold them, so they arrive as floats. Declare the column as double in the "
            "signature, or send no missing values."
        )
    raise SchemaEnforcementError(
        f"Incompatible input types for column {name}. "
        f"Can not safely convert {dtype} to {numpy_type}.{hint}"
    )


def _is_upcast(dtype: Any, numpy_type: np.dtype[Any]) -> bool:
    kind = getattr(dtype, "kind", "O")
    if kind == numpy_type.kind:
        return bool(dtype.itemsize <= numpy_type.itemsize)
    if kind == "u" and numpy_type.kind == "i":
        return bool(dtype.itemsize < numpy_type.itemsize)
    if kind in ("i", "u") and numpy_type == np.float64:
        return bool(dtype.itemsize <= 6)
    return False
