"""One running deployment: a model, the scoring server answering for it, its discovery record."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from jupyter_serve.discovery import DeploymentRecord, remove_record, write_record

if TYPE_CHECKING:
    from jupyter_serve._deployments._servers import RunningServer
    from jupyter_serve._deployments._sources import ModelSource
    from jupyter_serve.models import LoadedModel

STARTING, RUNNING, STOPPED, FAILED = "starting", "running", "stopped", "failed"


class Deployment:
    """A model served over HTTP from this process, on its own thread and event loop.

    Obtained from :func:`jupyter_serve.serve` or :func:`jupyter_serve.deployments`; never built
    directly. Attributes are read-only snapshots of the deployment's state; every method is
    thread-safe.
    """

    def __init__(
        self,
        name: str,
        source: ModelSource,
        server: RunningServer,
        *,
        secret: str,
        options: Mapping[str, Any],
        kernel_id: str | None,
        proxy_url: str | None,
        on_stop: Callable[[Deployment], None],
    ) -> None:
        self.name = name
        self.model_uri = source.model_uri
        self.version = source.version
        self.host = server.host
        self.port = server.port
        self.url = server.url
        self.proxy_url = proxy_url
        self.kernel_id = kernel_id
        self.secret = secret
        self.require_secret: bool = options["require_secret"]
        # Every serving option it was started with (`jupyter_serve.options`): a restart
        # serves it again the same way.
        self.options: dict[str, Any] = dict(options)
        self._status = RUNNING
        self.started_at = time.time()
        self.pid = os.getpid()
        self._model = source.model
        self._server = server
        self._on_stop = on_stop
        self._final_metrics: dict[str, Any] | None = None
        # Guards status changes against the discovery writer: once stopped, no record is written.
        self._lock = threading.Lock()

    @property
    def status(self) -> str:
        """``running``, ``stopped``, or ``failed`` when its server ended without being stopped."""
        if self._status == RUNNING and getattr(self._server, "is_running", True) is False:
            return FAILED
        return self._status

    @property
    def id(self) -> str:
        """The id the Jupyter server knows this deployment by (``<pid>-<name>``)."""
        return f"{self.pid}-{self.name}"

    @property
    def model(self) -> LoadedModel:
        """The model currently answering requests."""
        return self._model

    @property
    def metrics(self) -> dict[str, Any]:
        """Traffic figures: requests, errors, in_flight, latency_ms {p50, p90, p99}, ...

        After :meth:`stop`, the figures as they were when the deployment stopped.
        """
        final = self._final_metrics
        if final is not None:
            return final
        snapshot: dict[str, Any] = self._server.metrics.snapshot()
        return snapshot

    @property
    def requests(self) -> Any:
        """The most recent scored rows (``serve(capture=N)``, default 1,000) as a pandas
        DataFrame, one row per scored row, oldest first: the input's columns, then time,
        request_id, route, status, latency_ms, prediction and error. Gathered from every worker
        process now; built on each read."""
        from jupyter_serve._replay import captured_requests

        return captured_requests(self._server)

    def replay(self, candidate: Any) -> Any:
        """Run the captured inputs answered 200 through ``candidate`` (a model URI or a live
        model) and the serving model, in this thread, never the server's: a `ReplayResult`
        with rows, agreement, each model's latency per row and the rows that differ."""
        from jupyter_serve._replay import replay

        return replay(self._model, self.requests, candidate)

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """Predict with the current model directly, without HTTP (as ``model.predict``)."""
        return self._model.predict(data, params)

    def stop(self) -> None:
        """Stop serving and free the port; idempotent."""
        self._on_stop(self)

    def record(self) -> DeploymentRecord:
        """The discovery record describing this deployment now."""
        return DeploymentRecord(
            name=self.name,
            pid=self.pid,
            host=self.host,
            port=self.port,
            model_uri=self.model_uri,
            status=self.status,
            started_at=self.started_at,
            kernel_id=self.kernel_id,
            version=self.version,
            metrics=self.metrics,
            secret=self.secret,
            require_secret=self.require_secret,
            proxy_url=self.proxy_url,
        )

    def publish(self) -> None:
        """Write the discovery record, unless the deployment has stopped meanwhile."""
        with self._lock:
            if self._status == RUNNING:
                write_record(self.record())

    def swap(self, source: ModelSource) -> None:
        """Serve ``source``'s model from now on; requests in flight finish on the old one."""
        self._server.swap_model(source.model, model_uri=source.model_uri, version=source.version)
        with self._lock:
            self._model = source.model
            self.model_uri = source.model_uri
            self.version = source.version
        self.publish()

    def shut_down(self) -> None:
        """Stop the server, then withdraw the discovery record (so no reader sees a dead port
        announced as running). Called by the owning table only."""
        with self._lock:
            if self._status == STOPPED:
                return
            self._status = STOPPED
        try:
            self._final_metrics = self._server.metrics.snapshot()
        except Exception:  # figures are a courtesy at stop time
            self._final_metrics = {}
        try:
            self._server.stop()
        finally:
            remove_record(self.id)

    def _repr_html_(self) -> str:
        from jupyter_serve._deployments._display import DeploymentListing

        return DeploymentListing([self])._repr_html_()

    def __repr__(self) -> str:
        version = f" version {self.version}" if self.version else ""
        return f"<Deployment {self.name!r} {self.status}: {self.model_uri}{version} at {self.url}>"
