"""The last requests a deployment answered, from its captured traffic: a list to pick one from,
and for the picked one its input, its answer and a `curl` that sends the same input again.

Only standard ipywidgets (a Select and HTML), so it renders without a front-end package of
ours. Updated by the dashboard writer thread through widget state only, never an output area.
"""

from __future__ import annotations

import contextlib
import html
import json
import math
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from jupyter_serve._deployments._sample_request import curl_command

if TYPE_CHECKING:
    from jupyter_serve._deployments import Deployment

SHOWN_REQUESTS = 20
RECORD_COLUMNS = ("time", "request_id", "route", "status", "latency_ms", "prediction", "error")
SECRET_PLACEHOLDER = "$JUPYTER_SERVE_SECRET"
_PRE_STYLE = (
    "margin:2px 0;padding:4px;white-space:pre-wrap;word-break:break-all;"
    "background:var(--jp-layout-color2, transparent);color:var(--jp-ui-font-color1, inherit)"
)


# Columns line up only in a monospace font; a style element is the one way to reach the Select.
_TABLE_STYLE = (
    "<style>.jupyter-serve-recent-requests select"
    "{font-family:var(--jp-code-font-family, monospace);font-size:11px}</style>"
)


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    if callable(item) and not isinstance(value, (list, dict, str)):
        with contextlib.suppress(TypeError, ValueError):
            value = item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _short(value: Any, width: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def row_record(row: Any, input_columns: list[str]) -> dict[str, Any]:
    """One captured row as plain values: ``input`` (column -> value) and the record fields."""
    record = {name: _plain(row[name]) for name in RECORD_COLUMNS if name in row}
    # The frame has one column per input column of ANY captured row, so a row lacks most of
    # another request's columns: those read as missing here, and are not part of its input.
    values = {column: _plain(row[column]) for column in input_columns}
    record["input"] = {column: value for column, value in values.items() if value is not None}
    return record


def _time_text(value: Any) -> str:
    strftime = getattr(value, "strftime", None)
    return strftime("%H:%M:%S") if callable(strftime) else str(value)


def row_label(record: dict[str, Any]) -> str:
    """How a captured row reads in the list: time, status, latency, answer, start of input."""
    answer = record.get("error") or record.get("prediction")
    first_input = next(iter(record["input"].values()), "")
    latency = record.get("latency_ms")
    latency_text = f"{latency:.1f} ms" if isinstance(latency, (int, float)) else "\u2013"
    return (
        f"{_time_text(record.get('time'))}  {record.get('status')}  {latency_text:>9}  "
        f"{_short(answer, 18)}  ← {_short(first_input, 40)}"
    )


def request_body(record: dict[str, Any]) -> str:
    """The JSON body that asks the model the same row again (``dataframe_split``)."""
    columns = list(record["input"])
    split = {"columns": columns, "data": [[record["input"][c] for c in columns]]}
    return json.dumps({"dataframe_split": split}, default=str)


class RecentRequests(widgets.VBox):  # type: ignore[misc]
    """The last `SHOWN_REQUESTS` captured rows of one deployment, newest first, and the
    details of the selected one. `show` may be called from the dashboard writer thread."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.heading = widgets.HTML()
        self.table = widgets.Select(options=[], rows=8, layout=widgets.Layout(width="600px"))
        self.table.add_class("jupyter-serve-recent-requests")
        self.detail = widgets.HTML()
        self._records: dict[str, dict[str, Any]] = {}
        self._selected: dict[str, Any] | None = None
        self._keys: list[str] = []
        self.table.observe(self._on_select, names="value")
        super().__init__([self.heading, self.table, self.detail])

    def show(self, frame: Any) -> None:
        """Show the newest rows of ``frame`` (captured traffic, input columns first); keeps the
        selected row selected while it is still listed, and its details shown after."""
        input_columns = [c for c in frame.columns if c not in RECORD_COLUMNS]
        rows_seen: dict[str, int] = {}
        keyed: list[tuple[str, dict[str, Any]]] = []
        for _, row in frame.tail(SHOWN_REQUESTS).iterrows():
            record = row_record(row, input_columns)
            request = f"{record.get('request_id')}@{record.get('time')}"
            rows_seen[request] = rows_seen.get(request, 0) + 1
            keyed.append((f"{request}#{rows_seen[request]}", record))
        records = dict(reversed(keyed))
        self.heading.value = (
            f"{_TABLE_STYLE}<b>Last requests</b> ({min(len(frame), SHOWN_REQUESTS)} of "
            f"{len(frame)} captured rows, newest first; select one for its input, answer and "
            "a <code>curl</code>)"
        )
        selected = self.table.value
        self._records = records
        if list(records) != self._keys:
            self._keys = list(records)
            self.table.options = [(row_label(record), key) for key, record in records.items()]
            self.table.value = selected if selected in records else None

    def _on_select(self, change: dict[str, Any]) -> None:
        record = self._records.get(change["new"]) if change["new"] is not None else None
        if record is None:
            if self._selected is None:
                self.detail.value = ""
            return
        self._selected = record
        self.detail.value = self.describe(record)

    def describe(self, record: dict[str, Any]) -> str:
        """The details of one captured row as HTML: input, answer, and a ready ``curl``."""
        d = self.deployment
        secret = SECRET_PLACEHOLDER if d.require_secret else None
        curl = curl_command(d.url, request_body(record), secret_placeholder=secret)
        answer = (
            f"error: {record['error']}"
            if record.get("error")
            else _pretty(record.get("prediction"))
        )
        facts = (
            f"request {html.escape(str(record.get('request_id')))} · "
            f"{html.escape(str(record.get('route')))} · HTTP {record.get('status')} · "
            f"{record.get('latency_ms')} ms · {html.escape(str(record.get('time')))}"
        )
        return (
            f"<div class='jupyter-serve-request-detail'>{facts}"
            f"<div><b>Input</b><pre style='{_PRE_STYLE}'>"
            f"{html.escape(_pretty(record['input']))}</pre></div>"
            f"<div><b>Answer</b><pre style='{_PRE_STYLE}'>{html.escape(answer)}</pre></div>"
            f"<div><b>Send it again</b><pre style='{_PRE_STYLE}'>{html.escape(curl)}</pre>"
            "</div></div>"
        )


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)
