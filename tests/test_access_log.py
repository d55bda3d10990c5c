"""Access logs: `jupyter-serve models serve` prints one line per request on stdout (uvicorn's
line plus latency, request id and model version), JSON lines with --log-format json, none with
--no-access-log; with -w 2 the workers' lines come out of the parent. In a kernel nothing
reaches a cell's output; the logger ``jupyter_serve.access`` gets the lines."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from _support import Kernel, free_port, wait_until
from sklearn.linear_model import LogisticRegression

from jupyter_serve.models import save_model

CLI = [str(Path(sys.executable).parent / "jupyter-serve"), "models", "serve"]
GOOD = {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0], [30.0, 0.0]]}}
TEXT_LINE = re.compile(
    r'INFO:     127\.0\.0\.1:\d+ - "(?P<method>[A-Z]+) (?P<path>\S+) HTTP/1\.1" (?P<status>\d{3}) '
    r"[A-Za-z ]+ (?P<ms>\d+\.\d)ms request_id=(?P<id>\S+) model_version=(?P<version>\S+)$"
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    features = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) % 3})
    classifier = LogisticRegression().fit(features, (features["a"] > 9).astype(int))
    return save_model(classifier, tmp_path_factory.mktemp("access") / "model")


def serve_and_send(
    model_dir: Path, tmp_path: Path, *flags: str, stop_once_logged: bool = False
) -> tuple[list[str], int]:
    """Serve with ``flags``, send 3 good requests (ids ours-0..2), one bad and one 404, stop
    (at once, or once every request's line is out); the stdout lines, and how many requests
    were sent in all (readiness pings included)."""
    port = free_port()
    process = subprocess.Popen(
        [*CLI, "-m", str(model_dir), "-p", str(port), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
        env={**os.environ, "JUPYTER_SERVE_REGISTRY": str(tmp_path / "registry")},
    )
    url = f"http://127.0.0.1:{port}"
    pings = 0

    def answers() -> bool:
        nonlocal pings
        assert process.poll() is None
        try:
            pings += 1
            return requests.get(url + "/ping", timeout=5).status_code == 200
        except requests.ConnectionError:
            pings -= 1  # never reached the server
            return False

    try:
        wait_until(answers, timeout=120, message="the server to answer")
        for index in range(3):
            answer = requests.post(
                url + "/invocations", json=GOOD, headers={"X-Request-ID": f"ours-{index}"}
            )
            assert answer.status_code == 200
        assert requests.post(url + "/invocations", json={"nope": 1}).status_code == 400
        assert requests.get(url + "/nowhere").status_code == 404
        if stop_once_logged:
            assert process.stdout is not None
            seen: list[str] = []
            wait_until(
                lambda: (
                    len([line for line in _read_line(process, seen) if "request_id" in line])
                    >= pings + 5
                ),
                timeout=60,
                message="every access line",
            )
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            stdout, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, _ = process.communicate()
    earlier = seen if stop_once_logged else []
    return earlier + stdout.splitlines(), pings + 5


def _read_line(process: subprocess.Popen[str], seen: list[str]) -> list[str]:
    assert process.stdout is not None
    seen.append(process.stdout.readline().rstrip("\n"))
    return seen


def test_the_cli_prints_one_access_line_per_request(model_dir: Path, tmp_path: Path) -> None:
    lines, sent = serve_and_send(model_dir, tmp_path)
    access = [TEXT_LINE.match(line) for line in lines if line.startswith("INFO:")]
    assert all(access), lines
    assert len(access) == sent
    ours = [m for m in access if m and m["id"].startswith("ours-")]
    assert [(m["method"], m["path"], m["status"], m["id"]) for m in ours] == [
        ("POST", "/invocations", "200", f"ours-{index}") for index in range(3)
    ]
    assert {m["version"] for m in access if m} == {"-"}  # a model directory has no version
    statuses = sorted(m["status"] for m in access if m and m["path"] != "/ping")
    assert statuses == ["200", "200", "200", "400", "404"]


def test_json_lines_with_log_format_json(model_dir: Path, tmp_path: Path) -> None:
    lines, sent = serve_and_send(model_dir, tmp_path, "--log-format", "json")
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert len(records) == sent
    ours = [r for r in records if r["request_id"].startswith("ours-")]
    assert len(ours) == 3
    assert set(ours[0]) == {
        "time", "client", "method", "path", "status", "latency_ms", "request_id", "model_version"
    }  # fmt: skip
    assert ours[0]["path"] == "/invocations" and ours[0]["status"] == 200
    assert ours[0]["latency_ms"] > 0
    assert not [line for line in lines if line.startswith("INFO:")]


def test_no_access_log_prints_none(model_dir: Path, tmp_path: Path) -> None:
    lines, _ = serve_and_send(model_dir, tmp_path, "--no-access-log")
    assert not [line for line in lines if "request_id" in line], lines


def test_two_workers_print_their_lines_through_the_parent(model_dir: Path, tmp_path: Path) -> None:
    # Stopped once every line is out: what -w N prints while stopping is the drain's business.
    lines, sent = serve_and_send(model_dir, tmp_path, "-w", "2", stop_once_logged=True)
    access = [TEXT_LINE.match(line) for line in lines if line.startswith("INFO:")]
    assert all(access) and len(access) == sent, lines


def test_in_a_kernel_the_logger_gets_the_lines_and_no_cell_shows_them(tmp_path: Path) -> None:
    kernel = Kernel(tmp_path / "runtime", tmp_path / "registry")
    try:
        served = kernel.ok(
            "import logging, numpy as np, pandas as pd, urllib.request\n"
            "from sklearn.linear_model import LogisticRegression\n"
            "from jupyter_serve import serve\n"
            "logging.basicConfig(level=logging.INFO)  # a root handler printing into cells\n"
            "class Lines(logging.Handler):\n"
            "    def __init__(self):\n"
            "        super().__init__(); self.lines = []\n"
            "    def emit(self, record): self.lines.append(record.getMessage())\n"
            "lines = Lines()\n"
            "access = logging.getLogger('jupyter_serve.access')\n"
            "access.addHandler(lines); access.setLevel(logging.INFO)\n"
            "X = pd.DataFrame({'a': np.arange(20.0), 'b': np.arange(20.0) % 3})\n"
            "clf = LogisticRegression().fit(X, (X['a'] > 9).astype(int))\n"
            "deployment = serve(clf, name='clf')\n"
            "for i in range(4):\n"
            "    urllib.request.urlopen(urllib.request.Request(deployment.url + '/ping',\n"
            "        headers={'X-Request-ID': f'k-{i}'})).read()\n",
            timeout=120,
        )
        kernel.ok("import time\ntime.sleep(0.5)")
        wait_until(
            lambda: "4" in kernel.ok("print(len(lines.lines))").stdout,
            timeout=30,
            message="the four access lines",
        )
        shown = kernel.ok("print('\\n'.join(lines.lines))").stdout.splitlines()
        assert [line.split("request_id=")[1].split()[0] for line in shown] == [
            f"k-{i}" for i in range(4)
        ]
        assert "request_id" not in served.stdout + served.stderr
    finally:
        kernel.shutdown()
