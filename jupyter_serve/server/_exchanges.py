"""One answered request as the recording path sees it, and its rows as plain records.

The IO loop only keeps references (`Exchange`: the prepared input and the answer's bytes the
server already holds); everything else here runs when someone reads: the capture buffer's
DataFrame, the inference log's writer thread, a worker asked for its capture.

An exchange holds no server object (connection, handler, response): the capture keeps the last
thousand of them, and each would keep a whole connection's objects alive. Holding them cost
~30,000 instructions per request in freeing and collecting them (callgrind, 64 connections,
of ~1.2 million per request).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from jupyter_serve.protocol import PlainColumns

# The columns of a record besides the input's, in the order a DataFrame shows them.
RECORD_FIELDS = ("time", "request_id", "route", "status", "latency_ms", "prediction", "error")


@dataclass(slots=True, eq=False)
class Exchange:
    """One answered request: fixed once built, on the IO loop, at answer time."""

    time: float  # seconds since the epoch
    request_id: str
    method: str
    path: str
    status: int
    latency: float  # seconds
    client: Any  # the connection's address, (host, port) for TCP; formatted off the loop
    model_version: str | None
    data: Any = None  # the prepared model input of a scored request, if it got that far
    answer: bytes | None = None  # the answer's body; None: the client left before it
    scored: bool = False  # an /invocations or /v2 infer request

    @property
    def rows(self) -> int:
        """How many scored rows it stands for (a request refused before parsing: one)."""
        if self.data is None:
            return 1
        try:
            return max(1, len(self.data))
        except TypeError:
            return 1

    def records(self) -> list[dict[str, Any]]:
        """One record per scored row: time, request_id, route, status, latency_ms, input (a
        dict of the row's columns), prediction, error."""
        inputs = input_rows(self.data)
        count = max(1, len(inputs))
        predictions, error = _outcome(self.answer, self.status, count)
        common = {
            "time": self.time,
            "request_id": self.request_id,
            "route": self.path,
            "status": self.status,
            "latency_ms": round(self.latency * 1000, 3),
        }
        return [
            {
                **common,
                "input": inputs[index] if inputs else {},
                "prediction": predictions[index],
                "error": error,
            }
            for index in range(count)
        ]


def input_rows(data: Any) -> list[dict[str, Any]]:
    """The rows of a prepared model input, each a dict of column name to plain value."""
    if data is None:
        return []
    if isinstance(data, PlainColumns):
        return [dict(zip(data.names, row, strict=True)) for row in zip(*data.values, strict=True)]
    to_dict = getattr(data, "to_dict", None)
    if callable(to_dict) and hasattr(data, "columns"):
        return [{str(k): _plain(v) for k, v in row.items()} for row in to_dict("records")]
    if isinstance(data, np.ndarray):
        if data.ndim == 0:
            return [{"input": _plain(data)}]
        return [{"input": _plain(row)} for row in data]
    if isinstance(data, dict):
        columns = {str(k): np.asarray(v) for k, v in data.items()}
        rows = min((len(v) for v in columns.values() if v.ndim > 0), default=1)
        return [
            {k: _plain(v[i] if v.ndim > 0 else v) for k, v in columns.items()} for i in range(rows)
        ]
    return [{"input": _plain(data)}]


def _outcome(answer: bytes | None, status: int, rows: int) -> tuple[list[Any], Any]:
    if answer is None:
        return [None] * rows, "the client closed the connection before its answer"
    try:
        body = json.loads(answer)
    except ValueError:
        body = None
    if status >= 400:
        message = body.get("message") or body.get("error") if isinstance(body, dict) else None
        return [None] * rows, message or f"HTTP {status}"
    return per_row_predictions(body, rows), None


def per_row_predictions(body: Any, rows: int) -> list[Any]:
    """Each row's prediction in a scoring answer's JSON body (MLflow's or V2's)."""
    return _per_row(_predictions(body), rows)


def _predictions(body: Any) -> Any:
    if isinstance(body, dict) and "predictions" in body:
        return body["predictions"]
    if isinstance(body, dict) and isinstance(body.get("outputs"), list) and body["outputs"]:
        first = body["outputs"][0]
        values, shape = first.get("data"), first.get("shape") or []
        if isinstance(values, list) and len(shape) > 1 and math.prod(shape) == len(values):
            return np.asarray(values, dtype=object).reshape(shape).tolist()
        return values
    return body


def _per_row(predictions: Any, rows: int) -> list[Any]:
    if isinstance(predictions, list) and len(predictions) == rows:
        return predictions
    if isinstance(predictions, dict) and all(
        isinstance(v, list) and len(v) == rows for v in predictions.values()
    ):
        return [{k: v[i] for k, v in predictions.items()} for i in range(rows)]
    return [predictions] * rows


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def records_frame(records: list[dict[str, Any]]) -> Any:
    """A pandas DataFrame of records, one row each: the input's columns first, then
    `RECORD_FIELDS`; ``time`` as UTC timestamps."""
    import pandas as pd

    input_columns: dict[str, None] = {}
    for record in records:
        input_columns.update(dict.fromkeys(record.get("input") or {}))
    rows = [
        {**{f"{k}": v for k, v in (record.get("input") or {}).items()}, **_fields(record)}
        for record in records
    ]
    columns = [c for c in input_columns if c not in RECORD_FIELDS] + list(RECORD_FIELDS)
    frame = pd.DataFrame(rows, columns=columns)
    if records:
        times = frame["time"]
        frame["time"] = (
            pd.to_datetime(times, unit="s", utc=True)
            if pd.api.types.is_numeric_dtype(times)
            else pd.to_datetime(times, utc=True, format="ISO8601")
        )
    return frame


def _fields(record: dict[str, Any]) -> dict[str, Any]:
    return {name: record.get(name) for name in RECORD_FIELDS}
