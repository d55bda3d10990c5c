"""Every answer of every route carries ``X-Request-ID``: the client's, echoed when it is safe
(at most 128 characters of [A-Za-z0-9._:-]), else a new one, unique per request."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import requests
from sklearn.linear_model import LogisticRegression

from jupyter_serve.models import load_model, save_model
from jupyter_serve.server import ScoringServer, ServerOptions

GOOD = {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0]]}}
SECRET = "s3cret"


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    features = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) % 3})
    classifier = LogisticRegression().fit(features, (features["a"] > 9).astype(int))
    path = save_model(classifier, tmp_path_factory.mktemp("ids") / "model")
    server = ScoringServer(
        load_model(path),
        ServerOptions(port=0, secret=SECRET, max_body_bytes=1000),
        model_uri=str(path),
        version="1",
    )
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


# Every kind of answer: MLflow's routes, V2's, observability, 404, 405, 413, 415, 403.
EXCHANGES = [
    ("POST", "/invocations", {"json": GOOD}),
    ("POST", "/invocations", {"data": b"{", "headers": {"Content-Type": "application/json"}}),
    ("POST", "/invocations", {"data": b"x" * 2000}),
    ("GET", "/invocations", {}),
    ("GET", "/ping", {}),
    ("GET", "/health", {}),
    ("GET", "/version", {}),
    ("GET", "/metrics", {}),
    ("GET", "/openapi.json", {}),
    ("GET", "/nowhere", {}),
    ("DELETE", "/ping", {}),
    ("GET", "/v2/health/ready", {}),
    ("GET", "/v2/models/model", {}),
    ("POST", "/v2/models/model/infer", {"json": {"inputs": []}}),
    ("GET", "/v2/nowhere", {}),
    ("POST", "/-/jupyter-serve/stop", {}),  # no secret: 403
]


@pytest.mark.parametrize(("method", "path", "extra"), EXCHANGES)
def test_every_answer_echoes_a_safe_client_id(
    url: str, method: str, path: str, extra: dict[str, object]
) -> None:
    client_id = "client-7.req:42_A"
    extra = dict(extra)
    headers = {**extra.pop("headers", {}), "X-Request-ID": client_id}  # type: ignore[dict-item]
    answer = requests.request(method, url + path, headers=headers, timeout=30, **extra)  # type: ignore[arg-type]
    assert answer.headers["X-Request-ID"] == client_id, (answer.status_code, answer.text)


@pytest.mark.parametrize(("method", "path", "extra"), EXCHANGES)
def test_every_answer_without_an_id_gets_a_new_one(
    url: str, method: str, path: str, extra: dict[str, object]
) -> None:
    ids = {
        requests.request(method, url + path, timeout=30, **dict(extra)).headers["X-Request-ID"]  # type: ignore[arg-type]
        for _ in range(3)
    }
    assert len(ids) == 3
    assert all(0 < len(i) <= 128 for i in ids)


@pytest.mark.parametrize(
    "offered",
    ["x" * 129, "has space", 'quote"d', "semi;colon", "new\tline", "é-accent", "a/b"],
)
def test_an_unsafe_or_too_long_id_is_replaced(url: str, offered: str) -> None:
    answer = requests.post(
        url + "/invocations", json=GOOD, headers={"X-Request-ID": offered}, timeout=30
    )
    assert answer.status_code == 200
    replaced = answer.headers["X-Request-ID"]
    assert replaced != offered
    assert replaced.replace("-", "").isalnum()


def test_the_longest_safe_id_is_echoed(url: str) -> None:
    offered = "a" * 128
    answer = requests.get(url + "/ping", headers={"X-Request-ID": offered}, timeout=30)
    assert answer.headers["X-Request-ID"] == offered
