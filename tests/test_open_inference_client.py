"""A real Open Inference Protocol client (tritonclient) against real deployments.

The spam pipeline is registered and served by name (``jupyter_serve.serve``), a numeric
column model and a tensor model by `ScoringServer`; every V2 answer is compared with what the
MLflow route ``/invocations`` answers for the same rows.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
import tritonclient.http as triton
from sklearn.linear_model import LinearRegression, LogisticRegression
from tritonclient.utils import InferenceServerException

import jupyter_serve
from jupyter_serve.datasets import make_spam_emails, train_spam_classifier
from jupyter_serve.models import from_object
from jupyter_serve.server import ScoringServer, ServerOptions

COLUMNS = ["a", "b", "c"]


@pytest.fixture(scope="module")
def emails() -> pd.DataFrame:
    return make_spam_emails(60, seed=3)


@pytest.fixture(scope="module")
def spam_url(tmp_path_factory: pytest.TempPathFactory, emails: pd.DataFrame) -> Iterator[str]:
    registry = tmp_path_factory.mktemp("registry")
    previous = os.environ.get("JUPYTER_SERVE_REGISTRY")
    os.environ["JUPYTER_SERVE_REGISTRY"] = str(registry)
    try:
        jupyter_serve.register_model(
            train_spam_classifier(),
            "spam",
            stage="Production",
            input_example=emails[["text"]].head(3),
        )
        deployment = jupyter_serve.serve("models:/spam/Production", name="spam", port=0)
    finally:
        if previous is None:
            os.environ.pop("JUPYTER_SERVE_REGISTRY", None)
        else:
            os.environ["JUPYTER_SERVE_REGISTRY"] = previous
    yield deployment.url
    deployment.stop()


@pytest.fixture(scope="module")
def numeric_frame() -> pd.DataFrame:
    generator = np.random.default_rng(5)
    return pd.DataFrame(np.round(generator.normal(size=(120, 3)), 4), columns=COLUMNS)


@pytest.fixture(scope="module")
def numeric_url(numeric_frame: pd.DataFrame) -> Iterator[str]:
    labels = (numeric_frame["a"] - numeric_frame["c"] > 0).astype(int)
    model = from_object(
        LogisticRegression().fit(numeric_frame, labels), input_example=numeric_frame.head(3)
    )
    server = ScoringServer(model, ServerOptions(port=0), model_uri="models:/numeric/2", version="2")
    server.start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def tensor_url(numeric_frame: pd.DataFrame) -> Iterator[str]:
    features = numeric_frame.to_numpy()
    target = features @ np.array([1.5, -2.0, 0.25]) + 0.5
    model = from_object(LinearRegression().fit(features, target), input_example=features[:3])
    server = ScoringServer(model, ServerOptions(port=0), model_uri=str(Path("/models/tensor")))
    server.start()
    yield server.url
    server.stop()


def _client(url: str) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url.removeprefix("http://"))


def _invocations(url: str, body: dict[str, Any]) -> Any:
    answer = requests.post(url + "/invocations", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["predictions"]


def _json_input(name: str, values: np.ndarray[Any, Any], datatype: str) -> triton.InferInput:
    tensor = triton.InferInput(name, list(values.shape), datatype)
    tensor.set_data_from_numpy(values, binary_data=False)
    return tensor


def _json_output(name: str) -> triton.InferRequestedOutput:
    return triton.InferRequestedOutput(name, binary_data=False)


def test_health_metadata_and_readiness_through_the_client(spam_url: str) -> None:
    client = _client(spam_url)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("spam")
    assert client.is_model_ready("spam", "1")
    assert not client.is_model_ready("spam", "7")
    assert not client.is_model_ready("ham")
    assert client.get_server_metadata()["name"] == "jupyter-serve"
    metadata = client.get_model_metadata("spam")
    assert metadata["name"] == "spam"
    assert metadata["versions"] == ["1"]
    assert metadata["platform"] == "mlflow-sklearn"
    assert metadata["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert metadata["outputs"] == [{"name": "output-1", "datatype": "BYTES", "shape": [-1]}]


def test_spam_predictions_equal_the_mlflow_route(spam_url: str, emails: pd.DataFrame) -> None:
    texts = emails["text"].tolist()[:25]
    expected = _invocations(
        spam_url, {"dataframe_split": {"columns": ["text"], "data": [[t] for t in texts]}}
    )
    result = _client(spam_url).infer(
        "spam",
        [_json_input("text", np.array(texts, dtype=object), "BYTES")],
        outputs=[_json_output("output-1")],
        request_id="batch-7",
    )
    response = result.get_response()
    assert response["model_name"] == "spam"
    assert response["model_version"] == "1"
    assert response["id"] == "batch-7"
    predicted = result.as_numpy("output-1")
    assert predicted.shape == (25,)
    assert [str(label) for label in predicted] == expected
    assert set(expected) == {"spam", "ham"}  # both classes really occur in this batch


def test_a_versioned_infer_answers_with_that_version(spam_url: str, emails: pd.DataFrame) -> None:
    text = emails["text"].iloc[0]
    result = _client(spam_url).infer(
        "spam",
        [_json_input("text", np.array([text], dtype=object), "BYTES")],
        model_version="1",
        outputs=[_json_output("output-1")],
    )
    assert result.get_response()["model_version"] == "1"
    assert result.as_numpy("output-1").tolist() == _invocations(
        spam_url, {"dataframe_records": [{"text": text}]}
    )


def _binary_input(name: str, values: np.ndarray[Any, Any], datatype: str) -> triton.InferInput:
    tensor = triton.InferInput(name, list(values.shape), datatype)
    tensor.set_data_from_numpy(values)  # the client's default: binary_data=True
    return tensor


def test_spam_with_the_clients_binary_defaults(spam_url: str, emails: pd.DataFrame) -> None:
    texts = emails["text"].tolist()[25:50]
    expected = _invocations(
        spam_url, {"dataframe_split": {"columns": ["text"], "data": [[t] for t in texts]}}
    )
    client = _client(spam_url)
    inputs = [_binary_input("text", np.array(texts, dtype=object), "BYTES")]
    every_output = client.infer("spam", inputs)  # no outputs: binary_data_output
    named_output = client.infer("spam", inputs, outputs=[triton.InferRequestedOutput("output-1")])
    for result in (every_output, named_output):
        assert result.get_output("output-1")["parameters"]["binary_data_size"] > 0
        predicted = result.as_numpy("output-1")
        assert predicted.shape == (25,)
        assert [label.decode("utf-8") for label in predicted] == expected
    assert set(expected) == {"spam", "ham"}
    assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]


def test_a_binary_request_that_does_not_add_up_is_refused_and_serving_goes_on(
    spam_url: str,
) -> None:
    tensor = triton.InferInput("text", [1], "BYTES")
    tensor.set_data_from_numpy(np.array(["win money"], dtype=object))
    tensor.set_shape([2])  # declares two elements, sends one
    with pytest.raises(InferenceServerException) as refused:
        _client(spam_url).infer("spam", [tensor])
    assert refused.value.status() == "400"
    assert "shape says 2" in refused.value.message()
    assert _client(spam_url).is_server_live()


def test_numeric_columns_with_the_clients_binary_defaults(
    numeric_url: str, numeric_frame: pd.DataFrame
) -> None:
    rows = numeric_frame.head(50)
    expected = _invocations(numeric_url, {"dataframe_split": rows.to_dict(orient="split")})
    integral_b = np.round(rows["b"] * 3).astype(np.int64)  # INT64, cast to the double column
    expected_int = _invocations(
        numeric_url, {"dataframe_split": rows.assign(b=integral_b).to_dict(orient="split")}
    )
    client = _client(numeric_url)
    result = client.infer(
        "numeric", [_binary_input(n, rows[n].to_numpy(), "FP64") for n in COLUMNS]
    )
    assert result.get_output("output-1")["datatype"] == "INT64"
    assert result.as_numpy("output-1").tolist() == expected
    mixed = [
        _binary_input("a", rows["a"].to_numpy(), "FP64"),
        _binary_input("b", integral_b.to_numpy(), "INT64"),
        _json_input("c", rows["c"].to_numpy(), "FP64"),  # JSON data beside binary inputs
    ]
    assert client.infer("numeric", mixed).as_numpy("output-1").tolist() == expected_int
    assert 0 < sum(expected) < len(expected)


class ProbabilityModel:
    """Serves a classifier's ``predict_proba`` as its predictions."""

    def __init__(self, classifier: LogisticRegression) -> None:
        self.classifier = classifier

    def predict(self, frame: pd.DataFrame) -> Any:
        return self.classifier.predict_proba(frame)


@pytest.fixture(scope="module")
def probability_url(numeric_frame: pd.DataFrame) -> Iterator[str]:
    labels = (numeric_frame["b"] > 0).astype(int)
    model = ProbabilityModel(LogisticRegression().fit(numeric_frame, labels))
    served = from_object(model, input_example=numeric_frame.head(3))
    server = ScoringServer(served, ServerOptions(port=0), model_uri="models:/proba/1", version="1")
    server.start()
    yield server.url
    server.stop()


def test_probabilities_as_binary_fp64(probability_url: str, numeric_frame: pd.DataFrame) -> None:
    rows = numeric_frame.tail(40)
    expected = _invocations(probability_url, {"dataframe_split": rows.to_dict(orient="split")})
    inputs = [_binary_input(n, rows[n].to_numpy(), "FP64") for n in COLUMNS]
    result = _client(probability_url).infer("proba", inputs)
    assert result.get_output("output-1")["datatype"] == "FP64"
    probabilities = result.as_numpy("output-1")
    assert probabilities.shape == (40, 2)
    assert probabilities.tolist() == expected  # raw float64 bytes: exactly the JSON values


def test_numeric_columns_as_separate_inputs(numeric_url: str, numeric_frame: pd.DataFrame) -> None:
    rows = numeric_frame.head(40)
    expected = _invocations(numeric_url, {"dataframe_split": rows.to_dict(orient="split")})
    inputs = [_json_input(name, rows[name].to_numpy(), "FP64") for name in COLUMNS]
    result = _client(numeric_url).infer("numeric", inputs, outputs=[_json_output("output-1")])
    assert result.get_output("output-1")["datatype"] == "INT64"
    assert result.as_numpy("output-1").tolist() == expected
    assert 0 < sum(expected) < len(expected)


def test_numeric_columns_as_one_matrix_in_signature_order(
    numeric_url: str, numeric_frame: pd.DataFrame
) -> None:
    rows = numeric_frame.tail(30)
    expected = _invocations(numeric_url, {"dataframe_split": rows.to_dict(orient="split")})
    client = _client(numeric_url)
    result = client.infer(
        "numeric",
        [_json_input("input-0", rows.to_numpy(), "FP64")],
        model_version="2",
        outputs=[_json_output("output-1")],
    )
    assert result.as_numpy("output-1").tolist() == expected
    metadata = client.get_model_metadata("numeric", "2")
    assert [spec["name"] for spec in metadata["inputs"]] == COLUMNS
    assert {spec["datatype"] for spec in metadata["inputs"]} == {"FP64"}


def test_tensor_model_round_trip(tensor_url: str, numeric_frame: pd.DataFrame) -> None:
    features = numeric_frame.to_numpy()[:17]
    expected = _invocations(tensor_url, {"inputs": features.tolist()})
    client = _client(tensor_url)
    metadata = client.get_model_metadata("tensor")
    assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 3]}]
    assert metadata["platform"] == "jupyter-serve"
    result = client.infer(
        "tensor",
        [_json_input("input-0", features, "FP64")],
        outputs=[_json_output("output-1")],
    )
    predicted = result.as_numpy("output-1")
    assert predicted.shape == (17,)
    assert predicted.tolist() == expected
    # FP32 data is cast to the signature's float64, as MLflow's tensor enforcement would
    # refuse otherwise: the schema decides, the client's datatype only carries the values.
    as_float32 = client.infer(
        "tensor",
        [_json_input("input-0", features.astype(np.float32), "FP32")],
        outputs=[_json_output("output-1")],
    )
    assert np.allclose(as_float32.as_numpy("output-1"), expected, rtol=1e-5, atol=1e-4)
