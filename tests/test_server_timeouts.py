"""Request timeouts and the batcher: no thread time for requests nobody waits for, and no
innocent request timed out by a slow one it was merged with. Real servers over loopback, on
both ``/invocations`` and the Open Inference Protocol's infer route."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any

import pandas as pd
import pytest
import requests

from jupyter_serve.models import from_object, infer_signature
from jupyter_serve.server import ScoringServer, ServerOptions

COLUMNS = ["a", "b", "c"]
MODEL_NAME = "timeouts"
# Rows whose ``a`` is one of these hold their predict call until the test opens a gate.
HOLDERS = (101.0, 102.0)
SLOW = 200.0


class RowGatedModel:
    """Predicts ``a > 0``, recording the ``a`` values of each call. A call holding a row that
    has a gate waits for it: the model is slow on that row. Every call also takes at least
    ``seconds_per_call``."""

    def __init__(self, *, row_wise: bool, seconds_per_call: float = 0.0) -> None:
        self.row_wise = row_wise
        self.seconds_per_call = seconds_per_call
        self.calls: list[list[float]] = []
        self.gates: dict[float, threading.Event] = {}

    def gate(self, *values: float) -> threading.Event:
        gate = threading.Event()
        for value in values:
            self.gates[value] = gate
        return gate

    def predict(self, X: pd.DataFrame) -> Any:
        values = X["a"].tolist()
        self.calls.append(values)
        for value in values:
            gate = self.gates.get(value)
            if gate is not None and not gate.wait(30):
                raise RuntimeError("the test never opened the gate")
        time.sleep(self.seconds_per_call)
        return (X["a"] > 0).astype(int).to_numpy()

    def predicted(self) -> set[float]:
        return {value for call in list(self.calls) for value in call}

    def has_predicted(self, value: float) -> bool:
        return value in self.predicted()

    def open_every_gate(self) -> None:
        for gate in self.gates.values():
            gate.set()


Post = Callable[[str, float], requests.Response]


def invocations_body(a: float) -> dict[str, Any]:
    return {"dataframe_split": {"columns": COLUMNS, "data": [[a, 1.0, -1.0]]}}


def open_inference_body(a: float) -> dict[str, Any]:
    inputs = [
        {"name": name, "shape": [1], "datatype": "FP64", "data": [value]}
        for name, value in zip(COLUMNS, (a, 1.0, -1.0), strict=True)
    ]
    return {"inputs": inputs}


ROUTES = {
    "/invocations": invocations_body,
    f"/v2/models/{MODEL_NAME}/infer": open_inference_body,
}


def post_invocations(url: str, a: float) -> requests.Response:
    return requests.post(url + "/invocations", json=invocations_body(a), timeout=30)


def post_open_inference(url: str, a: float) -> requests.Response:
    route = f"/v2/models/{MODEL_NAME}/infer"
    return requests.post(url + route, json=open_inference_body(a), timeout=30)


def route_of(post: Post) -> str:
    return "/invocations" if post is post_invocations else f"/v2/models/{MODEL_NAME}/infer"


def prediction_of(response: requests.Response) -> list[int]:
    payload = response.json()
    if "outputs" in payload:
        data: list[int] = payload["outputs"][0]["data"]
        return data
    predictions: list[int] = payload["predictions"]
    return predictions


PATHS = pytest.mark.parametrize(
    "post", [post_invocations, post_open_inference], ids=["invocations", "v2-infer"]
)


@pytest.fixture
def serve() -> Iterator[Callable[..., tuple[ScoringServer, RowGatedModel]]]:
    started: list[tuple[ScoringServer, RowGatedModel]] = []

    def start(model: RowGatedModel, **options: Any) -> tuple[ScoringServer, RowGatedModel]:
        example = pd.DataFrame([[0.5, 1.0, -1.0]], columns=COLUMNS)
        server = ScoringServer(
            from_object(model, signature=infer_signature(example)),
            ServerOptions(port=0, model_name=MODEL_NAME, **options),
            model_uri="test:/timeouts",
        )
        server.start()
        started.append((server, model))
        return server, model

    yield start
    for server, model in started:
        model.open_every_gate()
        server.stop()


def wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not predicate():
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.01)


def hold_every_prediction_thread(
    pool: ThreadPoolExecutor, server: ScoringServer, model: RowGatedModel, post: Post
) -> tuple[threading.Event, list[Future[requests.Response]]]:
    """Occupy both prediction threads with calls held on one gate, so that the requests
    sent next queue up behind them; one at a time, so that the two never merge."""
    gate = model.gate(*HOLDERS)
    holders = []
    for value in HOLDERS:
        holders.append(pool.submit(post, server.url, value))
        wait_for(partial(model.has_predicted, value), f"the call of {value}")
    return gate, holders


def timed(post: Post, url: str, a: float) -> tuple[requests.Response, float]:
    response = post(url, a)
    return response, time.monotonic()


@PATHS
def test_a_slow_request_merged_with_others_does_not_time_them_out(
    serve: Callable[..., tuple[ScoringServer, RowGatedModel]], post: Post
) -> None:
    server, model = serve(RowGatedModel(row_wise=True), timeout=3)
    for value in (0.5, 1.5, -0.5, 2.5):  # the server sees how long a call usually takes
        assert post(server.url, value).status_code == 200
    model.gate(SLOW)  # opened only when the test ends
    innocents = [float(index) - 3.5 for index in range(8)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        hold, _ = hold_every_prediction_thread(pool, server, model, post)
        sent = {a: pool.submit(timed, post, server.url, a) for a in [SLOW, *innocents]}
        wait_for(lambda: server.metrics.snapshot()["queued"] == 9, "queueing the 9 requests")
        hold.set()
        answered = {a: future.result() for a, future in sent.items()}
    # The scenario happened: all nine went into one predict call, held by the slow row.
    assert {SLOW, *innocents} in [set(call) for call in model.calls]
    for a in innocents:
        response, _ = answered[a]
        assert response.status_code == 200, response.text
        assert prediction_of(response) == [int(a > 0)]
    slow_response, slow_answered_at = answered[SLOW]
    assert slow_response.status_code == 504
    # Every innocent got its answer before the slow request's timeout (the slow row is held
    # until the test ends).
    assert max(answered_at for _, answered_at in answered.values()) == slow_answered_at


@PATHS
@pytest.mark.parametrize(
    ("row_wise", "max_batch_size"),
    [(True, 1), (False, 64)],
    ids=["merging-disabled", "not-row-wise"],
)
def test_requests_whose_clients_got_504_are_never_predicted(
    serve: Callable[..., tuple[ScoringServer, RowGatedModel]],
    post: Post,
    row_wise: bool,
    max_batch_size: int,
) -> None:
    # A burst of 16 one-row requests at >= 0.25 s per call on two threads: 2 s of work, of
    # which at most 8 requests fit in the 1 s timeout.
    server, model = serve(
        RowGatedModel(row_wise=row_wise, seconds_per_call=0.25),
        timeout=1,
        max_batch_size=max_batch_size,
    )
    burst = [float(index) + 1 for index in range(16)]
    with ThreadPoolExecutor(max_workers=len(burst)) as pool:
        statuses = list(pool.map(lambda a: post(server.url, a).status_code, burst))
    calls_when_every_client_had_its_answer = len(model.calls)
    assert set(statuses) <= {200, 504}
    assert statuses.count(504) >= len(burst) - 8
    assert server.metrics.snapshot()["queued"] == 0  # they left the queue with their 504
    fresh = post(server.url, 0.25)
    assert fresh.status_code == 200
    assert prediction_of(fresh) == [1]
    # Nothing of the burst was predicted once its clients had their 504: the fresh request
    # was the very next call.
    assert model.calls[calls_when_every_client_had_its_answer:] == [[0.25]]


@PATHS
def test_a_request_whose_client_left_is_never_predicted(
    serve: Callable[..., tuple[ScoringServer, RowGatedModel]], post: Post
) -> None:
    server, model = serve(RowGatedModel(row_wise=False), timeout=30)
    with ThreadPoolExecutor(max_workers=4) as pool:
        hold, holders = hold_every_prediction_thread(pool, server, model, post)
        sent = pool.submit(post, server.url, 7.0)
        wait_for(lambda: server.metrics.snapshot()["queued"] == 1, "queueing the request")
        # A second client, gone before its answer.
        leaving = socket.create_connection((server.host, server.port))
        leaving.sendall(raw_request(post, 8.0))
        wait_for(lambda: server.metrics.snapshot()["queued"] == 2, "queueing the leaving one")
        leaving.close()
        wait_for(lambda: server.metrics.snapshot()["queued"] == 1, "noticing the client left")
        hold.set()
        assert [holder.result().status_code for holder in holders] == [200, 200]
        assert sent.result().status_code == 200
    assert model.predicted() == {*HOLDERS, 7.0}


def raw_request(post: Post, a: float) -> bytes:
    route = route_of(post)
    body = json.dumps(ROUTES[route](a)).encode()
    head = (
        f"POST {route} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@PATHS
def test_a_queued_request_that_cannot_finish_in_time_is_not_started(
    serve: Callable[..., tuple[ScoringServer, RowGatedModel]], post: Post
) -> None:
    # Every call takes at least 1 s; the timeout leaves a queued request less than that.
    server, model = serve(
        RowGatedModel(row_wise=False, seconds_per_call=1.0), timeout=1.8, prediction_threads=1
    )
    assert post(server.url, 0.5).status_code == 200  # the server sees a call take >= 1 s
    hold = model.gate(HOLDERS[0])
    with ThreadPoolExecutor(max_workers=2) as pool:
        holder = pool.submit(post, server.url, HOLDERS[0])
        wait_for(partial(model.has_predicted, HOLDERS[0]), "the held call")
        late = pool.submit(post, server.url, 3.0)
        wait_for(lambda: server.metrics.snapshot()["queued"] == 1, "queueing the late request")
        # The held call takes 1 s more from here: the late request is left less than 0.8 s.
        hold.set()
        assert holder.result().status_code == 200
        assert late.result().status_code == 504
    assert 3.0 not in model.predicted()
