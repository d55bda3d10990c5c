"""Signature inference from an example, following MLflow 3.17.2's rules.

DataFrames, Series, lists of dicts and dicts of scalars/lists give column specs; numpy arrays and
dicts of numpy arrays give tensor specs with a variable first axis; a plain list gives one unnamed
column of its element type. A value MLflow cannot type falls back to an ``any`` column, as MLflow
does.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import pandas as pd

from jupyter_serve.errors import InvalidModelError
from jupyter_serve.models._schema import (
    ColSpec,
    DataType,
    ModelSignature,
    NestedType,
    ParamSchema,
    ParamSpec,
    Schema,
    TensorSpec,
)

_SCALAR_TYPES: dict[type, DataType] = {
    bool: DataType.boolean,
    np.bool_: DataType.boolean,
    int: DataType.long,
    np.int64: DataType.long,
    np.int32: DataType.integer,
    float: DataType.double,
    np.float64: DataType.double,
    np.float32: DataType.float,
    str: DataType.string,
    np.str_: DataType.string,
    object: DataType.string,
    bytes: DataType.binary,
    np.bytes_: DataType.binary,
    bytearray: DataType.binary,
}
_ANY = NestedType({"type": "any"})
ColumnType = DataType | NestedType


class _Uninferable(ValueError):
    pass


def _is_missing(value: Any) -> bool:
    if isinstance(value, float):
        return math.isnan(value)
    return value is None or value is pd.NA or value is pd.NaT


def _type_spec(column_type: ColumnType) -> dict[str, Any]:
    if isinstance(column_type, DataType):
        return {"type": column_type.value}
    return dict(column_type.spec)


def _infer_scalar(value: Any) -> DataType:
    if (found := _SCALAR_TYPES.get(type(value))) is not None:
        return found
    if isinstance(value, (dt.date, np.datetime64, pd.Timestamp)):
        return DataType.datetime
    raise _Uninferable(f"{value!r} is not of a supported MLflow data type")


def _infer_array(values: Any) -> NestedType | None:
    element: ColumnType | None = None
    for item in values:
        item_type = _infer_value(item)
        if item_type is None:
            continue
        if element is None or element == _ANY:
            element = item_type
        elif item_type != element and item_type != _ANY:
            raise _Uninferable("the list holds values of several types")
    if element is None:
        return None
    return NestedType({"type": "array", "items": _type_spec(element)})


def _infer_value(value: Any) -> ColumnType | None:
    if _is_missing(value) or (isinstance(value, (list, dict)) and not value):
        return _ANY
    if isinstance(value, dict):
        properties: dict[str, Any] = {}
        for key in sorted(value):
            item_type = _infer_value(value[key])
            if item_type is None:
                raise _Uninferable("a dictionary value is an empty numpy array")
            properties[key] = {**_type_spec(item_type), "required": item_type != _ANY}
        return NestedType({"type": "object", "properties": properties})
    if isinstance(value, (list, np.ndarray)):
        return _infer_array(value)
    return _infer_scalar(value)


def _element_type(values: list[Any]) -> ColumnType:
    array = _infer_array(values)
    if array is None:
        raise _Uninferable("the values hold no non-empty item")
    items = array.spec["items"]
    if items.get("type") in {t.value for t in DataType} and len(items) == 1:
        return DataType(items["type"])
    return NestedType(items)


def _numpy_column_type(dtype: Any) -> DataType:
    kind, size = dtype.kind, dtype.itemsize
    if kind == "b":
        return DataType.boolean
    if kind in "iu":
        if size < 4 or (kind == "i" and size == 4):
            return DataType.integer
        if size < 8 or (kind == "i" and size == 8):
            return DataType.long
    elif kind == "f":
        if size <= 4:
            return DataType.float
        if size <= 8:
            return DataType.double
    elif kind == "U":
        return DataType.string
    elif kind == "S":
        return DataType.binary
    elif kind == "M":
        return DataType.datetime
    raise _Uninferable(f"unsupported numpy data type {dtype}")


def _pandas_column_type(column: pd.Series) -> ColumnType:
    if column.dtype.kind == "O":
        column = column.infer_objects()
    if column.dtype.kind == "O":
        try:
            return _element_type(column.to_list())
        except _Uninferable:
            if pd.api.types.is_string_dtype(column):
                return DataType.string
            raise
    return _numpy_column_type(column.dtype)


def _required(values: Any) -> bool:
    if isinstance(values, (list, pd.Series)):
        return not any(_is_missing(x) for x in values)
    return not _is_missing(values)


def _tensor_type(dtype: np.dtype[Any]) -> np.dtype[Any]:
    if dtype.char == "U":
        return np.dtype("str")
    if dtype.char == "S":
        return np.dtype("bytes")
    return dtype


def _tensor_spec(array: np.ndarray[Any, Any], name: str | None = None) -> TensorSpec:
    return TensorSpec(_tensor_type(array.dtype), (-1, *array.shape[1:]), name)


def infer_schema(data: Any) -> Schema:
    """The MLflow schema of ``data``; raises ValueError when it holds no inferable type."""
    if isinstance(data, list) and not data:
        return Schema([ColSpec(DataType.string)])
    if isinstance(data, list) and all(isinstance(row, dict) for row in data):
        columns: dict[str, list[Any]] = {}
        for row in data:
            for key, value in row.items():
                columns.setdefault(key, []).append(value)
        return Schema(
            [
                ColSpec(
                    _element_type(values),
                    name,
                    all(row.get(name) is not None for row in data),
                )
                for name, values in columns.items()
            ]
        )
    if isinstance(data, dict):
        if data and all(isinstance(v, np.ndarray) for v in data.values()):
            return Schema([_tensor_spec(array, name) for name, array in data.items()])
        return Schema(
            [
                ColSpec(_column_of(value), str(name), _required(value))
                for name, value in data.items()
            ]
        )
    if isinstance(data, pd.Series):
        return Schema(
            [ColSpec(_pandas_column_type(data), _name_or_none(data.name), _required(data))]
        )
    if isinstance(data, pd.DataFrame):
        return Schema(
            [
                ColSpec(_pandas_column_type(data[name]), str(name), _required(data[name]))
                for name in data.columns
            ]
        )
    if isinstance(data, np.ndarray):
        return Schema([_tensor_spec(data)])
    if isinstance(data, list):
        return Schema([ColSpec(_element_type(data))])
    return Schema([ColSpec(_column_of(data))])


def _column_of(value: Any) -> ColumnType:
    found = _infer_value(value)
    if found is None:
        raise _Uninferable("a numpy array must hold at least one item")
    return found


def _name_or_none(name: Any) -> str | None:
    return None if name is None else str(name)


def _param_spec(name: str, value: Any) -> ParamSpec:
    if isinstance(value, (list, np.ndarray)):
        if all(isinstance(v, (dt.date, np.datetime64)) for v in value):
            return ParamSpec(name, DataType.datetime, list(value), (-1,))
        return ParamSpec(name, _numpy_column_type(np.array(value).dtype), list(value), (-1,))
    if isinstance(value, (dt.date, np.datetime64)):
        return ParamSpec(name, DataType.datetime, value)
    if np.isscalar(value):
        return ParamSpec(name, _numpy_column_type(np.array(value).dtype), value)
    if isinstance(value, dict):
        spec = _column_of(value)
        assert isinstance(spec, NestedType)
        return ParamSpec(name, spec, value)
    raise InvalidModelError(
        f"cannot infer a type for parameter {name!r} = {value!r}; expected a scalar, a 1-D list "
        "or a dict. Pass an explicit signature instead."
    )


def infer_signature(
    model_input: Any, model_output: Any = None, params: dict[str, Any] | None = None
) -> ModelSignature:
    """Infer the signature MLflow's ``infer_signature`` would give for these examples.

    An input or output whose type cannot be inferred becomes one ``any`` column, as in MLflow.
    """
    schemas: list[Schema | None] = []
    for data in (model_input, model_output):
        if data is None:
            schemas.append(None)
            continue
        try:
            schemas.append(infer_schema(data))
        except (_Uninferable, ValueError, TypeError):
            schemas.append(Schema([ColSpec(_ANY)]))
    param_schema = (
        ParamSchema([_param_spec(name, value) for name, value in params.items()])
        if params
        else None
    )
    return ModelSignature(schemas[0], schemas[1], param_schema)
