"""Deployments on a remote target (a Ray cluster), made from this process.

``serve(..., target=...)`` lands here: the model URI is resolved in this kernel's registry, and
its directory travels to the cluster (`jupyter_serve.targets.ray`). The remote deployments this
process made are remembered by name, so ``deployments(target=...)`` and ``stop`` find them.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_serve.errors import DeploymentError

if TYPE_CHECKING:
    from jupyter_serve.targets.ray._deployment import RemoteDeployment

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
    from jupyter_serve.targets.ray._deployment import RemoteDeployment

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
    deployment = RemoteDeployment(application)
    with _lock:
        _made[(target, chosen)] = deployment
    return deployment


def remote_deployments(target: str) -> list[RemoteDeployment]:
    """Our applications on ``target`` (made here or elsewhere), as deployments."""
    from jupyter_serve.targets import ray
    from jupyter_serve.targets.ray._deployment import RemoteDeployment

    found = []
    for application in ray.list_applications(target):
        with _lock:
            known = _made.get((target, application.name))
        found.append(known if known is not None else RemoteDeployment(application))
    return found
