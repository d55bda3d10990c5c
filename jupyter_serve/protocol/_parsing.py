"""``/invocations`` bodies to model input: JSON, CSV and Parquet, as MLflow 3.17.2 reads them."""

from __future__ import annotations

import importlib
import json
import traceback
from dataclasses import dataclass
from functools import cache
from io import BytesIO, StringIO
from typing import Any

import pandas as pd

from jupyter_serve.protocol._content_type import CSV, JSON, media_type_of
from jupyter_serve.protocol._errors import (
    ScoringError,
    bad_request,
    invalid_input,
    unsupported_media_type,
)
from jupyter_serve.protocol._frames import (
    PlainColumns,
    frame_from_records,
    frame_from_split,
    records_input,
    split_input,
)
from jupyter_serve.protocol._json_body import JsonLimitError, decode_json, holds_lone_surrogates
from jupyter_serve.protocol._signature_view import SignatureView, signature_view
from jupyter_serve.protocol._tensors import parse_inputs, parse_instances

INPUT_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
LLM_KEYS = ("messages", "prompt", "input")
REQUIRED_INPUT_FORMAT = (
    "The input must be a JSON dictionary with exactly one of the input fields "
    "'dataframe_split', 'dataframe_records', 'instances' or 'inputs', plus optionally 'params'"
)


@dataclass(frozen=True)
class ScoringRequest:
    """A parsed ``/invocations`` body.

    ``data`` is the model input as MLflow's server builds it (a DataFrame for split, records,
    CSV and Parquet; numpy arrays or dicts of them for ``instances``/``inputs``; the JSON
    object itself for LLM payloads). ``wrap_predictions`` is False for LLM payloads, whose
    answer is not wrapped in ``{"predictions": ...}``. ``rows`` counts DataFrame rows.
    """

    data: Any
    params: dict[str, Any] | None
    wrap_predictions: bool
    rows: int | None


def parse_invocation(
    body: bytes, content_type: str | None, model: Any, *, keep_plain_columns: bool = False
) -> ScoringRequest:
    """Parse one ``/invocations`` body for ``model``, or raise the ScoringError MLflow answers.

    415 for the content-type rules, 400 for a body that cannot be read. With
    ``keep_plain_columns``, a plain ``dataframe_split`` or ``dataframe_records`` body without
    params (for a model without a params schema) comes back as `PlainColumns`, not yet a
    DataFrame nor schema-enforced: see `prepare_plain_columns`. Pure: no I/O, no logging;
    thread-safe.
    """
    media_type = media_type_of(content_type)
    view = signature_view(model)
    try:
        if media_type == JSON:
            return _parse_json(body, view, keep_plain_columns)
        if media_type == CSV:
            return _request(_parse_csv(body, view), None)
        return _request(_parse_parquet(body), None)
    except RecursionError:
        # A document nested just under the decoder's limit, met deeper in the stack.
        raise invalid_input(
            "The input nests lists or objects too deeply to be read; send the data with "
            "less nesting."
        ) from None


def _request(data: Any, params: dict[str, Any] | None, *, wrap: bool = True) -> ScoringRequest:
    rows = len(data) if isinstance(data, (pd.DataFrame, PlainColumns)) else None
    return ScoringRequest(data, params, wrap, rows)


def _decode_object(body: bytes) -> dict[str, Any]:
    try:
        decoded = decode_json(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise invalid_input(
            f"Ensure that input is a valid JSON formatted string. Error: '{error!r}'"
        ) from error
    except JsonLimitError as error:
        raise invalid_input(error.message) from None
    if isinstance(decoded, dict):
        return decoded
    if isinstance(decoded, list):
        raise invalid_input(f"{REQUIRED_INPUT_FORMAT}. Received a list.")
    raise invalid_input(
        f"{REQUIRED_INPUT_FORMAT}. Received unexpected input type '{type(decoded)}'."
    )


def _checked_params(params: Any, view: SignatureView) -> dict[str, Any] | None:
    # MLflow ignores params entirely when the model has no params schema, whatever they are;
    # with a schema, anything but a dict is refused by its params validation.
    if not view.has_params_schema:
        return params if isinstance(params, dict) else None
    if params is None or isinstance(params, dict):
        return params
    raise ScoringError(
        400,
        "INVALID_PARAMETER_VALUE",
        f"Parameters must be a dictionary. Got type '{type(params).__name__}'. Send 'params' "
        "as a JSON object of parameter names to values.",
    )


def _parse_json(body: bytes, view: SignatureView, keep_plain_columns: bool) -> ScoringRequest:
    document = _decode_object(body)
    if any(key in document for key in LLM_KEYS):
        llm_data = {k: v for k, v in document.items() if k not in view.param_names}
        llm_params = {k: v for k, v in document.items() if k in view.param_names}
        return _request(llm_data, llm_params, wrap=False)
    present = [key for key in INPUT_KEYS if key in document]
    if len(present) != 1:
        raise bad_request(
            f"{REQUIRED_INPUT_FORMAT}. Received dictionary with input fields: "
            f"{sorted(document)}. The scoring protocol changed in MLflow 2.0: wrap the input "
            "under one of these keys."
        )
    params = _checked_params(document.get("params"), view)
    key = present[0]
    value = document[key]
    # A lone surrogate takes the general path, where pandas refuses it as MLflow's does.
    keep_plain = (
        keep_plain_columns
        and params is None
        and not view.has_params_schema
        and key in ("dataframe_split", "dataframe_records")
        and not holds_lone_surrogates(body)
    )
    data: Any
    if key == "dataframe_split":
        data = split_input(value, view) if keep_plain else frame_from_split(value, view)
    elif key == "dataframe_records":
        data = records_input(value, view) if keep_plain else frame_from_records(value, view)
    elif key == "instances":
        data = parse_instances(value, view)
    else:
        data = parse_inputs(value, view)
    return _request(data, params)


def _csv_dtypes(view: SignatureView) -> dict[Any, Any] | None:
    if not view.has_schema:
        return None
    if view.is_tensor or any(spec.kind == "nested" for spec in view.specs):
        raise ValueError(
            "the model signature has tensor or nested inputs, which CSV cannot carry; send JSON"
        )
    return {
        spec.name if spec.name is not None else position: spec.pandas_dtype
        for position, spec in enumerate(view.specs)
    }


def _parse_csv(body: bytes, view: SignatureView) -> pd.DataFrame:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise invalid_input(
            f"Ensure that input is a valid UTF-8 encoded string. Error: '{error!r}'"
        ) from error
    try:
        return pd.read_csv(StringIO(text), dtype=_csv_dtypes(view))
    except Exception as error:
        raise bad_request(
            "Failed to parse input as a Pandas DataFrame. Ensure that the input is a valid "
            "CSV-formatted Pandas DataFrame with a header row, as `pandas.DataFrame.to_csv()` "
            f"writes it. Error: '{error}'",
            stack_trace=traceback.format_exc(),
        ) from error


@cache
def _parquet_available() -> bool:
    try:
        importlib.import_module("pyarrow")
    except ImportError:
        return False
    return True


def _parse_parquet(body: bytes) -> pd.DataFrame:
    if not _parquet_available():
        raise unsupported_media_type(
            "Parquet bodies need the pyarrow package, which is not installed where this server "
            "runs. Install it (pip install 'jupyter-serve[parquet]') or send JSON or CSV."
        )
    try:
        return pd.read_parquet(BytesIO(body))
    except Exception as error:
        raise bad_request(
            "Failed to parse input as a Pandas DataFrame. Ensure that the input is a valid "
            "Parquet file, as `pandas.DataFrame.to_parquet()` writes it. Error: "
            f"'{error}'",
            stack_trace=traceback.format_exc(),
        ) from error
