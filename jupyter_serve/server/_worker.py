"""One worker process of a `WorkerPool`: loads the model itself and serves the shared port.

Started as ``python -m jupyter_serve.server._worker``; reads its assignment as one JSON line
on stdin (never argv, which other local users can read: it may hold the proxy secret), prints
``READY`` on stdout once it accepts connections, then one metrics line per second, and
``REMOTE_STOP`` when a remote stop (with the secret) reached it: the pool decides. A worker
that cannot serve prints ``ERROR <message>`` instead of ``READY`` and exits 1. It stops on
SIGTERM/SIGINT, and on its own when its parent process goes away.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

from jupyter_serve.errors import JupyterServeError

READY_LINE = "READY"
REMOTE_STOP_LINE = "REMOTE_STOP"
ERROR_PREFIX = "ERROR "
_METRICS_INTERVAL_SECONDS = 1.0


def main() -> int:
    """Serve the assignment read from stdin; 0 after a clean stop, 1 when it cannot serve."""
    assignment: dict[str, Any] = json.loads(sys.stdin.readline())
    parent = os.getppid()
    from jupyter_serve._serving_process import tune_for_serving
    from jupyter_serve.models import load_model
    from jupyter_serve.server._options import ServerOptions
    from jupyter_serve.server._server import ScoringServer

    options = ServerOptions(**{**assignment["options"], "workers": 1, "reuse_port": True})
    stdout_lock = threading.Lock()  # the server thread and the reporter both write lines

    def write_line(line: str) -> None:
        with stdout_lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

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
    write_line(READY_LINE)
    stopped = threading.Event()

    def report_metrics_until_orphaned() -> None:
        while not stopped.wait(_METRICS_INTERVAL_SECONDS):
            if os.getppid() != parent:
                server.stop()
                return
            try:
                write_line(json.dumps(server.metrics.snapshot()))
            except (BrokenPipeError, ValueError):
                server.stop()
                return

    reporter = threading.Thread(target=report_metrics_until_orphaned, daemon=True)
    reporter.start()
    try:
        server.serve_forever()
    finally:
        stopped.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
