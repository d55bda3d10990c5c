"""`WorkerPool`, as a deployment uses it: worker processes on one port, pooled metrics, remote
stop, and a stop that leaves no process and frees the port."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from sklearn.linear_model import LogisticRegression

from jupyter_serve.errors import DeploymentError
from jupyter_serve.models import save_model
from jupyter_serve.server import SECRET_HEADER, STOP_ROUTE, ServerOptions, WorkerPool

COLUMNS = ["a", "b"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LogisticRegression]:
    features = pd.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0) % 3}, columns=COLUMNS)
    classifier = LogisticRegression().fit(features, (features["a"] > 19).astype(int))
    path = save_model(classifier, tmp_path_factory.mktemp("pool") / "model")
    return path, classifier


def _wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.05)


def test_pool_serves_counts_stops_remotely_and_frees_the_port(
    model_dir: tuple[Path, LogisticRegression],
) -> None:
    path, classifier = model_dir
    remote_stop = threading.Event()
    pool = WorkerPool(
        path,
        ServerOptions(port=0, workers=2, secret="s3cret"),
        model_uri="test:/pool",
        on_remote_stop=remote_stop.set,
    )
    pool.start()
    pids = pool.worker_pids()
    try:
        assert len(pids) == 2 and all(Path(f"/proc/{pid}").exists() for pid in pids)
        rows = [[2.0, 1.0], [33.0, 0.0]]
        expected = {"predictions": classifier.predict(pd.DataFrame(rows, columns=COLUMNS)).tolist()}
        with requests.Session() as session:
            for _ in range(20):
                response = session.post(
                    pool.url + "/invocations",
                    json={"dataframe_split": {"columns": COLUMNS, "data": rows}},
                    timeout=30,
                )
                assert (response.status_code, response.json()) == (200, expected)
        _wait_until(lambda: pool.metrics.snapshot()["requests"] >= 20)
        snapshot = pool.metrics.snapshot()
        assert snapshot["workers"] == 2
        assert snapshot["errors"] == 0

        refused = requests.post(pool.url + STOP_ROUTE, timeout=30)
        assert refused.status_code == 403
        accepted = requests.post(pool.url + STOP_ROUTE, headers={SECRET_HEADER: "s3cret"})
        assert accepted.status_code == 202
        assert remote_stop.wait(30)
    finally:
        pool.stop()
    pool.stop()
    for pid in pids:
        assert not _alive(pid)
    with socket.socket() as probe:
        # As any server binds (Tornado too): connections the workers closed may linger in
        # TIME_WAIT, which only SO_REUSEADDR looks past.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", pool.port))
        probe.listen()


def test_pool_refuses_a_port_in_use(model_dir: tuple[Path, LogisticRegression]) -> None:
    with socket.socket() as occupier:
        occupier.bind(("127.0.0.1", 0))
        occupier.listen()
        port = occupier.getsockname()[1]
        pool = WorkerPool(model_dir[0], ServerOptions(port=port, workers=2), model_uri="x")
        with pytest.raises(DeploymentError, match="already in use"):
            pool.start()


def test_a_pool_started_from_a_thread_that_ends_keeps_its_workers(
    model_dir: tuple[Path, LogisticRegression],
) -> None:
    # Linux kills a worker when the *thread* that started it ends (PR_SET_PDEATHSIG): a pool
    # started from a short-lived thread (a widget callback, say) must not lose its workers.
    pool = WorkerPool(model_dir[0], ServerOptions(port=0, workers=2), model_uri="test:/thread")
    starter = threading.Thread(target=pool.start)
    starter.start()
    starter.join()
    try:
        pids = pool.worker_pids()
        assert len(pids) == 2
        started = pool.metrics.snapshot()["requests"]
        body = {"dataframe_split": {"columns": COLUMNS, "data": [[1.0, 1.0]]}}
        for _ in range(4):
            answer = requests.post(pool.url + "/invocations", json=body, timeout=30)
            assert answer.status_code == 200
        # Both workers have reported since (once a second each): well after the thread ended.
        _wait_until(lambda: pool.metrics.snapshot()["requests"] >= started + 4)
        _wait_until(lambda: all(w.latest_metrics for w in pool._snapshot_workers()[0]))
        assert pool.worker_pids() == pids and all(_alive(pid) for pid in pids)
    finally:
        pool.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[1].split()[0] != "Z"
