"""Predictions to the JSON body MLflow 3.17.2 answers.

NaN and infinities are written as the bare tokens ``NaN``, ``Infinity`` and ``-Infinity``,
exactly as MLflow writes them. That is not strict JSON (browsers' ``JSON.parse`` refuses it),
but it is what every existing MLflow client decodes today (Python's ``json``, ``requests``,
pandas), and turning them into ``null`` would silently change the values those clients see.
Wire compatibility wins; clients that need strict JSON should map NaN in the model.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import numpy as np
import pandas as pd

from jupyter_serve.protocol._errors import ScoringError
from jupyter_serve.protocol._responses import JSON_CONTENT_TYPE, ScoringResponse


def _base64(raw: bytes) -> str:
    return base64.encodebytes(raw).decode("ascii")


def _encode_other(value: Any) -> Any:
    """Values ``json`` cannot write, converted as MLflow's ``NumpyEncoder`` converts them."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "S":
            return np.vectorize(_base64, otypes=[object])(value).tolist()
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (bytes, bytearray)):
        return _base64(bytes(value))
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        return model_dump()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# json.dumps(..., default=...) would build an encoder per call; this one is reused (encoding
# keeps no state between calls).
_ENCODER = json.JSONEncoder(default=_encode_other)


def jsonable_predictions(predictions: Any) -> Any:
    """MLflow's ``_get_jsonable_obj``: arrays to lists, frames and series to row records."""
    if isinstance(predictions, np.ndarray):
        return predictions.tolist()
    if isinstance(predictions, pd.DataFrame):
        return predictions.to_dict(orient="records")
    if isinstance(predictions, pd.Series):
        return pd.DataFrame(predictions).to_dict(orient="records")
    return predictions


def render_predictions(predictions: Any, *, wrap: bool) -> ScoringResponse:
    """200 with ``{"predictions": X}`` (or X alone when ``wrap`` is False), MLflow's shapes.

    Raises ScoringError 500 ``INTERNAL_ERROR`` when the model returned something JSON cannot
    hold (MLflow answers a bare 500 there). Thread-safe.
    """
    payload = jsonable_predictions(predictions)
    if wrap:
        payload = {"predictions": payload}
    try:
        body = _ENCODER.encode(payload)
    except (TypeError, ValueError) as error:
        raise ScoringError(
            500,
            "INTERNAL_ERROR",
            f"The model's predictions cannot be written as JSON ({error}). Make the model "
            "return arrays, lists, DataFrames, Series, dicts, numbers or strings.",
        ) from error
    return ScoringResponse(200, body.encode("utf-8"), JSON_CONTENT_TYPE)
