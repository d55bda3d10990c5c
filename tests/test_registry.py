from __future__ import annotations

import os
import pickle
import shutil
import sqlite3
import time
import uuid
from pathlib import Path

import pytest
from sklearn.dummy import DummyClassifier

from jupyter_serve.errors import InvalidModelError, ModelNotFoundError, RegistryError
from jupyter_serve.registry import (
    EmbeddedRegistry,
    Registry,
    Stage,
    default_registry,
    resolve_model_uri,
)
from jupyter_serve.registry._store import journal_mode_for

MLMODEL_TEMPLATE = """\
flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    model_path: model.pkl
    predict_fn: predict
    python_version: 3.11.0
  sklearn:
    code: null
    pickled_model: model.pkl
    serialization_format: pickle
    sklearn_version: 1.9.1
mlflow_version: 3.17.2
model_uuid: {uuid}
signature:
  inputs: '[{{"type": "double", "name": "x", "required": true}}]'
  outputs: '[{{"type": "string", "required": true}}]'
  params: null
utc_time_created: '2026-01-01 00:00:00.000000'
"""


def write_model_dir(path: Path, label: str = "spam") -> Path:
    """An MLflow sklearn model directory (pickle format) whose model always predicts ``label``."""
    model = DummyClassifier(strategy="constant", constant=label).fit([[0.0], [1.0]], [label, "x"])
    path.mkdir(parents=True)
    (path / "MLmodel").write_text(MLMODEL_TEMPLATE.format(uuid=uuid.uuid4().hex))
    with open(path / "model.pkl", "wb") as out:
        pickle.dump(model, out)
    return path


def predicted_label(model_dir: Path) -> str:
    with open(model_dir / "model.pkl", "rb") as source:
        model = pickle.load(source)
    return str(model.predict([[0.5]])[0])


def registry_snapshot(registry: EmbeddedRegistry) -> tuple[object, ...]:
    """Everything a user could observe about the registry, for before/after comparisons."""
    models = registry.list_models()
    versions = [registry.list_versions(name) for name in models]
    files = sorted(str(p.relative_to(registry.root)) for p in (registry.root / "models").rglob("*"))
    staging = registry.root / ".staging"
    leftovers = sorted(p.name for p in staging.iterdir()) if staging.exists() else []
    return models, versions, files, leftovers


@pytest.fixture
def registry(isolated_jupyter_dirs: Path) -> EmbeddedRegistry:
    return EmbeddedRegistry(isolated_jupyter_dirs)


@pytest.fixture
def sources(tmp_path: Path) -> list[Path]:
    return [write_model_dir(tmp_path / f"src{i}", label=f"v{i}") for i in (1, 2, 3)]


def test_versions_are_numbered_from_one_and_copied_in(
    registry: EmbeddedRegistry, sources: list[Path]
) -> None:
    before = time.time()
    assert [registry.register_model(src, "spam") for src in sources] == [1, 2, 3]
    assert registry.list_models() == ["spam"]
    versions = registry.list_versions("spam")
    assert [v.version for v in versions] == [1, 2, 3]
    for version, src in zip(versions, sources, strict=True):
        assert version.name == "spam"
        assert version.stage is Stage.NONE
        assert version.aliases == ()
        assert version.source == str(src)
        assert before - 1 <= version.created_at <= time.time() + 1
        assert version.path.is_relative_to(registry.root)
        assert predicted_label(version.path) == f"v{version.version}"
    # The copy is independent of the source directory.
    (sources[0] / "model.pkl").unlink()
    assert predicted_label(registry.get_version("spam", 1).path) == "v1"


def test_registry_directory_is_created_on_first_use_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sources: list[Path]
) -> None:
    root = tmp_path / "elsewhere" / "reg"
    monkeypatch.setenv("JUPYTER_SERVE_REGISTRY", str(root))
    registry = default_registry()
    assert isinstance(registry, Registry)
    assert not root.exists()
    assert registry.register_model(sources[0], "spam") == 1
    assert (root / "registry.db").is_file()
    assert resolve_model_uri("models:/spam/1").path == registry.get_version("spam", 1).path


def test_stages_resolve_to_the_highest_version_in_them(
    registry: EmbeddedRegistry, sources: list[Path]
) -> None:
    registry.register_model(sources[0], "spam", stage="production")
    registry.register_model(sources[1], "spam", stage="Production")
    registry.register_model(sources[2], "spam", stage="STAGING")
    assert [v.stage for v in registry.list_versions("spam")] == [
        Stage.PRODUCTION,
        Stage.PRODUCTION,
        Stage.STAGING,
    ]
    resolved = registry.resolve("models:/spam/Production")
    assert (resolved.name, resolved.version) == ("spam", 2)
    assert resolved.uri == "models:/spam/Production"
    assert predicted_label(resolved.path) == "v2"
    assert registry.resolve("models:/spam/production").version == 2
    assert registry.resolve("models:/spam/Staging").version == 3
    assert registry.resolve("models:/spam/latest").version == 3
    assert registry.resolve("models:/spam/1").version == 1


def test_transition_can_archive_the_versions_already_in_the_stage(
    registry: EmbeddedRegistry, sources: list[Path]
) -> None:
    for src in sources:
        registry.register_model(src, "spam", stage="Production")
    updated = registry.transition_stage("spam", 1, "staging")
    assert updated.stage is Stage.STAGING and updated.version == 1
    updated = registry.transition_stage("spam", 1, Stage.PRODUCTION, archive_existing_versions=True)
    assert [v.stage for v in registry.list_versions("spam")] == [
        Stage.PRODUCTION,
        Stage.ARCHIVED,
        Stage.ARCHIVED,
    ]
    assert registry.resolve("models:/spam/Production").version == 1


def test_registering_with_archive_option_archives_the_previous_production(
    registry: EmbeddedRegistry, sources: list[Path]
) -> None:
    registry.register_model(sources[0], "spam", stage="Production")
    registry.register_model(sources[1], "spam", stage="Production", archive_existing_versions=True)
    assert [v.stage for v in registry.list_versions("spam")] == [Stage.ARCHIVED, Stage.PRODUCTION]
    with pytest.raises(RegistryError, match="Staging and Production only"):
        registry.transition_stage("spam", 1, "None", archive_existing_versions=True)


def test_missing_stage_names_what_was_asked_and_what_exists(
    registry: EmbeddedRegistry, sources: list[Path]
) -> None:
    registry.register_model(sources[0], "spam", stage="Staging")
    registry.register_model(sources[1], "spam")
    with pytest.raises(ModelNotFoundError) as caught:
        registry.resolve("models:/spam/Production")
    assert str(caught.value) == (
        "no version of 'spam' is in stage 'Production'; versions: 1 (Staging), 2 (None)"
    )


def test_a_bad_stage_name_lists_the_four(registry: EmbeddedRegistry, sources: list[Path]) -> None:
    registry.register_model(sources[0], "spam")
    with pytest.raises(RegistryError, match="the stages are None, Staging, Production, Archived"):
        Stage.parse("Prod")
    with pytest.raises(RegistryError, match="'Prod' is not a model stage"):
        registry.transition_stage("spam", 1, "Prod")
    with pytest.raises(ModelNotFoundError) as caught:
        registry.resolve("models:/spam/Prod")
    assert "'Prod' is not a version number, 'latest' or a stage" in str(caught.value)
    assert "None, Staging, Production, Archived" in str(caught.value)
    assert Stage.parse("aRcHiVeD") is Stage.ARCHIVED and str(Stage.NONE) == "None"


def test_aliases_are_set_moved_and_deleted(registry: EmbeddedRegistry, sources: list[Path]) -> None:
    for src in sources:
        registry.register_model(src, "spam")
    registry.set_alias("spam", "champion", 1)
    assert registry.resolve("models:/spam@champion").version == 1
    registry.set_alias("spam", "champion", 2)
    assert registry.resolve("models:/spam@champion").version == 2
    assert [v.aliases for v in registry.list_versions("spam")] == [(), ("champion",), ()]
    registry.set_alias("spam", "challenger", 2)
    assert registry.get_version("spam", 2).aliases == ("challenger", "champion")
    assert registry.resolve("models:/spam@latest").version == 3
    registry.delete_alias("spam", "champion")
    with pytest.raises(ModelNotFoundError) as caught:
        registry.resolve("models:/spam@champion")
    assert str(caught.value) == (
        "model 'spam' has no alias 'champion'; aliases: challenger -> version 2"
    )
    with pytest.raises(ModelNotFoundError, match="has no alias 'champion'"):
        registry.delete_alias("spam", "champion")


def test_register_with_an_alias_moves_it_to_the_new_version(
    registry: EmbeddedRegistry, sources: list[Path]
) -> None:
    registry.register_model(sources[0], "spam", alias="champion")
    registry.register_model(sources[1], "spam", alias="champion")
    assert registry.resolve("models:/spam@champion").version == 2
    assert registry.get_version("spam", 1).aliases == ()


@pytest.mark.parametrize(
    ("alias", "message"),
    [
        ("latest", "'latest' is reserved"),
        ("LATEST", "'latest' is reserved"),
        ("v3", "looks like a version number"),
        ("has space", "only letters, digits"),
        ("", "alias name is required"),
        ("a" * 256, "at most 255"),
    ],
)
def test_invalid_aliases_are_refused_and_change_nothing(
    registry: EmbeddedRegistry, sources: list[Path], alias: str, message: str
) -> None:
    registry.register_model(sources[0], "spam")
    before = registry_snapshot(registry)
    with pytest.raises(RegistryError, match=message):
        registry.set_alias("spam", alias, 1)
    with pytest.raises(RegistryError, match=message):
        registry.register_model(sources[1], "spam", alias=alias)
    assert registry_snapshot(registry) == before


def test_an_alias_differing_only_in_case_is_a_duplicate(
    registry: EmbeddedRegistry, sources: list[Path]
) -> None:
    registry.register_model(sources[0], "spam", alias="champion")
    before = registry_snapshot(registry)
    with pytest.raises(RegistryError, match="already has the alias 'champion'"):
        registry.register_model(sources[1], "spam", alias="Champion")
    assert registry_snapshot(registry) == before
    with pytest.raises(ModelNotFoundError, match="did you mean 'champion'"):
        registry.resolve("models:/spam@Champion")


def test_deleting_a_version_removes_its_aliases_and_artifacts_and_keeps_numbers(
    registry: EmbeddedRegistry, sources: list[Path]
) -> None:
    for src in sources:
        registry.register_model(src, "spam")
    registry.set_alias("spam", "champion", 3)
    removed = registry.get_version("spam", 3).path
    registry.delete_version("spam", 3)
    assert not removed.exists()
    assert [v.version for v in registry.list_versions("spam")] == [1, 2]
    assert registry.resolve("models:/spam/latest").version == 2
    with pytest.raises(ModelNotFoundError, match="it has no aliases"):
        registry.resolve("models:/spam@champion")
    with pytest.raises(ModelNotFoundError) as caught:
        registry.resolve("models:/spam/3")
    assert str(caught.value) == "model 'spam' has no version 3; versions: 1 (None), 2 (None)"
    # A number once given is never given again: models:/spam/3 cannot come to mean another model.
    assert registry.register_model(sources[0], "spam") == 4


def test_deleting_a_model_removes_everything_of_it(
    registry: EmbeddedRegistry, sources: list[Path]
) -> None:
    registry.register_model(sources[0], "spam", alias="champion")
    registry.register_model(sources[1], "ham")
    registry.delete_model("spam")
    assert registry.list_models() == ["ham"]
    assert [p.name for p in (registry.root / "models").iterdir()] == ["ham"]
    with pytest.raises(ModelNotFoundError, match="registered models: ham"):
        registry.list_versions("spam")
    assert registry.register_model(sources[2], "spam") == 1


def test_unknown_models_list_the_registered_ones(
    registry: EmbeddedRegistry, sources: list[Path]
) -> None:
    with pytest.raises(ModelNotFoundError, match="holds no models yet; register one"):
        registry.resolve("models:/spam/1")
    registry.register_model(sources[0], "spam")
    registry.register_model(sources[1], "ham")
    with pytest.raises(ModelNotFoundError) as caught:
        registry.resolve("models:/eggs/Production")
    assert str(caught.value) == (
        f"no model named 'eggs' in the registry at {registry.root}; registered models: ham, spam"
    )
    with pytest.raises(ModelNotFoundError, match="did you mean 'spam'"):
        registry.get_version("Spam", 1)


def test_mlflow_only_uris_say_which_backend_resolves_them(registry: EmbeddedRegistry) -> None:
    with pytest.raises(ModelNotFoundError, match="only the MLflow registry backend"):
        registry.resolve("runs:/0123abcd/model")
    with pytest.raises(ModelNotFoundError, match="logged model by id"):
        resolve_model_uri("models:/spam", registry)


def test_paths_resolve_without_touching_the_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sources: list[Path]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("JUPYTER_SERVE_REGISTRY", str(blocker / "registry"))
    assert resolve_model_uri(str(sources[0])).path == sources[0]
    assert resolve_model_uri(sources[0].as_uri()).path == sources[0]
    resolved = resolve_model_uri(sources[0])
    assert (resolved.name, resolved.version) == (None, None)
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model_uri(str(tmp_path / "nowhere"))
    with pytest.raises(InvalidModelError, match="has no MLmodel file"):
        resolve_model_uri(str(tmp_path))


def test_bad_sources_are_refused_and_leave_the_registry_as_it_was(
    registry: EmbeddedRegistry, sources: list[Path], tmp_path: Path
) -> None:
    registry.register_model(sources[0], "spam")
    before = registry_snapshot(registry)
    empty = tmp_path / "empty"
    empty.mkdir()
    corrupt = write_model_dir(tmp_path / "corrupt")
    (corrupt / "MLmodel").write_text("flavors: [unclosed\n")
    cases: list[tuple[object, type[Exception], str]] = [
        (empty, InvalidModelError, "has no MLmodel file"),
        (tmp_path / "missing", InvalidModelError, "nothing exists there"),
        (corrupt, InvalidModelError, "cannot be read as YAML"),
        (object(), InvalidModelError, "has no predict method"),
        ("models:/spam/1", InvalidModelError, "not 'models:/spam/1'"),
    ]
    for source, error, message in cases:
        with pytest.raises(error, match=message):
            registry.register_model(source, "spam")
    with pytest.raises(RegistryError, match="is not a model stage"):
        registry.register_model(sources[1], "spam", stage="Live")
    with pytest.raises(RegistryError, match="contains '/'"):
        registry.register_model(sources[1], "spam/v2")
    with pytest.raises(ModelNotFoundError):
        registry.transition_stage("spam", 7, "Production")
    assert registry_snapshot(registry) == before
    assert registry.register_model(sources[1], "spam") == 2


def test_an_unwritable_registry_location_says_where_and_what_to_do(
    tmp_path: Path, sources: list[Path]
) -> None:
    # Works as root too: nothing can create a directory below a regular file.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    registry = EmbeddedRegistry(blocker / "registry")
    for attempt in (lambda: registry.register_model(sources[0], "spam"), registry.list_models):
        with pytest.raises(RegistryError) as caught:
            attempt()
        message = str(caught.value)
        assert str(blocker / "registry") in message
        assert "set JUPYTER_SERVE_REGISTRY to a directory you can write" in message
    assert blocker.read_text() == ""


def test_missing_artifacts_of_a_version_are_reported_not_served(
    registry: EmbeddedRegistry, sources: list[Path]
) -> None:
    registry.register_model(sources[0], "spam")
    shutil.rmtree(registry.get_version("spam", 1).path)
    with pytest.raises(InvalidModelError, match="its artifacts are missing"):
        registry.resolve("models:/spam/1")


def test_a_stale_staging_directory_of_a_killed_process_is_cleaned_up(
    registry: EmbeddedRegistry, sources: list[Path]
) -> None:
    registry.register_model(sources[0], "spam")
    stale = registry.root / ".staging" / "incoming-killed"
    fresh = registry.root / ".staging" / "incoming-running"
    for leftover in (stale, fresh):
        (leftover / "model").mkdir(parents=True)
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(stale, (two_days_ago, two_days_ago))
    registry.register_model(sources[1], "spam")
    assert not stale.exists()
    assert fresh.exists()


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="needs a non-root user: root writes through a read-only directory mode",
)
def test_a_read_only_registry_directory_is_refused_with_what_to_do(
    registry: EmbeddedRegistry, sources: list[Path]
) -> None:
    registry.register_model(sources[0], "spam")
    before = registry_snapshot(registry)
    registry.root.chmod(0o500)
    try:
        with pytest.raises(RegistryError) as caught:
            registry.register_model(sources[1], "spam")
    finally:
        registry.root.chmod(0o700)
    assert str(registry.root) in str(caught.value)
    assert "set JUPYTER_SERVE_REGISTRY" in str(caught.value)
    assert registry_snapshot(registry) == before


def test_wal_journal_only_on_local_file_systems(registry: EmbeddedRegistry) -> None:
    mounts = (
        "/dev/sda1 / ext4 rw 0 0\n"
        "server:/export/home /home nfs4 rw 0 0\n"
        "/dev/sdb1 /home/alice/local\\040disk xfs rw 0 0\n"
    )
    assert journal_mode_for(Path("/home/alice/.local/share"), mounts) == "DELETE"
    assert journal_mode_for(Path("/home/alice/local disk/reg"), mounts) == "WAL"
    assert journal_mode_for(Path("/homework"), mounts) == "WAL"
    registry.list_models()
    with sqlite3.connect(registry.root / "registry.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_corrupt_registry_database_is_reported_with_what_to_do(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    root.mkdir()
    (root / "registry.db").write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(RegistryError) as caught:
        EmbeddedRegistry(root).list_models()
    assert f"the registry database {root / 'registry.db'} is corrupt" in str(caught.value)
    assert "set JUPYTER_SERVE_REGISTRY to another directory" in str(caught.value)


def test_a_failure_after_the_artifacts_moved_in_leaves_no_directory_behind(
    registry: EmbeddedRegistry, sources: list[Path]
) -> None:
    registry.register_model(sources[0], "spam")
    before = registry_snapshot(registry)
    # An inconsistent counter makes the INSERT fail after the directory was renamed into place.
    with sqlite3.connect(registry.root / "registry.db") as db:
        db.execute("UPDATE registered_models SET last_version = 0")
    db.close()
    with pytest.raises(RegistryError, match="UNIQUE constraint failed"):
        registry.register_model(sources[1], "spam")
    assert registry_snapshot(registry) == before


def test_versions_given_as_text_work_like_mlflow_clients_pass_them(
    registry: EmbeddedRegistry, sources: list[Path]
) -> None:
    registry.register_model(sources[0], "spam")
    assert registry.get_version("spam", "1").version == 1
    assert registry.transition_stage("spam", " 1 ", "Staging").stage is Stage.STAGING
    with pytest.raises(RegistryError, match="'one' is not a version number"):
        registry.get_version("spam", "one")
