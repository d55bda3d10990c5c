"""DataFrames from ``dataframe_split`` / ``dataframe_records`` bodies, cast to the input schema.

Built with pandas exactly as MLflow builds them, so odd inputs get MLflow's answers too (a
split whose index is longer than its one data row is broadcast by pandas, and MLflow answers
200 there). The cast mirrors MLflow's ``cast_df_types_according_to_schema``.
"""

from __future__ import annotations

import base64
from typing import Any

import pandas as pd

from jupyter_serve.protocol._errors import invalid_input
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
    if not isinstance(split, dict):
        raise invalid_input(
            f"Dataframe split format must be a dictionary. Got {_type_word(split)}."
        )
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
        raise invalid_input(
            "Provided dataframe_split field is not a valid dataframe representation in 'split' "
            f"format. Error: '{error}'"
        ) from error
    return cast_to_schema(frame, view)


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
