"""The MLflow operations the registry backend needs, over MLflow's REST API.

``RegistryApi`` is the small surface the backend is written against; ``RestRegistryApi`` speaks
it to a tracking server with the standard library, and ``_mlflow_package.PackageRegistryApi``
through the ``mlflow`` package for database and file URIs. Both raise ``MlflowApiError`` for
answers MLflow gives as errors, so the backend words every error the same way.
"""

from __future__ import annotations

import shutil
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from jupyter_serve.errors import MissingDependencyError, RegistryError
from jupyter_serve.registry._mlflow_rest import ARTIFACTS_PREFIX, MlflowApiError, MlflowRestClient

MLFLOW_EXTRA_HINT = "pip install 'jupyter-serve[mlflow]'"
_PAGE_SIZE = 1000
_MAX_PAGES = 1000


@dataclass(frozen=True)
class RemoteVersion:
    """One model version as an MLflow registry describes it."""

    name: str
    version: int
    stage: str
    aliases: tuple[str, ...]
    source: str
    run_id: str | None
    created_at: float
    description: str | None


class RegistryApi(Protocol):
    """What the MLflow backend asks of an MLflow registry and tracking store."""

    def model_names(self) -> list[str]: ...
    def aliases(self, name: str) -> dict[str, int]: ...
    def versions(self, name: str) -> list[RemoteVersion]: ...
    def version(self, name: str, version: int) -> RemoteVersion: ...
    def version_by_alias(self, name: str, alias: str) -> RemoteVersion: ...
    def latest_versions(self, name: str, stages: list[str] | None) -> list[RemoteVersion]: ...
    def download_uri(self, name: str, version: int) -> str: ...
    def logged_model_artifact_uri(self, model_id: str) -> str: ...
    def run_artifact_uri(self, run_id: str) -> tuple[str, str]: ...
    def logged_model_of_run(self, run_id: str, experiment_id: str, name: str) -> str | None: ...
    def download(self, artifact_uri: str, destination: Path) -> None: ...
    def log_model_directory(self, local_dir: Path) -> tuple[str, str]: ...
    def create_model(self, name: str) -> None: ...
    def create_version(self, name: str, source: str, run_id: str) -> int: ...
    def transition_stage(self, name: str, version: int, stage: str, archive: bool) -> None: ...
    def set_alias(self, name: str, alias: str, version: int) -> None: ...
    def delete_alias(self, name: str, alias: str) -> None: ...
    def delete_version(self, name: str, version: int) -> None: ...
    def delete_model(self, name: str) -> None: ...


def remote_version(entry: dict[str, Any], aliases: tuple[str, ...] | None = None) -> RemoteVersion:
    """A ``RemoteVersion`` from the JSON form of MLflow's ``ModelVersion``."""
    return RemoteVersion(
        name=str(entry["name"]),
        version=int(entry["version"]),
        stage=str(entry.get("current_stage") or "None"),
        aliases=tuple(entry.get("aliases", ())) if aliases is None else aliases,
        source=str(entry.get("source", "")),
        run_id=entry.get("run_id") or None,
        created_at=float(entry.get("creation_timestamp", 0)) / 1000.0,
        description=entry.get("description") or None,
    )


def _filter_literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


class RestRegistryApi:
    """``RegistryApi`` over the REST API of a tracking server. Thread-safe."""

    def __init__(self, client: MlflowRestClient) -> None:
        self.client = client

    def model_names(self) -> list[str]:
        names: list[str] = []
        token: str | None = None
        for _ in range(_MAX_PAGES):
            params = {"max_results": str(_PAGE_SIZE)}
            if token:
                params["page_token"] = token
            answer = self.client.get("registered-models/search", **params)
            names.extend(str(m["name"]) for m in answer.get("registered_models", []))
            token = answer.get("next_page_token")
            if not token:
                break
        return sorted(names)

    def aliases(self, name: str) -> dict[str, int]:
        answer = self.client.get("registered-models/get", name=name)
        listed = answer.get("registered_model", {}).get("aliases", [])
        return {str(a["alias"]): int(a["version"]) for a in listed}

    def versions(self, name: str) -> list[RemoteVersion]:
        by_version: dict[int, list[str]] = {}
        for alias, number in self.aliases(name).items():
            by_version.setdefault(number, []).append(alias)
        found: list[RemoteVersion] = []
        token: str | None = None
        for _ in range(_MAX_PAGES):
            params = {"filter": f"name = {_filter_literal(name)}", "max_results": "10000"}
            if token:
                params["page_token"] = token
            answer = self.client.get("model-versions/search", **params)
            for entry in answer.get("model_versions", []):
                number = int(entry["version"])
                found.append(remote_version(entry, tuple(sorted(by_version.get(number, [])))))
            token = answer.get("next_page_token")
            if not token:
                break
        return sorted(found, key=lambda v: v.version)

    def version(self, name: str, version: int) -> RemoteVersion:
        answer = self.client.get("model-versions/get", name=name, version=str(version))
        return remote_version(answer["model_version"])

    def version_by_alias(self, name: str, alias: str) -> RemoteVersion:
        answer = self.client.get("registered-models/alias", name=name, alias=alias)
        return remote_version(answer["model_version"])

    def latest_versions(self, name: str, stages: list[str] | None) -> list[RemoteVersion]:
        body: dict[str, Any] = {"name": name}
        if stages is not None:
            body["stages"] = stages
        answer = self.client.post("registered-models/get-latest-versions", body)
        return [remote_version(entry) for entry in answer.get("model_versions", [])]

    def download_uri(self, name: str, version: int) -> str:
        answer = self.client.get("model-versions/get-download-uri", name=name, version=str(version))
        return str(answer["artifact_uri"])

    def logged_model_artifact_uri(self, model_id: str) -> str:
        quoted = urllib.parse.quote(model_id, safe="")
        answer = self.client.get(f"logged-models/{quoted}")
        return str(answer["model"]["info"]["artifact_uri"])

    def run_artifact_uri(self, run_id: str) -> tuple[str, str]:
        info = self.client.get("runs/get", run_id=run_id)["run"]["info"]
        return str(info["artifact_uri"]), str(info["experiment_id"])

    def logged_model_of_run(self, run_id: str, experiment_id: str, name: str) -> str | None:
        token: str | None = None
        for _ in range(_MAX_PAGES):
            body: dict[str, Any] = {
                "experiment_ids": [experiment_id],
                "filter": f"name = {_filter_literal(name)}",
            }
            if token:
                body["page_token"] = token
            answer = self.client.post("logged-models/search", body)
            for model in answer.get("models", []):
                info = model.get("info", {})
                if info.get("source_run_id") == run_id:
                    return str(info["artifact_uri"])
            token = answer.get("next_page_token")
            if not token:
                break
        return None

    def download(self, artifact_uri: str, destination: Path) -> None:
        parsed = urllib.parse.urlparse(artifact_uri)
        scheme = parsed.scheme.lower()
        if scheme == "mlflow-artifacts":
            client = self.client
            if parsed.netloc:
                client = MlflowRestClient(f"{_scheme_of(self.client.base_url)}://{parsed.netloc}")
            client.download_tree(urllib.parse.unquote(parsed.path).lstrip("/"), destination)
        elif scheme in ("http", "https") and ARTIFACTS_PREFIX in parsed.path:
            base, _, path = artifact_uri.partition(ARTIFACTS_PREFIX)
            MlflowRestClient(base).download_tree(
                urllib.parse.unquote(path).lstrip("/"), destination
            )
        elif scheme in ("", "file"):
            copy_local_artifacts(artifact_uri, destination)
        else:
            download_with_mlflow(artifact_uri, destination, self.client.base_url)

    def log_model_directory(self, local_dir: Path) -> tuple[str, str]:
        run = self.client.post(
            "runs/create",
            {"experiment_id": self._experiment_id(), "start_time": int(time.time() * 1000)},
        )["run"]["info"]
        run_id, artifact_uri = str(run["run_id"]), str(run["artifact_uri"])
        source = f"{artifact_uri.rstrip('/')}/model"
        parsed = urllib.parse.urlparse(source)
        status = "FAILED"
        try:
            if parsed.scheme != "mlflow-artifacts" or parsed.netloc:
                raise RegistryError(
                    f"the MLflow run's artifact location is {artifact_uri}, which jupyter-serve "
                    "can upload to only through the server's artifact proxy (mlflow-artifacts:/); "
                    f"start the server with --serve-artifacts, or {MLFLOW_EXTRA_HINT}"
                )
            self.client.upload_tree(local_dir, urllib.parse.unquote(parsed.path).lstrip("/"))
            status = "FINISHED"
        finally:
            self.client.post(
                "runs/update",
                {"run_id": run_id, "status": status, "end_time": int(time.time() * 1000)},
            )
        return source, run_id

    def _experiment_id(self) -> str:
        import os

        configured = os.environ.get("MLFLOW_EXPERIMENT_ID")
        if configured:
            return configured
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME")
        if not name:
            return "0"
        try:
            found = self.client.get("experiments/get-by-name", experiment_name=name)
            return str(found["experiment"]["experiment_id"])
        except MlflowApiError as error:
            if not error.not_found:
                raise
        return str(self.client.post("experiments/create", {"name": name})["experiment_id"])

    def create_model(self, name: str) -> None:
        try:
            self.client.post("registered-models/create", {"name": name})
        except MlflowApiError as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise

    def create_version(self, name: str, source: str, run_id: str) -> int:
        body = {"name": name, "source": source, "run_id": run_id}
        answer = self.client.post("model-versions/create", body)
        return int(answer["model_version"]["version"])

    def transition_stage(self, name: str, version: int, stage: str, archive: bool) -> None:
        self.client.post(
            "model-versions/transition-stage",
            {
                "name": name,
                "version": str(version),
                "stage": stage,
                "archive_existing_versions": archive,
            },
        )

    def set_alias(self, name: str, alias: str, version: int) -> None:
        body = {"name": name, "alias": alias, "version": str(version)}
        self.client.post("registered-models/alias", body)

    def delete_alias(self, name: str, alias: str) -> None:
        self.client.delete("registered-models/alias", {"name": name, "alias": alias})

    def delete_version(self, name: str, version: int) -> None:
        self.client.delete("model-versions/delete", {"name": name, "version": str(version)})

    def delete_model(self, name: str) -> None:
        self.client.delete("registered-models/delete", {"name": name})


def _scheme_of(url: str) -> str:
    return urllib.parse.urlparse(url).scheme or "http"


def copy_local_artifacts(artifact_uri: str, destination: Path) -> None:
    """Copy a ``file:`` (or plain path) artifact location on this machine into ``destination``."""
    parsed = urllib.parse.urlparse(artifact_uri)
    source = Path(urllib.parse.unquote(parsed.path) if parsed.scheme else artifact_uri)
    if source.is_dir():
        shutil.copytree(source, destination, dirs_exist_ok=True)
    elif source.is_file():
        destination.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination / source.name)
    else:
        raise MlflowApiError(
            404,
            "RESOURCE_DOES_NOT_EXIST",
            f"the artifact location {artifact_uri} is not on this machine (the MLflow server "
            "stores artifacts on its own disk); start the server with --serve-artifacts",
        )


def download_with_mlflow(artifact_uri: str, destination: Path, tracking_uri: str) -> None:
    """Download from a store only the ``mlflow`` package can read (S3, GCS, Azure, ...)."""
    try:
        import mlflow.artifacts
    except ImportError:
        scheme = urllib.parse.urlparse(artifact_uri).scheme
        raise MissingDependencyError(
            f"the model's artifacts are at {artifact_uri}, a {scheme}: store that only the "
            f"mlflow package can read; {MLFLOW_EXTRA_HINT} (and the store's client library)"
        ) from None
    destination.mkdir(parents=True, exist_ok=True)
    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=artifact_uri, dst_path=str(destination), tracking_uri=tracking_uri
        )
    )
    # MLflow puts a directory inside dst_path under its own name; the cache wants its contents.
    if local.is_dir() and local.resolve() != destination.resolve():
        for child in list(local.iterdir()):
            shutil.move(str(child), destination / child.name)
        local.rmdir()
