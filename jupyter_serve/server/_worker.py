"""One worker process of a `WorkerPool`: loads the model itself and serves the shared port.

Started as ``python -m jupyter_serve.server._worker``; reads its assignment as one JSON line
on stdin (never argv, which other local users can read: it may hold the proxy secret), prints
``READY`` on stdout once it accepts connections, then one metrics line per second (the pool's
heartbeat), and ``REMOTE_STOP`` when a remote stop (with the secret) reached it: the pool
decides. A worker that cannot serve prints ``ERROR <message>`` instead of ``READY`` and exits 1.

It stops on SIGTERM/SIGINT from the pool, and whenever the pool process goes away, however it
goes: stdin is a pipe the pool never closes while it lives, so its end of file means the pool
is gone (or is stopping us); on Linux the kernel also SIGKILLs us when the pool's thread that
started us exits (``PR_SET_PDEATHSIG``), which still works when this process is too stuck to
read its stdin.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import sys
import threading
from typing import Any

from jupyter_serve.errors import JupyterServeError

READY_LINE = "READY"
REMOTE_STOP_LINE = "REMOTE_STOP"
ERROR_PREFIX = "ERROR "
# The pool asks for the captured rows with this line on stdin; the answer is one line.
CAPTURE_REQUEST = "CAPTURE"
CAPTURE_PREFIX = "CAPTURE "
ACCESS_PREFIX = "ACCESS "  # an access-log line, logged again by the pool
_METRICS_INTERVAL_SECONDS = 1.0
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # no prctl here: the stdin watch still stops us
        pass


def main() -> int:
    """Serve the assignment read from stdin; 0 after a clean stop, 1 when it cannot serve."""
    _die_with_parent()
    assignment: dict[str, Any] = json.loads(sys.stdin.readline())
    if os.getppid() != assignment.get("pool_pid", os.getppid()):
        return 0  # the pool died before we asked to die with it
    from jupyter_serve._serving_process import tune_for_serving
    from jupyter_serve.models import load_model
    from jupyter_serve.server._options import ServerOptions
    from jupyter_serve.server._server import ScoringServer

    given = assignment["options"]
    options = ServerOptions(
        **{**given, "workers": 1, "reuse_port": True, "log_exclude": tuple(given["log_exclude"])}
    )
    stdout_lock = threading.Lock()  # the server thread and the reporter both write lines
    pool_gone = threading.Event()
    server: ScoringServer | None = None

    def write_line(line: str) -> None:
        with stdout_lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    if options.access_log:
        _forward_access_log(write_line)

    def watch_pool() -> None:
        for line in sys.stdin:  # returns at end of file
            if line.strip() == CAPTURE_REQUEST:
                records = server.captured_records() if server is not None else []
                write_line(CAPTURE_PREFIX + json.dumps(records, default=str))
        pool_gone.set()
        if server is None:
            os._exit(0)  # still loading the model: nobody is waiting for it
        server.stop()

    threading.Thread(target=watch_pool, name="jupyter-serve-pool-watch", daemon=True).start()
    try:
        model = load_model(assignment["model_path"])
        tune_for_serving()
        server = ScoringServer(
            model,
            options,
            model_uri=assignment["model_uri"],
            version=assignment["version"],
            on_remote_stop=lambda: write_line(REMOTE_STOP_LINE),
        )
        server.start()
    except (JupyterServeError, OSError) as error:
        # The pool reports it, once, in its own error: no line per worker on the terminal.
        write_line(f"{ERROR_PREFIX}{' '.join(str(error).split())}")
        return 1
    if pool_gone.is_set():
        server.stop()
        return 0
    write_line(READY_LINE)
    stopped = threading.Event()
    serving = server

    def report_metrics() -> None:
        while not stopped.wait(_METRICS_INTERVAL_SECONDS):
            try:
                write_line(json.dumps(serving.metrics.snapshot()))
            except (BrokenPipeError, ValueError):
                serving.stop()
                return

    threading.Thread(target=report_metrics, name="jupyter-serve-metrics", daemon=True).start()
    try:
        serving.serve_forever()
    finally:
        stopped.set()
    return 0


def _forward_access_log(write_line: Any) -> None:
    import logging

    from jupyter_serve.server._access_log import ACCESS_LOGGER, BatchedLineHandler

    def to_pool(text: str) -> None:  # whole lines: each becomes one line to the pool
        write_line("\n".join(ACCESS_PREFIX + line for line in text.splitlines()))

    ACCESS_LOGGER.addHandler(BatchedLineHandler(to_pool))
    ACCESS_LOGGER.setLevel(logging.INFO)
    ACCESS_LOGGER.propagate = False


if __name__ == "__main__":
    exit_code = main()
    logging.shutdown()  # the last access-log lines reach the pool
    sys.stdout.flush()
    # Served and drained: a prediction still running past the drain timeout (its request was
    # answered 503) must not keep the process alive, as the interpreter's exit would.
    os._exit(exit_code)
