"""Ray Serve as a deployment target: ``ray+http://HOST:8265``, a cluster's dashboard address.

The kernel side (this package minus ``_replica``) speaks plain HTTP to the dashboard and never
imports Ray; ``_replica`` runs on the cluster, inside each Ray Serve replica, and serves with
our own scoring server. The model directory and our package travel as uploaded packages, the
model's requirements as the runtime environment's ``pip`` list, so the cluster needs nothing
installed but ``ray[serve]``.
"""

from __future__ import annotations

from pathlib import Path

from jupyter_serve.errors import DeploymentError
from jupyter_serve.targets.ray._applications import (
    SCHEME,
    Progress,
    RayCluster,
    RemoteApplication,
    RemoteListing,
    parse_target,
)
from jupyter_serve.targets.ray._config import (
    Scaling,
    ServingArgs,
    serve_config_yaml,
    write_export,
)

__all__ = [
    "SCHEME",
    "RayCluster",
    "RemoteApplication",
    "RemoteListing",
    "Scaling",
    "ServingArgs",
    "deploy",
    "export",
    "list_applications",
    "parse_target",
    "replica_requirements",
    "serve_config_yaml",
    "undeploy",
]

DEFAULT_WAIT_SECONDS = 900.0


# Parquet bodies are one of the formats a local server answers when pyarrow is installed (our
# [parquet] extra); a replica answers every format a local server does.
_EVERY_FORMAT = ["pyarrow>=14"]


def replica_requirements(model_dir: Path) -> list[str]:
    """The pip requirements of a replica: the model's (its requirements.txt, minus MLflow)
    plus what our scoring server imports, as lower bounds."""
    from jupyter_serve.environments import read_environment_spec

    spec = read_environment_spec(model_dir, "virtualenv")
    return [*spec.model_requirements, *spec.serving_requirements, *_EVERY_FORMAT]


def deploy(
    model_dir: Path,
    serving: ServingArgs,
    scaling: Scaling,
    *,
    target: str,
    wait: float = DEFAULT_WAIT_SECONDS,
    progress: Progress | None = None,
) -> RemoteApplication:
    """Deploy the model in ``model_dir`` as application ``serving.name`` of the cluster at
    ``target``, or roll it onto the running one of that name; return once ``/ping`` answers
    through Ray's HTTP proxy."""
    check_scaling(scaling)
    cluster = RayCluster(target)
    cluster.dashboard.ray_version()
    application = cluster.build_application(
        model_dir, serving, scaling, replica_requirements(model_dir)
    )
    return cluster.deploy(application, wait=wait, progress=progress)


def export(
    path: Path, model_dir: Path, serving: ServingArgs, scaling: Scaling, *, target: str
) -> None:
    """Write the application's Serve config (or a KubeRay RayService for
    ``*.rayservice.yaml``) to ``path`` instead of deploying; the packages it names are
    uploaded to the cluster at ``target``, whose Ray version the RayService also takes."""
    check_scaling(scaling)
    cluster = RayCluster(target)
    ray_version = cluster.dashboard.ray_version()
    application = cluster.build_application(
        model_dir, serving, scaling, replica_requirements(model_dir)
    )
    write_export(path, serving.name, application, ray_version)


def undeploy(name: str, *, target: str) -> None:
    """Remove our application ``name`` from the cluster; the others keep running."""
    RayCluster(target).undeploy(name)


def list_applications(target: str) -> list[RemoteApplication]:
    """Our applications on the cluster at ``target``, with status and replicas."""
    return RayCluster(target).applications()


def check_scaling(scaling: Scaling) -> None:
    """`DeploymentError` naming the scaling option that cannot work."""
    if scaling.autoscale is None:
        if scaling.replicas < 1:
            raise DeploymentError(f"--replicas must be 1 or more, got {scaling.replicas}.")
        return
    minimum, maximum = scaling.autoscale
    if not 0 <= minimum <= maximum or maximum < 1:
        raise DeploymentError(
            f"--autoscale {minimum}:{maximum} is not a range; expected MIN:MAX with "
            "0 <= MIN <= MAX and MAX >= 1, e.g. 1:4."
        )
