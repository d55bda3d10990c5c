"""Deployments on a remote target (a Ray cluster), made from this process.

``serve(..., target=...)`` lands here: the model URI is resolved in this kernel's registry, and
its directory travels to the cluster (`jupyter_serve.targets.ray`). The remote deployments this
process made are remembered by name, so ``deployments(target=...)`` and ``stop`` find them.

Each one seen here is announced to the Jupyter server by a discovery record of kind ``remote``
(target, endpoint, status and replicas as last seen): written when it is deployed, rewritten
whenever this process reads its state again, removed when it is stopped or found gone. The
record outlives this kernel, as the deployment does.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

from jupyter_serve._deployments._environment import current_kernel_id
from jupyter_serve._discovery_fields import REMOTE
from jupyter_serve.discovery import (
    DeploymentRecord,
    read_records,
    remote_deployment_id,
    remove_record,
    write_record,
)
from jupyter_serve.errors import DeploymentError
from jupyter_serve.targets.ray._applications import RemoteApplication
from jupyter_serve.targets.ray._deployment import RemoteDeployment

_log = logging.getLogger(__name__)
_FAILED = {"DEPLOY_FAILED": "failed", "UNHEALTHY": "failed"}


class AnnouncedRemoteDeployment(RemoteDeployment):
    """A `RemoteDeployment` whose discovery record follows what this process sees of it."""

    def __init__(self, application: RemoteApplication) -> None:
        super().__init__(application)
        self.publish()

    def refresh(self) -> RemoteApplication | None:
        current = super().refresh()
        if current is None:
            remove_record(remote_deployment_id(self.target, self.name))
        else:
            self.publish()
        return current

    def stop(self) -> None:
        super().stop()
        remove_record(remote_deployment_id(self.target, self.name))

    def publish(self) -> None:
        """Write this deployment's record as last seen; a failure to write is only logged
        (the deployment itself is fine, the Jupyter server just does not list it)."""
        try:
            write_record(remote_record(self._application))
        except (OSError, ValueError) as error:
            _log.warning(
                "jupyter-serve: %s is not listed by the Jupyter server: %s", self.name, error
            )


def remote_record(application: RemoteApplication) -> DeploymentRecord:
    """The discovery record announcing ``application``, seen now by this process."""
    endpoint = urllib.parse.urlsplit(application.url)
    now = time.time()
    return DeploymentRecord(
        kind=REMOTE,
        name=application.name,
        pid=os.getpid(),
        host=endpoint.hostname or "",
        port=endpoint.port or 80,
        route_prefix=endpoint.path.rstrip("/"),
        model_uri=application.model_uri,
        version=application.version,
        status=_FAILED.get(application.status, application.status.lower()),
        replicas=application.replicas,
        target_replicas=application.target_replicas,
        target=application.target,
        kernel_id=current_kernel_id(),
        started_at=now,
        seen_at=now,
    )


_made: dict[tuple[str, str], RemoteDeployment] = {}
_lock = threading.Lock()


def serve_remote(
    source: Any,
    *,
    target: str,
    name: str | None,
    timeout: float,
    replicas: int,
    autoscale: tuple[int, int] | None,
    max_batch_size: int,
    max_batch_wait: float,
    registry_uri: str | None = None,
) -> RemoteDeployment:
    """Deploy the model URI ``source`` to ``target``; return once it answers ``/ping``."""
    from jupyter_serve._deployments._sources import name_from
    from jupyter_serve.registry import resolve_model_uri
    from jupyter_serve.targets import ray

    ray.parse_target(target)
    if not isinstance(source, (str, os.PathLike)):
        raise DeploymentError(
            f"a deployment to {target} ships a model directory, and {type(source).__name__} is "
            "a live object: register it first (jupyter_serve.register_model) and serve its "
            "models:/ URI."
        )
    resolved = resolve_model_uri(os.fspath(source), registry_uri=registry_uri)
    model_dir = Path(resolved.path)
    chosen = name or name_from(resolved.name or model_dir.name)
    serving = ray.ServingArgs(
        name=chosen,
        model_uri=resolved.uri or os.fspath(source),
        version=None if resolved.version is None else str(resolved.version),
        timeout=timeout,
        max_batch_size=max_batch_size,
        max_batch_wait=max_batch_wait,
    )
    scaling = ray.Scaling(replicas=replicas, autoscale=autoscale)
    application = ray.deploy(
        model_dir, serving, scaling, target=target, progress=lambda line: print(line, flush=True)
    )
    deployment = AnnouncedRemoteDeployment(application)
    with _lock:
        _made[(target, chosen)] = deployment
    return deployment


def remote_deployments(target: str) -> list[RemoteDeployment]:
    """Our applications on ``target`` (made here or elsewhere), as deployments; their records
    are rewritten as seen now, and the records of those gone from ``target`` removed."""
    from jupyter_serve.targets import ray

    found: list[RemoteDeployment] = []
    for application in ray.list_applications(target):
        with _lock:
            known = _made.get((target, application.name))
        if known is not None:
            known._application = application
            known.publish()
        found.append(known if known is not None else AnnouncedRemoteDeployment(application))
    _forget_gone(target, {deployment.name for deployment in found})
    return found


def _forget_gone(target: str, running: set[str]) -> None:
    for record in read_records():
        if record.is_remote and record.target == target and record.name not in running:
            remove_record(record.id)
