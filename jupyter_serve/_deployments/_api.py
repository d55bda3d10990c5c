"""The public lifecycle API, re-exported by ``jupyter_serve``: ``serve``, ``deployments``, ``stop``.

The magics (``%serve``, ``%deployments``, ``%unserve``) are thin over these functions, which
work the same from a plain Python script: everything still running is stopped at interpreter
exit, and in a kernel that is also what kernel shutdown and restart do.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, overload

from jupyter_serve._deployments._deployment import Deployment, ServeSettings
from jupyter_serve._deployments._sources import ModelSource, load_source, load_uri
from jupyter_serve._deployments._table import DeploymentTable, check_batching, check_options
from jupyter_serve.errors import DeploymentError
from jupyter_serve.server._recording_arguments import recording_options

if TYPE_CHECKING:
    from jupyter_serve.targets.ray._deployment import RemoteDeployment

__all__ = ["Deployment", "deployments", "serve", "serve_source", "stop"]

_TABLE = DeploymentTable()
_exit_hook_lock = threading.Lock()
_exit_hook_installed = False


def _install_exit_hook() -> None:
    global _exit_hook_installed
    with _exit_hook_lock:
        if _exit_hook_installed:
            return
        _exit_hook_installed = True
    # threading's own exit hook runs before the interpreter joins non-daemon threads, so a
    # server thread can never hold up exit; atexit covers interpreters without it.
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        with contextlib.suppress(RuntimeError):  # the interpreter is already shutting down
            register(_TABLE.stop_all)
    atexit.register(_TABLE.stop_all)


def serve(
    source: Any,
    *,
    name: str | None = None,
    port: int | None = None,
    host: str = "127.0.0.1",
    timeout: float = 60.0,
    workers: int = 1,
    env_manager: str = "local",
    require_secret: bool = False,
    install_mlflow: bool = False,
    max_batch_size: int = 64,
    max_batch_wait: float = 0.0,
    target: str | None = None,
    replicas: int = 1,
    autoscale: tuple[int, int] | None = None,
    access_log: bool = True,
    log_format: str = "text",
    capture: int = 1000,
    log_predictions: str | os.PathLike[str] | None = None,
    log_sample: float = 1.0,
    log_exclude: tuple[str, ...] = (),
) -> Deployment:
    """Serve ``source`` over HTTP, wire-compatible with ``mlflow models serve``.

    ``source`` is a model URI (``models:/spam/Production``, ``models:/spam@champion``, a model
    directory, ...) or a live model object (anything with ``predict``). Returns once the server
    answers ``/ping``. ``port=None`` picks a free port (see ``Deployment.url``). The name
    defaults to the registered model's name or, for an object, its class name.

    Serving under a name already running swaps the model in place: same port, requests in
    flight finish on the old model, none fails.

    ``env_manager`` ``"virtualenv"``, ``"uv"`` or ``"conda"`` serves a model directory from
    worker processes (``workers`` of them, even 1) in an environment built from its
    ``python_env.yaml``/``requirements.txt`` (plus MLflow with ``install_mlflow``), cached
    and reused by later starts; the build shows its progress and blocks until done.

    Requests queued together are merged into one predict call of at most ``max_batch_size``
    requests (1: never merged); ``max_batch_wait`` seconds lets a request wait for others to
    join it (default 0: no added latency).

    Every request is recorded once: an access-log line to the logger
    ``jupyter_serve.access`` (``access_log``, ``log_format`` "text" or "json"; it has no
    handler of ours in a kernel), the last ``capture`` scored rows for
    ``Deployment.requests`` (0: none), and with ``log_predictions`` a JSON-lines file of the
    scored rows (a ``log_sample`` share, without the ``log_exclude`` input columns).

    ``target`` (default ``$JUPYTER_SERVE_TARGET``) ``"ray+http://HOST:8265"`` deploys a model
    URI to that Ray cluster instead, with ``replicas`` replicas or ``autoscale=(MIN, MAX)``,
    and returns a ``RemoteDeployment`` with the same ``url``, ``status``, ``predict`` and
    ``stop``; serving again under its name is a rolling update.

    Raises a ``JupyterServeError`` (``ModelNotFoundError``, ``InvalidModelError``,
    ``DeploymentError``, ...) with a message for the user; nothing is left started then.
    Thread-safe.
    """
    from jupyter_serve.targets import default_target, is_remote

    chosen_target = target if target is not None else default_target()
    if is_remote(chosen_target):
        from jupyter_serve._deployments._remote import serve_remote

        assert chosen_target is not None
        return serve_remote(
            source,
            target=chosen_target,
            name=name,
            timeout=timeout,
            replicas=replicas,
            autoscale=autoscale,
            max_batch_size=max_batch_size,
            max_batch_wait=max_batch_wait,
        )
    if env_manager != "local":
        from jupyter_serve.environments import require_env_manager

        require_env_manager(env_manager)  # a missing uv/conda fails before the model loads
        if isinstance(source, (str, os.PathLike)):
            source = load_uri(os.fspath(source), env_manager)
    return serve_source(
        load_source(source) if not isinstance(source, ModelSource) else source,
        name=name,
        port=port,
        host=host,
        timeout=timeout,
        workers=workers,
        env_manager=env_manager,
        require_secret=require_secret,
        install_mlflow=install_mlflow,
        max_batch_size=max_batch_size,
        max_batch_wait=max_batch_wait,
        recording=recording_options(
            access_log, log_format, capture, log_predictions, log_sample, log_exclude
        ),
    )[0]


def serve_source(
    source: ModelSource,
    *,
    name: str | None = None,
    port: int | None = None,
    host: str = "127.0.0.1",
    timeout: float = 60.0,
    workers: int = 1,
    env_manager: str = "local",
    require_secret: bool = False,
    install_mlflow: bool = False,
    max_batch_size: int = 64,
    max_batch_wait: float = 0.0,
    recording: dict[str, Any] | None = None,
) -> tuple[Deployment, bool]:
    """:func:`serve` for an already loaded source; also says whether it swapped a model."""
    chosen_name = name or source.default_name
    check_options(chosen_name, port, timeout, workers, env_manager)
    check_batching(max_batch_size, max_batch_wait, timeout)
    python = _environment_python(source, env_manager, install_mlflow)
    _install_exit_hook()
    deployment, swapped = _TABLE.serve(
        source,
        name=chosen_name,
        port=port,
        host=host,
        timeout=timeout,
        workers=workers,
        require_secret=require_secret,
        python=python,
        max_batch_size=max_batch_size,
        max_batch_wait=max_batch_wait,
        recording=recording,
    )
    if not swapped:
        deployment.settings = ServeSettings(
            timeout, workers, env_manager, install_mlflow, max_batch_size, max_batch_wait
        )
    return deployment, swapped


def _environment_python(source: ModelSource, env_manager: str, install_mlflow: bool) -> str | None:
    if env_manager == "local":
        if install_mlflow:
            raise DeploymentError(
                "install_mlflow needs env_manager 'virtualenv', 'uv' or 'conda' (it installs "
                "MLflow into the environment built for the model); drop it to serve here."
            )
        return None
    from jupyter_serve.environments import prepare_environment, require_env_manager

    require_env_manager(env_manager)
    if source.path is None:
        raise DeploymentError(
            f"env_manager {env_manager!r} builds an environment from a model directory's "
            f"requirements, and {source.model_uri} is a live object without one. Register or "
            "save it first and serve its URI, or serve it with env_manager='local'."
        )
    return str(prepare_environment(source.path, env_manager, install_mlflow=install_mlflow).python)


def add_change_listener(listener: Callable[[], None]) -> None:
    """Call ``listener()`` whenever a deployment starts or stops in this process. Thread-safe."""
    _TABLE.add_change_listener(listener)


@overload
def deployments() -> list[Deployment]: ...
@overload
def deployments(target: str) -> list[RemoteDeployment]: ...
def deployments(target: str | None = None) -> list[Deployment] | list[RemoteDeployment]:
    """The deployments running in this process, oldest first; with ``target``
    (``ray+http://HOST:8265``), ours on that cluster, with status and replicas. Thread-safe."""
    if target is not None:
        from jupyter_serve._deployments._remote import remote_deployments

        return remote_deployments(target)
    return _TABLE.running()


def stop(name: str | None = None, *, all: bool = False) -> None:
    """Stop deployment ``name`` (or every one with ``all=True``) and free its port.

    ``DeploymentError`` when ``name`` is not running, or when neither a name nor ``all`` is
    given. Thread-safe.
    """
    if all:
        _TABLE.stop_all()
        return
    if name is None:
        running = ", ".join(d.name for d in _TABLE.running()) or "none"
        raise DeploymentError(f"stop() needs a deployment name or all=True (running: {running}).")
    _TABLE.stop(name)
