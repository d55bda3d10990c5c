"""Request merging: concurrent requests share predict calls yet each gets its own answer."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
from sklearn.linear_model import LogisticRegression

from jupyter_serve.models import LoadedModel, from_object, infer_signature
from jupyter_serve.server import ScoringServer, ServerOptions

COLUMNS = ["a", "b", "c"]


class CallRecordingClassifier(LogisticRegression):
    """A logistic regression that records the ``a`` values (or, fitted on arrays, the first
    column) of each predict call and, while
    ``gate`` is closed, holds its calls so that requests queue up behind them."""

    def __init__(self, C: float = 1.0) -> None:
        super().__init__(C=C)
        self.gate = threading.Event()
        self.calls: list[list[float]] = []

    def _hold(self, X: Any) -> None:
        self.calls.append((X[:, 0] if isinstance(X, np.ndarray) else X["a"]).tolist())
        if not self.gate.wait(30):
            raise RuntimeError("the test never opened the gate")

    def predict(self, X: Any) -> Any:
        self._hold(X)
        return super().predict(X)

    def predict_proba(self, X: Any) -> Any:
        self._hold(X)
        return super().predict_proba(X)


@pytest.fixture(scope="module")
def training() -> tuple[pd.DataFrame, pd.Series]:
    generator = np.random.default_rng(7)
    features = pd.DataFrame(generator.normal(size=(200, 3)), columns=COLUMNS)
    labels = (features["a"] + 0.5 * features["b"] - features["c"] > 0).astype(int)
    return features, labels


@pytest.fixture
def recording_server(
    training: tuple[pd.DataFrame, pd.Series],
) -> Iterator[tuple[ScoringServer, CallRecordingClassifier]]:
    model = CallRecordingClassifier().fit(*training)
    server = ScoringServer(
        from_object(model), ServerOptions(port=0, timeout=60), model_uri="test:/recording"
    )
    server.start()
    yield server, model
    model.gate.set()
    server.stop()


def _requests_of_mixed_sizes(count: int) -> list[list[list[float]]]:
    generator = np.random.default_rng(11)
    sizes = [1 + (index * 17) % 50 for index in range(count)]
    return [np.round(generator.normal(size=(size, 3)), 6).tolist() for size in sizes]


def _post_rows(url: str, rows: list[list[float | None]]) -> requests.Response:
    body = {"dataframe_split": {"columns": COLUMNS, "data": rows}}
    return requests.post(url + "/invocations", json=body, timeout=60)


def _post_tensor(url: str, rows: list[list[float | None]]) -> requests.Response:
    return requests.post(url + "/invocations", json={"inputs": rows}, timeout=60)


def _send_while_gated(
    server: ScoringServer,
    model: CallRecordingClassifier,
    bodies: list[Any],
    post: Callable[[str, Any], requests.Response] = _post_rows,
) -> list[requests.Response]:
    """Send every body at once while the model holds its calls; open the gate once each
    request is either inside a held call or queued behind it, so that they merge."""

    def requests_inside_calls() -> int:
        seen = {value for call in list(model.calls) for value in call}
        return sum(1 for rows in bodies if rows[0][0] in seen)

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        sent = [pool.submit(post, server.url, rows) for rows in bodies]
        deadline = time.monotonic() + 30
        while server.metrics.snapshot()["queued"] + requests_inside_calls() < len(bodies):
            assert time.monotonic() < deadline, "the requests never all reached the server"
            time.sleep(0.01)
        model.gate.set()
        return [future.result() for future in sent]


def test_concurrent_requests_each_get_exactly_their_own_predictions(
    recording_server: tuple[ScoringServer, CallRecordingClassifier],
    training: tuple[pd.DataFrame, pd.Series],
) -> None:
    server, model = recording_server
    reference = LogisticRegression().fit(*training)
    bodies = _requests_of_mixed_sizes(40)
    responses = _send_while_gated(server, model, bodies)
    for rows, response in zip(bodies, responses, strict=True):
        assert response.status_code == 200, response.text
        expected = reference.predict(pd.DataFrame(rows, columns=COLUMNS)).tolist()
        assert response.json() == {"predictions": expected}
    # Merging happened: fewer predict calls than requests, some spanning several requests.
    assert len(model.calls) < len(bodies)
    assert max(len(call) for call in model.calls) > max(len(rows) for rows in bodies)
    # and no call was re-run (as a merged call that overruns is): every row predicted once.
    predicted = sorted(value for call in model.calls for value in call)
    assert predicted == sorted(row[0] for rows in bodies for row in rows)


def test_concurrent_tensor_requests_merge_and_each_get_their_own_predictions(
    training: tuple[pd.DataFrame, pd.Series],
) -> None:
    features, labels = training[0].to_numpy(), training[1].to_numpy()
    model = CallRecordingClassifier().fit(features, labels)
    # An input-only signature: inferring outputs would call predict on the closed gate.
    served = from_object(model, signature=infer_signature(features[:2]))  # a tensor input
    server = ScoringServer(served, ServerOptions(port=0, timeout=60), model_uri="test:/tensor")
    server.start()
    try:
        bodies = _requests_of_mixed_sizes(40)
        responses = _send_while_gated(server, model, bodies, post=_post_tensor)
    finally:
        model.gate.set()
        server.stop()
    reference = LogisticRegression().fit(features, labels)
    for rows, response in zip(bodies, responses, strict=True):
        assert response.status_code == 200, response.text
        assert response.json() == {"predictions": reference.predict(np.array(rows)).tolist()}
    assert len(model.calls) < len(bodies)
    assert max(len(call) for call in model.calls) > max(len(rows) for rows in bodies)


def test_one_bad_request_among_good_ones_fails_alone(
    recording_server: tuple[ScoringServer, CallRecordingClassifier],
    training: tuple[pd.DataFrame, pd.Series],
) -> None:
    server, model = recording_server
    reference = LogisticRegression().fit(*training)
    bodies: list[Any] = _requests_of_mixed_sizes(12)
    # A missing value in a float column: same columns and dtypes as its neighbours, so it is
    # merged with them, but logistic regression refuses NaN.
    bad = [[0.5, math.nan, 1.5], [0.1, 0.2, 0.3]]
    bodies.insert(
        6, [[None if isinstance(v, float) and math.isnan(v) else v for v in row] for row in bad]
    )
    responses = _send_while_gated(server, model, bodies)
    for index, (rows, response) in enumerate(zip(bodies, responses, strict=True)):
        if index == 6:
            assert response.status_code == 400
            assert response.json()["error_code"] == "BAD_REQUEST"
            continue
        assert response.status_code == 200, response.text
        expected = reference.predict(pd.DataFrame(rows, columns=COLUMNS)).tolist()
        assert response.json() == {"predictions": expected}


def test_merged_probabilities_are_split_back_row_for_row(
    training: tuple[pd.DataFrame, pd.Series],
) -> None:
    model = CallRecordingClassifier().fit(*training)
    reference = LogisticRegression().fit(*training)
    server = ScoringServer(
        LoadedModel(model, predict_fn_name="predict_proba"),
        ServerOptions(port=0),
        model_uri="test:/probabilities",
    )
    server.start()
    try:
        bodies = _requests_of_mixed_sizes(16)
        responses = _send_while_gated(server, model, bodies)
    finally:
        model.gate.set()
        server.stop()
    assert len(model.calls) < len(bodies)
    for rows, response in zip(bodies, responses, strict=True):
        assert response.status_code == 200, response.text
        expected = reference.predict_proba(pd.DataFrame(rows, columns=COLUMNS))
        got = np.array(response.json()["predictions"])
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_max_batch_wait_gathers_requests_until_the_batch_is_full(
    training: tuple[pd.DataFrame, pd.Series],
) -> None:
    model = CallRecordingClassifier().fit(*training)
    model.gate.set()
    reference = LogisticRegression().fit(*training)
    # A wait far longer than the clients' timeout: they are answered only because a full
    # batch does not wait.
    options = ServerOptions(port=0, max_batch_size=3, max_batch_wait=120.0, timeout=300)
    server = ScoringServer(from_object(model), options, model_uri="test:/waiting")
    server.start()
    bodies = _requests_of_mixed_sizes(3)
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            sent = [
                pool.submit(
                    requests.post,
                    server.url + "/invocations",
                    json={"dataframe_split": {"columns": COLUMNS, "data": rows}},
                    timeout=20,
                )
                for rows in bodies
            ]
            responses = [future.result() for future in sent]
    finally:
        server.stop()
    for rows, response in zip(bodies, responses, strict=True):
        expected = reference.predict(pd.DataFrame(rows, columns=COLUMNS)).tolist()
        assert response.json() == {"predictions": expected}
    assert len(model.calls) == 1
    assert len(model.calls[0]) == sum(len(rows) for rows in bodies)


def test_a_lone_request_is_answered_once_its_batch_wait_is_over(
    training: tuple[pd.DataFrame, pd.Series],
) -> None:
    model = CallRecordingClassifier().fit(*training)
    model.gate.set()
    options = ServerOptions(port=0, max_batch_wait=0.2)
    server = ScoringServer(from_object(model), options, model_uri="test:/waiting")
    server.start()
    try:
        response = _post_rows(server.url, [[0.1, 0.2, 0.3]])
    finally:
        server.stop()
    assert response.status_code == 200
    assert model.calls == [[0.1]]


class DeclaredRowWiseModel:
    """Not scikit-learn, but says its rows are independent; records and holds its calls."""

    row_wise = True

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.calls: list[list[float]] = []

    def predict(self, X: Any) -> Any:
        self.calls.append(X["a"].tolist())
        if not self.gate.wait(30):
            raise RuntimeError("the test never opened the gate")
        return (X["a"] > 0).astype(int).to_numpy()


def test_a_model_that_declares_row_wise_gets_merged_calls() -> None:
    model = DeclaredRowWiseModel()
    example = pd.DataFrame([[0.5, 1.0, -1.0]], columns=COLUMNS)
    server = ScoringServer(
        from_object(model, signature=infer_signature(example)),
        ServerOptions(port=0),
        model_uri="test:/own",
    )
    server.start()
    bodies = _requests_of_mixed_sizes(10)
    try:
        responses = _send_while_gated(server, model, bodies)  # type: ignore[arg-type]
    finally:
        model.gate.set()
        server.stop()
    for rows, response in zip(bodies, responses, strict=True):
        assert response.json() == {"predictions": [int(row[0] > 0) for row in rows]}
    assert len(model.calls) < len(bodies)
