"""MLflow's signature types, read and written exactly as MLflow 3.17.2 writes them.

A signature lives in the MLmodel file as up to three JSON strings (``inputs``, ``outputs``,
``params``). Column types are the eight MLflow scalar types; the nested types MLflow also knows
(array, object, map, any) are kept verbatim as :class:`NestedType` so such models still load and
their signature round-trips, but their values are passed to the model unchecked.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from jupyter_serve.errors import InvalidModelError


class DataType(Enum):
    """The MLflow scalar column types, each with the numpy, pandas and Python types it maps to."""

    boolean = "boolean"
    integer = "integer"
    long = "long"
    float = "float"
    double = "double"
    string = "string"
    binary = "binary"
    datetime = "datetime"

    def to_numpy(self) -> np.dtype[Any]:
        """The numpy dtype MLflow associates with this type."""
        return _NUMPY_TYPES[self]

    def to_pandas(self) -> Any:
        """The pandas dtype MLflow associates with this type (``object`` for text and bytes)."""
        return _PANDAS_TYPES[self]

    def to_python(self) -> type:
        """The Python type a parameter of this type is converted to."""
        return _PYTHON_TYPES[self]


_NUMPY_TYPES: dict[DataType, np.dtype[Any]] = {
    DataType.boolean: np.dtype("bool"),
    DataType.integer: np.dtype("int32"),
    DataType.long: np.dtype("int64"),
    DataType.float: np.dtype("float32"),
    DataType.double: np.dtype("float64"),
    DataType.string: np.dtype("str"),
    DataType.binary: np.dtype("bytes"),
    DataType.datetime: np.dtype("datetime64[ns]"),
}
_PANDAS_TYPES: dict[DataType, Any] = {
    **_NUMPY_TYPES,
    DataType.string: np.dtype("object"),
    DataType.binary: np.dtype("object"),
}
_PYTHON_TYPES: dict[DataType, type] = {
    DataType.boolean: bool,
    DataType.integer: int,
    DataType.long: int,
    DataType.float: float,
    DataType.double: float,
    DataType.string: str,
    DataType.binary: bytes,
    DataType.datetime: dt.date,
}


@dataclass(frozen=True)
class NestedType:
    """An MLflow array/object/map/any type, kept as the JSON MLflow wrote for it."""

    spec: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.spec.get("type", "any"))

    def __repr__(self) -> str:
        return _type_repr(self.spec)


def _type_repr(spec: dict[str, Any], in_map: bool = False) -> str:
    # MLflow's wording for nested types, which its error messages quote.
    kind = spec.get("type")
    if kind == "array":
        return f"Array({_type_repr(spec.get('items') or {})})"
    if kind == "object":
        properties = spec.get("properties") or {}
        return (
            "{"
            + ", ".join(
                f"{name}: {_type_repr(prop)} "
                f"({'required' if prop.get('required', True) else 'optional'})"
                for name, prop in properties.items()
            )
            + "}"
        )
    if kind == "map":
        return f"Map(str -> {_type_repr(spec.get('values') or {}, in_map=True)})"
    if kind == "sparkml_vector":
        return "SparkML vector"
    if kind in (None, "any"):
        return "Any"
    return f"DataType.{kind}" if in_map else str(kind)


_NESTED_TYPE_NAMES = frozenset({"array", "object", "map", "sparkml_vector", "any"})


@dataclass(frozen=True)
class ColSpec:
    """One column of a column-based schema: its type, optional name, and whether it is required."""

    type: DataType | NestedType
    name: str | None = None
    required: bool = True

    def __repr__(self) -> str:
        # MLflow's wording: error messages quote the schema this way.
        kind = self.type.value if isinstance(self.type, DataType) else repr(self.type)
        required = "required" if self.required else "optional"
        prefix = "" if self.name is None else f"{self.name!r}: "
        return f"{prefix}{kind} ({required})"

    def to_dict(self) -> dict[str, Any]:
        """The JSON object MLflow writes for this column."""
        spec: dict[str, Any] = (
            {"type": self.type.value} if isinstance(self.type, DataType) else dict(self.type.spec)
        )
        if self.name is not None:
            spec["name"] = self.name
        spec["required"] = self.required
        return spec

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> ColSpec:
        """Read one column as MLflow wrote it; raises InvalidModelError on an unknown type."""
        spec = dict(spec)
        name = spec.pop("name", None)
        required = spec.pop("required", True)
        type_name = spec.get("type")
        if type_name in _NESTED_TYPE_NAMES:
            return cls(NestedType(spec), name, True if required is None else bool(required))
        try:
            data_type = DataType(type_name)
        except ValueError:
            raise InvalidModelError(
                f"the signature names an unknown column type {type_name!r}; expected one of "
                f"{[t.value for t in DataType]}. Fix or remove the signature in the MLmodel file."
            ) from None
        return cls(data_type, name, bool(required))


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of a tensor-based schema: numpy dtype, shape (-1 for a variable axis), name."""

    type: np.dtype[Any]
    shape: tuple[int, ...]
    name: str | None = None
    required: bool = field(default=True, init=False)

    def __repr__(self) -> str:
        prefix = "" if self.name is None else f"{self.name!r}: "
        return f"{prefix}Tensor({self.type.name!r}, {self.shape!r})"

    def to_dict(self) -> dict[str, Any]:
        """The JSON object MLflow writes for this tensor."""
        spec: dict[str, Any] = {} if self.name is None else {"name": self.name}
        spec["type"] = "tensor"
        spec["tensor-spec"] = {"dtype": self.type.name, "shape": list(self.shape)}
        return spec

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> TensorSpec:
        """Read one tensor as MLflow wrote it."""
        info = spec["tensor-spec"]
        return cls(np.dtype(info["dtype"]), tuple(info["shape"]), spec.get("name"))


@dataclass(frozen=True)
class Schema:
    """An ordered list of column specs or of tensor specs (never a mix)."""

    inputs: Sequence[ColSpec | TensorSpec]

    def __repr__(self) -> str:
        return repr(list(self.inputs))

    def is_tensor_spec(self) -> bool:
        return bool(self.inputs) and isinstance(self.inputs[0], TensorSpec)

    def has_input_names(self) -> bool:
        return bool(self.inputs) and self.inputs[0].name is not None

    def input_names(self) -> list[str | int]:
        """Column names, or positions when the schema has no names (as MLflow)."""
        return [spec.name or i for i, spec in enumerate(self.inputs)]

    def to_json(self) -> str:
        """The JSON string MLflow stores in the MLmodel file."""
        return json.dumps([spec.to_dict() for spec in self.inputs])

    @classmethod
    def from_json(cls, text: str) -> Schema:
        """Parse the JSON string of an MLmodel signature entry."""
        specs = json.loads(text)
        if specs and all(spec.get("type") == "tensor" for spec in specs):
            return cls([TensorSpec.from_dict(spec) for spec in specs])
        return cls([ColSpec.from_dict(spec) for spec in specs])

    def column_specs(self) -> list[ColSpec]:
        return [spec for spec in self.inputs if isinstance(spec, ColSpec)]

    def tensor_specs(self) -> list[TensorSpec]:
        return [spec for spec in self.inputs if isinstance(spec, TensorSpec)]


@dataclass(frozen=True)
class ParamSpec:
    """One inference parameter: name, type, default and shape (None, or (-1,) for a list)."""

    name: str
    type: DataType | NestedType
    default: Any
    shape: tuple[int, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object MLflow writes for this parameter."""
        default = self.default
        if self.type == DataType.datetime and default is not None:
            default = [v.isoformat() for v in default] if self.shape else default.isoformat()
        spec: dict[str, Any] = {
            "name": self.name,
            "default": default,
            "shape": list(self.shape) if self.shape is not None else None,
        }
        if isinstance(self.type, DataType):
            spec["type"] = self.type.value
        else:
            spec.update(self.type.spec)
        return spec

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> ParamSpec:
        """Read one parameter as MLflow wrote it (``type``, or the older ``dtype``)."""
        type_name = spec.get("type") or spec.get("dtype")
        shape = spec.get("shape")
        param_type: DataType | NestedType
        if type_name == "object":
            param_type = NestedType(
                {k: v for k, v in spec.items() if k not in ("name", "default", "shape")}
            )
        else:
            param_type = DataType(type_name)
        default = spec.get("default")
        if param_type == DataType.datetime and default is not None:
            default = (
                [dt.datetime.fromisoformat(v) for v in default]
                if shape
                else dt.datetime.fromisoformat(default)
            )
        return cls(str(spec["name"]), param_type, default, tuple(shape) if shape else None)


@dataclass(frozen=True)
class ParamSchema:
    """The parameters a model accepts at inference time."""

    params: list[ParamSpec]

    def to_json(self) -> str:
        return json.dumps([spec.to_dict() for spec in self.params])

    @classmethod
    def from_json(cls, text: str) -> ParamSchema:
        return cls([ParamSpec.from_dict(spec) for spec in json.loads(text)])


@dataclass(frozen=True)
class ModelSignature:
    """A model's input, output and params schemas, each optional."""

    inputs: Schema | None = None
    outputs: Schema | None = None
    params: ParamSchema | None = None

    def to_mlmodel_dict(self) -> dict[str, str | None]:
        """The ``signature`` mapping of an MLmodel file: each entry a JSON string or None."""
        return {
            "inputs": self.inputs.to_json() if self.inputs else None,
            "outputs": self.outputs.to_json() if self.outputs else None,
            "params": self.params.to_json() if self.params else None,
        }

    @classmethod
    def from_mlmodel_dict(cls, entries: dict[str, Any]) -> ModelSignature:
        """Read the ``signature`` mapping of an MLmodel file; InvalidModelError when malformed."""
        try:
            inputs = Schema.from_json(x) if (x := entries.get("inputs")) else None
            outputs = Schema.from_json(x) if (x := entries.get("outputs")) else None
            params = ParamSchema.from_json(x) if (x := entries.get("params")) else None
        except InvalidModelError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise InvalidModelError(
                f"the model signature cannot be read ({error!r}); expected MLflow's JSON "
                "schema strings. Fix or remove the `signature` entry of the MLmodel file."
            ) from error
        return cls(inputs, outputs, params)

    def input_names(self) -> list[str] | None:
        """Column names of a named column-based input schema, else None."""
        if self.inputs is None or self.inputs.is_tensor_spec() or not self.inputs.has_input_names():
            return None
        return [str(spec.name) for spec in self.inputs.inputs]
