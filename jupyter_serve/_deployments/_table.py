"""The deployments of this process: starting, swapping, stopping, and keeping discovery current.

One table per process (the public functions in ``_api`` share it). Lifecycle operations are
serialised by one lock; they are rare and quick next to the requests the servers answer on their own
threads. One background thread refreshes every deployment's discovery record about once a
second (never per request), and exits as soon as the table is empty, so a process that stops
serving keeps no thread of ours.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from jupyter_serve._deployments._deployment import Deployment
from jupyter_serve._deployments._environment import (
    current_kernel_id,
    jupyter_server_url,
    proxy_url,
)
from jupyter_serve._deployments._servers import start_server
from jupyter_serve._deployments._serving_runtime import ServingRuntime
from jupyter_serve.discovery import deployment_id, is_valid_deployment_name, read_records
from jupyter_serve.errors import DeploymentError
from jupyter_serve.options import server_fields

if TYPE_CHECKING:
    from jupyter_serve._deployments._sources import ModelSource

METRICS_REFRESH_SECONDS = 1.0


def check_name(name: str) -> None:
    """Raise ``DeploymentError`` unless ``name`` can name a deployment."""
    if not is_valid_deployment_name(name):
        raise DeploymentError(
            f"Invalid deployment name {name!r}: expected 1-64 letters, digits, '_', '.' or '-' "
            "starting with a letter or digit. Pass another name (--name)."
        )


class DeploymentTable:
    """Every deployment this process serves, by name. All methods are thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._by_name: dict[str, Deployment] = {}
        self._writer: threading.Thread | None = None
        self._wake_writer = threading.Event()
        self._change_listeners: list[Callable[[], None]] = []
        self._serving_runtime = ServingRuntime()

    def add_change_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after each deployment starts or stops (not on swaps), on the
        thread that started or stopped it: how a live view follows the table without polling
        it while nothing runs."""
        with self._lock:
            self._change_listeners.append(listener)

    def _notify_change(self) -> None:
        with self._lock:
            listeners = list(self._change_listeners)
        for listener in listeners:
            with contextlib.suppress(Exception):  # a view's failure never fails a deployment
                listener()

    def running(self) -> list[Deployment]:
        """The running deployments, oldest first."""
        with self._lock:
            return sorted(self._by_name.values(), key=lambda d: d.started_at)

    def get(self, name: str) -> Deployment | None:
        with self._lock:
            return self._by_name.get(name)

    def serve(
        self,
        source: ModelSource,
        *,
        name: str,
        options: Mapping[str, Any],
        python: str | None = None,
    ) -> tuple[Deployment, bool]:
        """Start ``source`` as deployment ``name``, or swap it into the running one.

        Returns the deployment and whether it was swapped. On any error nothing is left
        started: no thread, no socket, no discovery file. ``python`` (an isolated environment's
        interpreter) runs the model in worker processes of that interpreter. ``options``
        holds every serving option (`jupyter_serve.options`), checked.
        """
        port = options["port"]
        with self._lock:
            existing = self._by_name.get(name)
            if existing is not None:
                if port not in (None, 0, existing.port):
                    raise DeploymentError(
                        f"Deployment {name!r} already serves on port {existing.port}, not {port}: "
                        f"a model swap keeps the port. Stop it first (%unserve {name}) to move it, "
                        "or pick another name."
                    )
                existing.swap(source)
                return existing, True
            deployment = self._start(source, name, options, python)
            self._by_name[name] = deployment
            deployment.publish()
            self._ensure_writer()
            self._serving_runtime.enter()
        self._notify_change()
        return deployment, False

    def _start(
        self,
        source: ModelSource,
        name: str,
        options: Mapping[str, Any],
        python: str | None,
    ) -> Deployment:
        from jupyter_serve.server import ServerOptions

        secret = secrets.token_urlsafe(32)
        server_options = ServerOptions(**server_fields(options), secret=secret, model_name=name)
        holder: list[Deployment] = []
        server = start_server(
            source, server_options, on_remote_stop=lambda: self._stop_soon(holder), python=python
        )
        deployment = Deployment(
            name,
            source,
            server,
            secret=secret,
            options=options,
            kernel_id=current_kernel_id(),
            proxy_url=proxy_url(deployment_id(os.getpid(), name), jupyter_server_url()),
            on_stop=self._stop_deployment,
        )
        holder.append(deployment)
        return deployment

    def stop(self, name: str) -> None:
        """Stop deployment ``name``; ``DeploymentError`` naming the running ones if unknown."""
        with self._lock:
            deployment = self._by_name.get(name)
            running = ", ".join(sorted(self._by_name)) or "none"
        if deployment is None:
            raise DeploymentError(
                f"No deployment named {name!r} in this process (running: {running})."
            )
        self._stop_deployment(deployment)

    def stop_all(self) -> None:
        """Stop every deployment and the discovery writer; safe at interpreter exit. The
        deployments drain at the same time: a shutdown waits for the slowest, not the sum."""
        stopping = [
            threading.Thread(
                target=self._stop_quietly, args=(deployment,), name="jupyter-serve-stop"
            )
            for deployment in self.running()
        ]
        started = []
        for thread in stopping:
            try:
                thread.start()
                started.append(thread)
            except RuntimeError:  # no new threads this late in the interpreter's exit
                thread.run()
        for thread in started:
            thread.join()
        self._join_writer_if_idle()

    def _stop_quietly(self, deployment: Deployment) -> None:
        with contextlib.suppress(Exception):
            self._stop_deployment(deployment)

    def _stop_deployment(self, deployment: Deployment) -> None:
        with self._lock:
            if self._by_name.get(deployment.name) is deployment:
                del self._by_name[deployment.name]
            if not self._by_name:
                self._serving_runtime.leave()
        deployment.shut_down()
        self._join_writer_if_idle()
        self._notify_change()

    def _stop_soon(self, holder: list[Deployment]) -> None:
        # Called on the server's own thread, which stop() joins: stop from another thread.
        if holder:
            threading.Thread(
                target=self._stop_deployment,
                args=(holder[0],),
                name=f"jupyter-serve-remote-stop-{holder[0].name}",
                daemon=True,
            ).start()

    def _ensure_writer(self) -> None:
        if self._writer is None:
            # Records left by killed kernels (SIGKILL runs no exit hook) go when serving resumes.
            with contextlib.suppress(OSError):
                read_records(remove_stale=True)
            self._wake_writer.clear()
            self._writer = threading.Thread(
                target=self._write_records, name="jupyter-serve-discovery", daemon=True
            )
            self._writer.start()

    def _write_records(self) -> None:
        while True:
            self._wake_writer.wait(METRICS_REFRESH_SECONDS)
            with self._lock:
                if not self._by_name:
                    self._writer = None
                    return
                self._wake_writer.clear()
                running = list(self._by_name.values())
            for deployment in running:
                with contextlib.suppress(Exception):  # a full disk must not kill the writer
                    deployment.publish()

    def _join_writer_if_idle(self) -> None:
        with self._lock:
            writer = self._writer if not self._by_name else None
        if writer is not None and writer is not threading.current_thread():
            self._wake_writer.set()
            writer.join(timeout=5)
