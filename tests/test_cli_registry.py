"""The registry commands of ``jupyter-serve``, run as real processes on a model MLflow saved."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_python

from jupyter_serve.models import load_model
from jupyter_serve.registry import register_model

BIN = Path(sys.executable).parent
SAVE_WITH_MLFLOW = """
import sys
import mlflow.sklearn
import pandas as pd
from sklearn.linear_model import LogisticRegression
X = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
model = LogisticRegression().fit(X, ["ham", "ham", "spam", "spam"])
mlflow.sklearn.save_model(model, sys.argv[1], input_example=X.head(2))
"""


@pytest.fixture(scope="module")
def mlflow_model_dir(mlflow_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("mlflow-saved") / "spam-model"
    run_python(mlflow_python, SAVE_WITH_MLFLOW, str(target))
    return target


def run_cli(
    *args: str, registry: Path, program: str = "jupyter-serve"
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JUPYTER_SERVE_REGISTRY": str(registry)}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    command = [str(BIN / program), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


def assert_one_line_error(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert done.returncode != 0
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_register_list_and_describe_a_model_mlflow_saved(
    mlflow_model_dir: Path, isolated_jupyter_dirs: Path
) -> None:
    registry = isolated_jupyter_dirs
    register_model(mlflow_model_dir, "spam", stage="Archived")
    done = run_cli(
        "models", "register", str(mlflow_model_dir), "--name", "spam",
        "--stage", "production", "--alias", "champion",
        registry=registry,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Registered model 'spam' version 2 (models:/spam/2)\n"

    listing = run_cli("models", "list", registry=registry)
    assert listing.returncode == 0, listing.stderr
    header, first, second = listing.stdout.strip().splitlines()
    assert header.split() == ["MODEL", "VERSION", "STAGE", "ALIASES", "CREATED", "SOURCE"]
    assert first.split()[:4] == ["spam", "1", "Archived", "-"]
    assert second.split()[:4] == ["spam", "2", "Production", "champion"]
    assert second.endswith(str(mlflow_model_dir))

    described = run_cli("models", "describe", "models:/spam/production", registry=registry)
    assert described.returncode == 0, described.stderr
    fields = dict(line.split(":", 1) for line in described.stdout.strip().splitlines())
    assert fields["version"].strip() == "2"
    assert fields["aliases"].strip() == "champion"
    assert fields["signature"].strip() == "x: double -> string"
    model = load_model(Path(fields["path"].strip()))
    assert list(model.predict({"x": [0.0, 3.0]})) == ["ham", "spam"]


def test_stage_and_alias_commands_change_what_uris_resolve_to(
    mlflow_model_dir: Path, isolated_jupyter_dirs: Path
) -> None:
    registry = isolated_jupyter_dirs
    # Registered in-process: the CLI's register is the first test's subject, and each
    # registering process pays for importing the model's libraries.
    for _ in range(2):
        register_model(mlflow_model_dir, "spam")
    done = run_cli("models", "transition", "spam", "2", "staging", registry=registry)
    assert done.stdout == "Model 'spam' version 2 is now in stage Staging\n"
    done = run_cli("models", "alias", "spam", "champion", "1", registry=registry)
    assert done.stdout == "models:/spam@champion now points at version 1\n"
    done = run_cli("models", "describe", "models:/spam/Staging", registry=registry)
    assert "version:     2" in done.stdout
    done = run_cli("models", "alias", "spam", "champion", "--delete", registry=registry)
    assert done.returncode == 0
    done = run_cli("models", "delete", "spam", "1", registry=registry)
    assert done.stdout == "Deleted model 'spam' version 1\n"
    listing = run_cli("models", "list", "spam", registry=registry).stdout.splitlines()
    assert [line.split()[:4] for line in listing[1:]] == [["spam", "2", "Staging", "-"]]


def test_errors_are_one_line_with_a_non_zero_exit_and_change_nothing(
    mlflow_model_dir: Path, isolated_jupyter_dirs: Path, tmp_path: Path
) -> None:
    registry = isolated_jupyter_dirs
    register_model(mlflow_model_dir, "spam")
    before = run_cli("models", "list", registry=registry).stdout
    assert_one_line_error(
        run_cli("models", "register", str(tmp_path), "-n", "spam", registry=registry),
        "has no MLmodel file",
    )
    assert_one_line_error(
        run_cli("models", "transition", "spam", "1", "Prod", registry=registry),
        "'Prod' is not a model stage", "None, Staging, Production, Archived",
    )  # fmt: skip
    assert_one_line_error(
        run_cli("models", "alias", "spam", "latest", "1", registry=registry), "is reserved"
    )
    assert_one_line_error(
        run_cli("models", "describe", "models:/spam/Production", registry=registry),
        "no version of 'spam' is in stage 'Production'; versions: 1 (None)",
    )
    assert_one_line_error(
        run_cli("models", "describe", "eggs", registry=registry), "registered models: spam"
    )
    usage = run_cli("models", "register", str(mlflow_model_dir), registry=registry)
    assert usage.returncode == 2
    assert_one_line_error(usage, "the following arguments are required: --name/-n")
    assert run_cli("models", "list", registry=registry).stdout == before

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert_one_line_error(
        run_cli("models", "list", registry=blocker / "registry"),
        str(blocker / "registry"), "set JUPYTER_SERVE_REGISTRY",
    )  # fmt: skip


def test_jupyter_serve_is_reachable_as_a_jupyter_subcommand_and_a_module(
    isolated_jupyter_dirs: Path,
) -> None:
    done = run_cli("serve", "models", "list", registry=isolated_jupyter_dirs, program="jupyter")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"No models registered in {isolated_jupyter_dirs}.\n"
    env = {**os.environ, "JUPYTER_SERVE_REGISTRY": str(isolated_jupyter_dirs)}
    module = subprocess.run(
        [sys.executable, "-m", "jupyter_serve", "models", "list"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert module.stdout == done.stdout
