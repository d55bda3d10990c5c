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
_SCALAR_NAMES = frozenset(t.value for t in DataType)
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


def _from_spec(spec: dict[str, Any]) -> ColumnType:
    if set(spec) <= {"type", "required"} and spec.get("type") in _SCALAR_NAMES:
        return DataType(spec["type"])
    return NestedType({k: v for k, v in spec.items() if k != "required"})


def _array_of(element: ColumnType) -> NestedType:
    return NestedType({"type": "array", "items": _type_spec(element)})


def _object_of(properties: dict[str, tuple[ColumnType, bool]]) -> NestedType:
    return NestedType(
        {
            "type": "object",
            "properties": {
                name: {**_type_spec(kind), "required": required}
                for name, (kind, required) in sorted(properties.items())
            },
        }
    )


def _properties(kind: NestedType) -> dict[str, tuple[ColumnType, bool]]:
    return {
        name: (_from_spec(spec), bool(spec.get("required", True)))
        for name, spec in kind.spec.get("properties", {}).items()
    }


def _merge(first: ColumnType, second: ColumnType) -> ColumnType:
    """MLflow's ``_merge``: the one type describing values of both types, or _Uninferable."""
    if first == _ANY:
        if second == first or isinstance(second, DataType):
            return second
        return _merge(second, first)
    if isinstance(first, DataType):
        if second in (first, _ANY):
            return first
        raise _Uninferable(f"{first.value} and {second.name} values are mixed")
    kind = first.name
    if kind == "object":
        if second == _ANY:
            return _object_of({n: (t, False) for n, (t, _) in _properties(first).items()})
        if not isinstance(second, NestedType) or second.name != "object":
            raise _Uninferable("objects are mixed with other values")
        if second == first:
            return first
        ours, theirs = _properties(first), _properties(second)
        merged = {n: (t, False) for n, (t, _) in {**theirs, **ours}.items()}
        for name in ours.keys() & theirs.keys():
            merged[name] = (
                _merge(ours[name][0], theirs[name][0]),
                ours[name][1] and theirs[name][1],
            )
        return _object_of(merged)
    if kind in ("array", "map"):
        key = "items" if kind == "array" else "values"
        if second in (_ANY, first):
            return first
        if not isinstance(second, NestedType) or second.name != kind:
            raise _Uninferable(f"{kind}s are mixed with other values")
        inner = _merge(_from_spec(first.spec[key]), _from_spec(second.spec[key]))
        return NestedType({"type": kind, key: _type_spec(inner)})
    return first


def _infer_array(values: Any) -> NestedType | None:
    element: ColumnType | None = None
    for item in values:
        item_type = _infer_value(item)
        if item_type is None:
            continue
        if element is None:
            element = item_type
        elif isinstance(element, NestedType):
            element = _merge(element, item_type)
        elif item_type != _ANY and item_type != element:
            raise _Uninferable("the list holds values of several types")
    return None if element is None else _array_of(element)


def _infer_value(value: Any) -> ColumnType | None:
    if _is_missing(value) or (isinstance(value, (list, dict)) and not value):
        return _ANY
    if isinstance(value, dict):
        properties: dict[str, tuple[ColumnType, bool]] = {}
        for key, item in value.items():
            item_type = _infer_value(item)
            if item_type is None:
                raise _Uninferable("a dictionary value is an empty numpy array")
            properties[str(key)] = (item_type, item_type != _ANY)
        return _object_of(properties)
    if isinstance(value, (list, np.ndarray)):
        return _infer_array(value)
    return _infer_scalar(value)


def _element_type(values: list[Any]) -> ColumnType:
    array = _infer_array(values)
    if array is None:
        raise _Uninferable("the values hold no non-empty item")
    return _from_spec(array.spec["items"])


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
