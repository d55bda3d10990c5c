"""Model and alias names: what the registry refuses (with the rule in the message) and what
it keeps, through the Python API and the ``jupyter-serve models register`` command."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_registry import predicted_label, registry_snapshot, write_model_dir

from jupyter_serve import register_model
from jupyter_serve.errors import RegistryError
from jupyter_serve.registry import EmbeddedRegistry

PATH_RULE = "would read as a path: MLflow refuses names that are '.' or '..' or start with '..'"
UNPRINTABLE_RULE = "model names hold no control characters, line breaks or unpaired surrogates"
HOSTILE_NAMES = [
    ("..", PATH_RULE),
    (".", PATH_RULE),
    ("..spam", PATH_RULE),
    ("a/b", "contains '/', which MLflow refuses in model names"),
    ("../../etc", "contains '/', which MLflow refuses in model names"),
    ("a:b", "contains ':', which MLflow refuses in model names"),
    ("a@b", "contains '@', which would read as an alias"),
    ("a?b", "contains '?', which would start a query in a models:/ URI"),
    ("a\\b", "is a path separator on Windows, where MLflow's file registry refuses it"),
    ("a\nb", "the character U+000A; " + UNPRINTABLE_RULE),
    ("tab\there", "the character U+0009; " + UNPRINTABLE_RULE),
    ("bell\x07", "the character U+0007; " + UNPRINTABLE_RULE),
    ("del\x7f", "the character U+007F; " + UNPRINTABLE_RULE),
    ("line\u2028break", "the character U+2028; " + UNPRINTABLE_RULE),
    ("\udcff", "the character U+DCFF; " + UNPRINTABLE_RULE),
    (" spam", "starts or ends with spaces"),
    ("s" * 257, "is 257 characters long; a model name has at most 256"),
    ("s" * 1000, "is 1000 characters long; a model name has at most 256"),
]
# argv cannot hold a NUL byte; the API can.
API_ONLY_NAMES = [("nul\x00byte", "the character U+0000; " + UNPRINTABLE_RULE)]
BIN = Path(sys.executable).parent


@pytest.fixture
def registry(isolated_jupyter_dirs: Path) -> EmbeddedRegistry:
    return EmbeddedRegistry(isolated_jupyter_dirs)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return write_model_dir(tmp_path / "src", label="v1")


@pytest.mark.parametrize(
    ("name", "rule"),
    HOSTILE_NAMES + API_ONLY_NAMES,
    ids=[ascii(name[:12]) for name, _ in HOSTILE_NAMES + API_ONLY_NAMES],
)
def test_hostile_names_are_refused_naming_the_rule(
    registry: EmbeddedRegistry, source: Path, name: str, rule: str
) -> None:
    registry.register_model(source, "spam")
    before = registry_snapshot(registry)
    with pytest.raises(RegistryError) as caught:
        registry.register_model(source, name)
    assert rule in str(caught.value)
    assert "cannot be written" not in str(caught.value)
    with pytest.raises(RegistryError) as public:
        register_model(source, name)  # the public API, on the default registry
    assert rule in str(public.value)
    assert registry_snapshot(registry) == before


def test_the_command_refuses_each_hostile_name_with_its_rule(
    registry: EmbeddedRegistry, source: Path
) -> None:
    env = {**os.environ, "JUPYTER_SERVE_REGISTRY": str(registry.root)}

    def register(name: str) -> subprocess.CompletedProcess[str]:
        command = [str(BIN / "jupyter-serve"), "models", "register", str(source), "--name", name]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(register, [name for name, _ in HOSTILE_NAMES]))
    for (name, rule), done in zip(HOSTILE_NAMES, answers, strict=True):
        assert done.returncode != 0, name
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
        assert rule in lines[0], (name, lines[0])
    assert registry.list_models() == []


@pytest.mark.parametrize(
    "name",
    [".hidden", "a..", "my model", "Spam Ham %2F", "naïve-bayes", "s" * 256, "é" * 256, "#1"],
    ids=lambda name: ascii(name[:12]),
)
def test_any_valid_name_stays_inside_the_registry_directory(
    registry: EmbeddedRegistry, source: Path, name: str
) -> None:
    assert registry.register_model(source, name) == 1
    path = registry.resolve(f"models:/{name}/1").path
    assert path.resolve().parent.parent == (registry.root / "models").resolve()
    assert predicted_label(path) == "v1"
    assert all(len(part.encode()) <= 200 for part in path.relative_to(registry.root).parts)


def test_two_long_names_that_share_a_start_stay_apart(
    registry: EmbeddedRegistry, source: Path, tmp_path: Path
) -> None:
    other = write_model_dir(tmp_path / "other", label="v2")
    first, second = "é" * 255 + "a", "é" * 255 + "b"
    registry.register_model(source, first)
    registry.register_model(other, second)
    assert predicted_label(registry.resolve(f"models:/{first}/1").path) == "v1"
    assert predicted_label(registry.resolve(f"models:/{second}/1").path) == "v2"


@pytest.mark.parametrize(
    ("alias", "rule"),
    [
        ("champion\n", "alias names may contain only letters, digits, underscores"),
        ("a/b", "alias names may contain only letters, digits, underscores"),
        ("v2\n", "alias names may contain only letters, digits, underscores"),
    ],
    ids=ascii,
)
def test_aliases_with_a_trailing_newline_or_a_slash_are_refused(
    registry: EmbeddedRegistry, source: Path, alias: str, rule: str
) -> None:
    registry.register_model(source, "spam")
    before = registry_snapshot(registry)
    with pytest.raises(RegistryError, match=rule):
        registry.set_alias("spam", alias, 1)
    assert registry_snapshot(registry) == before
