"""Model input checked and converted against an input schema, as MLflow 3.17.2's pyfunc does.

An :class:`InputEnforcer` is built once per model: column names, required sets and target types
are worked out then, so a request only pays for what its data actually needs. A DataFrame whose
columns are exactly the schema's, in order, with matching dtypes is returned as it came.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from jupyter_serve.errors import SchemaEnforcementError
from jupyter_serve.models._columns import cast_column, column_needs_cast
from jupyter_serve.models._nested import enforce_nested_column
from jupyter_serve.models._schema import ColSpec, DataType, NestedType, Schema
from jupyter_serve.models._tensors import enforce_tensor_schema

_logger = logging.getLogger(__name__)


def _is_scalar(value: Any) -> bool:
    return bool(np.isscalar(value)) or value is None


def _dict_to_frame(data: dict[Any, Any], specs: list[ColSpec]) -> pd.DataFrame:
    frame: pd.DataFrame = _build_frame(data, specs)
    return frame


def _build_frame(data: dict[Any, Any], specs: list[ColSpec]) -> Any:
    values = data.values()
    if any(
        isinstance(spec.type, NestedType) and spec.type.name in ("array", "object")
        for spec in specs
    ) or all(
        _is_scalar(v) or (isinstance(v, list) and all(isinstance(i, str) for i in v))
        for v in values
    ):
        return pd.DataFrame([data])
    try:
        if all(
            isinstance(v, np.ndarray) and v.dtype.type == np.str_ and v.shape == () for v in values
        ):
            return pd.DataFrame([data])
        if any(isinstance(v, np.ndarray) and v.ndim > 1 for v in values):
            return pd.DataFrame(
                {
                    k: v.tolist() if isinstance(v, np.ndarray) and v.ndim > 1 else v
                    for k, v in data.items()
                }
            )
        return pd.DataFrame(data)
    except Exception as error:
        raise SchemaEnforcementError(
            "This model contains a column-based signature, which suggests a DataFrame input. "
            f"There was an error casting the input data to a DataFrame: {error}"
        ) from error


def _to_frame(data: Any, specs: list[ColSpec]) -> Any:
    if np.isscalar(data):
        return pd.DataFrame([data])
    if isinstance(data, dict):
        return _dict_to_frame(data, specs)
    if isinstance(data, (list, np.ndarray, pd.Series)):
        try:
            return pd.DataFrame(data)
        except Exception as error:
            raise SchemaEnforcementError(
                f"the input cannot be made into a DataFrame ({error}); the model's signature "
                "is column-based. Send a list of rows or a dict of columns."
            ) from error
    if not isinstance(data, pd.DataFrame):
        raise SchemaEnforcementError(
            f"Expected input to be DataFrame. Found: {type(data).__name__}"
        )
    return data


def _column_dtypes(frame: pd.DataFrame) -> list[Any]:
    # The block manager's dtype array costs well under a microsecond; `frame.dtypes` builds a
    # Series (tens of microseconds), which the per-request fast path cannot afford.
    try:
        return list(frame._mgr.get_dtypes())
    except AttributeError:  # pragma: no cover - a pandas without this internal
        return list(frame.dtypes)


class InputEnforcer:
    """Applies one model's input schema to request data. Thread-safe: it holds no mutable state."""

    def __init__(self, schema: Schema) -> None:
        self._schema = schema
        self._tensor = schema.is_tensor_spec()
        self._named = schema.has_input_names()
        specs = schema.inputs
        self._col_specs = schema.column_specs()
        self._tensor_specs = schema.tensor_specs()
        self._names: list[Any] = schema.input_names()
        self._required = [n for n, s in zip(self._names, specs, strict=True) if s.required]
        self._required_set = set(self._required)
        self._optional_set = {n for n, s in zip(self._names, specs, strict=True) if not s.required}
        self._types: list[DataType | NestedType] = [s.type for s in self._col_specs]
        self._columns = pd.Index(self._names)
        self._fast_ok = (
            self._named
            and not self._optional_set
            and all(isinstance(t, DataType) for t in self._types)
        )

    def enforce(self, data: Any) -> Any:
        """The input the model gets; SchemaEnforcementError when it does not fit the schema."""
        if isinstance(data, pd.Series):
            data = pd.DataFrame(data)
        if not self._tensor:
            data = _to_frame(data, self._col_specs)
            if self._fast_ok and self._matches_exactly(data):
                return data
        if self._named:
            data = self._check_names(data)
        elif not self._tensor and len(data.columns) < len(self._schema.inputs):
            # The double space is MLflow's; clients may match on the text.
            raise SchemaEnforcementError(
                "Model inference is missing inputs. The model signature declares "
                f"{len(self._schema.inputs)} inputs  but the provided value only has "
                f"{len(data.columns)} inputs. Note: the inputs were not named in the signature "
                "so we can only verify their count."
            )
        if self._tensor:
            return enforce_tensor_schema(data, self._tensor_specs, self._named)
        return self._enforce_columns(data)

    def _matches_exactly(self, frame: pd.DataFrame) -> bool:
        columns = frame.columns
        if len(columns) != len(self._names) or not columns.equals(self._columns):
            return False
        dtypes = _column_dtypes(frame)
        return not any(
            column_needs_cast(dtype, t)  # type: ignore[arg-type]
            for dtype, t in zip(dtypes, self._types, strict=True)
        )

    def _check_names(self, data: Any) -> Any:
        # A list in the input's order, not a set: the error names extra inputs in an order
        # that must not depend on the process's string hash seed.
        names: list[Any] = []
        if len(self._required_set) == 1 and isinstance(data, np.ndarray):
            data = {self._required[0]: data}
            names = list(self._required)
        elif isinstance(data, pd.DataFrame):
            names = list(data.columns)
        elif isinstance(data, dict):
            names = list(data.keys())
        actual = set(names)
        missing = [n for n in self._required if n not in actual]
        extra = [c for c in names if c not in self._required_set and c not in self._optional_set]
        if missing:
            message = f"Model is missing inputs {missing}."
            if extra:
                message += f" Note that there were extra inputs: {extra}."
            raise SchemaEnforcementError(message)
        if extra:
            _logger.warning(
                "Found extra inputs in the model input that are not defined in the model "
                "signature: `%s`. These inputs will be ignored.",
                extra,
            )
        return data

    def _enforce_columns(self, frame: pd.DataFrame) -> pd.DataFrame:
        columns: dict[Any, pd.Series] = {}
        if self._named:
            for spec in self._col_specs:
                if spec.name not in frame:
                    continue
                columns[spec.name] = self._column(spec.name, frame[spec.name], spec, spec.required)
        else:
            for name, spec in zip(
                frame.columns[: len(self._col_specs)], self._col_specs, strict=False
            ):
                columns[name] = self._column(name, frame[name], spec, True)
        if not columns:
            empty: pd.DataFrame = pd.DataFrame()
            return empty
        # Every column still carries the input's index, so building from the bare arrays gives
        # the frame MLflow's `pd.DataFrame(dict_of_series)` gives, without its index alignment.
        result: pd.DataFrame = pd.DataFrame(
            {name: series.array for name, series in columns.items()},
            index=frame.index,
            copy=False,
        )
        return result

    @staticmethod
    def _column(name: Any, values: pd.Series, spec: ColSpec, required: bool) -> pd.Series:
        if isinstance(spec.type, NestedType):
            return enforce_nested_column(values, spec.type.spec, required)
        return cast_column(name, values, spec.type)
