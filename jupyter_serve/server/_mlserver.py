"""`models serve --enable-mlserver`: the real MLServer, with its MLflow runtime, serves the model.

What ``mlflow models serve --enable-mlserver`` did until MLflow 3 dropped it: run
``mlserver start <model directory>`` with the model described by environment variables (the
MLflow runtime as its implementation, the directory as its URI, the name from
``$MLSERVER_MODEL_NAME`` or ``mlflow-model``); ``--host``, ``--port`` and ``--workers`` become
``MLSERVER_HOST``, ``MLSERVER_HTTP_PORT`` and ``MLSERVER_PARALLEL_WORKERS``; every other
``MLSERVER_*`` variable (gRPC and metrics ports, model version, adaptive batching...) is left for
MLServer to read. It needs the ``jupyter-serve[mlserver]`` extra; without it, the scoring server
itself already answers the V2 inference protocol at /v2.

MLServer runs as a child process in its own session, so a Ctrl+C reaches it once, through us;
on Linux it also gets SIGTERM should this process die without stopping it.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

from jupyter_serve.errors import MissingDependencyError

MLFLOW_RUNTIME = "mlserver_mlflow.MLflowRuntime"
DEFAULT_MODEL_NAME = "mlflow-model"
EXTRA_INSTALL = "pip install 'jupyter-serve[mlserver]'"
_REQUIRED_MODULES = ("mlserver", "mlserver_mlflow", "mlflow")
_READY_POLL_SECONDS = 0.25
_STOP_TIMEOUT_SECONDS = 60.0
_PR_SET_PDEATHSIG = 1


def require_mlserver() -> None:
    """Raise `MissingDependencyError` (one line, naming the extra) unless MLServer, its MLflow
    runtime and MLflow can be imported here. Imports none of them (MLflow is slow to import)."""
    missing = [name for name in _REQUIRED_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingDependencyError(
            f"--enable-mlserver runs MLServer with its MLflow runtime, which is not installed "
            f"here (no module {', '.join(missing)}): {EXTRA_INSTALL}. Without it, drop "
            "--enable-mlserver: every deployment already answers the V2 inference protocol "
            "natively at /v2."
        )


def mlserver_environment(
    model_dir: Path, host: str, port: int, workers: int, environ: Mapping[str, str]
) -> dict[str, str]:
    """The environment ``mlserver start`` runs with: ``environ`` plus the model and our
    options, as MLflow 2.x set them (a user's $MLSERVER_MODEL_NAME is kept)."""
    environment = dict(environ)
    environment["MLSERVER_HOST"] = host
    environment["MLSERVER_HTTP_PORT"] = str(port)
    environment["MLSERVER_PARALLEL_WORKERS"] = str(workers)
    environment["MLSERVER_MODEL_NAME"] = environ.get("MLSERVER_MODEL_NAME") or DEFAULT_MODEL_NAME
    environment["MLSERVER_MODEL_IMPLEMENTATION"] = MLFLOW_RUNTIME
    environment["MLSERVER_MODEL_URI"] = str(model_dir)
    return environment


class MLServerProcess:
    """``mlserver start`` on one model directory, as a child process of this one."""

    def __init__(self, model_dir: Path, host: str, port: int, workers: int) -> None:
        self.host = host
        self.port = port
        self._environment = mlserver_environment(model_dir, host, port, workers, os.environ)
        self.model_name = self._environment["MLSERVER_MODEL_NAME"]
        self._parent = os.getpid()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlserver.cli.main", "start", str(model_dir)],
            env=self._environment,
            start_new_session=True,
            preexec_fn=self._stop_with_parent if sys.platform == "linux" else None,
        )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def wait_until_ready(self) -> bool:
        """Block until the model answers ready (True) or MLServer exits (False): MLServer
        exits by itself when the model fails to load, so there is no deadline here."""
        ready_url = f"{self._local_url()}/v2/models/{self.model_name}/ready"
        while self.process.poll() is None:
            try:
                with urllib.request.urlopen(ready_url, timeout=5) as answer:
                    if answer.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(_READY_POLL_SECONDS)
        return False

    def forward(self, signum: int, _frame: FrameType | None = None) -> None:
        """Pass a stop signal on to MLServer, which then shuts down its workers itself."""
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def wait(self) -> int:
        """MLServer's exit status, once it has exited."""
        return self.process.wait()

    def stop(self) -> None:
        """Stop MLServer (SIGTERM, then SIGKILL after a minute) and wait for it."""
        self.forward(signal.SIGTERM)
        try:
            self.process.wait(_STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def _local_url(self) -> str:
        wildcard = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}
        host = wildcard.get(self.host, self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def _stop_with_parent(self) -> None:
        # In the child, before exec: the kernel sends SIGTERM when this process dies.
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != self._parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)


def serve_with_mlserver(model_dir: Path, model_uri: str, host: str, port: int, workers: int) -> int:
    """Run MLServer on ``model_dir`` until SIGINT/SIGTERM (passed on to it) and return 0, or
    MLServer's own non-zero status when it stops by itself (its output says why). ``port``
    must not be 0: MLServer does not say which port it was given then."""
    stopping: list[int] = []
    server = MLServerProcess(model_dir, host, port, workers)

    def forward(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)
        server.forward(signum, frame)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if server.wait_until_ready():
            print(
                f"jupyter-serve: serving {model_uri} with MLServer at {server.url} "
                f"(V2 inference: /v2/models/{server.model_name}/infer; Ctrl+C to stop)",
                flush=True,
            )
        status = server.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.stop()
    if status == 0 or -status in stopping:
        print("jupyter-serve: stopped", flush=True)
        return 0
    print(
        f"jupyter-serve: error: MLServer exited with status {status} (its output above says why).",
        file=sys.stderr,
    )
    return status if status > 0 else 1
