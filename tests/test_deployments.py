"""The Python API (serve, deployments, stop) from plain Python: no IPython, real HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import requests
from _support import free_port, port_is_listening, wait_until

import jupyter_serve
from jupyter_serve import DeploymentError, InvalidModelError, ModelNotFoundError
from jupyter_serve.datasets import SAMPLE_HAM_EMAIL, SAMPLE_SPAM_EMAIL, train_spam_classifier
from jupyter_serve.discovery import DeploymentRecord, read_records, record_path, write_record
from jupyter_serve.registry import register_model

EMAILS = {
    "dataframe_split": {"columns": ["text"], "data": [[SAMPLE_SPAM_EMAIL], [SAMPLE_HAM_EMAIL]]}
}


class ConstantModel:
    """A model that answers ``label`` for every row (to tell two models apart on the wire)."""

    def __init__(self, label: str) -> None:
        self.label = label

    def predict(self, data: pd.DataFrame) -> list[str]:
        return [self.label] * len(data)


@pytest.fixture(scope="module")
def classifier() -> object:
    return train_spam_classifier()


@pytest.fixture(autouse=True)
def no_deployment_left() -> Iterator[None]:
    yield
    jupyter_serve.stop(all=True)


def our_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("jupyter-serve")}


def test_serve_a_live_model_over_http_and_directly(classifier: object) -> None:
    deployment = jupyter_serve.serve(classifier, name="spam")

    answer = requests.post(f"{deployment.url}/invocations", json=EMAILS, timeout=10)

    assert answer.status_code == 200
    assert answer.json() == {"predictions": ["spam", "ham"]}
    assert list(deployment.predict(pd.DataFrame({"text": [SAMPLE_HAM_EMAIL]}))) == ["ham"]
    assert deployment.status == "running"
    assert deployment.model_uri == "in-memory:Pipeline"
    assert deployment.version is None
    assert jupyter_serve.deployments() == [deployment]
    assert deployment.metrics["requests"] >= 1
    assert "<td>spam</td>" in deployment._repr_html_()  # how a notebook shows it
    assert repr(deployment).startswith("<Deployment 'spam' running: in-memory:Pipeline")


def test_a_registered_model_by_uri_with_discovery_record(classifier: object) -> None:
    version = register_model(classifier, "spam", stage="Production")
    port = free_port()

    deployment = jupyter_serve.serve("models:/spam/Production", port=port)

    assert (deployment.name, deployment.version, deployment.url) == (
        "spam",
        str(version),
        f"http://127.0.0.1:{port}",
    )
    [record] = read_records()
    assert (record.name, record.port, record.model_uri, record.status) == (
        "spam",
        port,
        deployment.model_uri,
        "running",
    )
    assert record.pid == os.getpid() and record.kernel_id is None and record.secret
    assert oct(record_path(record.id).stat().st_mode & 0o777) == "0o600"
    answer = requests.post(f"{deployment.url}/invocations", json=EMAILS, timeout=10)
    assert answer.json() == {"predictions": ["spam", "ham"]}

    # The one background writer refreshes the figures in the file, about once a second.
    wait_until(
        lambda: read_records()[0].metrics.get("requests", 0) >= 1,
        message="request count in the discovery file",
    )


def test_records_of_killed_processes_are_removed_when_serving_starts(product_python: Path) -> None:
    dead = subprocess.run(
        [str(product_python), "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stale = DeploymentRecord(
        name="ghost", pid=int(dead.stdout), host="127.0.0.1", port=9, model_uri="m",
        status="running", started_at=0.0,
    )  # fmt: skip
    stale_file = write_record(stale)

    jupyter_serve.serve(ConstantModel("x"), name="alive")

    assert not stale_file.exists()
    assert [record.name for record in read_records()] == ["alive"]


def test_stop_frees_the_port_and_removes_the_record(classifier: object) -> None:
    deployment = jupyter_serve.serve(classifier, name="spam")
    port = deployment.port

    jupyter_serve.stop("spam")

    assert deployment.status == "stopped"
    assert not port_is_listening(port)
    assert read_records() == [] and jupyter_serve.deployments() == []
    wait_until(lambda: not our_threads(), message="our threads to end")
    deployment.stop()  # idempotent


def test_same_name_swaps_the_model_on_the_same_port() -> None:
    first = jupyter_serve.serve(ConstantModel("old"), name="constant")
    second = jupyter_serve.serve(ConstantModel("new"), name="constant")

    assert second is first and second.port == first.port
    answer = requests.post(f"{first.url}/invocations", json=EMAILS, timeout=10)
    assert answer.json() == {"predictions": ["new", "new"]}
    assert len(jupyter_serve.deployments()) == 1


def test_remote_stop_with_the_secret_stops_the_deployment(classifier: object) -> None:
    deployment = jupyter_serve.serve(classifier, name="spam")
    [record] = read_records()

    refused = requests.post(f"{deployment.url}/-/jupyter-serve/stop", timeout=10)
    accepted = requests.post(
        f"{deployment.url}/-/jupyter-serve/stop",
        headers={"X-Jupyter-Serve-Secret": str(record.secret)},
        timeout=10,
    )

    assert (refused.status_code, accepted.status_code) == (403, 202)
    wait_until(lambda: jupyter_serve.deployments() == [], message="remote stop")
    wait_until(lambda: not port_is_listening(deployment.port), message="port freed")
    # The stop runs on its own thread: the record goes last, once the server has stopped.
    wait_until(lambda: read_records() == [], message="discovery record removed")
    assert deployment.status == "stopped"


def test_bad_sources_and_options_start_nothing(classifier: object) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    before = our_threads()
    cases: list[tuple[type[Exception], object, dict[str, object]]] = [
        (ModelNotFoundError, "models:/nothing/1", {}),
        (InvalidModelError, 42, {}),
        (DeploymentError, classifier, {"port": busy.getsockname()[1]}),
        (DeploymentError, classifier, {"host": "203.0.113.7"}),
        (DeploymentError, classifier, {"name": "no spaces"}),
        (DeploymentError, classifier, {"workers": 0}),
        (DeploymentError, classifier, {"env_manager": "conda"}),
        (DeploymentError, classifier, {"max_batch_size": 0}),
        (DeploymentError, classifier, {"max_batch_wait": -0.1}),
        (DeploymentError, classifier, {"max_batch_wait": 5.0, "timeout": 1.0}),
    ]
    with busy:
        for error, source, options in cases:
            with pytest.raises(error) as raised:
                jupyter_serve.serve(source, **options)  # type: ignore[arg-type]
            assert "\n" not in str(raised.value).strip()
            assert jupyter_serve.deployments() == [] and read_records() == []
            assert our_threads() <= before


def test_stop_without_a_name_says_what_runs() -> None:
    jupyter_serve.serve(ConstantModel("x"), name="only")

    with pytest.raises(DeploymentError, match="only"):
        jupyter_serve.stop()
    with pytest.raises(DeploymentError, match="No deployment named 'other'"):
        jupyter_serve.stop("other")


SCRIPT = """
import json
import jupyter_serve

class Echo:
    def predict(self, data):
        return list(range(len(data)))

deployment = jupyter_serve.serve(Echo(), name="script")
print(json.dumps({"port": deployment.port, "url": deployment.url}), flush=True)
# no stop(): interpreter exit must stop the deployment and remove its record
"""


def test_a_plain_script_leaves_nothing_behind_at_exit(product_python: Path) -> None:
    from conftest import run_python

    started = json.loads(run_python(product_python, SCRIPT, timeout=120).strip().splitlines()[-1])

    assert not port_is_listening(started["port"])
    runtime = Path(os.environ["JUPYTER_RUNTIME_DIR"]) / "jupyter-serve"
    assert list(runtime.glob("deployment-*.json")) == []


def test_importing_the_package_loads_no_server_or_ipython(product_python: Path) -> None:
    from conftest import run_python

    loaded = run_python(
        product_python,
        "import sys, jupyter_serve\n"
        "print(sorted(m for m in ('tornado', 'IPython', 'pandas', 'sklearn') if m in sys.modules))",
    )

    assert loaded.strip() == "[]"
