"""The Open Inference Protocol routes over raw HTTP: every refusal, answers of every output
kind, and V2 requests sharing the batcher and metrics with ``/invocations``."""

from __future__ import annotations

import json
import struct
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
from sklearn.linear_model import LogisticRegression

from jupyter_serve.models import from_object
from jupyter_serve.server import ScoringServer, ServerOptions

COLUMNS = ["a", "b", "c"]


class GatedClassifier(LogisticRegression):
    """Records the ``a`` values of each predict call; holds calls while ``gate`` is closed,
    and fails on purpose for rows whose ``a`` is exactly 999."""

    def __init__(self, C: float = 1.0) -> None:
        super().__init__(C=C)
        self.gate = threading.Event()
        self.gate.set()
        self.calls: list[list[float]] = []

    def predict(self, X: Any) -> Any:
        self.calls.append(X["a"].tolist())
        if not self.gate.wait(30):
            raise RuntimeError("the test never opened the gate")
        if (X["a"] == 999).any():
            raise ValueError("a = 999 is refused by this test model")
        return super().predict(X)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    generator = np.random.default_rng(9)
    return pd.DataFrame(np.round(generator.normal(size=(100, 3)), 4), columns=COLUMNS)


@pytest.fixture(scope="module")
def served(frame: pd.DataFrame) -> Iterator[tuple[ScoringServer, GatedClassifier]]:
    model = GatedClassifier().fit(frame, (frame["a"] + frame["b"] > 0).astype(int))
    options = ServerOptions(port=0, prediction_threads=1, model_name="gated")
    server = ScoringServer(
        from_object(model, input_example=frame.head(2)), options, model_uri="runs:/x/model"
    )
    server.start()
    yield server, model
    model.gate.set()
    server.stop()


@pytest.fixture
def url(served: tuple[ScoringServer, GatedClassifier]) -> str:
    return served[0].url


def _column_inputs(rows: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {"name": name, "shape": [len(rows)], "datatype": "FP64", "data": rows[name].tolist()}
        for name in COLUMNS
    ]


def _infer(url: str, body: Any, **kwargs: Any) -> requests.Response:
    return requests.post(url + "/v2/models/gated/infer", json=body, timeout=30, **kwargs)


def _error_of(answer: requests.Response, status: int) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"] == "application/json"
    payload = answer.json()
    assert list(payload) == ["error"]
    message: str = payload["error"]
    return message


def test_named_deployment_answers_under_its_name_only(url: str) -> None:
    assert requests.get(url + "/v2/models/gated/ready", timeout=10).status_code == 200
    message = _error_of(requests.get(url + "/v2/models/model", timeout=10), 404)
    assert "'model'" in message and "'gated'" in message
    # No registry version is known: a versioned route names no served model.
    message = _error_of(requests.get(url + "/v2/models/gated/versions/1/ready", timeout=10), 404)
    assert "no registry version" in message


def test_nested_data_and_the_id_are_accepted(url: str, frame: pd.DataFrame) -> None:
    rows = frame.head(4)
    body = {
        "id": "r-1",
        "inputs": [
            {"name": "input-0", "shape": [4, 3], "datatype": "FP64", "data": rows.values.tolist()}
        ],
    }
    answer = _infer(url, body)
    assert answer.status_code == 200, answer.text
    payload = answer.json()
    assert payload["id"] == "r-1" and payload["model_name"] == "gated"
    assert "model_version" not in payload
    expected = requests.post(
        url + "/invocations", json={"dataframe_split": rows.to_dict(orient="split")}, timeout=30
    ).json()["predictions"]
    assert payload["outputs"] == [
        {"name": "output-1", "datatype": "INT64", "shape": [4], "data": expected}
    ]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (
            {"inputs": [{"name": "a", "shape": [3], "datatype": "FP64", "data": [1.0, 2.0]}]},
            "shape [3] (3 elements) but its data holds 2",
        ),
        (
            {"inputs": [{"name": "a", "shape": [1], "datatype": "FLOAT", "data": [1.0]}]},
            "unknown datatype 'FLOAT'",
        ),
        (
            {"inputs": [{"name": "a", "shape": [1], "datatype": "INT8", "data": [300]}]},
            "outside the range of INT8",
        ),
        (
            {"inputs": [{"name": "a", "shape": [1], "datatype": "INT32", "data": [1.5]}]},
            "not integers",
        ),
        (
            {"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": ["x"]}]},
            "not numbers",
        ),
        (
            {"inputs": [{"name": "a", "shape": [1], "datatype": "BOOL", "data": [1]}]},
            "not booleans",
        ),
        (
            {"inputs": [{"name": "a", "shape": [-1], "datatype": "FP64", "data": [1.0]}]},
            "non-negative ints",
        ),
        ({"inputs": [{"name": "a", "datatype": "FP64", "data": [1.0]}]}, "no 'shape'"),
        ({"inputs": [{"shape": [1], "datatype": "FP64", "data": [1.0]}]}, "no 'name'"),
        (
            {
                "inputs": [
                    {"name": "a", "shape": [2, 2], "datatype": "FP64", "data": [[1, 2, 3], [4]]}
                ]
            },
            "nested data that is not shaped [2, 2]",
        ),
        ({"inputs": []}, "no inputs"),
        ({"outputs": []}, "no 'inputs' list"),
        ([1, 2], "JSON object"),
        (
            {"inputs": [{"name": "a", "shape": [1, 2], "datatype": "FP64", "data": [1.0, 2.0]}]},
            "feeds a column",
        ),
    ],
)
def test_malformed_requests_are_400_with_a_message(url: str, body: Any, words: str) -> None:
    assert words in _error_of(_infer(url, body), 400)


def test_missing_and_uncastable_columns_fail_schema_enforcement(
    url: str, frame: pd.DataFrame
) -> None:
    two_columns = _column_inputs(frame.head(2))[:2]
    assert "c" in _error_of(_infer(url, {"inputs": two_columns}), 400)
    texts = [*_column_inputs(frame.head(1))[:2]]
    texts.append({"name": "c", "shape": [1], "datatype": "BYTES", "data": ["not a number"]})
    assert "c" in _error_of(_infer(url, {"inputs": texts}), 400)


def _binary_infer(
    url: str, header: dict[str, Any], raw: bytes, header_length: str | None = None
) -> requests.Response:
    head = json.dumps(header).encode("utf-8")
    length = str(len(head)) if header_length is None else header_length
    return requests.post(
        url + "/v2/models/gated/infer",
        data=head + raw,
        headers={"Inference-Header-Content-Length": length},
        timeout=30,
    )


def _bytes_elements(*texts: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(text)) + text for text in texts)


def test_binary_inputs_and_outputs_give_the_json_answer(url: str, frame: pd.DataFrame) -> None:
    rows = frame.head(6)
    expected = _infer(url, {"inputs": _column_inputs(rows)}).json()["outputs"][0]["data"]
    a_binary = {"name": "a", "shape": [6], "datatype": "FP64"}
    a_binary["parameters"] = {"binary_data_size": 48}
    header = {
        "id": "bin-1",
        "inputs": [a_binary, *_column_inputs(rows)[1:]],  # one binary, two JSON inputs
        "parameters": {"binary_data_output": True},
    }
    answer = _binary_infer(url, header, rows["a"].to_numpy("<f8").tobytes())
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "application/octet-stream"
    length = int(answer.headers["Inference-Header-Content-Length"])
    head = json.loads(answer.content[:length])
    assert head["id"] == "bin-1"
    [output] = head["outputs"]
    assert "data" not in output
    assert output["datatype"] == "INT64" and output["shape"] == [6]
    assert output["parameters"] == {"binary_data_size": 48}
    assert np.frombuffer(answer.content[length:], "<i8").tolist() == expected
    # An output asking for JSON while the request asks for binary gets JSON: a JSON answer.
    json_output = {"name": "output-1", "parameters": {"binary_data": False}}
    plain = _binary_infer(url, {**header, "outputs": [json_output]}, rows["a"].to_numpy().tobytes())
    assert plain.headers["Content-Type"] == "application/json"
    assert "Inference-Header-Content-Length" not in plain.headers
    assert plain.json()["outputs"][0]["data"] == expected


def test_malformed_binary_requests_are_400_naming_the_mistake(
    url: str, frame: pd.DataFrame
) -> None:
    b, c = _column_inputs(frame.head(2))[1:]

    def fp64_a(size: Any, shape: list[int] | None = None) -> dict[str, Any]:
        return {
            "name": "a",
            "shape": shape or [2],
            "datatype": "FP64",
            "parameters": {"binary_data_size": size},
        }

    def text_c(size: int) -> dict[str, Any]:
        return {
            "name": "c",
            "shape": [2],
            "datatype": "BYTES",
            "parameters": {"binary_data_size": size},
        }

    two = np.array([0.5, -0.5]).tobytes()
    good = {"inputs": [fp64_a(16), b, c]}
    cases: list[tuple[requests.Response, str]] = [
        (_binary_infer(url, good, two, "abc"), "Inference-Header-Content-Length is 'abc'"),
        (_binary_infer(url, good, two, "0"), "Inference-Header-Content-Length is '0'"),
        (_binary_infer(url, good, two, "100000"), "(1 to"),
        (_binary_infer(url, good, two, "12"), "not valid JSON"),
        (_binary_infer(url, {"inputs": [fp64_a(8), b, c]}, two[:8]), "takes 16 bytes"),
        (_binary_infer(url, {"inputs": [fp64_a(16), b, c]}, two[:8]), "only 8 bytes"),
        (_binary_infer(url, good, two + b"\0"), "1 bytes of binary data after"),
        (_binary_infer(url, {"inputs": [fp64_a("16"), b, c]}, two), "binary_data_size '16'"),
        (
            _binary_infer(url, {"inputs": [{**fp64_a(16), "data": [1.0, 2.0]}, b, c]}, two),
            "both 'data' and",
        ),
        (_infer(url, {"inputs": [fp64_a(16), b, c]}), "no Inference-Header-Content-Length"),
        (
            _binary_infer(
                url,
                {"inputs": [fp64_a(16), b, text_c(9)]},
                two + _bytes_elements(b"ab") + b"\1\0\0",
            ),
            "ends inside an element's 4-byte length",
        ),
        (
            _binary_infer(
                url, {"inputs": [fp64_a(16), b, text_c(9)]}, two + struct.pack("<I", 50) + b"hello"
            ),
            "element of 50 bytes",
        ),
        (
            _binary_infer(
                url, {"inputs": [fp64_a(16), b, text_c(6)]}, two + _bytes_elements(b"ab")
            ),
            "1 elements in its binary data but its shape says 2",
        ),
        (
            _binary_infer(
                url,
                {"inputs": [fp64_a(16), b, text_c(12)]},
                two + _bytes_elements(b"ab", b"\xff\xfe"),
            ),
            "not UTF-8",
        ),
    ]
    for answer, expected in cases:
        assert expected in _error_of(answer, 400)
    assert _infer(url, {"inputs": _column_inputs(frame.head(2))}).status_code == 200


def test_other_refusals(url: str, frame: pd.DataFrame) -> None:
    inputs = _column_inputs(frame.head(1))
    unknown_output = _infer(url, {"inputs": inputs, "outputs": [{"name": "proba"}]})
    assert "'proba'" in _error_of(unknown_output, 400)
    not_json = requests.post(url + "/v2/models/gated/infer", data=b"{", timeout=10)
    assert "not valid JSON" in _error_of(not_json, 400)
    csv = requests.post(
        url + "/v2/models/gated/infer",
        data=b"a,b,c\n1,2,3\n",
        headers={"Content-Type": "text/csv"},
        timeout=10,
    )
    assert "application/json" in _error_of(csv, 415)
    wrong_verb = requests.get(url + "/v2/models/gated/infer", timeout=10)
    assert _error_of(wrong_verb, 405) and wrong_verb.headers["Allow"] == "POST"
    assert "/v2/models/gated/explain" in _error_of(
        requests.post(url + "/v2/models/gated/explain", json={}, timeout=10), 404
    )
    assert _error_of(requests.post(url + "/v2/models/other/infer", json={}, timeout=10), 404)


def test_a_failing_model_is_a_400_and_the_server_keeps_serving(
    url: str, frame: pd.DataFrame
) -> None:
    rows = frame.head(2).copy()
    rows.loc[rows.index[0], "a"] = 999
    assert "unexpected error while evaluating the model" in _error_of(
        _infer(url, {"inputs": _column_inputs(rows)}), 400
    )
    assert requests.get(url + "/v2/health/ready", timeout=10).json() == {"ready": True}
    assert _infer(url, {"inputs": _column_inputs(frame.head(2))}).status_code == 200


def _wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.01)


def test_v2_and_mlflow_requests_merge_yet_each_gets_its_own_answer(
    served: tuple[ScoringServer, GatedClassifier], frame: pd.DataFrame
) -> None:
    server, model = served
    url = server.url
    expected = model.predict(frame).tolist()
    before = server.metrics.snapshot()["requests"]
    model.gate.clear()
    model.calls.clear()
    chunks = [frame.iloc[start : start + 5] for start in range(0, 60, 5)]

    def send(index: int) -> list[int]:
        rows = chunks[index]
        if index % 2:
            answer = _infer(url, {"inputs": _column_inputs(rows), "id": str(index)})
            assert answer.status_code == 200, answer.text
            assert answer.json()["id"] == str(index)
            predictions: list[int] = answer.json()["outputs"][0]["data"]
            return predictions
        mlflow = requests.post(
            url + "/invocations",
            json={"dataframe_split": rows.to_dict(orient="split")},
            timeout=30,
        )
        assert mlflow.status_code == 200, mlflow.text
        return list(mlflow.json()["predictions"])

    with ThreadPoolExecutor(len(chunks)) as pool:
        first = pool.submit(send, 0)
        _wait_for(lambda: len(model.calls) == 1, "the first request holds the model")
        others = [pool.submit(send, index) for index in range(1, len(chunks))]
        _wait_for(
            lambda: server.metrics.snapshot()["queued"] == len(chunks) - 1,
            "every other request waits in the queue",
        )
        model.gate.set()
        answers = [first.result(), *(future.result() for future in others)]
    for index, answer in enumerate(answers):
        assert answer == expected[index * 5 : index * 5 + 5], f"request {index}"
    # The eleven queued V2 and MLflow requests shared one predict call.
    assert [len(call) for call in model.calls] == [5, 55]
    _wait_for(
        lambda: server.metrics.snapshot()["requests"] >= before + len(chunks),
        "the metrics count every request of both protocols",
    )


def test_a_swap_changes_the_version_clients_see(frame: pd.DataFrame) -> None:
    labels = (frame["a"] > 0).astype(int)
    first = from_object(LogisticRegression().fit(frame, labels), input_example=frame.head(2))
    second = from_object(LogisticRegression().fit(frame, 1 - labels), input_example=frame.head(2))
    server = ScoringServer(first, ServerOptions(port=0), model_uri="models:/flip/1", version="1")
    server.start()
    try:
        rows = frame.head(6)
        body = {"inputs": _column_inputs(rows)}
        before = requests.post(
            server.url + "/v2/models/flip/versions/1/infer", json=body, timeout=30
        )
        assert before.json()["outputs"][0]["data"] == first.predict(rows).tolist()
        server.swap_model(second, model_uri="models:/flip/2", version="2")
        after = requests.post(server.url + "/v2/models/flip/infer", json=body, timeout=30)
        assert after.json()["model_version"] == "2"
        assert after.json()["outputs"][0]["data"] == second.predict(rows).tolist()
        old = requests.post(server.url + "/v2/models/flip/versions/1/infer", json=body, timeout=30)
        assert "version 2" in _error_of(old, 404)
        metadata = requests.get(server.url + "/v2/models/flip", timeout=10).json()
        assert metadata["versions"] == ["2"]
    finally:
        server.stop()


def test_refusals_of_the_shared_handler_base_are_v2_errors(frame: pd.DataFrame) -> None:
    model = from_object(LogisticRegression().fit(frame, (frame["a"] > 0).astype(int)))
    options = ServerOptions(port=0, max_body_bytes=200, secret="s3", require_secret=True)
    server = ScoringServer(model, options, model_uri="models:/guarded/1", version="1")
    server.start()
    try:
        infer = server.url + "/v2/models/guarded/infer"
        body = {"inputs": _column_inputs(frame.head(20))}
        assert "secret" in _error_of(requests.post(infer, json=body, timeout=10), 403)
        too_large = requests.post(
            infer, json=body, headers={"X-Jupyter-Serve-Secret": "s3"}, timeout=10
        )
        assert "200 bytes" in _error_of(too_large, 413)
        ready = requests.get(
            server.url + "/v2/models/guarded/ready",
            headers={"X-Jupyter-Serve-Secret": "s3"},
            timeout=10,
        )
        assert ready.status_code == 200
    finally:
        server.stop()
