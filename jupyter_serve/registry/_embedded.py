"""The embedded registry: a directory with a SQLite file and MLflow model directories.

Layout of the registry root::

    registry.db                       metadata (models, versions, stages, aliases)
    models/<quoted name>/<n>-<token>/ one MLflow model directory per version
    .staging/                         models being written, never referenced by a row
    .trash/                           deleted versions on their way out

A version's directory is renamed into place before its row is committed, and removed again if
the commit fails, so a row always points at a complete directory. Version numbers are taken
inside the write transaction from a per-model counter that never goes back, so a deleted
version's number is not given to another model later (a URI pinned to it cannot silently
change meaning).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_data_dir

from jupyter_serve.errors import ModelNotFoundError, RegistryError
from jupyter_serve.registry._artifacts import (
    discard_directory,
    make_staging_dir,
    stage_model,
    version_dir_name,
)
from jupyter_serve.registry._lookup import (
    refuse_mlflow_only,
    resolve_local_path,
    resolve_registered,
)
from jupyter_serve.registry._store import RegistryDatabase, unwritable_error
from jupyter_serve.registry._types import (
    ModelVersion,
    ResolvedModel,
    Stage,
    validate_alias,
    validate_model_name,
    version_number,
)
from jupyter_serve.uris import LocalPathRef, LoggedModelRef, RunArtifactRef, parse_model_uri

REGISTRY_ENV = "JUPYTER_SERVE_REGISTRY"
_ARCHIVING_STAGES = (Stage.STAGING, Stage.PRODUCTION)


def default_registry_root() -> Path:
    """``$JUPYTER_SERVE_REGISTRY`` if set, else ``<jupyter data dir>/jupyter-serve/registry``."""
    configured = os.environ.get(REGISTRY_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path(jupyter_data_dir()) / "jupyter-serve" / "registry"


def _version_list(rows: list[tuple[int, str]]) -> str:
    if not rows:
        return "versions: none"
    return "versions: " + ", ".join(f"{version} ({stage})" for version, stage in rows)


class EmbeddedRegistry:
    """The default registry: no server, one directory, safe for many kernels at once.

    Every method may be called from any thread and from several processes sharing ``root``.
    """

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_registry_root()
        self._database = RegistryDatabase(self.root)

    def __repr__(self) -> str:
        return f"EmbeddedRegistry({str(self.root)!r})"

    # -- registration ------------------------------------------------------------------------

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
        """Store ``model`` as the next version of ``name`` and return its number (1, 2, ...).

        ``model`` is a live object with ``predict`` (saved in the MLflow format, signature
        inferred from ``input_example`` when not given) or an MLflow model directory (copied).
        The model is checked to load before it is registered; on any error the registry is
        left as it was.
        """
        name = validate_model_name(name)
        target_stage = Stage.parse(stage)
        _check_archive_option(target_stage, archive_existing_versions)
        if alias is not None:
            validate_alias(alias)
        self._database.ensure_root()
        self._database.check_writable()
        try:
            staging_dir = make_staging_dir(self.root / ".staging")
        except OSError as error:
            raise unwritable_error(self.root, error) from error
        try:
            staged, source = stage_model(
                model, staging_dir, signature=signature, input_example=input_example
            )
            return self._commit_version(
                name,
                staged,
                source=source,
                stage=target_stage,
                alias=alias,
                archive_existing_versions=archive_existing_versions,
                description=description,
            )
        except OSError as error:
            raise unwritable_error(self.root, error) from error
        finally:
            shutil.rmtree(staging_dir, ignore_errors=True)

    def _commit_version(
        self,
        name: str,
        staged: Path,
        *,
        source: str,
        stage: Stage,
        alias: str | None,
        archive_existing_versions: bool,
        description: str | None,
    ) -> int:
        now = time.time()
        moved_in: Path | None = None
        try:
            with self._database.transaction(write=True) as db:
                row = db.execute(
                    "SELECT last_version FROM registered_models WHERE name = ?", (name,)
                ).fetchone()
                if row is None:
                    db.execute(
                        "INSERT INTO registered_models (name, created_at, last_version) "
                        "VALUES (?, ?, 0)",
                        (name, now),
                    )
                version = 1 if row is None else int(row[0]) + 1
                if alias is not None:
                    _refuse_near_duplicate_alias(db, name, alias)
                relative_dir = version_dir_name(name, version, staged)
                final_dir = self.root / relative_dir
                final_dir.parent.mkdir(parents=True, exist_ok=True)
                os.rename(staged, final_dir)
                moved_in = final_dir
                db.execute(
                    "UPDATE registered_models SET last_version = ? WHERE name = ?",
                    (version, name),
                )
                if archive_existing_versions:
                    _archive_others(db, name, stage, keep=version)
                db.execute(
                    "INSERT INTO model_versions (name, version, stage, created_at, source, "
                    "description, artifact_dir) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (name, version, stage.value, now, source, description, relative_dir),
                )
                if alias is not None:
                    _upsert_alias(db, name, alias, version)
        except BaseException:
            # Rolled back (the failure may be the COMMIT itself): no row points at the directory.
            if moved_in is not None:
                shutil.rmtree(moved_in, ignore_errors=True)
            raise
        return version

    # -- reading -----------------------------------------------------------------------------

    def list_models(self) -> list[str]:
        """Registered model names, sorted (models whose versions were all deleted included)."""
        with self._database.transaction(write=False) as db:
            rows = db.execute("SELECT name FROM registered_models ORDER BY name").fetchall()
        return [str(row[0]) for row in rows]

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, lowest first; ``ModelNotFoundError`` for an unknown name."""
        with self._database.transaction(write=False) as db:
            self._require_model(db, name)
            return self._versions(db, name)

    def get_version(self, name: str, version: int | str) -> ModelVersion:
        """One version; ``ModelNotFoundError`` listing the versions that exist otherwise."""
        version = version_number(version)
        with self._database.transaction(write=False) as db:
            return self._get_version(db, name, version)

    def resolve(self, uri: str) -> ResolvedModel:
        """The model directory ``uri`` names (see ``jupyter_serve.uris`` for the forms).

        Raises ``ModelNotFoundError`` naming what was asked and what exists.
        """
        reference = parse_model_uri(uri)
        if isinstance(reference, LocalPathRef):
            return resolve_local_path(uri, reference)
        if isinstance(reference, (RunArtifactRef, LoggedModelRef)):
            raise refuse_mlflow_only(uri, reference)
        with self._database.transaction(write=False) as db:
            return resolve_registered(self, db, uri, reference)

    # -- changing ----------------------------------------------------------------------------

    def transition_stage(
        self,
        name: str,
        version: int | str,
        stage: str | Stage,
        *,
        archive_existing_versions: bool = False,
    ) -> ModelVersion:
        """Move ``version`` to ``stage``; with ``archive_existing_versions`` the versions
        already in that stage (Staging or Production only) move to Archived in the same
        transaction. Returns the updated version.
        """
        version = version_number(version)
        target = Stage.parse(stage)
        _check_archive_option(target, archive_existing_versions)
        with self._database.transaction(write=True) as db:
            self._get_version(db, name, version)
            if archive_existing_versions:
                _archive_others(db, name, target, keep=version)
            db.execute(
                "UPDATE model_versions SET stage = ? WHERE name = ? AND version = ?",
                (target.value, name, version),
            )
            return self._get_version(db, name, version)

    def set_alias(self, name: str, alias: str, version: int | str) -> None:
        """Point ``alias`` at ``version`` of ``name``, moving it off any other version."""
        validate_alias(alias)
        version = version_number(version)
        with self._database.transaction(write=True) as db:
            self._get_version(db, name, version)
            _refuse_near_duplicate_alias(db, name, alias)
            _upsert_alias(db, name, alias, version)

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove ``alias`` from ``name``; ``ModelNotFoundError`` listing the aliases if absent."""
        with self._database.transaction(write=True) as db:
            self._require_model(db, name)
            deleted = db.execute(
                "DELETE FROM model_aliases WHERE name = ? AND alias = ?", (name, alias)
            ).rowcount
            if not deleted:
                raise ModelNotFoundError(
                    f"model {name!r} has no alias {alias!r}; {_alias_list(db, name)}"
                )

    def delete_version(self, name: str, version: int | str) -> None:
        """Remove ``version`` of ``name`` with its aliases and artifacts."""
        version = version_number(version)
        with self._database.transaction(write=True) as db:
            removed = self._get_version(db, name, version)
            db.execute("DELETE FROM model_aliases WHERE name = ? AND version = ?", (name, version))
            db.execute("DELETE FROM model_versions WHERE name = ? AND version = ?", (name, version))
        discard_directory(self.root, removed.path)

    def delete_model(self, name: str) -> None:
        """Remove model ``name``, every version, alias and artifact of it."""
        with self._database.transaction(write=True) as db:
            self._require_model(db, name)
            removed = self._versions(db, name)
            for table in ("model_aliases", "model_versions", "registered_models"):
                db.execute(f"DELETE FROM {table} WHERE name = ?", (name,))
        for version in removed:
            discard_directory(self.root, version.path)
        if removed:
            with contextlib.suppress(OSError):
                removed[0].path.parent.rmdir()

    # -- internals shared with the URI lookup --------------------------------------------------

    def _require_model(self, db: sqlite3.Connection, name: str) -> None:
        found = db.execute("SELECT 1 FROM registered_models WHERE name = ?", (name,)).fetchone()
        if found is not None:
            return
        names = [str(row[0]) for row in db.execute("SELECT name FROM registered_models")]
        if not names:
            raise ModelNotFoundError(
                f"no model named {name!r}: the registry at {self.root} holds no models yet; "
                f"register one with jupyter_serve.register_model(model, {name!r}) or "
                f"`jupyter-serve models register MODEL_DIR --name {name}`"
            )
        near = [other for other in names if other.lower() == name.lower()]
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ModelNotFoundError(
            f"no model named {name!r} in the registry at {self.root}{hint}; registered models: "
            + ", ".join(sorted(names))
        )

    def _versions(self, db: sqlite3.Connection, name: str) -> list[ModelVersion]:
        aliases: dict[int, list[str]] = {}
        for alias, version in db.execute(
            "SELECT alias, version FROM model_aliases WHERE name = ? ORDER BY alias", (name,)
        ):
            aliases.setdefault(int(version), []).append(str(alias))
        rows = db.execute(
            "SELECT version, stage, created_at, source, description, artifact_dir "
            "FROM model_versions WHERE name = ? ORDER BY version",
            (name,),
        ).fetchall()
        return [
            ModelVersion(
                name=name,
                version=int(version),
                stage=Stage.parse(stage),
                aliases=tuple(aliases.get(int(version), ())),
                path=self.root / artifact_dir,
                created_at=float(created_at),
                source=str(source),
                description=description,
            )
            for version, stage, created_at, source, description, artifact_dir in rows
        ]

    def _get_version(self, db: sqlite3.Connection, name: str, version: int) -> ModelVersion:
        self._require_model(db, name)
        versions = self._versions(db, name)
        for candidate in versions:
            if candidate.version == version:
                return candidate
        raise ModelNotFoundError(
            f"model {name!r} has no version {version}; "
            + _version_list([(v.version, v.stage.value) for v in versions])
        )


def _check_archive_option(stage: Stage, archive_existing_versions: bool) -> None:
    if archive_existing_versions and stage not in _ARCHIVING_STAGES:
        raise RegistryError(
            f"archive_existing_versions applies to Staging and Production only, not {stage}; "
            "leave it off for this stage"
        )


def _archive_others(db: sqlite3.Connection, name: str, stage: Stage, *, keep: int) -> None:
    db.execute(
        "UPDATE model_versions SET stage = ? WHERE name = ? AND stage = ? AND version != ?",
        (Stage.ARCHIVED.value, name, stage.value, keep),
    )


def _alias_list(db: sqlite3.Connection, name: str) -> str:
    rows = db.execute(
        "SELECT alias, version FROM model_aliases WHERE name = ? ORDER BY alias", (name,)
    ).fetchall()
    if not rows:
        return "it has no aliases"
    return "aliases: " + ", ".join(f"{alias} -> version {version}" for alias, version in rows)


def _refuse_near_duplicate_alias(db: sqlite3.Connection, name: str, alias: str) -> None:
    # Aliases are case-sensitive as in MLflow, but 'Champion' next to 'champion' is a trap
    # for whoever types the URI next; refuse the second spelling.
    for (existing,) in db.execute(
        "SELECT alias FROM model_aliases WHERE name = ? AND alias != ? AND lower(alias) = ?",
        (name, alias, alias.lower()),
    ):
        raise RegistryError(
            f"model {name!r} already has the alias {existing!r}, which differs from {alias!r} "
            f"only in letter case; use {existing!r} (setting it moves it) or delete it first"
        )


def _upsert_alias(db: sqlite3.Connection, name: str, alias: str, version: int) -> None:
    db.execute(
        "INSERT INTO model_aliases (name, alias, version) VALUES (?, ?, ?) "
        "ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version",
        (name, alias, version),
    )
