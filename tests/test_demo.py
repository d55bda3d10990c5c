"""`make demo`'s job: register the spam classifier once and serve models:/spam/Production."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _post(url: str, body: dict[str, object]) -> object:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def _run_demo(port: int) -> tuple[list[object], str]:
    demo = subprocess.Popen(
        [sys.executable, "-m", "jupyter_serve.demo", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ),
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1).close()
                break
            except OSError:
                assert demo.poll() is None, "the demo exited before serving"
                assert time.monotonic() < deadline, "the demo did not answer /ping within 60 s"
                time.sleep(0.1)
        body = {"dataframe_split": {"columns": ["text"], "data": [["You won a FREE prize!"]]}}
        answer = _post(f"http://127.0.0.1:{port}/invocations", body)
    finally:
        demo.send_signal(signal.SIGINT)
        output, _ = demo.communicate(timeout=30)
    assert demo.returncode == 0, output
    assert isinstance(answer, dict)
    return answer["predictions"], output


def test_demo_registers_once_and_serves_the_production_spam_model(
    isolated_jupyter_dirs: Path,
) -> None:
    predictions, output = _run_demo(_free_port())
    assert predictions == ["spam"]
    assert "Registered the demo spam classifier as spam version 1 (Production)" in output
    _, again = _run_demo(_free_port())
    assert "already in Production (version 1)" in again
