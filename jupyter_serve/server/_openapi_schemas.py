"""JSON Schemas (OpenAPI 3.1) of a model's ``/invocations`` bodies, from its signature.

A column-based signature gives each column its JSON type (MLflow's scalar types; arrays,
objects and maps as nested schemas); a tensor-based one gives nested arrays of the tensor's
shape. Without a signature the shapes of the protocol are described with open items. The
schemas describe what the scoring protocol accepts for this model; the server stays the
judge (its checks may refuse a value the schema allows, never the reverse for the example).
"""

from __future__ import annotations

from typing import Any

import numpy as np

_SCALAR_SCHEMAS: dict[str, dict[str, Any]] = {
    "boolean": {"type": "boolean"},
    "integer": {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1},
    "long": {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
    "float": {"type": "number"},
    "double": {"type": "number"},
    "string": {"type": "string"},
    "binary": {"type": "string", "contentEncoding": "base64"},
    "datetime": {"type": "string", "format": "date-time"},
}


def type_schema(spec_type: Any) -> dict[str, Any]:
    """The JSON Schema of a value of an MLflow type (a `DataType`, or a `NestedType`'s spec)."""
    value = getattr(spec_type, "value", None)
    if isinstance(value, str) and value in _SCALAR_SCHEMAS:
        return dict(_SCALAR_SCHEMAS[value])
    nested = getattr(spec_type, "spec", spec_type)
    return _nested_schema(nested if isinstance(nested, dict) else {})


def _nested_schema(spec: dict[str, Any]) -> dict[str, Any]:
    kind = spec.get("type")
    if isinstance(kind, str) and kind in _SCALAR_SCHEMAS:
        return dict(_SCALAR_SCHEMAS[kind])
    if kind == "array":
        return {"type": "array", "items": _nested_schema(spec.get("items") or {})}
    if kind == "object":
        properties = spec.get("properties") or {}
        return {
            "type": "object",
            "properties": {name: _nested_schema(prop) for name, prop in properties.items()},
            "required": [n for n, p in properties.items() if p.get("required", True)],
        }
    if kind == "map":
        return {"type": "object", "additionalProperties": _nested_schema(spec.get("values") or {})}
    return {}  # any, sparkml_vector: not described further


def _dtype_schema(dtype: np.dtype[Any]) -> dict[str, Any]:
    if dtype.kind == "b":
        return {"type": "boolean"}
    if dtype.kind in "iu":
        return {"type": "integer"}
    if dtype.kind in "fc":
        return {"type": "number"}
    if dtype.kind in "USO":
        return {"type": "string"}
    return {}


def tensor_schema(dtype: np.dtype[Any], shape: tuple[int, ...]) -> dict[str, Any]:
    """Nested arrays of ``shape`` (-1: any length) holding ``dtype`` values."""
    schema = _dtype_schema(dtype)
    for size in reversed(shape):
        schema = {"type": "array", "items": schema}
        if size >= 0:
            schema.update(minItems=size, maxItems=size)
    return schema


def _is_tensor(spec: Any) -> bool:
    return isinstance(getattr(spec, "type", None), np.dtype)


def invocation_body_schemas(signature: Any) -> dict[str, dict[str, Any]]:
    """The JSON body forms for ``/invocations`` as named schemas: ``DataframeSplit``,
    ``DataframeRecords``, ``Instances``, ``Inputs`` and ``Params``."""
    inputs = getattr(signature, "inputs", None)
    specs = list(getattr(inputs, "inputs", None) or ())
    params = _params_schema(getattr(getattr(signature, "params", None), "params", None))
    if specs and _is_tensor(specs[0]):
        split_rows, records_row, instances, inputs_schema = _tensor_forms(specs)
        columns: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
    elif specs:
        split_rows, records_row, instances, inputs_schema, columns = _column_forms(specs)
    else:
        split_rows = {"type": "array", "items": {"type": "array"}}
        records_row = {"type": "object"}
        instances = inputs_schema = {}
        columns = {"type": "array", "items": {"type": "string"}}

    def form(key: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
        return {
            "type": "object",
            "description": description,
            "required": [key],
            "properties": {key: schema, "params": {"$ref": "#/components/schemas/Params"}},
        }

    return {
        "DataframeSplit": form(
            "dataframe_split",
            {
                "type": "object",
                "required": ["data"],
                "properties": {"columns": columns, "data": split_rows, "index": {"type": "array"}},
            },
            "A DataFrame in pandas' split orientation: column names, then rows.",
        ),
        "DataframeRecords": form(
            "dataframe_records",
            {"type": "array", "items": records_row},
            "A DataFrame as a list of rows, each an object keyed by column name.",
        ),
        "Instances": form("instances", instances, "Model input as a list of instances."),
        "Inputs": form("inputs", inputs_schema, "Model input as columns or tensors."),
        "Params": params,
    }


def _column_forms(specs: list[Any]) -> tuple[dict[str, Any], ...]:
    named = [spec for spec in specs if getattr(spec, "name", None) is not None]
    values = [type_schema(spec.type) for spec in specs]
    split_rows = {
        "type": "array",
        "items": {
            "type": "array",
            "prefixItems": values,
            "minItems": sum(1 for spec in specs if spec.required),
            "maxItems": len(values),
        },
    }
    if len(named) != len(specs):  # unnamed columns: rows are positional only
        columns: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
        return split_rows, {"type": "object"}, split_rows, split_rows, columns
    properties = {str(spec.name): type_schema(spec.type) for spec in specs}
    required = [str(spec.name) for spec in specs if spec.required]
    row = {"type": "object", "properties": properties, "required": required}
    by_column = {
        "type": "object",
        "properties": {name: {"type": "array", "items": s} for name, s in properties.items()},
        "required": required,
    }
    columns = {
        "type": "array",
        "items": {"type": "string", "enum": list(properties)},
        "uniqueItems": True,
    }
    records = {"type": "array", "items": row}
    return split_rows, row, records, {"oneOf": [records, by_column]}, columns


def _tensor_forms(specs: list[Any]) -> tuple[dict[str, Any], ...]:
    if len(specs) == 1 and getattr(specs[0], "name", None) is None:
        tensor = tensor_schema(specs[0].type, tuple(specs[0].shape))
        return tensor, {"type": "object"}, tensor, tensor
    properties = {str(s.name): tensor_schema(s.type, tuple(s.shape)) for s in specs}
    row_properties = {str(s.name): tensor_schema(s.type, tuple(s.shape)[1:]) for s in specs}
    named = {"type": "object", "properties": properties, "required": list(properties)}
    rows = {"type": "array", "items": {"type": "object", "properties": row_properties}}
    return {"type": "array"}, {"type": "object"}, rows, named


def _params_schema(param_specs: Any) -> dict[str, Any]:
    if not param_specs:
        return {"type": "object", "description": "Inference parameters (the model has none)."}
    properties: dict[str, Any] = {}
    for spec in param_specs:
        schema = type_schema(spec.type)
        if spec.shape:
            schema = {"type": "array", "items": schema}
        if spec.default is not None and getattr(spec.type, "value", None) != "datetime":
            schema["default"] = spec.default
        properties[str(spec.name)] = schema
    return {
        "type": "object",
        "description": "Inference parameters of the model's signature; omitted ones take "
        "their default.",
        "properties": properties,
    }
