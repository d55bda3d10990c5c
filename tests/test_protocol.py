"""The scoring protocol's pure functions on their own: content types, parsing, rendering, errors.

The answers expected here are MLflow 3.17.2's, observed on its live server; the differential
suite (tests/test_differential.py) checks the same against the real thing over HTTP.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from jupyter_serve.protocol import (
    PlainColumns,
    ScoringError,
    body_too_large_response,
    invoke,
    method_not_allowed_response,
    not_found_response,
    parse_invocation,
    ping_response,
    render_predictions,
    timeout_response,
    version_response,
)

UNSIGNED = SimpleNamespace(signature=None)
SPLIT_BODY = b'{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2.5], [3, 4]]}}'


def parse(body: bytes, content_type: str | None = "application/json") -> Any:
    return parse_invocation(body, content_type, UNSIGNED)


def refusal(body: bytes, content_type: str | None = "application/json") -> ScoringError:
    with pytest.raises(ScoringError) as caught:
        parse(body, content_type)
    return caught.value


def error_json(error: ScoringError) -> dict[str, Any]:
    response = error.to_response()
    assert response.content_type == "application/json"
    decoded: dict[str, Any] = json.loads(response.body)
    return decoded


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        "application/json; charset=Utf-8",
    ],
)
def test_json_content_types_that_mlflow_accepts(content_type: str) -> None:
    assert parse(SPLIT_BODY, content_type).rows == 2


@pytest.mark.parametrize(
    ("content_type", "words"),
    [
        ("application/json; charset=latin-1", "only supports UTF-8"),
        ("application/json; format=pandas-split", "Unrecognized content type parameters: format"),
        ("application/json;charset = utf-8", "Unrecognized content type parameters: charset "),
        ("text/plain", "'text/plain'"),
        ("Application/JSON", "application/vnd.apache.parquet"),
        ("text/plain; charset=latin-1", "only supports UTF-8"),
        (None, "no Content-Type header"),
    ],
)
def test_content_types_refused_with_415_json(content_type: str | None, words: str) -> None:
    error = refusal(SPLIT_BODY, content_type)
    assert error.status == 415
    assert words in error_json(error)["message"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{nope", "valid JSON"),
        (b"", "valid JSON"),
        (b'{"inputs": "\xff"}', "valid JSON"),
        (b"[1, 2]", "Received a list"),
        (b"3", "unexpected input type"),
        (b'{"foo": 1}', "exactly one of the input fields"),
        (b'{"inputs": [1], "instances": [1]}', "exactly one of the input fields"),
        (b'{"dataframe_split": [[1]]}', "must be a dictionary. Got list"),
        (b'{"dataframe_split": {"data": [[1]], "x": 1}}', "must have 'data' field"),
        (b'{"dataframe_split": {"columns": ["a"]}}', "must have 'data' field"),
        (b'{"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}}', "'split' format"),
        (b'{"dataframe_records": {"a": 1}}', "list of records. Got dictionary"),
    ],
)
def test_unreadable_json_bodies_are_400_bad_request(body: bytes, words: str) -> None:
    error = refusal(body)
    fields = error_json(error)
    assert (error.status, fields["error_code"]) == (400, "BAD_REQUEST")
    assert words in fields["message"]
    assert (fields["sqlstate"], fields["error_class"]) == ("KAM00", "INVALID_PARAMETER_VALUE")
    assert "stack_trace" not in fields


def test_split_builds_the_frame_pandas_builds() -> None:
    request = parse(SPLIT_BODY)
    expected = pd.DataFrame({"a": [1, 3], "b": [2.5, 4.0]})
    pd.testing.assert_frame_equal(request.data, expected)
    assert (request.rows, request.params, request.wrap_predictions) == (2, None, True)


def test_split_index_longer_than_one_row_is_broadcast_as_in_mlflow() -> None:
    body = b'{"dataframe_split": {"columns": ["a"], "data": [[1]], "index": [5, 6]}}'
    assert parse(body).data["a"].tolist() == [1, 1]


def test_records_and_params() -> None:
    request = parse(b'{"dataframe_records": [{"a": 1}, {"a": 2}], "params": {"k": 3}, "x": 0}')
    assert request.data["a"].tolist() == [1, 2]
    assert request.params == {"k": 3}


def test_params_that_are_not_a_dict_are_ignored_without_a_params_schema() -> None:
    assert parse(b'{"inputs": [1], "params": [1, 2]}').params is None


def test_instances_rows_become_columns() -> None:
    data = parse(b'{"instances": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]}').data
    assert set(data) == {"a", "b"}
    assert data["a"].tolist() == [1, 2]
    assert data["b"].tolist() == ["x", "y"]


def test_instances_with_columns_of_different_lengths_are_refused() -> None:
    error = refusal(b'{"instances": [{"a": 1, "b": 2}, {"a": 2}]}')
    assert "not the same" in error.message


def test_inputs_list_becomes_an_array() -> None:
    request = parse(b'{"inputs": [[1, 2], [3, 4]]}')
    assert isinstance(request.data, np.ndarray)
    assert request.data.shape == (2, 2)
    assert request.rows is None


@pytest.mark.parametrize("key", ["messages", "prompt", "input"])
def test_llm_payloads_are_passed_whole_and_not_wrapped(key: str) -> None:
    body = json.dumps({key: "hello", "temperature": 0.1}).encode()
    request = parse(body)
    assert request.data == {key: "hello", "temperature": 0.1}
    assert request.params == {}
    assert request.wrap_predictions is False


def test_csv_needs_a_header_and_reports_parse_failures_with_a_stack_trace() -> None:
    frame = parse(b"a,b\n1,2\n3,4\n", "text/csv").data
    assert frame.to_dict("list") == {"a": [1, 3], "b": [2, 4]}
    fields = error_json(refusal(b"", "text/csv"))
    assert fields["error_code"] == "BAD_REQUEST"
    assert "stack_trace" in fields


def test_csv_that_is_not_utf8_is_400_without_stack_trace() -> None:
    fields = error_json(refusal(b"a\n\xff\n", "text/csv"))
    assert fields["error_code"] == "BAD_REQUEST"
    assert "UTF-8" in fields["message"]
    assert "stack_trace" not in fields


def test_parquet_round_trip_and_garbage() -> None:
    frame = pd.DataFrame({"a": [1.5, 2.5], "t": ["x", "y"]})
    body = frame.to_parquet()
    parsed = parse(body, "application/vnd.apache.parquet").data
    assert parsed.to_dict("list") == frame.to_dict("list")
    fields = error_json(refusal(b"not parquet", "application/vnd.apache.parquet"))
    assert fields["error_code"] == "BAD_REQUEST"
    assert "stack_trace" in fields


def rendered(predictions: Any, *, wrap: bool = True) -> str:
    response = render_predictions(predictions, wrap=wrap)
    assert (response.status, response.content_type) == (200, "application/json")
    return response.body.decode()


@pytest.mark.parametrize(
    ("predictions", "body"),
    [
        (np.array(["spam", "ham"]), '{"predictions": ["spam", "ham"]}'),
        (np.array([[0.25, 0.75]]), '{"predictions": [[0.25, 0.75]]}'),
        (np.array([1, 2], dtype=np.int32), '{"predictions": [1, 2]}'),
        ([1, "a", None], '{"predictions": [1, "a", null]}'),
        (
            pd.DataFrame({"x": [1, 2], "y": ["a", "b"]}),
            '{"predictions": [{"x": 1, "y": "a"}, {"x": 2, "y": "b"}]}',
        ),
        (pd.Series([0.5], name="s"), '{"predictions": [{"s": 0.5}]}'),
        (pd.Series([7]), '{"predictions": [{"0": 7}]}'),
        ({"k": np.float32(0.5)}, '{"predictions": {"k": 0.5}}'),
        (np.int64(3), '{"predictions": 3}'),
        ("text", '{"predictions": "text"}'),
        (None, '{"predictions": null}'),
        (dt.datetime(2024, 5, 1, 12, 30), '{"predictions": "2024-05-01T12:30:00"}'),
        (b"\x00\x01", '{"predictions": "AAE=\\n"}'),
        (np.array([b"ab"]), '{"predictions": ["YWI=\\n"]}'),
        (
            [float("nan"), float("inf"), -float("inf")],
            '{"predictions": [NaN, Infinity, -Infinity]}',
        ),
    ],
)
def test_prediction_shapes(predictions: Any, body: str) -> None:
    assert rendered(predictions) == body


def test_unwrapped_predictions_for_llm_payloads() -> None:
    assert rendered({"choices": [1]}, wrap=False) == '{"choices": [1]}'


def test_nan_is_written_as_mlflow_writes_it_and_python_clients_read_it_back() -> None:
    decoded = json.loads(rendered(np.array([np.nan])))
    assert math.isnan(decoded["predictions"][0])


def test_unserializable_predictions_are_a_500_internal_error() -> None:
    with pytest.raises(ScoringError) as caught:
        render_predictions({"model": object()}, wrap=True)
    assert (caught.value.status, caught.value.error_code) == (500, "INTERNAL_ERROR")
    assert "cannot be written as JSON" in caught.value.message


def test_error_json_fields_in_mlflow_order() -> None:
    error = ScoringError(400, "BAD_REQUEST", "nope", stack_trace="Traceback ...")
    assert list(error_json(error)) == [
        "error_code",
        "message",
        "sqlstate",
        "error_class",
        "stack_trace",
    ]
    schema = ScoringError(
        400, "INVALID_PARAMETER_VALUE", "m", error_class="SCHEMA_ENFORCEMENT_FAILED"
    )
    assert error_json(schema)["sqlstate"] == "KAM01"


def test_fixed_answers() -> None:
    assert ping_response().body == b"\n"
    assert ping_response().content_type == "application/json"
    assert version_response().status == 200
    assert json.loads(not_found_response().body) == {"detail": "Not Found"}
    not_allowed = method_not_allowed_response(["GET"])
    assert (not_allowed.status, not_allowed.headers) == (405, (("Allow", "GET"),))
    timeout = timeout_response(2.5)
    assert timeout.status == 504
    assert "2.5 seconds" in json.loads(timeout.body)["message"]
    too_large = body_too_large_response(1024)
    assert too_large.status == 413
    assert "1024 bytes" in json.loads(too_large.body)["message"]


# --- with real models and signatures (jupyter_serve.models) ---------------------------------


class EchoModel:
    """Returns its input frame's first column, so a test sees exactly what the model got."""

    def predict(self, frame: pd.DataFrame) -> Any:
        return frame.iloc[:, 0].to_numpy()


class FailingModel:
    def predict(self, frame: pd.DataFrame) -> Any:
        raise ValueError("the model cannot score this")


def columns_signature(**types: str) -> Any:
    from jupyter_serve.models import ColSpec, DataType, ModelSignature, Schema

    return ModelSignature(inputs=Schema([ColSpec(DataType(t), name) for name, t in types.items()]))


@pytest.fixture(scope="module")
def echo() -> Any:
    from jupyter_serve.models import from_object

    return from_object(EchoModel(), signature=columns_signature(a="double", b="long", t="string"))


def general_path_frame(split: dict[str, Any], model: Any) -> pd.DataFrame:
    """The frame as MLflow builds it: pandas from the split, then the schema cast."""
    from jupyter_serve.protocol._frames import cast_to_schema
    from jupyter_serve.protocol._signature_view import signature_view

    frame = pd.DataFrame(columns=split.get("columns"), data=split["data"])
    return cast_to_schema(frame, signature_view(model))


@pytest.mark.parametrize(
    "split",
    [
        {"columns": ["a", "b", "t"], "data": [[1, 2, "x"]]},
        {"columns": ["a", "b", "t"], "data": [[1.5, 2, "x"], [2, -3, "y"]]},
        {"columns": ["t", "a"], "data": [["x", 0.1]]},
        {"columns": ["a"], "data": [[1], [2.25], [float("nan")]]},
        {"columns": ["a", "b", "t"], "data": [["1", 2, "x"]]},
        {"columns": ["a", "b", "t"], "data": [[True, 2, "x"]]},
        {"columns": ["a", "b", "t"], "data": [[1, 2.0, "x"]]},
        {"columns": ["a", "b", "t"], "data": [[1, 2, None]]},
        {"columns": ["a", "b", "t"], "data": [[1, 2, 3]]},
        {"columns": ["a", "b", "t", "extra"], "data": [[1, 2, "x", 4]]},
    ],
)
def test_split_fast_path_builds_the_frame_of_the_general_path(split: Any, echo: Any) -> None:
    body = json.dumps({"dataframe_split": split}).encode()
    parsed = parse_invocation(body, "application/json", echo).data
    expected = general_path_frame(split, echo)
    pd.testing.assert_frame_equal(parsed, expected)
    assert parsed.columns.dtype == expected.columns.dtype


def test_plain_columns_of_several_requests_build_their_stacked_frames(echo: Any) -> None:
    splits = [
        {"columns": ["a", "b", "t"], "data": [[1, 2, "x"]]},
        {"columns": ["a", "b", "t"], "data": [[1.5, -3, "y"], [2, 4, "z"]]},
        {"columns": ["a", "b", "t"], "data": [[float("nan"), 0, ""]]},
    ]
    parts = [
        parse_invocation(
            json.dumps({"dataframe_split": split}).encode(),
            "application/json",
            echo,
            keep_plain_columns=True,
        ).data
        for split in splits
    ]
    assert all(isinstance(part, PlainColumns) for part in parts)
    expected = pd.concat([general_path_frame(split, echo) for split in splits], ignore_index=True)
    pd.testing.assert_frame_equal(PlainColumns.concat(parts).to_frame(), expected)


@pytest.fixture(scope="module")
def schemaless_echo() -> Any:
    from jupyter_serve.models import from_object

    return from_object(EchoModel())


@pytest.mark.parametrize(
    ("split", "kept_as_columns"),
    [
        ({"columns": ["t"], "data": [["x"], ["é"]]}, True),
        ({"columns": ["n"], "data": [[1], [-2]]}, True),
        ({"columns": ["x"], "data": [[1], [2.5]]}, True),
        ({"columns": ["t", "n", "x"], "data": [["a", 1, 0.5], ["b", 2, 3]]}, True),
        ({"columns": ["n"], "data": [[1], [2**63]]}, False),
        ({"columns": ["x"], "data": [[2**60], [0.5]]}, False),
        ({"columns": ["b"], "data": [[True], [False]]}, False),
        ({"columns": ["t"], "data": [["x"], [None]]}, False),
        ({"columns": ["m"], "data": [["x"], [1]]}, False),
        ({"columns": ["l"], "data": [[[1, 2]]]}, False),
    ],
)
def test_without_a_signature_plain_columns_build_the_frame_pandas_builds(
    split: Any, kept_as_columns: bool, schemaless_echo: Any
) -> None:
    body = json.dumps({"dataframe_split": split}).encode()
    kept = parse_invocation(body, "application/json", schemaless_echo, keep_plain_columns=True)
    assert isinstance(kept.data, PlainColumns) is kept_as_columns
    parsed = parse_invocation(body, "application/json", schemaless_echo).data
    pd.testing.assert_frame_equal(
        parsed, pd.DataFrame(columns=split["columns"], data=split["data"])
    )


@pytest.mark.parametrize("model_name", ["echo", "schemaless_echo"])
@pytest.mark.parametrize(
    ("records", "kept_as_columns"),
    [
        ([{"a": 1, "b": 2, "t": "x"}, {"a": 2.5, "b": -3, "t": "y"}], True),
        ([{"t": "x", "a": 0.5}], True),
        ([{"a": 1, "b": 2, "t": "x"}, {"b": 2, "a": 1, "t": "x"}], False),
        ([{"a": 1, "b": 2, "t": "x"}, {"a": 1, "b": 2}], False),
        ([{"a": 1, "b": 2, "t": None}], False),
        ([{"a": True, "b": 2, "t": "x"}], False),
        ([{}], False),
        ([[1, 2, "x"]], False),
    ],
)
def test_plain_records_build_the_frame_of_the_general_path(
    records: Any, kept_as_columns: bool, model_name: str, request: pytest.FixtureRequest
) -> None:
    from jupyter_serve.protocol._frames import frame_from_records
    from jupyter_serve.protocol._signature_view import signature_view

    model = request.getfixturevalue(model_name)
    body = json.dumps({"dataframe_records": records}).encode()
    kept = parse_invocation(body, "application/json", model, keep_plain_columns=True).data
    assert isinstance(kept, PlainColumns) is kept_as_columns
    if kept_as_columns:
        expected = frame_from_records(records, signature_view(model))
        pd.testing.assert_frame_equal(kept.to_frame(), expected)


class RowWiseEchoModel(EchoModel):
    row_wise = True


def test_without_a_signature_requests_merge_only_with_columns_of_their_dtypes() -> None:
    from jupyter_serve.models import from_object
    from jupyter_serve.server._batching import merge_key

    model = from_object(RowWiseEchoModel())

    def columns_of(split: dict[str, Any]) -> Any:
        body = json.dumps({"dataframe_split": split}).encode()
        return parse_invocation(body, "application/json", model, keep_plain_columns=True).data

    ints = columns_of({"columns": ["n"], "data": [[1]]})
    more_ints = columns_of({"columns": ["n"], "data": [[2], [3]]})
    floats = columns_of({"columns": ["n"], "data": [[2.5]]})
    key = merge_key(model, ints, None, True)
    assert key is not None
    assert key == merge_key(model, more_ints, None, True)
    assert key != merge_key(model, floats, None, True)
    stacked = PlainColumns.concat([ints, more_ints]).to_frame()
    pd.testing.assert_frame_equal(stacked, pd.DataFrame({"n": [1, 2, 3]}))


def test_a_split_with_params_is_never_kept_as_plain_columns(echo: Any) -> None:
    body = b'{"dataframe_split": {"columns": ["a", "b", "t"], "data": [[1, 2, "x"]]}, "params": {}}'
    data = parse_invocation(body, "application/json", echo, keep_plain_columns=True).data
    assert isinstance(data, pd.DataFrame)


def test_values_that_cannot_be_cast_to_the_schema_are_400_bad_request(echo: Any) -> None:
    body = b'{"dataframe_split": {"columns": ["a", "b", "t"], "data": [["x", 1, "t"]]}}'
    response = invoke(echo, body, "application/json")
    fields = json.loads(response.body)
    assert (response.status, fields["error_code"]) == (400, "BAD_REQUEST")
    assert "Failed to convert column a" in fields["message"]


def test_a_missing_column_is_400_invalid_parameter_value(echo: Any) -> None:
    response = invoke(echo, b'{"dataframe_records": [{"a": 1.0}]}', "application/json")
    fields = json.loads(response.body)
    assert (response.status, fields["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
    assert (fields["error_class"], fields["sqlstate"]) == ("SCHEMA_ENFORCEMENT_FAILED", "KAM01")
    assert "['b', 't']" in fields["message"]


def test_invoke_predicts_through_the_schema(echo: Any) -> None:
    body = b'{"dataframe_records": [{"a": 1, "b": 2, "t": "x"}, {"a": 2.5, "b": 3, "t": "y"}]}'
    response = invoke(echo, body, "application/json")
    assert (response.status, response.body) == (200, b'{"predictions": [1.0, 2.5]}')


def test_a_model_that_raises_is_400_bad_request_with_its_stack_trace() -> None:
    from jupyter_serve.models import from_object

    model = from_object(FailingModel(), signature=columns_signature(a="double"))
    response = invoke(model, b'{"inputs": {"a": [1.0]}}', "application/json")
    fields = json.loads(response.body)
    assert (response.status, fields["error_code"]) == (400, "BAD_REQUEST")
    assert "the model cannot score this" in fields["stack_trace"]


def test_invoke_answers_a_missing_content_type_with_415_json(echo: Any) -> None:
    response = invoke(echo, b'{"inputs": [1]}', None)
    assert response.status == 415
    assert "Content-Type" in json.loads(response.body)["message"]


def test_instances_lengths_are_checked_on_required_columns_only() -> None:
    from jupyter_serve.models import ColSpec, DataType, ModelSignature, Schema, from_object

    optional_b = ModelSignature(
        inputs=Schema([ColSpec(DataType.double, "a"), ColSpec(DataType.double, "b", False)])
    )
    model = from_object(EchoModel(), signature=optional_b)
    body = b'{"instances": [{"a": 1.0, "b": 2.0}, {"a": 3.0}]}'
    data = parse_invocation(body, "application/json", model).data
    assert (data["a"].tolist(), data["b"].tolist()) == ([1.0, 3.0], [2.0])
    both_required = from_object(EchoModel(), signature=columns_signature(a="double", b="double"))
    with pytest.raises(ScoringError, match="not the same"):
        parse_invocation(body, "application/json", both_required)


@pytest.mark.parametrize(
    ("body", "lone"),
    [
        (rb'["\ud800"]', True),
        (rb'["\uDC00 x"]', True),
        (rb'["\ud83d"]', True),  # a high half without its low half
        (rb'["\ude00\ud83d"]', True),  # the halves in the wrong order
        (b'["\xed\xa0\x80"]', True),  # surrogate bytes, which json.loads lets through
        ('["\\ud800"]'.encode("utf-16"), True),
        (rb'["\ud83d\ude00"]', False),  # a pair is one character
        (rb'["\\ud800"]', False),  # an escaped backslash, then text
        (rb'["\\\ud83d\ude00"]', False),
        (rb'["\u00e9", "plain"]', False),
        ("한국어".encode(), False),  # UTF-8 lead byte 0xED, no surrogate
        (b'["\xff', False),  # not text: the decoder refuses it
    ],
)
def test_lone_surrogates_are_found_exactly(body: bytes, lone: bool) -> None:
    from jupyter_serve.protocol._json_body import holds_lone_surrogates

    assert holds_lone_surrogates(body) is lone


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nests lists or objects deeper"),
        (b'{"a": ' * 100_000 + b"1" + b"}" * 100_000, "nests lists or objects deeper"),
        (b"[" + b"9" * 5_000 + b"]", "integer of more than 4300 digits"),
    ],
)
def test_json_beyond_the_decoders_limits_is_a_400_naming_the_limit(body: bytes, words: str) -> None:
    fields = error_json(refusal(body))
    assert fields["error_code"] == "BAD_REQUEST"
    assert words in fields["message"]
    assert "set_int_max_str_digits" not in fields["message"]  # the server's knob, not the client's
