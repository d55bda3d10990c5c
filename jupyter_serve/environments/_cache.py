"""The environment cache: ``<user cache dir>/jupyter-serve/envs/<key>``, built once per key.

A build happens in a temporary sibling directory renamed into place when complete (conda
prefixes cannot move: conda builds in place), and a ``.complete`` marker written last: a
directory without it is a crashed build, removed before building again. A lock file per key
(``fcntl.flock``, released by the kernel if the process dies) makes two kernels starting the
same model at once build it once: the second waits, then reuses it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from jupyter_serve.environments._builders import build_environment, require_env_manager
from jupyter_serve.environments._progress import BuildProgress, default_progress
from jupyter_serve.environments._spec import EnvironmentSpec, read_environment_spec
from jupyter_serve.errors import DeploymentError

CACHE_DIR_VARIABLE = "JUPYTER_SERVE_ENVS_DIR"
_COMPLETE_MARKER = ".complete"
_LOCK_WAIT_SECONDS = 3600.0
_LOCK_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class PreparedEnvironment:
    """A built environment: its directory, its Python, its cache key, whether it was reused."""

    path: Path
    python: Path
    key: str
    reused: bool


def environments_dir() -> Path:
    """Where environments are cached: $JUPYTER_SERVE_ENVS_DIR, else
    ``$XDG_CACHE_HOME/jupyter-serve/envs`` (``~/.cache`` without XDG_CACHE_HOME)."""
    configured = os.environ.get(CACHE_DIR_VARIABLE)
    if configured:
        return Path(configured)
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "jupyter-serve" / "envs"


@contextlib.contextmanager
def _locked(lock_path: Path, key: str, progress: BuildProgress) -> Iterator[None]:
    with open(lock_path, "a+") as lock_file:
        deadline = time.monotonic() + _LOCK_WAIT_SECONDS
        told = False
        while True:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DeploymentError(
                        f"environment {key} has been locked by another process for over an "
                        f"hour ({lock_path}); if no build is running, remove that file."
                    ) from None
                if not told:
                    progress.step(0, f"waiting for another process building environment {key}…")
                    told = True
                time.sleep(_LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _remove_crashed_builds(root: Path, key: str) -> None:
    for leftover in root.glob(f".{key}.building-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    final = root / key
    if final.exists() and not (final / _COMPLETE_MARKER).exists():
        shutil.rmtree(final, ignore_errors=True)


def _build(spec: EnvironmentSpec, root: Path, progress: BuildProgress) -> Path:
    final = root / spec.key
    in_place = spec.env_manager == "conda"
    staging = (
        final if in_place else Path(tempfile.mkdtemp(prefix=f".{spec.key}.building-", dir=root))
    )
    try:
        if not in_place:
            staging.rmdir()  # the builders create the directory themselves
        build_environment(spec, staging, progress)
        (staging / _COMPLETE_MARKER).write_text(spec.key + "\n", encoding="utf-8")
        if not in_place:
            os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def prepare_environment(
    model_dir: str | Path,
    env_manager: str,
    *,
    install_mlflow: bool = False,
    progress: BuildProgress | None = None,
) -> PreparedEnvironment:
    """The environment serving ``model_dir`` under ``env_manager`` (virtualenv, uv or conda),
    built now or reused from the cache (then no installer runs at all).

    Blocks for the build (tens of seconds), reporting on ``progress`` (default: a progress bar
    in a notebook, lines on stderr elsewhere). Raises `DeploymentError` (tool missing, no
    matching Python, a requirement that cannot be installed: the installer's line saying why)
    or `InvalidModelError` (unreadable environment files); a failed build leaves nothing in the
    cache. Thread-safe and safe across processes.
    """
    require_env_manager(env_manager)
    spec = read_environment_spec(model_dir, env_manager, install_mlflow=install_mlflow)
    reporter = progress if progress is not None else default_progress()
    root = environments_dir()
    root.mkdir(parents=True, exist_ok=True)
    final = root / spec.key
    with _locked(root / f"{spec.key}.lock", spec.key, reporter):
        if (final / _COMPLETE_MARKER).exists():
            reporter.finish(f"reusing environment {spec.key} ({final})")
            return PreparedEnvironment(final, final / "bin" / "python", spec.key, reused=True)
        _remove_crashed_builds(root, spec.key)
        try:
            _build(spec, root, reporter)
        except BaseException:
            reporter.finish(f"building environment {spec.key} failed")
            raise
    reporter.finish(f"environment {spec.key} done")
    return PreparedEnvironment(final, final / "bin" / "python", spec.key, reused=False)
