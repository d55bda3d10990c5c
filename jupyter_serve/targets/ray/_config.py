"""The Ray Serve config of one of our applications, and its hand-off files.

One application per deployment: route prefix ``/<name>``, our replica's application builder as
``import_path``, the model and our package in the runtime environment, the model's pip
requirements (minus MLflow, which a replica never imports) plus what our server imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

IMPORT_PATH = "jupyter_serve.targets.ray._replica:build_application"
DEPLOYMENT_NAME = "ScoringReplica"
# How busy a replica may get before the autoscaler adds one, and how soon: the figures
# measured to add a replica within seconds of sustained load (shared/RAY.md).
TARGET_ONGOING_REQUESTS = 4
UPSCALE_DELAY_SECONDS = 5.0


@dataclass(frozen=True)
class Scaling:
    """A fixed number of replicas, or autoscaling between ``minimum`` and ``maximum``."""

    replicas: int = 1
    autoscale: tuple[int, int] | None = None
    replica_cpus: float = 1.0

    def deployment_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "name": DEPLOYMENT_NAME,
            "ray_actor_options": {"num_cpus": self.replica_cpus},
        }
        if self.autoscale is None:
            options["num_replicas"] = self.replicas
        else:
            minimum, maximum = self.autoscale
            options["autoscaling_config"] = {
                "min_replicas": minimum,
                "max_replicas": maximum,
                "initial_replicas": minimum,
                "target_ongoing_requests": TARGET_ONGOING_REQUESTS,
                "upscale_delay_s": UPSCALE_DELAY_SECONDS,
            }
        return options


@dataclass(frozen=True)
class ServingArgs:
    """What each replica's scoring server is started with."""

    name: str
    model_uri: str
    version: str | None
    timeout: float = 60.0
    max_batch_size: int = 64
    max_batch_wait: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_dir": ".",
            "model_uri": self.model_uri,
            "version": self.version,
            "name": self.name,
            "timeout": self.timeout,
            "max_batch_size": self.max_batch_size,
            "max_batch_wait": self.max_batch_wait,
        }


def application_config(
    serving: ServingArgs,
    scaling: Scaling,
    *,
    model_package_uri: str,
    our_package_uri: str,
    pip_requirements: list[str],
) -> dict[str, Any]:
    """One entry of a Serve config's ``applications``."""
    return {
        "name": serving.name,
        "route_prefix": f"/{serving.name}",
        "import_path": IMPORT_PATH,
        "args": serving.as_dict(),
        "runtime_env": {
            "working_dir": model_package_uri,
            "py_modules": [our_package_uri],
            "pip": {"packages": pip_requirements, "pip_check": False},
        },
        "deployments": [scaling.deployment_options()],
    }


def is_ours(application_config: dict[str, Any] | None) -> bool:
    return bool(application_config) and application_config.get("import_path") == IMPORT_PATH  # type: ignore[union-attr]


def serve_config_yaml(applications: list[dict[str, Any]]) -> str:
    """A ``serve deploy``-able config holding ``applications``."""
    return yaml.safe_dump({"applications": applications}, sort_keys=False)


def rayservice_manifest(name: str, applications: list[dict[str, Any]], ray_version: str) -> str:
    """A KubeRay ``RayService`` carrying the same Serve config (``spec.serveConfigV2``, a YAML
    string) and a one-node cluster to run it: edit the cluster to taste before applying."""
    image = f"rayproject/ray:{ray_version}-py311"
    container = {
        "name": "ray-head",
        "image": image,
        "resources": {"limits": {"cpu": "2", "memory": "4Gi"}},
        "ports": [
            {"containerPort": 6379, "name": "gcs-server"},
            {"containerPort": 8265, "name": "dashboard"},
            {"containerPort": 8000, "name": "serve"},
        ],
    }
    manifest = {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": name},
        "spec": {
            "serveConfigV2": serve_config_yaml(applications),
            "rayClusterConfig": {
                "rayVersion": ray_version,
                "headGroupSpec": {
                    "rayStartParams": {"dashboard-host": "0.0.0.0"},
                    "template": {"spec": {"containers": [container]}},
                },
            },
        },
    }
    return yaml.safe_dump(manifest, sort_keys=False)


def write_export(path: Path, name: str, application: dict[str, Any], ray_version: str) -> None:
    """Write ``application`` as a Serve config, or as a RayService for ``*.rayservice.yaml``."""
    if path.name.endswith(".rayservice.yaml"):
        text = rayservice_manifest(name, [application], ray_version)
    else:
        text = serve_config_yaml([application])
    path.write_text(text, encoding="utf-8")
