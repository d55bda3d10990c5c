"""A real IPython kernel driven over jupyter_client, as a notebook front end drives it.

Used by the kernel tests: every message is read from the real ZMQ channels, filtered by the
request that caused it, until the kernel reports idle.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from jupyter_client.manager import KernelManager

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class CellResult:
    """What a front end would show for one executed cell."""

    status: str = ""
    stdout: str = ""
    stderr: str = ""
    plain: list[str] = field(default_factory=list)  # text/plain of displays and results
    html: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None
    payload: list[dict[str, Any]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join([self.stdout, *self.plain]).strip()

    @property
    def error_text(self) -> str:
        """Everything shown in red: stderr and a traceback, without colour codes."""
        parts = [self.stderr]
        if self.error is not None:
            parts.extend(self.error.get("traceback", []))
        return _ANSI.sub("", "\n".join(parts)).strip()


class Kernel:
    """One IPython kernel in its own runtime dir and registry; shut it down when done."""

    def __init__(
        self, runtime_dir: Path, registry_dir: Path, extra_env: dict[str, str] | None = None
    ) -> None:
        self.runtime_dir = runtime_dir
        env = {
            **os.environ,
            "JUPYTER_RUNTIME_DIR": str(runtime_dir),
            "JUPYTER_SERVE_REGISTRY": str(registry_dir),
            "PYTHONWARNINGS": "ignore",
            **(extra_env or {}),
        }
        runtime_dir.mkdir(parents=True, exist_ok=True)
        # Named as a Jupyter server names it, which is where the kernel id comes from.
        connection_file = runtime_dir / f"kernel-{uuid.uuid4()}.json"
        self.manager = KernelManager(kernel_name="python3", connection_file=str(connection_file))
        self.manager.start_kernel(env=env)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    @property
    def kernel_id(self) -> str:
        return Path(self.manager.connection_file).stem.removeprefix("kernel-")

    @property
    def pid(self) -> int:
        provisioner = self.manager.provisioner
        assert provisioner is not None
        return int(provisioner.process.pid)  # type: ignore[attr-defined]

    def submit(self, code: str) -> str:
        """Start running ``code``; returns the request id for :meth:`collect`."""
        msg_id: str = self.client.execute(code, allow_stdin=False)
        return msg_id

    def collect(
        self, msg_id: str, timeout: float = 60, until_stdout: str | None = None
    ) -> CellResult:
        """Read the cell's output until the kernel is idle (or, with ``until_stdout``, until
        that text has been printed, leaving the rest of the cell running)."""
        result = CellResult()
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"cell {msg_id} still running after {timeout} s: {result}")
            try:
                message = self.client.get_iopub_msg(timeout=remaining)
            except queue.Empty:
                continue
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                if content["name"] == "stdout":
                    result.stdout += content["text"]
                else:
                    result.stderr += content["text"]
                if until_stdout is not None and until_stdout in result.stdout:
                    return result
            elif kind in ("display_data", "execute_result"):
                result.plain.append(content["data"].get("text/plain", ""))
                if "text/html" in content["data"]:
                    result.html.append(content["data"]["text/html"])
            elif kind == "error":
                result.error = content
            elif kind == "status" and content["execution_state"] == "idle":
                break
        reply = self.client.get_shell_msg(timeout=max(deadline - time.monotonic(), 1))
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.client.get_shell_msg(timeout=max(deadline - time.monotonic(), 1))
        result.status = reply["content"]["status"]
        result.payload = reply["content"].get("payload", [])
        return result

    def run(self, code: str, timeout: float = 60) -> CellResult:
        """Run ``code`` to completion and return what it showed."""
        return self.collect(self.submit(code), timeout=timeout)

    def ok(self, code: str, timeout: float = 60) -> CellResult:
        """Run ``code``; fail with the kernel's error when it raises."""
        result = self.run(code, timeout)
        assert result.status == "ok", result.error_text
        return result

    def shutdown(self, *, restart: bool = False) -> None:
        """Ask the kernel to shut down (or restart) the way a front end does: gracefully."""
        if restart:
            self.manager.restart_kernel(now=False)
            self.client.wait_for_ready(timeout=60)
            return
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def port_is_listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex((host, port)) == 0


def discovery_files(runtime_dir: Path) -> list[Path]:
    return sorted((runtime_dir / "jupyter-serve").glob("deployment-*.json"))


def wait_until(predicate: Any, timeout: float = 10, message: str = "condition") -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not reached within {timeout} s")
        time.sleep(0.02)


@contextlib.contextmanager
def jupyter_server_process(
    home: Path, port: int, token: str, env: dict[str, str], base_url: str = "/"
) -> Iterator[str]:
    """A real `jupyter server` on 127.0.0.1:``port`` rooted at ``home`` (its output in
    ``home/server.log``): yields its URL once ``api/status`` answers, and stops it afterwards
    (SIGINT twice, the second skipping the confirmation; killed if it does not exit)."""
    url = f"http://127.0.0.1:{port}{base_url}"
    with (home / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "jupyter-server"),
                f"--IdentityProvider.token={token}",
                f"--ServerApp.base_url={base_url}",
                f"--ServerApp.root_dir={home}",
                f"--port={port}",
                "--ServerApp.port_retries=0",
                "--ServerApp.ip=127.0.0.1",
                "--no-browser",
                "--allow-root",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

        def answers() -> bool:
            assert process.poll() is None, (home / "server.log").read_text()
            try:
                status = requests.get(
                    url + "api/status", headers={"Authorization": f"token {token}"}, timeout=60
                )
            except requests.ConnectionError:
                return False
            return status.status_code == 200

        try:
            wait_until(answers, timeout=60, message="jupyter server answering")
            yield url
        finally:
            process.send_signal(signal.SIGINT)
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
