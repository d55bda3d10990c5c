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

from jupyter_serve import options as serving_options
from jupyter_serve._deployments._deployment import Deployment
from jupyter_serve._deployments._sources import ModelSource, load_source, load_uri
from jupyter_serve._deployments._table import DeploymentTable, check_name
from jupyter_serve.errors import DeploymentError

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
    target: str | None = None,
    replicas: int = 1,
    autoscale: tuple[int, int] | None = None,
    **options: Any,
) -> Deployment:
    """Serve ``source`` over HTTP, wire-compatible with ``mlflow models serve``.

    ``source`` is a model URI (``models:/spam/Production``, ``models:/spam@champion``, a model
    directory, ...) or a live model object (anything with ``predict``). Returns once the server
    answers ``/ping``. The name defaults to the registered model's name or, for an object, its
    class name.

    Serving under a name already running swaps the model in place: same port, requests in
    flight finish on the old model, none fails.

    ``options`` are the serving options of ``jupyter_serve.options``, the same as
    ``%serve``'s and ``jupyter-serve models serve``'s flags, in seconds where the flags take
    milliseconds (listed below). ``env_manager`` ``"virtualenv"``, ``"uv"`` or ``"conda"``
    serves a model directory from worker processes (``workers`` of them, even 1) in an
    environment built from its ``python_env.yaml``/``requirements.txt``, cached and reused by
    later starts; the build shows its progress and blocks until done.

    ``target`` (default ``$JUPYTER_SERVE_TARGET``) ``"ray+http://HOST:8265"`` deploys a model
    URI to that Ray cluster instead, with ``replicas`` replicas or ``autoscale=(MIN, MAX)``,
    and returns a ``RemoteDeployment`` with the same ``url``, ``status``, ``predict`` and
    ``stop``; serving again under its name is a rolling update.

    Raises a ``JupyterServeError`` (``ModelNotFoundError``, ``InvalidModelError``,
    ``DeploymentError``, ...) with a message for the user, and ``TypeError`` for a keyword
    that is no option; nothing is left started then. Thread-safe.

    The options:
    """
    serving_options.unknown_keywords(options)
    values = {**serving_options.defaults(), **options}
    from jupyter_serve.targets import default_target, is_remote

    chosen_target = target if target is not None else default_target()
    if is_remote(chosen_target):
        from jupyter_serve._deployments._remote import serve_remote

        assert chosen_target is not None
        return serve_remote(
            source,
            target=chosen_target,
            name=name,
            timeout=values["timeout"],
            replicas=replicas,
            autoscale=autoscale,
            max_batch_size=values["max_batch_size"],
            max_batch_wait=values["max_batch_wait"],
        )
    env_manager = values["env_manager"]
    if env_manager != "local":
        from jupyter_serve.environments import require_env_manager

        require_env_manager(env_manager)  # a missing uv/conda fails before the model loads
        if isinstance(source, (str, os.PathLike)):
            source = load_uri(os.fspath(source), env_manager)
    loaded = load_source(source) if not isinstance(source, ModelSource) else source
    return serve_source(loaded, name=name, **values)[0]


serve.__doc__ = (serve.__doc__ or "") + serving_options.api_reference() + "\n"


def serve_source(
    source: ModelSource, *, name: str | None = None, **options: Any
) -> tuple[Deployment, bool]:
    """:func:`serve` for an already loaded source; also says whether it swapped a model."""
    serving_options.unknown_keywords(options)
    values = {**serving_options.defaults(), **options}
    chosen_name = name or source.default_name
    check_name(chosen_name)
    serving_options.check(values)
    python = _environment_python(source, values["env_manager"], values["install_mlflow"])
    _install_exit_hook()
    return _TABLE.serve(source, name=chosen_name, options=values, python=python)


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
