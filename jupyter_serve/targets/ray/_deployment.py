"""A deployment on a Ray cluster, seen from the kernel: the same surface as a local `Deployment`
(``name``, ``url``, ``status``, ``predict``, ``stop``), answered over HTTP."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from jupyter_serve._deployments._deployment import Deployment
from jupyter_serve.errors import DeploymentError
from jupyter_serve.targets.ray._applications import RayCluster, RemoteApplication

_PREDICT_SECONDS = 120.0


class RemoteDeployment(Deployment):
    """One of our applications on a Ray cluster, as a `Deployment` (nothing of it runs in this
    process). Attributes are the state when it was last read; ``status`` and ``replicas`` read
    the cluster again. Thread-safe."""

    def __init__(self, application: RemoteApplication) -> None:
        # Deliberately not Deployment.__init__: there is no server, model or discovery record
        # here; the attributes a listing reads are set from the cluster's report instead.
        self._cluster = RayCluster(application.target)
        self._application = application
        self.name = application.name
        self.target = application.target
        self.url = application.url
        parsed = urllib.parse.urlsplit(application.url)
        self.host = parsed.hostname or ""
        self.port = parsed.port or 80
        self.model_uri = application.model_uri
        self.version = application.version
        self.proxy_url = None
        self.kernel_id = None
        self.secret = ""
        self.require_secret = False
        self.started_at = time.time()
        self.pid = os.getpid()
        self._stopped = False

    @property
    def metrics(self) -> dict[str, Any]:
        """Ray keeps the traffic figures of a remote deployment (its dashboard); none here."""
        return {}

    @property
    def model(self) -> Any:
        raise DeploymentError(
            f"{self.name} runs on {self.target}; its model is not loaded in this process. "
            "Use .predict(...) to score on the cluster."
        )

    def refresh(self) -> RemoteApplication | None:
        """The application as the cluster reports it now (None once it is gone)."""
        found = [a for a in self._cluster.applications() if a.name == self.name]
        if found:
            self._application = found[0]
            self.model_uri, self.version = found[0].model_uri, found[0].version
        return found[0] if found else None

    @property
    def status(self) -> str:
        """``running``, ``deploying``, ``failed`` or ``stopped`` (Ray's status, lower case)."""
        if self._stopped:
            return "stopped"
        try:
            current = self.refresh()
        except DeploymentError:
            return "unreachable"
        if current is None:
            return "stopped"
        return {"DEPLOY_FAILED": "failed", "UNHEALTHY": "failed"}.get(
            current.status, current.status.lower()
        )

    @property
    def replicas(self) -> int:
        """Replicas running now."""
        current = self.refresh()
        return 0 if current is None else current.replicas

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """Score ``data`` on the cluster (``POST {url}/invocations``): a DataFrame goes as
        ``dataframe_split``, anything else as ``inputs``; returns the ``predictions``."""
        body: dict[str, Any]
        if hasattr(data, "to_dict") and hasattr(data, "columns"):
            split = data.to_dict(orient="split")
            body = {"dataframe_split": {"columns": split["columns"], "data": split["data"]}}
        else:
            body = {"inputs": data}
        if params:
            body["params"] = params
        request = urllib.request.Request(
            f"{self.url}/invocations",
            data=json.dumps(body, default=str).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=_PREDICT_SECONDS) as response:
                return json.loads(response.read())["predictions"]
        except urllib.error.HTTPError as error:
            raise DeploymentError(
                f"{self.name} on {self.target} answered HTTP {error.code}: "
                f"{error.read().decode('utf-8', 'replace')}"
            ) from None
        except OSError as error:
            raise DeploymentError(f"cannot reach {self.url}: {error}") from None

    def stop(self) -> None:
        """Remove the application from the cluster (other applications keep running);
        idempotent."""
        if self._stopped:
            return
        if self.refresh() is not None:
            self._cluster.undeploy(self.name)
        self._stopped = True

    def shut_down(self) -> None:
        self.stop()

    def publish(self) -> None:
        """Remote deployments have no discovery record on this machine."""

    def _repr_html_(self) -> str:
        import html

        return f"<code>{html.escape(repr(self))}</code>"

    def __repr__(self) -> str:
        version = f" version {self.version}" if self.version else ""
        app = self._application
        return (
            f"<RemoteDeployment {self.name!r} on {self.target} {app.status.lower()} with "
            f"{app.replicas} replica(s): {self.model_uri}{version} at {self.url}>"
        )
