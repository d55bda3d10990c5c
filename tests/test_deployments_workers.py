"""-w N from the Python API: a pool of worker processes behind one deployment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import requests
from _support import port_is_listening, wait_until

import jupyter_serve
from jupyter_serve import DeploymentError
from jupyter_serve.datasets import SAMPLE_HAM_EMAIL, SAMPLE_SPAM_EMAIL, train_spam_classifier
from jupyter_serve.discovery import read_records

EMAILS = {
    "dataframe_split": {"columns": ["text"], "data": [[SAMPLE_SPAM_EMAIL], [SAMPLE_HAM_EMAIL]]}
}


class ConstantModel:
    def __init__(self, label: str) -> None:
        self.label = label

    def predict(self, data: pd.DataFrame) -> list[str]:
        return [self.label] * len(data)


def worker_processes() -> set[int]:
    """Our child processes running a jupyter-serve worker (Linux /proc)."""
    children: set[int] = set()
    for listing in Path("/proc/self/task").glob("*/children"):
        children.update(int(pid) for pid in listing.read_text().split())
    return {pid for pid in children if b"jupyter_serve.server._worker" in _cmdline(pid)}


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@pytest.fixture(autouse=True)
def no_deployment_left() -> Iterator[None]:
    yield
    jupyter_serve.stop(all=True)


def test_worker_processes_serve_a_live_model_and_stop_with_it() -> None:
    deployment = jupyter_serve.serve(train_spam_classifier(), name="pooled", workers=2)
    try:
        answers = [
            requests.post(f"{deployment.url}/invocations", json=EMAILS, timeout=30).json()
            for _ in range(4)
        ]
        assert answers == [{"predictions": ["spam", "ham"]}] * 4
        workers = worker_processes()
        assert len(workers) == 2
        [record] = read_records()
        assert record.port == deployment.port
        with pytest.raises(DeploymentError, match="worker processes"):
            jupyter_serve.serve(ConstantModel("new"), name="pooled")
        again = requests.post(f"{deployment.url}/invocations", json=EMAILS, timeout=30)
        assert again.json() == {"predictions": ["spam", "ham"]}
    finally:
        # The remote stop (what the Jupyter server extension sends) stops the whole pool.
        remote = requests.post(
            f"{deployment.url}/-/jupyter-serve/stop",
            headers={"X-Jupyter-Serve-Secret": deployment.secret},
            timeout=30,
        )
        wait_until(lambda: jupyter_serve.deployments() == [], timeout=30, message="pool stop")

    assert remote.status_code == 202
    wait_until(lambda: not port_is_listening(deployment.port), timeout=30, message="port freed")
    wait_until(lambda: read_records() == [], message="discovery record removed")
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
