"""Which server answers for a deployment: one in-process server, or a pool of worker processes.

``-w 1`` (the default) serves from a thread of this process: the model object itself, swapped
in place. ``-w N`` starts N worker processes that each load the model from a model directory:
the registry's own for a URI, or one written to a private temporary directory for a live
object (removed when the deployment stops). A worker pool cannot swap its model in place.
A model in an isolated environment (``env_manager`` other than local) always gets a pool, of
that environment's interpreter, even for ``-w 1``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from jupyter_serve.errors import DeploymentError

if TYPE_CHECKING:
    from jupyter_serve._deployments._sources import ModelSource
    from jupyter_serve.server import ServerOptions


class RunningServer(Protocol):
    """What a deployment needs from the server answering for it."""

    host: str
    port: int

    @property
    def url(self) -> str: ...

    @property
    def metrics(self) -> Any: ...

    def stop(self) -> None: ...

    def swap_model(self, model: Any, *, model_uri: str, version: str | None) -> None: ...


class WorkerProcesses:
    """A started ``WorkerPool`` plus the model directory it was given, if we wrote it."""

    def __init__(self, pool: Any, temporary_dir: Path | None, workers: int) -> None:
        self._pool = pool
        self._temporary_dir = temporary_dir
        self._workers = workers
        self.host: str = pool.host
        self.port: int = pool.port

    @property
    def url(self) -> str:
        url: str = self._pool.url
        return url

    @property
    def metrics(self) -> Any:
        return self._pool.metrics

    @property
    def is_running(self) -> bool:
        running: bool = self._pool.is_running
        return running

    def captured_records(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = self._pool.captured_records()
        return records

    def stop(self) -> None:
        """Stop every worker, then remove the model directory we wrote. Idempotent."""
        try:
            self._pool.stop()
        finally:
            if self._temporary_dir is not None:
                shutil.rmtree(self._temporary_dir, ignore_errors=True)

    def swap_model(self, model: Any, *, model_uri: str, version: str | None) -> None:
        raise DeploymentError(
            f"This deployment runs {self._workers} worker processes, which cannot swap their "
            "model in place. Stop it first (%unserve NAME, or Deployment.stop()) and serve "
            "the new model, or serve it under another name."
        )


def _model_directory(source: ModelSource) -> tuple[Path, Path | None]:
    if source.path is not None:
        return source.path, None
    from jupyter_serve.models import save_model

    temporary = Path(tempfile.mkdtemp(prefix="jupyter-serve-workers-"))
    try:
        path = save_model(
            source.model.raw_model,
            temporary / "model",
            signature=source.model.signature,
            input_example=source.model.input_example,
        )
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return path, temporary


def start_server(
    source: ModelSource,
    options: ServerOptions,
    on_remote_stop: Callable[[], None],
    python: str | None = None,
) -> RunningServer:
    """Start the server for ``source``; return once it answers on its port.

    With ``python`` (an isolated environment's interpreter) even one worker is a process of
    that interpreter: the model cannot run in this one.

    Raises ``DeploymentError`` (port in use, host not bindable, ...); nothing is left running.
    """
    if options.workers == 1 and python is None:
        from jupyter_serve.server import ScoringServer

        server = ScoringServer(
            source.model,
            options,
            model_uri=source.model_uri,
            version=source.version,
            on_remote_stop=on_remote_stop,
        )
        try:
            server.start()
        except BaseException:
            server.stop()
            raise
        return server
    from jupyter_serve.server import WorkerPool

    path, temporary = _model_directory(source)
    pool = WorkerPool(
        path,
        options,
        model_uri=source.model_uri,
        version=source.version,
        on_remote_stop=on_remote_stop,
        python=python,
    )
    processes = WorkerProcesses(pool, temporary, options.workers)
    try:
        pool.start()
    except BaseException:
        processes.stop()
        raise
    processes.port = pool.port
    return processes
