"""Captured traffic: ``deployment.requests`` holds the most recent scored rows, with their
inputs as the model saw them, predictions, statuses and request ids; errors too; only the
newest N; /v2 infer as well; and with ``workers=2`` the rows of both workers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
from sklearn.linear_model import LogisticRegression

import jupyter_serve
from jupyter_serve.datasets import make_spam_emails, train_spam_classifier


@pytest.fixture(scope="module")
def spam() -> Any:
    return train_spam_classifier()


@pytest.fixture
def stop_all() -> Iterator[None]:
    yield
    jupyter_serve.stop(all=True)


def post_email(url: str, text: str, request_id: str) -> requests.Response:
    return requests.post(
        url + "/invocations",
        json={"dataframe_split": {"columns": ["text"], "data": [[text]]}},
        headers={"X-Request-ID": request_id},
        timeout=60,
    )


def test_fifty_known_emails_are_the_fifty_captured_rows(spam: Any, stop_all: None) -> None:
    emails = make_spam_emails(50, seed=11)["text"].tolist()
    deployment = jupyter_serve.serve(spam, name="spam")
    for index, text in enumerate(emails):
        assert post_email(deployment.url, text, f"mail-{index}").status_code == 200
    captured = deployment.requests
    assert len(captured) == 50
    assert list(captured.columns[:2]) == ["text", "time"]  # input columns first
    assert captured["text"].tolist() == emails
    assert captured["request_id"].tolist() == [f"mail-{i}" for i in range(50)]
    expected = spam.predict(pd.DataFrame({"text": emails})).tolist()
    assert captured["prediction"].tolist() == expected
    assert set(captured["status"]) == {200}
    assert set(captured["route"]) == {"/invocations"}
    assert captured["error"].isna().all()
    assert (captured["latency_ms"] > 0).all()


def test_errors_are_captured_with_their_status(spam: Any, stop_all: None) -> None:
    deployment = jupyter_serve.serve(spam, name="spam")
    post_email(deployment.url, "hello there", "fine")
    bad_column = requests.post(
        deployment.url + "/invocations",
        json={"dataframe_split": {"columns": ["subject"], "data": [["hi"]]}},
        headers={"X-Request-ID": "wrong-column"},
        timeout=60,
    )
    not_json = requests.post(
        deployment.url + "/invocations",
        data=b"{",
        headers={"Content-Type": "application/json", "X-Request-ID": "not-json"},
        timeout=60,
    )
    assert (bad_column.status_code, not_json.status_code) == (400, 400)
    requests.get(deployment.url + "/ping", timeout=60)  # not a scoring route: not captured
    captured = deployment.requests.set_index("request_id")
    assert captured.index.tolist() == ["fine", "wrong-column", "not-json"]
    assert captured.loc["fine", "status"] == 200
    for request_id in ("wrong-column", "not-json"):
        assert captured.loc[request_id, "status"] == 400
        assert isinstance(captured.loc[request_id, "error"], str)
        assert pd.isna(captured.loc[request_id, "prediction"])
    assert captured.loc["wrong-column", "error"] == bad_column.json()["message"]
    assert captured.loc["wrong-column", "subject"] == "hi"  # the input as it was sent


def test_the_buffer_keeps_only_the_newest_rows(spam: Any, stop_all: None) -> None:
    deployment = jupyter_serve.serve(spam, name="spam", capture=10)
    for index in range(25):
        post_email(deployment.url, f"message number {index}", f"m-{index}")
    # One request of three rows: the buffer counts rows, not requests.
    requests.post(
        deployment.url + "/invocations",
        json={"dataframe_split": {"columns": ["text"], "data": [["a"], ["b"], ["c"]]}},
        headers={"X-Request-ID": "three"},
        timeout=60,
    )
    captured = deployment.requests
    assert captured["request_id"].tolist() == [f"m-{i}" for i in range(18, 25)] + ["three"] * 3
    assert captured["text"].tolist()[-3:] == ["a", "b", "c"]


def test_capture_zero_keeps_nothing(spam: Any, stop_all: None) -> None:
    deployment = jupyter_serve.serve(spam, name="spam", capture=0)
    post_email(deployment.url, "hello", "h")
    assert deployment.requests.empty


def test_open_inference_requests_are_captured(stop_all: None) -> None:
    features = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) % 3})
    classifier = LogisticRegression().fit(features, (features["a"] > 9).astype(int))
    deployment = jupyter_serve.serve(classifier, name="ab")
    body = {
        "inputs": [
            {"name": "a", "datatype": "FP64", "shape": [2], "data": [1.0, 15.0]},
            {"name": "b", "datatype": "FP64", "shape": [2], "data": [2.0, 0.0]},
        ]
    }
    answer = requests.post(
        deployment.url + "/v2/models/ab/infer", json=body, headers={"X-Request-ID": "v2"}
    )
    assert answer.status_code == 200, answer.text
    captured = deployment.requests
    assert captured[["a", "b"]].values.tolist() == [[1.0, 2.0], [15.0, 0.0]]
    assert captured["prediction"].tolist() == [0, 1]
    assert set(captured["route"]) == {"/v2/models/ab/infer"}
    assert set(captured["request_id"]) == {"v2"}


def test_two_workers_rows_are_gathered_by_the_parent(spam: Any, stop_all: None) -> None:
    deployment = jupyter_serve.serve(spam, name="spam", workers=2)
    emails = make_spam_emails(40, seed=5)["text"].tolist()
    for index, text in enumerate(emails):  # a new connection each: both workers answer
        assert post_email(deployment.url, text, f"w-{index}").status_code == 200
    captured = deployment.requests
    assert sorted(captured["request_id"]) == sorted(f"w-{i}" for i in range(40))
    by_id = captured.set_index("request_id")
    expected = spam.predict(pd.DataFrame({"text": emails})).tolist()
    assert [by_id.loc[f"w-{i}", "prediction"] for i in range(40)] == expected
    answered_by = {requests.get(deployment.url + "/ping").headers["X-Request-ID"].split("-")[0]
                   for _ in range(20)}  # fmt: skip
    assert len(answered_by) == 2  # both workers served (the new ids' prefixes differ)
