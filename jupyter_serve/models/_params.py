"""Inference parameters checked against a params schema, as MLflow 3.17.2's pyfunc does.

Unknown params are dropped with a warning, missing ones take their default, and a value of the
wrong type is refused (ints widen to long/float/double, long to float/double, float to double).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from jupyter_serve.errors import SchemaEnforcementError
from jupyter_serve.models._schema import DataType, NestedType, ParamSchema, ParamSpec

_logger = logging.getLogger(__name__)

_WIDENINGS: dict[DataType, tuple[DataType, ...]] = {
    DataType.long: (DataType.integer,),
    DataType.float: (DataType.integer, DataType.long),
    DataType.double: (DataType.integer, DataType.long, DataType.float),
}


def _has_type(target: DataType, value: Any) -> bool:
    # numpy dtypes compare equal to their scalar types (np.dtype("int64") == int), which is
    # how MLflow decides a value "is" of a type; the same comparison keeps us identical.
    candidates: list[Any] = [target.to_numpy(), target.to_pandas(), target.to_python()]
    if target == DataType.binary:
        candidates.append(bytearray)
    return type(value) in candidates


class _InvalidParam(Exception):
    """One param's failure, worded as MLflow words it."""


def _typed_value(value: Any, target: DataType) -> Any:
    label = f"DataType.{target.value}"
    if value is None:
        return None
    if target == DataType.datetime:
        try:
            converted = np.datetime64(value).item()
        except ValueError as error:
            raise _InvalidParam(
                f"Failed to convert value `{value}` from type `{type(value)}` to `{label}`"
            ) from error
        if isinstance(converted, int):
            raise _InvalidParam(
                f"Failed to convert value to `{label}`. "
                f"It must be convertible to datetime.date/datetime, got `{value}`"
            )
        return converted
    if not np.isscalar(value):
        raise _InvalidParam(f"Value must be a scalar for type `{label}`, got `{value}`")
    if _has_type(target, value) or any(
        _has_type(narrower, value) for narrower in _WIDENINGS.get(target, ())
    ):
        try:
            return target.to_python()(value)
        except ValueError as error:
            raise _InvalidParam(
                f"Failed to convert value `{value!s}` from type `{type(value)}` to `{label}`"
            ) from error
    raise _InvalidParam(
        f"Can not safely convert `{type(value)}` to `{label}` for value `{value!s}`"
    )


def _spec_text(spec: ParamSpec) -> str:
    kind = spec.type.value if isinstance(spec.type, DataType) else repr(spec.type)
    shape = f" (shape: {spec.shape})" if spec.shape is not None else ""
    return f"{spec.name!r}: {kind} (default: {spec.default}){shape}"


def _validated(value: Any, spec: ParamSpec) -> Any:
    if spec.shape == (-1,) and not (
        isinstance(value, (list, np.ndarray)) and np.array(value).ndim == 1
    ):
        raise _InvalidParam(
            f"Value must be a 1D array with shape (-1,) for param {_spec_text(spec)}, "
            f"received {type(value).__name__} with ndim {np.array(value).ndim}"
        )
    try:
        if isinstance(spec.type, NestedType):
            if not isinstance(value, dict):
                raise _InvalidParam(f"Expected data to be dictionary, got {type(value).__name__}")
            return value
        if spec.shape is None:
            return _typed_value(value, spec.type)
        return [_typed_value(v, spec.type) for v in value]
    except _InvalidParam as error:
        raise _InvalidParam(
            f"Failed to validate type and shape for {_spec_text(spec)}, error: {error}"
        ) from error


class ParamsEnforcer:
    """Checks request params against one model's params schema. Thread-safe (no state)."""

    def __init__(self, schema: ParamSchema | None) -> None:
        self._specs = list(schema.params) if schema is not None else None
        self._names = {spec.name for spec in self._specs} if self._specs is not None else set()

    def enforce(self, params: dict[str, Any] | None) -> dict[str, Any] | None:
        """The params the model gets; SchemaEnforcementError for a value of the wrong type."""
        if self._specs is None:
            if params:
                _logger.warning(
                    "this model's signature defines no params schema; ignoring params %s",
                    list(params) if isinstance(params, dict) else params,
                )
                return {}
            return params
        params = {} if params is None else params
        if not isinstance(params, dict):
            raise SchemaEnforcementError(
                f"Parameters must be a dictionary. Got type '{type(params).__name__}'."
            )
        params = {str(k): v for k, v in params.items()}
        if ignored := [name for name in params if name not in self._names]:
            _logger.warning(
                "Unrecognized params %s are ignored for inference; supported params: %s",
                ignored,
                sorted(self._names),
            )
        accepted: dict[str, Any] = {}
        invalid: list[tuple[str, str]] = []
        for spec in self._specs:
            if spec.name not in params:
                accepted[spec.name] = spec.default
                continue
            try:
                accepted[spec.name] = _validated(params[spec.name], spec)
            except _InvalidParam as error:
                invalid.append((spec.name, str(error)))
        if invalid:
            # MLflow's wording (a set of (name, reason) pairs): clients may match on it. Written
            # in the signature's order, so that every process (hash seed) writes it alike.
            pairs = ", ".join(repr(pair) for pair in invalid)
            raise SchemaEnforcementError(f"Invalid parameters found: {{{pairs}}}")
        return accepted
