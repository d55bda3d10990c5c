"""The acceptance test of the scoring server: the same requests to MLflow and to us, compared.

The model directories are saved by the real MLflow 3.17.2 (tests/differential/build_models.py),
then served twice: by ``mlflow models serve --env-manager local`` and by
``jupyter-serve models serve``, both real subprocesses on loopback ports, all started at once,
once per session. Every case of tests/differential/cases.py is sent to both; the answers must
agree on status, ``error_code`` and predictions (floats to 1e-9), except for our documented
fixes of MLflow bugs, which are asserted as such.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import run_python
from differential.cases import (
    CASES,
    FIX_415_JSON,
    FIX_CLIENT_FAULT,
    FIX_MISSING_CONTENT_TYPE,
    MODELS,
    OUR_VERSION,
    SAME,
    Case,
)

# Building the models and starting a dozen servers happen in the first test's setup.
pytestmark = [pytest.mark.mlflow, pytest.mark.timeout(1200)]

BUILD_SCRIPT = Path(__file__).parent / "differential" / "build_models.py"
OURS_COMMAND = [str(Path(sys.executable).parent / "jupyter-serve"), "models", "serve"]
# Generous: a loaded 2-core CI machine starting a dozen servers at once is slow. Ours answer
# within a couple of seconds on an idle machine; MLflow's take about ten.
START_SECONDS = 600.0


@dataclass(eq=False)
class Served:
    process: subprocess.Popen[bytes]
    url: str
    log: Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _start(command: list[str], log: Path, port: int, env: dict[str, str]) -> Served:
    with log.open("wb") as sink:
        # Its own process group: `mlflow models serve` runs uvicorn as a child, which must go too.
        process = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    return Served(process, f"http://127.0.0.1:{port}", log)


def _wait_until_pinged(served: Served, deadline: float) -> None:
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            pytest.fail(f"{served.url} exited early:\n{served.log.read_text()[-3000:]}")
        try:
            if requests.get(f"{served.url}/ping", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)  # polling interval, not synchronisation: the deadline bounds it
    pytest.fail(f"{served.url} did not answer /ping in time:\n{served.log.read_text()[-3000:]}")


def _stop_all(servers: list[Served]) -> None:
    """Terminate every server first, then wait for each: they shut down in parallel."""
    for served in servers:
        _signal_group(served, signal.SIGTERM)
    for served in servers:
        try:
            served.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            _signal_group(served, signal.SIGKILL)
            served.process.wait(timeout=15)


def _signal_group(served: Served, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(served.process.pid, signum)


@pytest.fixture(scope="session")
def model_dirs(mlflow_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out_dir = tmp_path_factory.mktemp("differential-models")
    run_python(mlflow_python, BUILD_SCRIPT.read_text(), str(out_dir), timeout=300)
    return out_dir


@pytest.fixture(scope="session")
def servers(
    mlflow_python: Path, model_dirs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, tuple[Served, Served]]]:
    """Both servers for every model, started concurrently; (mlflow, ours) by model name."""
    logs = tmp_path_factory.mktemp("differential-logs")
    mlflow_bin = mlflow_python.parent
    mlflow_env = {
        **os.environ,
        "PATH": f"{mlflow_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONWARNINGS": "ignore",
    }
    started: dict[str, tuple[Served, Served]] = {}
    try:
        for model in MODELS:
            port = _free_port()
            theirs = _start(
                [
                    str(mlflow_bin / "mlflow"),
                    "models",
                    "serve",
                    "-m",
                    str(model_dirs / model),
                    "--env-manager",
                    "local",
                    "-p",
                    str(port),
                ],
                logs / f"mlflow-{model}.log",
                port,
                mlflow_env,
            )
            started[model] = (theirs, theirs)
        for model in MODELS:
            port = _free_port()
            ours = _start(
                [*OURS_COMMAND, "-m", str(model_dirs / model), "-p", str(port)],
                logs / f"ours-{model}.log",
                port,
                dict(os.environ),
            )
            started[model] = (started[model][0], ours)
        deadline = time.monotonic() + START_SECONDS
        for pair in started.values():
            for served in pair:
                _wait_until_pinged(served, deadline)
        yield started
    finally:
        _stop_all(list({served for pair in started.values() for served in pair}))


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    text: str
    json: Any

    @property
    def error_code(self) -> str | None:
        return self.json.get("error_code") if isinstance(self.json, dict) else None


def _ask(served: Served, case: Case) -> Answer:
    headers = {} if case.content_type is None else {"Content-Type": case.content_type}
    response = requests.request(
        case.method, served.url + case.path, data=case.body, headers=headers, timeout=60
    )
    if case.content_type is None and case.method == "POST":
        assert "Content-Type" not in response.request.headers
    try:
        decoded = response.json()
    except ValueError:
        decoded = None
    return Answer(
        response.status_code, response.headers.get("Content-Type", ""), response.text, decoded
    )


def _assert_close(ours: Any, theirs: Any, where: str = "predictions") -> None:
    if isinstance(theirs, float) and isinstance(ours, (int, float)):
        if math.isnan(theirs):
            assert math.isnan(ours), where
        else:
            assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-9), where
    elif isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs), where
        for i, (o, t) in enumerate(zip(ours, theirs, strict=True)):
            _assert_close(o, t, f"{where}[{i}]")
    elif isinstance(theirs, dict):
        assert isinstance(ours, dict) and ours.keys() == theirs.keys(), where
        for key in theirs:
            _assert_close(ours[key], theirs[key], f"{where}.{key}")
    else:
        assert ours == theirs, where


def _assert_same(ours: Answer, theirs: Answer) -> None:
    assert ours.status == theirs.status, (ours.text[:500], theirs.text[:500])
    if theirs.status == 200 and theirs.json is None:
        assert (ours.text, ours.content_type) == (theirs.text, theirs.content_type)
    elif theirs.status == 200:
        assert ours.json is not None, ours.text[:500]
        _assert_close(ours.json, theirs.json, "body")
    elif theirs.error_code is not None:
        assert ours.error_code == theirs.error_code, (ours.text[:500], theirs.text[:500])
        for field in ("sqlstate", "error_class"):
            assert ours.json.get(field) == theirs.json.get(field), field
        assert ("stack_trace" in ours.json) == ("stack_trace" in theirs.json)
    else:
        assert ours.json == theirs.json, (ours.text[:500], theirs.text[:500])


def _assert_error_json(answer: Answer, status: int) -> None:
    assert answer.status == status
    assert answer.content_type.startswith("application/json")
    assert answer.error_code is not None
    assert answer.json["message"]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_same_answer_as_mlflow(case: Case, servers: dict[str, tuple[Served, Served]]) -> None:
    theirs_server, ours_server = servers[case.model]
    theirs, ours = _ask(theirs_server, case), _ask(ours_server, case)
    if case.expect == SAME:
        _assert_same(ours, theirs)
    elif case.expect == FIX_415_JSON:
        assert (theirs.status, theirs.content_type.split(";")[0]) == (415, "text/plain")
        _assert_error_json(ours, 415)
    elif case.expect == FIX_MISSING_CONTENT_TYPE:
        assert theirs.status == 500
        _assert_error_json(ours, 415)
        assert "Content-Type" in ours.json["message"]
    elif case.expect == FIX_CLIENT_FAULT:
        assert (theirs.status, theirs.text) == (500, "Internal Server Error")
        _assert_error_json(ours, 400)
        assert ours.error_code == "BAD_REQUEST"
    elif case.expect == OUR_VERSION:
        assert (theirs.status, theirs.text) == (200, "3.17.2")
        assert ours.status == 200
        assert ours.text == __import__("jupyter_serve").__version__
    else:
        pytest.fail(f"unknown expectation {case.expect!r}")


def test_server_keeps_serving_after_the_model_raised(
    servers: dict[str, tuple[Served, Served]],
) -> None:
    _, ours = servers["classifier"]
    failing = Case("nan", "classifier", b'{"inputs": {"a": [NaN], "b": [1], "c": [2]}}')
    good = Case("ok", "classifier", b'{"inputs": {"a": [1.0], "b": [1.0], "c": [2.0]}}')
    assert _ask(ours, failing).status == 400
    answer = _ask(ours, good)
    assert answer.status == 200
    assert isinstance(answer.json["predictions"], list)


def test_concurrent_requests_get_their_own_answers(
    servers: dict[str, tuple[Served, Served]],
) -> None:
    """Requests merged into one predict call by our server must still be answered one by one."""
    from concurrent.futures import ThreadPoolExecutor

    theirs, ours = servers["regressor"]
    bodies = [
        json.dumps({"dataframe_split": {"columns": ["a", "b", "c"], "data": [[i, -i, i / 2]]}})
        for i in range(24)
    ]

    def ask(served: Served, body: str) -> Any:
        response = requests.post(
            f"{served.url}/invocations",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=60,
        )
        return response.json()

    with ThreadPoolExecutor(max_workers=8) as pool:
        our_answers = list(pool.map(lambda body: ask(ours, body), bodies))
    their_answers = [ask(theirs, body) for body in bodies]
    _assert_close(our_answers, their_answers, "answers")
