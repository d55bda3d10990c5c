"""The MLflow registry backend: ``models:/`` and ``runs:/`` URIs resolved by an MLflow registry.

Resolution follows ``mlflow models serve`` (MLflow's ``ModelsArtifactRepository`` and
``RunsArtifactRepository``): a version number is taken as is, ``latest`` and a stage are the
highest version among MLflow's latest versions (of every stage, or of that stage), an alias is
asked of the registry (which answers ``@latest`` too), ``models:/m-<id>`` is a logged model's
artifact location, and ``runs:/<run>/<path>`` is the logged model of that run named by the
first path segment, else the run's own artifacts. The model directory is then downloaded into
a local cache (``_mlflow_cache``) and served from there.

``http(s)://`` registries are spoken to over REST without ``mlflow``; database and file URIs
need the ``mlflow`` package (``_mlflow_package``).
"""

from __future__ import annotations

import shutil
import tempfile
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from jupyter_serve.errors import (
    InvalidModelError,
    JupyterServeError,
    ModelNotFoundError,
    RegistryError,
)
from jupyter_serve.registry._artifacts import MLMODEL_FILE, check_model_directory, stage_model
from jupyter_serve.registry._lookup import resolve_local_path
from jupyter_serve.registry._mlflow_api import RegistryApi, RemoteVersion, RestRegistryApi
from jupyter_serve.registry._mlflow_cache import ModelCache, default_cache_root
from jupyter_serve.registry._mlflow_rest import MlflowApiError, MlflowRestClient
from jupyter_serve.registry._types import (
    ModelVersion,
    ResolvedModel,
    Stage,
    validate_alias,
    validate_model_name,
    version_number,
)
from jupyter_serve.uris import (
    AliasRef,
    LatestVersionRef,
    LocalPathRef,
    LoggedModelRef,
    ModelRef,
    RunArtifactRef,
    StageRef,
    VersionRef,
    parse_model_uri,
)

_ARCHIVING_STAGES = (Stage.STAGING, Stage.PRODUCTION)
T = TypeVar("T")


def is_http_uri(uri: str) -> bool:
    """True for ``http://`` and ``https://`` URIs (spoken to over REST, without mlflow)."""
    return urllib.parse.urlparse(uri).scheme.lower() in ("http", "https")


def _api_for(uri: str) -> RegistryApi:
    if is_http_uri(uri):
        return RestRegistryApi(MlflowRestClient(uri))
    from jupyter_serve.registry._mlflow_package import PackageRegistryApi

    return PackageRegistryApi(uri)


def _version_list(versions: list[RemoteVersion]) -> str:
    if not versions:
        return "it has no versions"
    return "versions: " + ", ".join(f"{v.version} ({v.stage})" for v in versions)


class MlflowRegistry:
    """A ``Registry`` backed by an MLflow model registry at ``registry_uri``.

    ``tracking_uri`` (default: the registry URI) answers ``runs:/`` URIs and logged models, as
    in MLflow. Downloads are cached under ``cache_root`` (default: ``default_cache_root()``).
    Every method may be called from any thread.
    """

    def __init__(
        self,
        registry_uri: str,
        *,
        tracking_uri: str | None = None,
        cache_root: Path | None = None,
    ) -> None:
        self.registry_uri = registry_uri
        self.tracking_uri = tracking_uri or registry_uri
        self._registry = _api_for(registry_uri)
        self._tracking = (
            self._registry if self.tracking_uri == registry_uri else _api_for(self.tracking_uri)
        )
        self._cache = ModelCache(cache_root or default_cache_root(), self.tracking_uri)

    def __repr__(self) -> str:
        return f"MlflowRegistry({self.registry_uri!r})"

    # -- resolution ----------------------------------------------------------------------------

    def resolve(self, uri: str) -> ResolvedModel:
        """The model directory ``uri`` names, downloaded into the local cache if not there yet.

        Raises ``ModelNotFoundError`` naming what was asked and what exists (models, versions
        with their stages, aliases), ``RegistryError`` when the server cannot be reached.
        """
        reference = parse_model_uri(uri)
        if isinstance(reference, LocalPathRef):
            return resolve_local_path(uri, reference)
        if isinstance(reference, LoggedModelRef):
            artifact_uri = self._call(
                lambda: self._tracking.logged_model_artifact_uri(reference.model_id),
                missing=f"no logged model {reference.model_id!r} in the MLflow tracking server "
                f"at {self.tracking_uri}; models:/<id> names a logged model by its id (m-...), "
                "models:/<name>/<version> a registered one",
            )
            target = self._cache.logged_model_path(reference.model_id)
            return ResolvedModel(uri=uri, path=self._download(uri, artifact_uri, target))
        if isinstance(reference, RunArtifactRef):
            return self._resolve_run_artifact(uri, reference)
        found = self._registered_version(uri, reference)
        target = self._cache.version_path(found.name, found.version, found.created_at)
        if not target.is_dir():
            artifact_uri = self._call(
                lambda: self._registry.download_uri(found.name, found.version),
                missing=f"version {found.version} of {found.name!r} was deleted while "
                f"resolving {uri!r}; try again",
            )
            self._download(uri, artifact_uri, target)
        return ResolvedModel(uri=uri, path=target, name=found.name, version=found.version)

    def _registered_version(self, uri: str, reference: ModelRef) -> RemoteVersion:
        match reference:
            case VersionRef(name, version):
                return self._get(name, version)
            case LatestVersionRef(name):
                return self._highest(uri, name, None)
            case StageRef(name, stage_text):
                try:
                    stage = Stage.parse(stage_text)
                except RegistryError as error:
                    raise ModelNotFoundError(
                        f"cannot resolve {uri!r}: {stage_text!r} is not a version number, "
                        f"'latest' or a stage; the stages are {', '.join(s.value for s in Stage)}"
                    ) from error
                return self._highest(uri, name, stage)
            case AliasRef(name, alias):
                return self._aliased(name, alias)
        raise AssertionError(f"not a registry reference: {reference!r}")

    def _highest(self, uri: str, name: str, stage: Stage | None) -> RemoteVersion:
        stages = None if stage is None else [stage.value]
        latest = self._call(
            lambda: self._registry.latest_versions(name, stages), model=name, missing=None
        )
        if latest:
            return self._get(name, max(v.version for v in latest))
        versions = self._call(lambda: self._registry.versions(name), model=name, missing=None)
        if stage is None or not versions:
            raise ModelNotFoundError(
                f"cannot resolve {uri!r}: model {name!r} has no versions in the MLflow registry "
                f"at {self.registry_uri}; register one first"
            )
        raise ModelNotFoundError(
            f"no version of {name!r} is in stage {stage.value!r} in the MLflow registry at "
            f"{self.registry_uri}; {_version_list(versions)}"
        )

    def _aliased(self, name: str, alias: str) -> RemoteVersion:
        try:
            return self._registry.version_by_alias(name, alias)
        except MlflowApiError as error:
            if error.error_code not in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"):
                raise self._failure(error) from None
        aliases = self._call(lambda: self._registry.aliases(name), model=name, missing=None)
        near = [a for a in aliases if a.lower() == alias.lower()]
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        listed = (
            "aliases: " + ", ".join(f"{a} -> version {v}" for a, v in sorted(aliases.items()))
            if aliases
            else "it has no aliases; set one with MlflowClient().set_registered_model_alias"
        )
        raise ModelNotFoundError(
            f"model {name!r} has no alias {alias!r} in the MLflow registry at "
            f"{self.registry_uri}{hint}; {listed}"
        )

    def _resolve_run_artifact(self, uri: str, reference: RunArtifactRef) -> ResolvedModel:
        run_id, path = reference.run_id, reference.artifact_path
        artifact_uri = self._call(
            lambda: self._storage_uri(uri),
            missing=f"no run {run_id!r} in the MLflow tracking server at {self.tracking_uri}",
        )
        target = self._cache.run_artifact_path(run_id, path)
        return ResolvedModel(uri=uri, path=self._download(uri, artifact_uri, target))

    def _storage_uri(self, artifact_uri: str) -> str:
        """Where the files are: versions registered from ``runs:/`` or ``models:/m-...``
        sources may report that URI itself as their download location."""
        scheme = urllib.parse.urlparse(artifact_uri).scheme.lower()
        if scheme not in ("runs", "models"):
            return artifact_uri
        reference = parse_model_uri(artifact_uri)
        if isinstance(reference, LoggedModelRef):
            return self._tracking.logged_model_artifact_uri(reference.model_id)
        if isinstance(reference, RunArtifactRef):
            root, experiment_id = self._tracking.run_artifact_uri(reference.run_id)
            first, _, rest = reference.artifact_path.partition("/")
            model_root = self._tracking.logged_model_of_run(reference.run_id, experiment_id, first)
            if model_root is not None:
                return f"{model_root.rstrip('/')}/{rest}" if rest else model_root
            return f"{root.rstrip('/')}/{reference.artifact_path}"
        if isinstance(reference, VersionRef):
            return self._storage_uri(self._registry.download_uri(reference.name, reference.version))
        raise RegistryError(
            f"the MLflow registry gave {artifact_uri} as a download location, which is not a "
            "storage location jupyter-serve can read"
        )

    def _download(self, uri: str, artifact_uri: str, target: Path) -> Path:
        def download(directory: Path) -> None:
            self._call(
                lambda: self._tracking.download(self._storage_uri(artifact_uri), directory),
                missing=f"nothing to download for {uri!r}: {artifact_uri} holds no artifacts",
            )

        path = self._cache.fetch(target, download)
        if not (path / MLMODEL_FILE).is_file():
            self._cache.discard(path)
            raise InvalidModelError(
                f"{uri!r} resolves to {artifact_uri}, which holds no MLmodel file, so it is not "
                "an MLflow model; point the URI at the directory a model was logged to"
            )
        return check_model_directory(path)

    # -- reading -------------------------------------------------------------------------------

    def list_models(self) -> list[str]:
        """Registered model names in the MLflow registry, sorted."""
        return self._call(self._registry.model_names, missing=None)

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, lowest first, with stages and aliases.

        ``path`` is where the version is cached locally (downloaded by ``resolve``).
        """
        versions = self._call(lambda: self._registry.versions(name), model=name, missing=None)
        return [self._model_version(v) for v in versions]

    def get_version(self, name: str, version: int | str) -> ModelVersion:
        """One version; ``ModelNotFoundError`` listing the versions that exist otherwise."""
        return self._model_version(self._get(name, version_number(version)))

    def _get(self, name: str, version: int) -> RemoteVersion:
        try:
            found = self._registry.version(name, version)
        except MlflowApiError as error:
            if not error.not_found:
                raise self._failure(error) from None
            self._call(lambda: self._registry.aliases(name), model=name, missing=None)
            versions = self._call(lambda: self._registry.versions(name), model=name, missing=None)
            raise ModelNotFoundError(
                f"model {name!r} has no version {version} in the MLflow registry at "
                f"{self.registry_uri}; {_version_list(versions)}"
            ) from None
        aliases = self._call(lambda: self._registry.aliases(name), model=name, missing=None)
        mine = tuple(sorted(a for a, v in aliases.items() if v == found.version))
        return RemoteVersion(**{**found.__dict__, "aliases": mine})

    def _model_version(self, found: RemoteVersion) -> ModelVersion:
        return ModelVersion(
            name=found.name,
            version=found.version,
            stage=Stage.parse(found.stage),
            aliases=found.aliases,
            path=self._cache.version_path(found.name, found.version, found.created_at),
            created_at=found.created_at,
            source=found.source,
            description=found.description,
        )

    # -- writing -------------------------------------------------------------------------------

    def register_model(
        self,
        model: Any,
        name: str,
        *,
        stage: str | Stage | None = None,
        alias: str | None = None,
        input_example: Any = None,
        signature: Any = None,
        archive_existing_versions: bool = False,
        description: str | None = None,
    ) -> int:
        """Log ``model`` (a live object or an MLflow model directory) as an artifact of a new
        MLflow run and register it as the next version of ``name`` (created if missing), then
        set ``stage`` and ``alias``. Returns the version number MLflow gave it.

        The model is saved and checked to load locally before anything is sent.
        """
        name = validate_model_name(name)
        target_stage = Stage.parse(stage)
        if archive_existing_versions and target_stage not in _ARCHIVING_STAGES:
            raise RegistryError(
                f"archive_existing_versions applies to Staging and Production only, not "
                f"{target_stage}; leave it off for this stage"
            )
        if alias is not None:
            validate_alias(alias)
        staging_dir = Path(tempfile.mkdtemp(prefix="jupyter-serve-register-"))
        try:
            staged, _ = stage_model(
                model, staging_dir, signature=signature, input_example=input_example
            )
            source, run_id = self._call(
                lambda: self._tracking.log_model_directory(staged), missing=None
            )
        finally:
            shutil.rmtree(staging_dir, ignore_errors=True)
        self._call(lambda: self._registry.create_model(name), missing=None)
        version = self._call(
            lambda: self._registry.create_version(name, source, run_id), missing=None
        )
        if target_stage is not Stage.NONE:
            self.transition_stage(
                name, version, target_stage, archive_existing_versions=archive_existing_versions
            )
        if alias is not None:
            self.set_alias(name, alias, version)
        return version

    def transition_stage(
        self,
        name: str,
        version: int | str,
        stage: str | Stage,
        *,
        archive_existing_versions: bool = False,
    ) -> ModelVersion:
        """Move ``version`` to ``stage`` (MLflow's transition, deprecated there but working)."""
        number = version_number(version)
        target = Stage.parse(stage)
        self._get(name, number)
        self._call(
            lambda: self._registry.transition_stage(
                name, number, target.value, archive_existing_versions
            ),
            missing=None,
        )
        return self.get_version(name, number)

    def set_alias(self, name: str, alias: str, version: int | str) -> None:
        """Point ``alias`` at ``version`` of ``name``."""
        validate_alias(alias)
        number = version_number(version)
        self._get(name, number)
        self._call(lambda: self._registry.set_alias(name, alias, number), missing=None)

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove ``alias``; ``ModelNotFoundError`` listing the aliases when it does not exist."""
        aliases = self._call(lambda: self._registry.aliases(name), model=name, missing=None)
        if alias not in aliases:
            listed = ", ".join(f"{a} -> version {v}" for a, v in sorted(aliases.items()))
            raise ModelNotFoundError(
                f"model {name!r} has no alias {alias!r}; "
                + (f"aliases: {listed}" if listed else "it has no aliases")
            )
        self._call(lambda: self._registry.delete_alias(name, alias), missing=None)

    def delete_version(self, name: str, version: int | str) -> None:
        """Delete one version from the MLflow registry (its run artifacts stay, as in MLflow)."""
        number = version_number(version)
        self._get(name, number)
        self._call(lambda: self._registry.delete_version(name, number), missing=None)

    def delete_model(self, name: str) -> None:
        """Delete a registered model with all its versions from the MLflow registry."""
        self._call(lambda: self._registry.delete_model(name), model=name, missing=None)

    # -- errors --------------------------------------------------------------------------------

    def _call(self, action: Callable[[], T], *, missing: str | None, model: str | None = None) -> T:
        """Run ``action``; MLflow's "not found" becomes ``ModelNotFoundError`` (``missing``,
        or for ``model`` the list of registered models), anything else a ``RegistryError``."""
        try:
            return action()
        except MlflowApiError as error:
            if error.not_found and model is not None:
                raise self._unknown_model(model) from None
            if error.not_found and missing is not None:
                raise ModelNotFoundError(missing) from None
            raise self._failure(error) from None

    def _unknown_model(self, name: str) -> ModelNotFoundError:
        try:
            names = self._registry.model_names()
        except (MlflowApiError, JupyterServeError):
            names = []
        where = f"the MLflow registry at {self.registry_uri}"
        if not names:
            return ModelNotFoundError(
                f"no model named {name!r}: {where} holds no registered models; register one "
                f"with jupyter_serve.register_model(model, {name!r}) or mlflow.register_model"
            )
        near = [other for other in names if other.lower() == name.lower()]
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        return ModelNotFoundError(
            f"no model named {name!r} in {where}{hint}; registered models: " + ", ".join(names)
        )

    def _failure(self, error: MlflowApiError) -> RegistryError:
        return RegistryError(
            f"the MLflow registry at {self.registry_uri} refused the request: {error.message} "
            f"({error.error_code})"
        )
