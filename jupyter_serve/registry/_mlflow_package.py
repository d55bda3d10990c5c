"""``RegistryApi`` through the ``mlflow`` package, for registries only it can open.

Database (``sqlite:///``, ``postgresql://``, ``mysql://``) and ``file:`` URIs are MLflow's own
stores, read through ``MlflowClient``; without the package installed the backend fails at once
with the pip command that installs it.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

from jupyter_serve.errors import MissingDependencyError
from jupyter_serve.registry._mlflow_api import (
    MLFLOW_EXTRA_HINT,
    RemoteVersion,
    copy_local_artifacts,
)
from jupyter_serve.registry._mlflow_rest import MlflowApiError


def _import_client(uri: str) -> Any:
    try:
        from mlflow import MlflowClient
    except ImportError:
        scheme = urllib.parse.urlparse(uri).scheme or "a file path"
        raise MissingDependencyError(
            f"the MLflow registry URI {uri!r} ({scheme}) is an MLflow store that only the mlflow "
            f"package can open, and mlflow is not installed; {MLFLOW_EXTRA_HINT}, or point "
            "MLFLOW_TRACKING_URI at an MLflow tracking server (http://...), which needs no mlflow"
        ) from None
    return MlflowClient


def _remote(version: Any, aliases: tuple[str, ...] | None = None) -> RemoteVersion:
    return RemoteVersion(
        name=str(version.name),
        version=int(version.version),
        stage=str(version.current_stage or "None"),
        aliases=tuple(version.aliases or ()) if aliases is None else aliases,
        source=str(version.source or ""),
        run_id=version.run_id or None,
        created_at=float(version.creation_timestamp or 0) / 1000.0,
        description=version.description or None,
    )


class PackageRegistryApi:
    """``RegistryApi`` over ``mlflow.MlflowClient`` for ``uri``. Thread-safe as MlflowClient."""

    def __init__(self, uri: str) -> None:
        client_class = _import_client(uri)
        self.uri = uri
        self.client = client_class(tracking_uri=uri, registry_uri=uri)

    def _run(self, action: Any) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return action()
        except MlflowException as error:
            code = str(getattr(error, "error_code", "INTERNAL_ERROR"))
            status = 404 if code == "RESOURCE_DOES_NOT_EXIST" else 400
            raise MlflowApiError(status, code, error.message) from None

    def model_names(self) -> list[str]:
        models = self._run(lambda: self.client.search_registered_models(max_results=100_000))
        return sorted(str(m.name) for m in models)

    def aliases(self, name: str) -> dict[str, int]:
        model = self._run(lambda: self.client.get_registered_model(name))
        return {str(a): int(v) for a, v in (model.aliases or {}).items()}

    def versions(self, name: str) -> list[RemoteVersion]:
        by_version: dict[int, list[str]] = {}
        for alias, number in self.aliases(name).items():
            by_version.setdefault(number, []).append(alias)
        escaped = name.replace("'", "\\'")
        found = self._run(
            lambda: self.client.search_model_versions(f"name = '{escaped}'", max_results=100_000)
        )
        versions = [_remote(v, tuple(sorted(by_version.get(int(v.version), [])))) for v in found]
        return sorted(versions, key=lambda v: v.version)

    def version(self, name: str, version: int) -> RemoteVersion:
        return _remote(self._run(lambda: self.client.get_model_version(name, str(version))))

    def version_by_alias(self, name: str, alias: str) -> RemoteVersion:
        return _remote(self._run(lambda: self.client.get_model_version_by_alias(name, alias)))

    def latest_versions(self, name: str, stages: list[str] | None) -> list[RemoteVersion]:
        found = self._run(lambda: self.client.get_latest_versions(name, stages))
        return [_remote(v) for v in found]

    def download_uri(self, name: str, version: int) -> str:
        return str(
            self._run(lambda: self.client.get_model_version_download_uri(name, str(version)))
        )

    def logged_model_artifact_uri(self, model_id: str) -> str:
        return str(self._run(lambda: self.client.get_logged_model(model_id)).artifact_location)

    def run_artifact_uri(self, run_id: str) -> tuple[str, str]:
        info = self._run(lambda: self.client.get_run(run_id)).info
        return str(info.artifact_uri), str(info.experiment_id)

    def logged_model_of_run(self, run_id: str, experiment_id: str, name: str) -> str | None:
        escaped = name.replace("'", "\\'")
        models = self._run(
            lambda: self.client.search_logged_models(
                experiment_ids=[experiment_id], filter_string=f"name = '{escaped}'"
            )
        )
        for model in models:
            if model.source_run_id == run_id:
                return str(model.artifact_location)
        return None

    def download(self, artifact_uri: str, destination: Path) -> None:
        if urllib.parse.urlparse(artifact_uri).scheme in ("", "file"):
            copy_local_artifacts(artifact_uri, destination)
            return
        from jupyter_serve.registry._mlflow_api import download_with_mlflow

        self._run(lambda: download_with_mlflow(artifact_uri, destination, self.uri))

    def log_model_directory(self, local_dir: Path) -> tuple[str, str]:
        import os

        experiment_id = os.environ.get("MLFLOW_EXPERIMENT_ID") or "0"
        run = self._run(lambda: self.client.create_run(experiment_id))
        run_id = str(run.info.run_id)
        status = "FAILED"
        try:
            self._run(lambda: self.client.log_artifacts(run_id, str(local_dir), "model"))
            status = "FINISHED"
        finally:
            self._run(lambda: self.client.set_terminated(run_id, status))
        return f"{str(run.info.artifact_uri).rstrip('/')}/model", run_id

    def create_model(self, name: str) -> None:
        try:
            self._run(lambda: self.client.create_registered_model(name))
        except MlflowApiError as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise

    def create_version(self, name: str, source: str, run_id: str) -> int:
        created = self._run(lambda: self.client.create_model_version(name, source, run_id))
        return int(created.version)

    def transition_stage(self, name: str, version: int, stage: str, archive: bool) -> None:
        self._run(
            lambda: self.client.transition_model_version_stage(
                name, str(version), stage, archive_existing_versions=archive
            )
        )

    def set_alias(self, name: str, alias: str, version: int) -> None:
        self._run(lambda: self.client.set_registered_model_alias(name, alias, str(version)))

    def delete_alias(self, name: str, alias: str) -> None:
        self._run(lambda: self.client.delete_registered_model_alias(name, alias))

    def delete_version(self, name: str, version: int) -> None:
        self._run(lambda: self.client.delete_model_version(name, str(version)))

    def delete_model(self, name: str) -> None:
        self._run(lambda: self.client.delete_registered_model(name))
