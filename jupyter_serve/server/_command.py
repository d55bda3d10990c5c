"""`jupyter-serve models serve`: a drop-in for `mlflow models serve`, same flags and defaults.

Same options, defaults and environment variables as MLflow 3.17.2 (port 5000, host 127.0.0.1,
timeout 60 s, one worker). One difference, deliberate: without ``--env-manager`` the model is
served from the current environment (MLflow builds a virtualenv by default). With
``--env-manager virtualenv|uv|conda`` the workers (even just one) run in the model's own cached
environment, built first (see `jupyter_serve.environments`). As with MLflow (uvicorn's
``--app-dir .``), the working directory is importable, so models pickled by reference to a module
next to where the command runs load. ``--enable-mlserver`` hands the model to the real MLServer
(`jupyter_serve.server._mlserver`), as MLflow 2.x did.
Heavy imports (pandas, scikit-learn) happen only once the arguments are known to be valid.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from jupyter_serve import options as serving_options
from jupyter_serve.errors import DeploymentError, JupyterServeError
from jupyter_serve.server._options import ServerOptions
from jupyter_serve.server._recording_arguments import configure_access_log

# Server options MLServer takes from us; it is configured with MLSERVER_* variables otherwise.
_PASSED_TO_MLSERVER = ("host", "port", "workers")


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Add MLflow's `models serve` options to ``parser`` (made with ``add_help=False``, since
    ``-h`` is the host: help is ``--help`` only). Defaults honour MLflow's environment
    variables, read now."""
    parser.add_argument("--help", action="help", help="show this help message and exit")
    parser.add_argument(
        "-m",
        "--model-uri",
        required=True,
        metavar="URI",
        help="the model to serve: models:/name/version|stage|latest, models:/name@alias, "
        "a model directory or file:// URI",
    )
    parser.add_argument(
        "--registry-uri",
        metavar="URI",
        default=None,
        help="the MLflow registry resolving models:/ and runs:/ URIs (http(s)://... or a "
        "database URI); default: $MLFLOW_REGISTRY_URI, else $MLFLOW_TRACKING_URI, else the "
        "embedded registry",
    )
    serving_options.add_arguments(parser, "cli")
    parser.add_argument("--no-conda", action="store_true", help="use the local environment")
    parser.add_argument(
        "--enable-mlserver",
        action="store_true",
        help="serve with the real MLServer and its MLflow runtime (V2 inference protocol; needs "
        "jupyter-serve[mlserver]); configure MLServer with MLSERVER_* environment variables",
    )


def add_serve_parser(models_commands: Any) -> None:
    """Add ``serve`` to the CLI's ``jupyter-serve models`` subcommands; its handler is
    `run_serve`."""
    parser = models_commands.add_parser(
        "serve",
        add_help=False,
        help="serve a model over the MLflow scoring protocol (as `mlflow models serve`)",
        description="Serve an MLflow model over the MLflow scoring protocol "
        "(a drop-in for `mlflow models serve`).",
    )
    add_serve_arguments(parser)
    parser.set_defaults(handler=run_serve)


def build_serve_parser(prog: str = "jupyter-serve models serve") -> argparse.ArgumentParser:
    """A stand-alone parser for the command (the CLI adds the same arguments to its own)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        add_help=False,
        description="Serve an MLflow model over the MLflow scoring protocol "
        "(a drop-in for `mlflow models serve`).",
    )
    add_serve_arguments(parser)
    return parser


def run_serve(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM and return 0; on a user-fixable failure (bad option, model
    that does not load, port in use, bad host) print one line to stderr and return 1."""
    try:
        for note in _check_options(args):
            print(f"jupyter-serve: note: {note}", file=sys.stderr, flush=True)
        _import_from_working_directory()
        _configure_logging(args.log_requests)
        configure_access_log(args.access_log)
        if args.enable_mlserver:
            return _serve_with_mlserver(args)
        server = _start_server(args)
    except JupyterServeError as error:
        print(f"jupyter-serve: error: {error}", file=sys.stderr)
        return 1
    # Until serve_forever takes the signals over, a client that saw the line below may already
    # send SIGINT or SIGTERM: either is a stop, never an exit status of 130 or -15.
    previous_sigterm = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        print(
            f"jupyter-serve: serving {args.model_uri} at {server.url} (Ctrl+C to stop)", flush=True
        )
        server.serve_forever()
    except KeyboardInterrupt:
        server.stop()
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
    print("jupyter-serve: stopped", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``jupyter-serve models serve ...`` without the surrounding CLI."""
    return run_serve(build_serve_parser().parse_args(argv))


def _check_options(args: argparse.Namespace) -> list[str]:
    """Raise `DeploymentError` for an option that cannot work; return a note for each option
    given that has no effect (MLflow accepts and ignores those)."""
    serving_options.check(serving_options.from_arguments(args, "cli"), "cli")
    env_manager = args.env_manager
    notes: list[str] = []
    isolated = env_manager not in (None, "local")
    if args.install_mlflow and not isolated:
        notes.append(
            "--install-mlflow has no effect without --env-manager virtualenv, uv or conda: the "
            "model is served from the current environment, with the MLflow it has (if any)."
        )
    if args.enable_mlserver:
        if isolated:
            raise DeploymentError(
                f"--enable-mlserver runs MLServer from the current environment, not from one "
                f"built with --env-manager {env_manager}; drop --env-manager and install the "
                "model's requirements here, or drop --enable-mlserver."
            )
        if args.port == 0:
            raise DeploymentError(
                "--enable-mlserver needs a fixed --port: MLServer does not report a port chosen "
                "for it. Give a free port number."
            )
        notes += _ignored_by_mlserver(args)
    return notes


def _ignored_by_mlserver(args: argparse.Namespace) -> list[str]:
    defaults = build_serve_parser().parse_args(["--model-uri", args.model_uri])
    ignored = [
        option.flags[-1]
        for option in serving_options.options_of("cli")
        if option.server
        and option.name not in _PASSED_TO_MLSERVER
        and getattr(args, option.name) != getattr(defaults, option.name)
    ]
    if not ignored:
        return []
    return [
        f"{', '.join(ignored)} {'has' if len(ignored) == 1 else 'have'} no effect with "
        "--enable-mlserver; configure MLServer with MLSERVER_* environment variables."
    ]


def _import_from_working_directory() -> None:
    # uvicorn's `--app-dir .` does this for `mlflow models serve`, so models pickled by
    # reference to a module beside the command load. Workers are started with `python -m`,
    # which puts their working directory (this one) on their path by itself.
    try:
        working_directory = os.getcwd()
    except OSError:  # the directory was removed under us: nothing there to import
        return
    if working_directory not in sys.path:
        sys.path.insert(0, working_directory)


def _serve_with_mlserver(args: argparse.Namespace) -> int:
    from jupyter_serve.registry import resolve_model_uri
    from jupyter_serve.server._mlserver import require_mlserver, serve_with_mlserver
    from jupyter_serve.server._server import bind_listening_sockets

    require_mlserver()
    # A port in use fails here in one line, not deep in MLServer's log.
    for probe in bind_listening_sockets(args.host, args.port):
        probe.close()
    resolved = resolve_model_uri(args.model_uri, registry_uri=args.registry_uri)
    return serve_with_mlserver(
        resolved.path, args.model_uri, host=args.host, port=args.port, workers=args.workers
    )


def _configure_logging(log_requests: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if log_requests else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _start_server(args: argparse.Namespace) -> Any:
    from jupyter_serve.registry import resolve_model_uri

    isolated = args.env_manager not in (None, "local")
    if isolated:
        from jupyter_serve.environments import require_env_manager

        require_env_manager(args.env_manager)  # a missing uv/conda fails before anything else
    resolved = resolve_model_uri(args.model_uri, registry_uri=args.registry_uri)
    version = None if resolved.version is None else str(resolved.version)
    options = ServerOptions(
        **serving_options.server_fields(serving_options.from_arguments(args, "cli")),
        log_requests=args.log_requests,
    )
    if args.workers > 1 or isolated:
        from jupyter_serve.server._workers import WorkerPool

        python = _environment_python(args, resolved.path, options) if isolated else None
        pool = WorkerPool(
            resolved.path, options, model_uri=args.model_uri, version=version, python=python
        )
        pool.start()
        return pool
    from jupyter_serve._serving_process import tune_for_serving
    from jupyter_serve.server._server import ScoringServer, bind_listening_sockets

    # A port in use or a bad host should fail at once, not after seconds of model loading.
    for probe in bind_listening_sockets(options.host, options.port):
        probe.close()
    model = _load(resolved.path, args.model_uri)
    tune_for_serving()
    server = ScoringServer(model, options, model_uri=args.model_uri, version=version)
    server.start()
    return server


def _environment_python(args: argparse.Namespace, model_path: Any, options: Any) -> str:
    from jupyter_serve.environments import TextProgress, prepare_environment
    from jupyter_serve.server._server import bind_listening_sockets

    # A port in use should fail before a build of tens of seconds, not after it.
    for probe in bind_listening_sockets(options.host, options.port):
        probe.close()
    environment = prepare_environment(
        model_path, args.env_manager, install_mlflow=args.install_mlflow, progress=TextProgress()
    )
    return str(environment.python)


def _load(path: Any, model_uri: str) -> Any:
    from jupyter_serve.models import load_model

    try:
        return load_model(path)
    except JupyterServeError:
        raise
    except Exception as error:
        raise DeploymentError(
            f"the model {model_uri} ({path}) failed to load: {type(error).__name__}: {error}. "
            "Check that it was saved with compatible library versions."
        ) from error


if __name__ == "__main__":
    sys.exit(main())
