"""The requests the differential suite sends to both servers, one named case each.

A case names the model directory it targets (see build_models.py), the HTTP method and path,
the body and its Content-Type (None: no header at all), and what we expect of the comparison:
``SAME`` (status, error_code, predictions equal) or one of our documented bug fixes.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

SAME = "same"
FIX_MISSING_CONTENT_TYPE = "missing content type: MLflow 500, ours 415 with the error JSON"
FIX_415_JSON = "415: MLflow plain text, ours the error JSON"
OUR_VERSION = "/version: MLflow answers its version, ours jupyter-serve's"
FIX_CLIENT_FAULT = "a client fault: MLflow 500 in plain text, ours 400 with the error JSON"

JSON = "application/json"
CSV = "text/csv"
PARQUET = "application/vnd.apache.parquet"


@dataclass(frozen=True)
class Case:
    name: str
    model: str
    body: bytes = b""
    content_type: str | None = JSON
    method: str = "POST"
    path: str = "/invocations"
    expect: str = SAME

    @property
    def id(self) -> str:
        return f"{self.model}-{self.name}"


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


TEXTS = ["win a free prize now", "lunch tomorrow at noon", "claim free cash"]


def text_cases(model: str) -> list[Case]:
    rows = [[t] for t in TEXTS]
    return [
        Case("split", model, _json({"dataframe_split": {"columns": ["text"], "data": rows}})),
        Case(
            "split-one-row",
            model,
            _json({"dataframe_split": {"columns": ["text"], "data": rows[:1]}}),
        ),
        Case(
            "split-index",
            model,
            _json({"dataframe_split": {"columns": ["text"], "data": rows[:2], "index": [7, 9]}}),
        ),
        Case("records", model, _json({"dataframe_records": [{"text": t} for t in TEXTS]})),
        Case("instances-strings", model, _json({"instances": TEXTS})),
        Case("instances-dicts", model, _json({"instances": [{"text": t} for t in TEXTS]})),
        Case("inputs-list", model, _json({"inputs": TEXTS})),
        Case("inputs-dict", model, _json({"inputs": {"text": TEXTS}})),
        Case("inputs-scalar", model, _json({"inputs": "free prize"})),
        Case(
            "number-in-text-column",
            model,
            _json({"dataframe_split": {"columns": ["text"], "data": [[5]]}}),
        ),
        Case(
            "null-text", model, _json({"dataframe_split": {"columns": ["text"], "data": [[None]]}})
        ),
        Case("extra-column", model, _json({"dataframe_records": [{"text": "free", "other": 1}]})),
        Case("missing-column", model, _json({"dataframe_records": [{"body": "free"}]})),
        Case("csv", model, b"text\nwin a free prize now\nsee you at lunch\n", CSV),
        Case("csv-charset", model, b"text\nfree cash\n", "text/csv; charset=utf-8"),
        Case("csv-missing-column", model, b"body\nfree cash\n", CSV),
        Case("parquet", model, _parquet(pd.DataFrame({"text": TEXTS})), PARQUET),
        Case(
            "unicode",
            model,
            _json({"dataframe_split": {"columns": ["text"], "data": [["gratis ganar € ñ"]]}}),
        ),
        Case("llm-messages", model, _json({"messages": [{"role": "user", "content": "hi"}]})),
    ]


NUMERIC_ROWS = [[0.5, -1.0, 2.0], [1.5, 0.25, -0.75], [-2.0, 1.0, 0.0]]


def _split(data: Any, columns: list[str] | None = None, **extra: Any) -> bytes:
    split: dict[str, Any] = {"columns": columns or ["a", "b", "c"], "data": data, **extra}
    return _json({"dataframe_split": split})


def numeric_cases(model: str) -> list[Case]:
    records = [dict(zip("abc", row, strict=True)) for row in NUMERIC_ROWS]
    return [
        Case("split", model, _split(NUMERIC_ROWS)),
        Case("split-one-row", model, _split(NUMERIC_ROWS[:1])),
        Case("split-ints", model, _split([[1, 2, 3]])),
        Case("split-numeric-strings", model, _split([["1.5", 2, 3]])),
        Case("split-bools", model, _split([[True, False, 1]])),
        Case("split-column-order", model, _split([[2.0, 0.5, -1.0]], ["c", "a", "b"])),
        Case("split-no-columns", model, _json({"dataframe_split": {"data": NUMERIC_ROWS}})),
        Case("split-index-mismatch", model, _split(NUMERIC_ROWS[:1], index=[1, 2])),
        Case("split-index-too-short", model, _split(NUMERIC_ROWS, index=[1])),
        Case("split-ragged", model, _split([[1.0, 2.0], [1.0, 2.0, 3.0]])),
        Case("split-extra-key", model, _split(NUMERIC_ROWS, orient="split")),
        Case("split-not-a-dict", model, _json({"dataframe_split": NUMERIC_ROWS})),
        Case("split-uncastable", model, _split([["abc", 1.0, 2.0]])),
        Case("split-extra-column", model, _split([[1.0, 2.0, 3.0, 4.0]], ["a", "b", "c", "d"])),
        Case("split-missing-column", model, _split([[1.0, 2.0]], ["a", "b"])),
        Case(
            "split-nan-model-raises",
            model,
            b'{"dataframe_split": {"columns": ["a","b","c"], "data": [[NaN, 1, 2]]}}',
        ),
        Case("split-null-model-raises", model, _split([[None, 1.0, 2.0]])),
        Case("records", model, _json({"dataframe_records": records})),
        Case("records-empty", model, _json({"dataframe_records": []})),
        Case("records-not-a-list", model, _json({"dataframe_records": records[0]})),
        Case("records-missing-key", model, _json({"dataframe_records": [{"a": 1.0, "b": 2.0}]})),
        Case("instances-dicts", model, _json({"instances": records})),
        Case("instances-lists", model, _json({"instances": NUMERIC_ROWS})),
        Case(
            "instances-ragged-columns",
            model,
            _json({"instances": [{"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 1.0}]}),
        ),
        Case(
            "inputs-dict",
            model,
            _json({"inputs": {"a": [0.5, 1.5], "b": [-1.0, 0.25], "c": [2.0, -0.75]}}),
        ),
        Case(
            "inputs-dict-uncastable", model, _json({"inputs": {"a": ["x"], "b": [1.0], "c": [2.0]}})
        ),
        Case("inputs-records", model, _json({"inputs": records})),
        Case("inputs-lists", model, _json({"inputs": NUMERIC_ROWS})),
        Case("inputs-scalar", model, _json({"inputs": 5})),
        Case(
            "params-ignored-or-checked",
            model,
            _json({"dataframe_records": records, "params": {"scale": 2.0}}),
        ),
        Case(
            "params-wrong-type",
            model,
            _json({"dataframe_records": records, "params": {"scale": "big"}}),
        ),
        Case("params-unknown", model, _json({"dataframe_records": records, "params": {"nope": 1}})),
        Case("params-not-a-dict", model, _json({"dataframe_records": records, "params": [1, 2]})),
        Case(
            "unknown-top-level-key-ignored", model, _json({"dataframe_records": records, "meta": 1})
        ),
        Case("zero-input-keys", model, _json({"data": NUMERIC_ROWS})),
        Case("two-input-keys", model, _json({"inputs": NUMERIC_ROWS, "instances": NUMERIC_ROWS})),
        Case("top-level-list", model, _json(NUMERIC_ROWS)),
        Case("top-level-scalar", model, b"42"),
        Case("bad-json", model, b'{"dataframe_split": '),
        Case("bad-utf8", model, b'{"inputs": "\xff\xfe"}'),
        Case("empty-body", model, b""),
        Case("csv", model, b"a,b,c\n0.5,-1,2\n1.5,0.25,-0.75\n", CSV),
        Case("csv-uncastable", model, b"a,b,c\nx,1,2\n", CSV),
        Case("csv-empty", model, b"", CSV),
        Case("csv-header-only", model, b"a,b,c\n", CSV),
        Case("csv-bad-utf8", model, b"a,b,c\n\xff,1,2\n", CSV),
        Case(
            "parquet", model, _parquet(pd.DataFrame(NUMERIC_ROWS, columns=["a", "b", "c"])), PARQUET
        ),
        Case("parquet-garbage", model, b"PAR1 not really", PARQUET),
        Case("charset-utf8-upper", model, _split(NUMERIC_ROWS), "application/json; charset=UTF-8"),
        Case("charset-no-space", model, _split(NUMERIC_ROWS), "application/json;charset=utf-8"),
        Case(
            "charset-latin1",
            model,
            _split(NUMERIC_ROWS),
            "application/json; charset=latin-1",
            expect=FIX_415_JSON,
        ),
        Case(
            "format-parameter",
            model,
            _split(NUMERIC_ROWS),
            "application/json; format=pandas-split",
            expect=FIX_415_JSON,
        ),
        Case(
            "charset-spaced",
            model,
            _split(NUMERIC_ROWS),
            "application/json; charset = utf-8",
            expect=FIX_415_JSON,
        ),
        Case("unknown-media-type", model, _split(NUMERIC_ROWS), "text/plain", expect=FIX_415_JSON),
        Case(
            "upper-case-media-type",
            model,
            _split(NUMERIC_ROWS),
            "Application/JSON",
            expect=FIX_415_JSON,
        ),
        Case("no-content-type", model, _split(NUMERIC_ROWS), None, expect=FIX_MISSING_CONTENT_TYPE),
    ]


def tensor_cases(model: str) -> list[Case]:
    """Shapes and types against a tensor signature (float64, shape [-1, 3])."""
    return [
        Case("tensor-inputs-1d", model, _json({"inputs": [1.0, 2.0, 3.0]})),
        Case("tensor-inputs-wrong-width", model, _json({"inputs": [[1.0, 2.0]]})),
        Case("tensor-instances-wrong-width", model, _json({"instances": [[1.0, 2.0]]})),
        Case("tensor-inputs-ints", model, _json({"inputs": [[1, 2, 3]]})),
        Case("tensor-inputs-numeric-strings", model, _json({"inputs": [["1", "2", "3"]]})),
        Case("tensor-inputs-uncastable", model, _json({"inputs": [["x", "2", "3"]]})),
        Case("tensor-split-other-names", model, _split([[1, 2, 3]], ["x", "y", "z"])),
        Case(
            "tensor-split-four-columns", model, _json({"dataframe_split": {"data": [[1, 2, 3, 4]]}})
        ),
    ]


DEEP_LIST = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a": ' * 100_000 + b"1" + b"}" * 100_000
INT_5000_DIGITS = b"7" * 5_000  # over Python's int-string conversion limit (4,300 digits)
INT_4000_DIGITS = b"7" * 4_000


def client_fault_cases(model: str, column: str, value: bytes) -> list[Case]:
    """Bodies a client gets wrong in ways JSON decoders and pandas trip over; ``value`` is a
    valid JSON value for the model's one ``column`` (the others, if any, are 1 and 2)."""
    numeric = column == "a"
    columns = b'["a", "b", "c"]' if numeric else b'["text"]'

    def split(cell: bytes, extra: bytes = b"") -> bytes:
        row = b"[%s, 1, 2]" % cell if numeric else b"[%s]" % cell
        return b'{"dataframe_split": {"columns": %s, "data": [%s]}%s}' % (columns, row, extra)

    def records(cell: bytes) -> bytes:
        other = b', "b": 1, "c": 2' if numeric else b""
        return b'{"dataframe_records": [{"%s": %s%s}]}' % (column.encode(), cell, other)

    def inputs(cell: bytes) -> bytes:
        other = b', "b": [1], "c": [2]' if numeric else b""
        return b'{"inputs": {"%s": [%s]%s}}' % (column.encode(), cell, other)

    header = b"a,b,c" if numeric else b"text"
    tail = b",1,2" if numeric else b""
    return [
        Case("lone-surrogate-escape", model, split(rb'"\ud800"')),
        Case("lone-low-surrogate-in-records", model, records(rb'"free \udc00"')),
        Case(
            "surrogate-bytes",
            model,
            split(b'"\xed\xa0\x80"'),  # UTF-8 has no surrogates; json.loads lets them through
        ),
        Case("lone-surrogate-in-inputs", model, inputs(rb'"\ud800"')),
        Case("lone-surrogate-in-params", model, split(value, b', "params": {"mode": "\\ud800"}')),
        Case("surrogate-pair", model, split(rb'"\ud83d\ude00 free"')),
        Case("escaped-backslash-u", model, split(rb'"\\ud800 free"')),
        Case("int-4000-digits", model, split(INT_4000_DIGITS)),
        Case("int-4000-digits-in-inputs", model, inputs(INT_4000_DIGITS)),
        Case("float-beyond-double", model, split(b"1e400")),
        Case("infinity-in-params", model, split(value, b', "params": {"scale": Infinity}')),
        Case(
            "duplicate-keys",
            model,
            b'{"dataframe_split": "the last one wins", ' + split(value)[1:],
        ),
        Case("csv-int-5000-digits", model, header + b"\n" + INT_5000_DIGITS + tail + b"\n", CSV),
        Case("deep-top-level-list", model, DEEP_LIST, expect=FIX_CLIENT_FAULT),
        Case("deep-top-level-object", model, DEEP_OBJECT, expect=FIX_CLIENT_FAULT),
        Case("deep-in-data", model, split(DEEP_LIST), expect=FIX_CLIENT_FAULT),
        Case(
            "deep-in-records",
            model,
            b'{"dataframe_records": [%s]}' % DEEP_OBJECT,
            expect=FIX_CLIENT_FAULT,
        ),
        Case(
            "deep-in-params",
            model,
            split(value, b', "params": ' + DEEP_OBJECT),
            expect=FIX_CLIENT_FAULT,
        ),
        Case("deep-in-inputs", model, b'{"inputs": %s}' % DEEP_LIST, expect=FIX_CLIENT_FAULT),
        Case("int-5000-digits", model, split(INT_5000_DIGITS), expect=FIX_CLIENT_FAULT),
        Case(
            "int-5000-digits-in-params",
            model,
            split(value, b', "params": {"scale": %s}' % INT_5000_DIGITS),
            expect=FIX_CLIENT_FAULT,
        ),
        Case("int-5000-digits-in-inputs", model, inputs(INT_5000_DIGITS), expect=FIX_CLIENT_FAULT),
    ]


def route_cases(model: str) -> list[Case]:
    return [
        Case("ping", model, method="GET", path="/ping", content_type=None),
        Case("health", model, method="GET", path="/health", content_type=None),
        Case(
            "version", model, method="GET", path="/version", content_type=None, expect=OUR_VERSION
        ),
        Case("unknown-path", model, method="GET", path="/nope", content_type=None),
        Case("unknown-path-post", model, method="POST", path="/predict", body=b"{}"),
        Case("get-invocations", model, method="GET", path="/invocations", content_type=None),
        Case("post-ping", model, method="POST", path="/ping", body=b"{}"),
        Case("put-invocations", model, method="PUT", path="/invocations", body=b"{}"),
    ]


CASES: list[Case] = [
    *text_cases("text_skops"),
    *text_cases("text_cloudpickle"),
    *numeric_cases("classifier"),
    *numeric_cases("regressor"),
    *numeric_cases("regressor_unsigned"),
    *numeric_cases("classifier_proba"),
    *numeric_cases("regressor_tensor"),
    *tensor_cases("regressor_tensor"),
    *route_cases("classifier"),
    *client_fault_cases("classifier", "a", b"0.5"),
    *client_fault_cases("regressor", "a", b"0.5"),
    *client_fault_cases("text_skops", "text", b'"free cash"'),
]
MODELS = sorted({case.model for case in CASES})
