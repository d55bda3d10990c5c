"""The local cache of model directories downloaded from an MLflow registry.

Keyed by what was resolved (server, model name + version + creation time, run + path, or
logged model id), so a second ``%serve`` of the same version starts without a download, and a
version deleted and created again under the same number is downloaded anew. Each entry is
downloaded into a private directory and renamed into place whole: a cache entry that exists is
complete, and two processes downloading the same entry at once both end up using one of them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from jupyter_serve.registry._artifacts import name_segment

CACHE_ENV = "JUPYTER_SERVE_MLFLOW_CACHE"


def default_cache_root() -> Path:
    """``$JUPYTER_SERVE_MLFLOW_CACHE``, else ``$XDG_CACHE_HOME`` (or ``~/.cache``) +
    ``/jupyter-serve/mlflow``."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "jupyter-serve" / "mlflow"


class ModelCache:
    """Downloaded model directories under ``root``, one subtree per MLflow server.

    Thread-safe and process-safe: entries appear by one atomic rename.
    """

    def __init__(self, root: Path, server_uri: str) -> None:
        self.root = root
        digest = hashlib.sha256(server_uri.encode("utf-8")).hexdigest()[:16]
        self.server_root = root / digest

    def version_path(self, name: str, version: int, created_at: float) -> Path:
        """Where ``version`` of registered model ``name`` is (or will be) cached."""
        entry = f"{version}-{int(created_at * 1000)}"
        return self.server_root / "models" / name_segment(name) / entry

    def logged_model_path(self, model_id: str) -> Path:
        """Where logged model ``model_id`` is (or will be) cached."""
        return self.server_root / "logged-models" / name_segment(model_id)

    def run_artifact_path(self, run_id: str, artifact_path: str) -> Path:
        """Where ``runs:/<run_id>/<artifact_path>`` is cached; the last segment keeps the
        artifact's own name (a deployment named after it reads well)."""
        parts = [p for p in artifact_path.split("/") if p]
        *parents, last = parts or ["model"]
        inner = "/".join(parents) or "-"
        segments = (name_segment(run_id), name_segment(inner), name_segment(last))
        return self.server_root.joinpath("runs", *segments)

    def fetch(self, target: Path, download: Callable[[Path], None]) -> Path:
        """``target`` if cached, else ``download(directory)`` into a private directory that is
        renamed to ``target``. A failed download leaves nothing behind."""
        if target.is_dir():
            return target
        incoming_root = self.root / ".incoming"
        incoming_root.mkdir(parents=True, exist_ok=True)
        private = Path(tempfile.mkdtemp(prefix="download-", dir=incoming_root))
        try:
            staged = private / "model"
            staged.mkdir()
            download(staged)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(staged, target)
            except OSError:
                # Another process finished the same entry first; theirs is as good as ours.
                if not target.is_dir():
                    raise
        finally:
            shutil.rmtree(private, ignore_errors=True)
        return target

    def discard(self, target: Path) -> None:
        """Remove a cache entry (one that turned out not to be a model directory)."""
        with contextlib.suppress(OSError):
            doomed = Path(tempfile.mkdtemp(prefix="discard-", dir=self.root / ".incoming"))
            os.rename(target, doomed / "model")
            target = doomed
        shutil.rmtree(target, ignore_errors=True)
