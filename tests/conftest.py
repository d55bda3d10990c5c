"""Fixtures shared by every test module.

Each test gets its own embedded registry and Jupyter runtime directory, so tests never see
the user's models or deployments, nor each other's, nor the user's MLflow server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated_jupyter_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    registry = tmp_path / "registry"
    monkeypatch.setenv("JUPYTER_SERVE_REGISTRY", str(registry))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    # A developer's own MLflow server must never receive the tests' models: the tests that
    # want an MLflow registry set these themselves.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    return registry


@pytest.fixture(scope="session")
def mlflow_python() -> Path:
    """The interpreter of the reference MLflow 3.17.2 venv (never the product's venv).

    `make test` creates it and sets JUPYTER_SERVE_MLFLOW_PYTHON. A missing reference is a
    failure, not a skip: the interoperability tests are the point.
    """
    configured = os.environ.get("JUPYTER_SERVE_MLFLOW_PYTHON")
    candidate = Path(configured) if configured else REPO_ROOT / ".venv-mlflow" / "bin" / "python"
    if not candidate.exists():
        pytest.fail(
            f"the reference MLflow interpreter {candidate} does not exist; run `make test` "
            "(it builds .venv-mlflow) or set JUPYTER_SERVE_MLFLOW_PYTHON"
        )
    return candidate


def run_python(python: Path, script: str, *args: str, timeout: float = 180) -> str:
    """Run ``script`` with interpreter ``python``; return stdout, fail the test on error."""
    done = subprocess.run(
        [str(python), "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if done.returncode != 0:
        pytest.fail(f"{python} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return done.stdout


@pytest.fixture(scope="session")
def product_python() -> Path:
    return Path(sys.executable)
