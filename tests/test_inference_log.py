"""The inference log: --log-predictions appends the scored rows as JSON lines, a sampled share
with --log-sample, never the --log-exclude columns, rotated by size; a writer killed with
SIGKILL leaves a log that still reads, and the next writer starts on a fresh line."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from _support import free_port, wait_until
from sklearn.linear_model import LogisticRegression

import jupyter_serve
from jupyter_serve import read_inference_log
from jupyter_serve.models import save_model

CLI = [str(Path(sys.executable).parent / "jupyter-serve"), "models", "serve"]
ROWS_PER_REQUEST = 100


@pytest.fixture(scope="module")
def classifier() -> LogisticRegression:
    features = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) % 3})
    return LogisticRegression().fit(features, (features["a"] > 9).astype(int))


@pytest.fixture
def stop_all() -> Iterator[None]:
    yield
    jupyter_serve.stop(all=True)


def rows(start: int, count: int) -> dict[str, object]:
    data = [[float(i), float(i % 3)] for i in range(start, start + count)]
    return {"dataframe_split": {"columns": ["a", "b"], "data": data}}


def test_a_sampled_share_without_the_excluded_column(
    classifier: LogisticRegression, tmp_path: Path, stop_all: None
) -> None:
    log = tmp_path / "predictions.jsonl"
    deployment = jupyter_serve.serve(
        classifier, name="ab", log_predictions=log, log_sample=0.25, log_exclude=("b",)
    )
    total = 2000
    for start in range(0, total, ROWS_PER_REQUEST):
        answer = requests.post(deployment.url + "/invocations", json=rows(start, 100))
        assert answer.status_code == 200
    deployment.stop()  # the writer writes what is left
    logged = read_inference_log(log)
    # Binomial(2000, 0.25): mean 500, sd 19.4; 6 sd either side fails by chance ~2e-9.
    sd = math.sqrt(total * 0.25 * 0.75)
    assert abs(len(logged) - 500) < 6 * sd, len(logged)
    assert "b" not in logged.columns
    assert all('"b"' not in line for line in log.read_text().splitlines())
    assert logged["a"].is_unique and logged["a"].between(0, total - 1).all()
    assert (logged["prediction"] == (logged["a"] > 9).astype(int)).all()
    assert set(logged["status"]) == {200} and logged["request_id"].notna().all()


def test_rotated_files_are_read_back_oldest_first(
    classifier: LogisticRegression, tmp_path: Path
) -> None:
    log = tmp_path / "predictions.jsonl"
    port = free_port()
    process = subprocess.Popen(
        [*CLI, "-m", str(save_model(classifier, tmp_path / "model")), "-p", str(port),
         "--log-predictions", str(log), "--log-max-bytes", "20000", "--log-backups", "50",
         "--no-access-log"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(url, process), timeout=120, message="the server")
        for start in range(0, 1000, ROWS_PER_REQUEST):
            assert requests.post(url + "/invocations", json=rows(start, 100)).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=120)
    rotated = sorted(tmp_path.glob("predictions.jsonl.*"))
    assert rotated, "no rotation happened"
    assert all(p.stat().st_size <= 20000 for p in [log, *rotated])
    logged = read_inference_log(log)
    assert logged["a"].tolist() == [float(i) for i in range(1000)]


def _answers(url: str, process: subprocess.Popen[str]) -> bool:
    assert process.poll() is None, process.communicate()[1]
    try:
        return requests.get(url + "/ping", timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


def test_a_writer_killed_mid_write_leaves_a_log_that_reads(tmp_path: Path) -> None:
    log = tmp_path / "predictions.jsonl"
    # A writer appending big batches as fast as it can, killed at a random point of a write.
    writer = subprocess.Popen(
        [sys.executable, "-c", _ENDLESS_WRITER, str(log)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    wait_until(lambda: log.exists() and log.stat().st_size > 2_000_000, timeout=120,
               message="the writer to write")  # fmt: skip
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    lines = log.read_bytes().split(b"\n")
    assert len([line for line in lines if line and not _parses(line)]) <= 1
    assert len(read_inference_log(log)) > 0
    # A write is one system call, so SIGKILL rarely tears a line; a full disk or a machine
    # crash does: the half of a line it leaves is skipped by readers.
    with open(log, "ab") as file:
        file.write(b'{"time": "2026-12-07T00:00:00+00:00", "request_id": "torn", "inp')
    before = read_inference_log(log)
    assert "torn" not in set(before["request_id"])
    # The next writer starts on a fresh line: nothing it writes is lost to the torn one.
    from jupyter_serve._inference_log import InferenceLogWriter
    from jupyter_serve.server._exchanges import Exchange

    next_writer = InferenceLogWriter(log)
    next_writer.write([Exchange(0.0, "after-kill", "POST", "/invocations", 200, 0.001, None,
                                None, pd.DataFrame({"a": [1.0]}), None, True)])  # fmt: skip
    next_writer.close()
    after = read_inference_log(log)
    assert len(after) == len(before) + 1
    assert after["request_id"].iloc[-1] == "after-kill"


def _parses(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


_ENDLESS_WRITER = """
import sys
import pandas as pd
from jupyter_serve._inference_log import InferenceLogWriter
from jupyter_serve.server._exchanges import Exchange
frame = pd.DataFrame({"a": [float(i) for i in range(2000)], "text": ["x" * 200] * 2000})
exchange = Exchange(0.0, "r", "POST", "/invocations", 200, 0.001, None, None, frame, None, True)
writer = InferenceLogWriter(sys.argv[1], max_bytes=0)
while True:
    writer.write([exchange])
"""
