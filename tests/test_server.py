"""The scoring server over real loopback HTTP: routes, limits, timeouts, secret, lifecycle."""

from __future__ import annotations

import email.utils
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

from jupyter_serve.errors import DeploymentError
from jupyter_serve.models import from_object
from jupyter_serve.server import SECRET_HEADER, STOP_ROUTE, ScoringServer, ServerOptions

COLUMNS = ["a", "b"]


def _training_frame() -> tuple[pd.DataFrame, pd.Series]:
    features = pd.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0) % 3})
    return features, (features["a"] > 19).astype(int)


@pytest.fixture(scope="module")
def classifier() -> LogisticRegression:
    features, labels = _training_frame()
    return LogisticRegression().fit(features, labels)


@pytest.fixture(scope="module")
def server(classifier: LogisticRegression) -> Iterator[ScoringServer]:
    running = ScoringServer(
        from_object(classifier), ServerOptions(port=0, timeout=30), model_uri="test:/classifier"
    )
    running.start()
    yield running
    running.stop()


def _split_body(rows: list[list[Any]]) -> dict[str, Any]:
    return {"dataframe_split": {"columns": COLUMNS, "data": rows}}


def _wait_until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.01)


@pytest.mark.parametrize("path", ["/ping", "/health"])
def test_ping_and_health_answer_a_newline(server: ScoringServer, path: str) -> None:
    response = requests.get(server.url + path, timeout=10)
    assert response.status_code == 200
    assert response.content == b"\n"
    assert response.headers["Content-Type"] == "application/json"


def test_version_answers_the_version(server: ScoringServer) -> None:
    from jupyter_serve import __version__

    response = requests.get(server.url + "/version", timeout=10)
    assert (response.status_code, response.text) == (200, __version__)


def test_invocations_answers_the_models_predictions(
    server: ScoringServer, classifier: LogisticRegression
) -> None:
    rows = [[1.0, 2.0], [35.0, 1.0]]
    response = requests.post(server.url + "/invocations", json=_split_body(rows), timeout=10)
    assert response.status_code == 200
    expected = classifier.predict(pd.DataFrame(rows, columns=COLUMNS)).tolist()
    assert response.json() == {"predictions": expected}


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", "/ping", "GET"),
        ("DELETE", "/health", "GET"),
        ("PUT", "/version", "GET"),
        ("GET", "/invocations", "POST"),
        ("PATCH", "/invocations", "POST"),
    ],
)
def test_wrong_method_gets_405_with_allow(
    server: ScoringServer, method: str, path: str, allowed: str
) -> None:
    response = requests.request(method, server.url + path, timeout=10)
    assert response.status_code == 405
    assert response.headers["Allow"] == allowed
    assert response.json() == {"detail": "Method Not Allowed"}


def test_head_on_invocations_gets_405_headers_without_a_body(server: ScoringServer) -> None:
    response = requests.head(server.url + "/invocations", timeout=10)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert int(response.headers["Content-Length"]) > 0
    assert response.content == b""


def test_invocations_with_a_query_string_is_still_invocations(
    server: ScoringServer, classifier: LogisticRegression
) -> None:
    rows = [[3.0, 4.0]]
    response = requests.post(
        server.url + "/invocations?source=notebook", json=_split_body(rows), timeout=10
    )
    assert response.status_code == 200
    assert response.json() == {
        "predictions": classifier.predict(pd.DataFrame(rows, columns=COLUMNS)).tolist()
    }


def test_one_keep_alive_connection_carries_many_answers(
    server: ScoringServer, classifier: LogisticRegression
) -> None:
    rows = [[float(i), 1.0] for i in range(40)]
    expected = classifier.predict(pd.DataFrame(rows, columns=COLUMNS)).tolist()
    with requests.Session() as session:
        answers = [
            session.post(server.url + "/invocations", json=_split_body([row]), timeout=10)
            for row in rows
        ]
        ping = session.get(server.url + "/ping", timeout=10)
    assert [a.json()["predictions"][0] for a in answers] == expected
    assert all(a.headers["Content-Type"] == "application/json" for a in answers)
    # Parses as an HTTP date, as every answer of a server with a clock must carry one.
    assert email.utils.parsedate_to_datetime(answers[-1].headers["Date"]).year >= 2024
    assert ping.status_code == 200


def test_a_body_too_big_to_parse_on_the_loop_gets_its_predictions(
    server: ScoringServer, classifier: LogisticRegression
) -> None:
    # Over 256 KiB: parsed on a prediction thread rather than the IO loop.
    rows = [[float(i % 97), float(i % 13) + 0.123456789] for i in range(15_000)]
    body = json.dumps(_split_body(rows)).encode()
    assert len(body) > 256 * 1024
    response = requests.post(
        server.url + "/invocations",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 200
    expected = classifier.predict(pd.DataFrame(rows, columns=COLUMNS)).tolist()
    assert response.json() == {"predictions": expected}


def test_a_client_gone_mid_body_is_not_left_in_flight(server: ScoringServer) -> None:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            b'{"dataframe_split": '
        )
        _wait_until(lambda: server.metrics.snapshot()["in_flight"] == 1)
    _wait_until(lambda: server.metrics.snapshot()["in_flight"] == 0)
    assert requests.get(server.url + "/ping", timeout=10).status_code == 200


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_unknown_path_gets_404(server: ScoringServer, method: str) -> None:
    response = requests.request(method, server.url + "/predict", timeout=10)
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


def test_control_route_does_not_exist_without_a_secret(server: ScoringServer) -> None:
    response = requests.post(server.url + STOP_ROUTE, timeout=10)
    assert response.status_code == 404
    assert server.is_running


def test_bad_request_gets_the_protocol_error_and_the_server_goes_on(
    server: ScoringServer,
) -> None:
    response = requests.post(
        server.url + "/invocations",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error_code"] == "BAD_REQUEST"
    assert requests.get(server.url + "/ping", timeout=10).status_code == 200


def _raw_request(url: str, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send ``head`` (and ``body``) on a fresh socket; return the status and the response body."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(head + body)
        received = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
            header_end = received.find(b"\r\n\r\n")
            if header_end >= 0:
                headers = received[:header_end].decode("latin1").lower()
                length = int(headers.split("content-length:")[1].split("\r\n")[0])
                if len(received) >= header_end + 4 + length:
                    break
    status_line, _, rest = received.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def test_huge_content_length_gets_413_before_the_body_is_sent(server: ScoringServer) -> None:
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000000000000\r\n\r\n"
    )
    status, body = _raw_request(server.url, head)
    assert status == 413
    assert json.loads(body)["error_code"] == "RESOURCE_EXHAUSTED"
    assert requests.get(server.url + "/ping", timeout=10).status_code == 200


def test_chunked_body_over_the_limit_gets_413() -> None:
    small = ScoringServer(
        from_object(DummyClassifier().fit([[0]], [0])),
        ServerOptions(port=0, max_body_bytes=1000),
        model_uri="test:/small-limit",
    )
    small.start()
    try:
        head = (
            b"POST /invocations HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"x" * 600
        chunked = b"%x\r\n%s\r\n" % (len(chunk), chunk)
        status, body = _raw_request(small.url, head, chunked * 2)
        assert status == 413
        assert "1000 bytes" in json.loads(body)["message"]
        within_limit = requests.post(
            small.url + "/invocations",
            json={"dataframe_split": {"columns": ["x"], "data": [[1]]}},
            timeout=10,
        )
        assert within_limit.status_code == 200
    finally:
        small.stop()


class GatedModel:
    """Predicts each row's ``a``, but only once ``gate`` is open."""

    def __init__(self) -> None:
        self.gate = threading.Event()

    def predict(self, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
        if not self.gate.wait(30):
            raise RuntimeError("the test never opened the gate")
        return model_input["a"].to_numpy()


def test_timeout_answers_504_and_the_server_stays_healthy() -> None:
    gated = GatedModel()
    slow = ScoringServer(
        from_object(gated), ServerOptions(port=0, timeout=0.5), model_uri="test:/gated"
    )
    slow.start()
    try:
        stuck = requests.post(slow.url + "/invocations", json=_split_body([[1, 2]]), timeout=10)
        assert stuck.status_code == 504
        assert stuck.headers["Content-Type"] == "application/json"
        assert stuck.json()["error_code"] == "DEADLINE_EXCEEDED"
        assert requests.get(slow.url + "/ping", timeout=10).status_code == 200
        gated.gate.set()
        answered = requests.post(slow.url + "/invocations", json=_split_body([[7, 2]]), timeout=10)
        assert (answered.status_code, answered.json()) == (200, {"predictions": [7]})
    finally:
        gated.gate.set()
        slow.stop()


class HangsOnNegatives:
    """Predicts each row's ``a``; a request with a negative ``a`` hangs until ``release``."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def predict(self, model_input: pd.DataFrame) -> Any:
        if (model_input["a"] < 0).any() and not self.release.wait(30):
            raise RuntimeError("the test never released the hung prediction")
        return model_input["a"].to_numpy()


def test_a_hung_prediction_does_not_hold_the_only_prediction_thread() -> None:
    hanging = HangsOnNegatives()
    server = ScoringServer(
        from_object(hanging),
        ServerOptions(port=0, timeout=0.5, prediction_threads=1),
        model_uri="test:/hangs",
    )
    server.start()
    try:
        hung = requests.post(server.url + "/invocations", json=_split_body([[-1, 0]]), timeout=10)
        assert hung.status_code == 504
        answered = requests.post(
            server.url + "/invocations", json=_split_body([[3, 0]]), timeout=10
        )
        assert (answered.status_code, answered.json()) == (200, {"predictions": [3]})
    finally:
        hanging.release.set()
        server.stop()


def test_stop_lets_a_request_in_flight_finish() -> None:
    gated = GatedModel()
    server = ScoringServer(from_object(gated), ServerOptions(port=0), model_uri="test:/gated")
    server.start()
    with ThreadPoolExecutor(max_workers=1) as pool:
        in_flight = pool.submit(
            requests.post, server.url + "/invocations", json=_split_body([[4, 2]]), timeout=30
        )
        _wait_until(lambda: server.metrics.snapshot()["in_flight"] == 1)
        stopper = threading.Thread(target=server.stop)
        stopper.start()
        gated.gate.set()
        response = in_flight.result()
        stopper.join(30)
    assert (response.status_code, response.json()) == (200, {"predictions": [4]})
    assert not server.is_running


def test_secret_guards_remote_stop() -> None:
    stopped = threading.Event()
    guarded = ScoringServer(
        from_object(DummyClassifier().fit([[0]], [0])),
        ServerOptions(port=0, secret="s3cret"),
        model_uri="test:/guarded",
        on_remote_stop=stopped.set,
    )
    guarded.start()
    try:
        for headers in ({}, {SECRET_HEADER: "wrong"}):
            refused = requests.post(guarded.url + STOP_ROUTE, headers=headers, timeout=10)
            assert refused.status_code == 403
            assert refused.json()["error_code"] == "PERMISSION_DENIED"
        assert not stopped.is_set()
        # Without require_secret the scoring routes stay open.
        assert requests.get(guarded.url + "/ping", timeout=10).status_code == 200
        accepted = requests.post(
            guarded.url + STOP_ROUTE, headers={SECRET_HEADER: "s3cret"}, timeout=10
        )
        assert accepted.status_code == 202
        assert stopped.wait(10)
    finally:
        guarded.stop()


def test_require_secret_guards_every_route() -> None:
    guarded = ScoringServer(
        from_object(DummyClassifier().fit([[0]], [0])),
        ServerOptions(port=0, secret="s3cret", require_secret=True),
        model_uri="test:/guarded",
    )
    guarded.start()
    try:
        for path in ("/ping", "/version", "/nowhere"):
            refused = requests.get(guarded.url + path, timeout=10)
            assert refused.status_code == 403, path
        refused = requests.post(guarded.url + "/invocations", json={}, timeout=10)
        assert refused.status_code == 403
        allowed = requests.get(guarded.url + "/ping", headers={SECRET_HEADER: "s3cret"}, timeout=10)
        assert allowed.status_code == 200
    finally:
        guarded.stop()


def test_stop_frees_the_port_and_is_idempotent() -> None:
    server = ScoringServer(
        from_object(DummyClassifier().fit([[0]], [0])),
        ServerOptions(port=0),
        model_uri="test:/stop",
    )
    server.start()
    port = server.port
    assert requests.get(server.url + "/ping", timeout=10).status_code == 200
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    stopper.join(30)
    server.stop()
    assert not server.is_running
    with socket.socket() as probe:
        # As any server binds: connections closed by the server may linger in TIME_WAIT.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
        probe.listen()
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + "/ping", timeout=10)


def test_port_in_use_is_a_deployment_error(server: ScoringServer) -> None:
    second = ScoringServer(
        from_object(DummyClassifier().fit([[0]], [0])),
        ServerOptions(port=server.port),
        model_uri="test:/second",
    )
    with pytest.raises(DeploymentError, match=f"port {server.port} .* already in use"):
        second.start()


def test_unresolvable_host_is_a_deployment_error() -> None:
    server = ScoringServer(
        from_object(DummyClassifier().fit([[0]], [0])),
        ServerOptions(host="no-such-host.invalid", port=0),
        model_uri="test:/host",
    )
    with pytest.raises(DeploymentError, match=r"no-such-host\.invalid"):
        server.start()


def test_metrics_count_requests_and_errors() -> None:
    server = ScoringServer(
        from_object(DummyClassifier().fit([[0]], [0])),
        ServerOptions(port=0),
        model_uri="test:/metrics",
    )
    server.start()
    try:
        for _ in range(3):
            requests.get(server.url + "/ping", timeout=10)
        requests.get(server.url + "/missing", timeout=10)
        _wait_until(lambda: server.metrics.snapshot()["requests"] == 4)
        snapshot = server.metrics.snapshot()
        assert snapshot["errors"] == 1
        assert snapshot["in_flight"] == 0
        assert snapshot["latency_ms"]["p50"] is not None
        assert snapshot["requests_per_second"] > 0
    finally:
        server.stop()


def test_swap_under_steady_traffic_fails_no_request() -> None:
    always = {label: DummyClassifier(strategy="constant", constant=label) for label in (0, 1)}
    for model in always.values():
        model.fit([[0.0, 0.0], [1.0, 1.0]], [0, 1])
    server = ScoringServer(
        from_object(always[0]), ServerOptions(port=0), model_uri="test:/v1", version="1"
    )
    server.start()
    answers: list[Any] = []
    failures: list[str] = []
    enough = threading.Event()

    def client() -> None:
        with requests.Session() as session:
            for _ in range(2000):
                if enough.is_set():
                    return
                try:
                    response = session.post(
                        server.url + "/invocations", json=_split_body([[1.0, 2.0]]), timeout=10
                    )
                except requests.RequestException as error:
                    failures.append(repr(error))
                    continue
                if response.status_code == 200:
                    answers.append(response.json()["predictions"][0])
                else:
                    failures.append(f"{response.status_code} {response.text}")

    clients = [threading.Thread(target=client) for _ in range(4)]
    try:
        for thread in clients:
            thread.start()
        _wait_until(lambda: len(answers) >= 40)
        port = server.port
        server.swap_model(from_object(always[1]), model_uri="test:/v2", version="2")
        _wait_until(lambda: answers.count(1) >= 40)
        enough.set()
        for thread in clients:
            thread.join(60)
        assert failures == []
        assert (server.port, server.model_uri, server.version) == (port, "test:/v2", "2")
        after = requests.post(server.url + "/invocations", json=_split_body([[0.0, 0.0]]))
        assert after.json() == {"predictions": [1]}
    finally:
        enough.set()
        server.stop()
