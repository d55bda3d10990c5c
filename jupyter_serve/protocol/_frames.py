"""DataFrames from ``dataframe_split`` / ``dataframe_records`` bodies, cast to the input schema.

Built with pandas exactly as MLflow builds them, so odd inputs get MLflow's answers too (a
split whose index is longer than its one data row is broadcast by pandas, and MLflow answers
200 there). The cast mirrors MLflow's ``cast_df_types_according_to_schema``.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import pandas as pd

from jupyter_serve.protocol._errors import ScoringError, invalid_input
from jupyter_serve.protocol._signature_view import InputSpec, SignatureView

_SPLIT_KEYS = frozenset({"columns", "data", "index"})


def _type_word(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "dictionary"
    return f"type {type(value)}"


def frame_from_split(split: Any, view: SignatureView) -> pd.DataFrame:
    """The DataFrame of a ``dataframe_split`` value; ScoringError 400 when it is not one."""
    data = split_input(split, view)
    if not isinstance(data, PlainColumns):
        return data
    try:
        return data.to_frame()
    except Exception as error:  # a lone surrogate, which pandas' text columns refuse
        raise _not_a_split(error) from error


def split_input(split: Any, view: SignatureView) -> pd.DataFrame | PlainColumns:
    """`frame_from_split`, except that a plain body (see `PlainColumns`) stays columns of
    values, for the caller to build one DataFrame for many requests."""
    if not isinstance(split, dict):
        raise invalid_input(
            f"Dataframe split format must be a dictionary. Got {_type_word(split)}."
        )
    plain = _plain_columns(split, view)
    if plain is not None:
        return plain
    keys = split.keys()
    if "data" not in keys or not _SPLIT_KEYS.issuperset(keys):
        raise invalid_input(
            "Dataframe split format must have 'data' field and optionally 'columns' and "
            f"'index' fields. Got {sorted(map(str, keys))}."
        )
    try:
        frame = pd.DataFrame(
            index=split.get("index"), columns=split.get("columns"), data=split["data"]
        )
    except Exception as error:
        raise _not_a_split(error) from error
    return cast_to_schema(frame, view)


def _not_a_split(error: Exception) -> ScoringError:
    return invalid_input(
        "Provided dataframe_split field is not a valid dataframe representation in 'split' "
        f"format. Error: '{error}'"
    )


# Exactness bounds of plain columns: every int below 2**53 is a float64 exactly.
_EXACT_INT = 2**53
_INT64 = 2**63


def _is_plain(values: tuple[Any, ...], kind: str) -> bool:
    """Whether pandas + MLflow's cast would give these JSON values the schema kind's dtype
    exactly, without changing one of them."""
    if kind == "string":
        return all(type(v) is str for v in values)
    if kind == "double":
        for v in values:
            kind_of_v = type(v)
            if kind_of_v is int:
                if not -_EXACT_INT < v < _EXACT_INT:
                    return False
            elif kind_of_v is not float:
                return False
        return True
    if kind == "long":
        return all(type(v) is int and -_INT64 <= v < _INT64 for v in values)
    return False


def _column_array(values: tuple[Any, ...], kind: str) -> Any:
    if kind == "double":
        return np.array(values, dtype=np.float64)
    if kind == "long":
        return np.array(values, dtype=np.int64)
    return list(values)


@dataclass(frozen=True, eq=False, slots=True)
class PlainColumns:
    """A plain ``dataframe_split`` or ``dataframe_records`` body, kept as columns: every
    column a string, double or long column of the schema (or, without a schema, of the kind
    pandas infers), holding plain JSON values of that type.

    `to_frame` builds what ``pd.DataFrame(...)`` followed by the schema cast builds (the unit
    tests compare the two) at a fraction of the cost, and several requests' columns `concat`
    into the frame their own frames would stack into: one build for a whole batch.
    """

    names: tuple[str, ...]
    kinds: tuple[str, ...]
    values: tuple[tuple[Any, ...], ...]  # one tuple of values per column
    rows: int

    def __len__(self) -> int:
        return self.rows

    def to_frame(self) -> pd.DataFrame:
        """The DataFrame of these columns, with a RangeIndex."""
        index = pd.RangeIndex(self.rows)
        arrays = [_column_array(v, k) for v, k in zip(self.values, self.kinds, strict=True)]
        frame: pd.DataFrame
        if all(kind == "double" for kind in self.kinds):
            # One float64 block: a tenth of the cost of a frame built from a dict of columns.
            block = np.column_stack(arrays)
            frame = pd.DataFrame(block, columns=pd.Index(self.names), index=index, copy=False)
        else:
            frame = pd.DataFrame(dict(zip(self.names, arrays, strict=True)), index=index)
        return frame

    @staticmethod
    def concat(parts: Sequence[PlainColumns]) -> PlainColumns:
        """The rows of ``parts`` one after the other; all must have the same names and kinds."""
        first = parts[0]
        values = tuple(
            tuple(chain.from_iterable(part.values[i] for part in parts))
            for i in range(len(first.names))
        )
        return PlainColumns(first.names, first.kinds, values, sum(p.rows for p in parts))


def _plain_columns(split: dict[str, Any], view: SignatureView) -> PlainColumns | None:
    """The `PlainColumns` of ``split``, or None when it is not plain: then it takes the
    general path, so no answer changes.

    With a schema, the kinds are its columns'; without one, each column's kind is the one
    pandas infers from its values (``_inferred_kind``)."""
    if (view.has_schema and not view.named) or len(split) != 2:
        return None
    columns = split.get("columns")
    rows = split.get("data")
    if type(columns) is not list or type(rows) is not list or not rows or not columns:
        return None
    specs = view.by_name()
    width = len(columns)
    # Names checked before hashed: a name may be a JSON object, which set() cannot hold.
    if not all(type(c) is str for c in columns) or len(set(columns)) != width:
        return None
    if view.has_schema and not all(c in specs for c in columns):
        return None
    if not all(type(row) is list and len(row) == width for row in rows):
        return None
    values = tuple(zip(*rows, strict=True))
    if view.has_schema:
        kinds = tuple(specs[name].kind for name in columns)
    else:
        kinds = tuple(map(_inferred_kind, values))
    if not all(_is_plain(v, k) for v, k in zip(values, kinds, strict=True)):
        return None
    return PlainColumns(tuple(columns), kinds, values, len(rows))


def _inferred_kind(values: tuple[Any, ...]) -> str:
    """The kind of the dtype pandas gives a column of these JSON values, if they are plain
    (``_is_plain`` checks): all strings, all ints (int64), or ints and floats (float64)."""
    if all(type(v) is str for v in values):
        return "string"
    if all(type(v) is int for v in values):
        return "long"
    return "double"


def records_input(records: Any, view: SignatureView) -> pd.DataFrame | PlainColumns:
    """`frame_from_records`, except that records that are plain (every one with the same
    keys in the same order, their values plain as `PlainColumns` wants) stay columns of
    values, as a plain ``dataframe_split`` does."""
    if type(records) is list and records and type(records[0]) is dict:
        columns = list(records[0])
        if all(type(record) is dict and list(record) == columns for record in records):
            split = {"columns": columns, "data": [list(record.values()) for record in records]}
            plain = _plain_columns(split, view)
            if plain is not None:
                return plain
    return frame_from_records(records, view)


def frame_from_records(records: Any, view: SignatureView) -> pd.DataFrame:
    """The DataFrame of a ``dataframe_records`` value; ScoringError 400 when it is not one."""
    if not isinstance(records, list):
        raise invalid_input(
            f"Dataframe records format must be a list of records. Got {_type_word(records)}."
        )
    try:
        frame = pd.DataFrame(data=records)
    except Exception as error:
        raise invalid_input(
            "Provided dataframe_records field is not a valid dataframe representation in "
            f"'records' format. Error: '{error}'"
        ) from error
    return cast_to_schema(frame, view)


def _columns_to_cast(frame: pd.DataFrame, view: SignatureView) -> list[tuple[Any, InputSpec]]:
    present = set(frame.columns)
    if view.named:
        return [(spec.name, spec) for spec in view.specs if spec.name in present]
    if view.is_tensor and len(view.specs) == 1:
        return [(column, view.specs[0]) for column in present]
    count = min(len(view.specs), len(frame.columns))
    return list(zip(frame.columns[:count], view.specs[:count], strict=True))


def cast_to_schema(frame: pd.DataFrame, view: SignatureView) -> pd.DataFrame:
    """``frame`` with its schema columns cast to the schema's types (MLflow's pre-model cast).

    Columns the schema does not name are left alone; nested-type columns are left to the
    model's schema enforcement. A value that cannot be cast is a ScoringError 400 BAD_REQUEST.
    """
    if not view.has_schema:
        return frame
    for column, spec in _columns_to_cast(frame, view):
        try:
            _cast_column(frame, column, spec)
        except Exception as error:
            raise invalid_input(
                "Data is not compatible with model signature. Failed to convert column "
                f"{column} to type '{spec.pandas_dtype}'. Error: '{error!r}'"
            ) from error
    return frame


def _cast_column(frame: pd.DataFrame, column: Any, spec: InputSpec) -> None:
    kind = spec.kind
    if kind == "nested":
        return
    values = frame[column]
    if kind == "binary":
        frame[column] = values.map(lambda text: base64.decodebytes(bytes(text, "utf8")))
    elif kind == "tensor" and isinstance(values.iloc[0], list):
        return
    elif kind == "datetime":
        parsed = pd.to_datetime(values)
        if pd.api.types.is_datetime64_any_dtype(parsed) and parsed.dt.unit != "ns":
            parsed = parsed.dt.as_unit("ns")
        frame[column] = parsed
    elif kind == "string" and isinstance(values.dtype, pd.StringDtype):
        return
    elif values.dtype != spec.pandas_dtype:
        frame[column] = values.astype(spec.pandas_dtype)
