"""``%serve``, ``%deployments`` and ``%unserve``: argument parsing, then a call into deployments.

A mistake the user can fix (an unknown variable, a busy port, ...) is shown as one line
(IPython's ``UsageError``), never a traceback, and starts nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

from IPython import display as _display
from IPython.core import magic as _magic
from IPython.core import magic_arguments as _magic_arguments
from IPython.core.error import UsageError
from IPython.core.magic import Magics, magics_class

from jupyter_serve import options as serving_options
from jupyter_serve.errors import JupyterServeError

__all__ = ["ServeMagics", "load_ipython_extension", "unload_ipython_extension"]

_Function = TypeVar("_Function", bound=Callable[..., Any])


class _Decorator(Protocol):
    def __call__(self, function: _Function, /) -> _Function: ...


# IPython's magic_arguments is untyped; these are its signatures as used here.
magic_arguments: Callable[[], _Decorator] = _magic_arguments.magic_arguments
argument: Callable[..., _Decorator] = _magic_arguments.argument
parse_argstring: Callable[[Callable[..., Any], str], Any] = _magic_arguments.parse_argstring
# Typed upstream in a way that rejects methods; this is how it behaves.
line_magic = cast(Callable[[str], _Decorator], _magic.line_magic)
display: Callable[..., None] = _display.display


def _serving_arguments(function: _Function) -> _Function:
    """``%serve``'s flags of every serving option (`jupyter_serve.options`), in table order."""
    for option in reversed(list(serving_options.options_of("magic"))):
        settings = serving_options.argument_settings(option, "magic")
        function = argument(*option.flags, **settings)(function)
    return function


def _looks_like_variable(source: str) -> bool:
    return source.isidentifier() and not os.path.exists(source)


@magics_class
class ServeMagics(Magics):
    """The jupyter-serve magics; registered by ``%load_ext jupyter_serve``."""

    @magic_arguments()
    @argument(
        "source",
        help="A model URI (models:/spam/Production, models:/spam@champion, models:/spam/3, "
        "a model directory, ...) or the name of a notebook variable holding a model.",
    )
    @argument(
        "--name",
        help="The deployment's name (default: the registered model's name or the variable's). "
        "Serving again under a running name swaps the model in place, on the same port.",
    )
    @argument(
        "--registry-uri",
        default=None,
        help="The MLflow registry resolving models:/ and runs:/ URIs (http(s)://... or a "
        "database URI); default: $MLFLOW_REGISTRY_URI, else $MLFLOW_TRACKING_URI, else the "
        "embedded registry.",
    )
    @_serving_arguments
    @argument(
        "--target",
        default=None,
        help="Deploy to a Ray Serve cluster instead of this kernel: ray+http://HOST:8265 (its "
        "dashboard; default: $JUPYTER_SERVE_TARGET).",
    )
    @argument(
        "--replicas", type=int, default=1, help="Replicas on the --target cluster (default 1)."
    )
    @argument(
        "--autoscale",
        default=None,
        metavar="MIN:MAX",
        help="Let the --target cluster scale between MIN and MAX replicas.",
    )
    @line_magic("serve")
    def serve(self, line: str) -> None:
        """Serve a model over HTTP from this kernel, wire-compatible with `mlflow models serve`.

        Returns once the server answers /ping, and shows its URL and a ready-to-paste curl.
        """
        from jupyter_serve._deployments import ModelSource, load_uri, serve_source, wrap_object
        from jupyter_serve._deployments._display import ServeSummary
        from jupyter_serve.registry import registry_uri_scope

        args = parse_argstring(self.serve, line)
        user_ns: dict[str, Any] = self.shell.user_ns if self.shell is not None else {}
        from jupyter_serve.targets import default_target, is_remote

        target = args.target if args.target is not None else default_target()
        if is_remote(target):
            assert target is not None
            display(self._serve_remote(args, target, user_ns))
            return
        try:
            options = serving_options.from_arguments(args, "magic")
            serving_options.check(options, "magic")
            source: ModelSource
            # --registry-uri applies to the URI resolved here, in this thread only.
            with registry_uri_scope(args.registry_uri):
                if args.source in user_ns and args.source.isidentifier():
                    value = user_ns[args.source]
                    if isinstance(value, (str, os.PathLike)):  # a variable holding a URI
                        source = load_uri(str(value), args.env_manager)
                    else:
                        source = wrap_object(value, label=args.source)
                elif _looks_like_variable(args.source):
                    raise UsageError(
                        f"No variable named {args.source!r} in this notebook, and no model "
                        "directory of that name: expected a variable holding a model (run the "
                        "cell defining it first) or a model URI such as models:/spam/Production."
                    )
                else:
                    source = load_uri(args.source, args.env_manager)
            deployment, swapped = serve_source(source, name=args.name, **options)
        except JupyterServeError as error:
            raise UsageError(str(error)) from None
        display(ServeSummary(deployment, swapped=swapped, picked_port=not args.port))

    def _serve_remote(self, args: Any, target: str, user_ns: dict[str, Any]) -> Any:
        from jupyter_serve._deployments._remote import serve_remote
        from jupyter_serve.targets._commands import parse_autoscale

        value = user_ns.get(args.source) if args.source.isidentifier() else None
        source = value if isinstance(value, (str, os.PathLike)) else args.source
        try:
            return serve_remote(
                source,
                target=target,
                name=args.name,
                timeout=args.timeout,
                replicas=args.replicas,
                autoscale=None if args.autoscale is None else parse_autoscale(args.autoscale),
                max_batch_size=args.max_batch_size,
                max_batch_wait=args.max_batch_wait / 1000,
                registry_uri=args.registry_uri,
            )
        except JupyterServeError as error:
            raise UsageError(str(error)) from None

    @line_magic("deployments")
    def deployments(self, line: str) -> None:
        """Show this kernel's deployments: name, source, version, URL, status, live traffic.

        In a notebook front end this is the live dashboard (stop, restart, swap, try it);
        consoles get the same figures as a text table. With ``--target`` (or
        ``$JUPYTER_SERVE_TARGET``), ours on that Ray cluster: status and replicas.
        """
        from jupyter_serve.targets import default_target, is_remote
        from jupyter_serve.widgets import Dashboard

        words = line.split()
        if words and (len(words) != 2 or words[0] != "--target"):
            raise UsageError(
                f"%deployments takes no arguments but --target ray+http://HOST:8265, got "
                f"{line.strip()!r}."
            )
        target = words[1] if words else default_target()
        if is_remote(target):
            assert target is not None
            from jupyter_serve.targets.ray import RemoteListing, list_applications

            try:
                display(RemoteListing(target, list_applications(target)))
            except JupyterServeError as error:
                raise UsageError(str(error)) from None
            return
        display(Dashboard())

    @magic_arguments()
    @argument("name", help="The deployment whose captured requests are replayed.")
    @argument("candidate", help="A model URI (models:/spam/Staging) or a variable holding a model.")
    @line_magic("replay")
    def replay(self, line: str) -> Any:
        """Run a deployment's captured requests through a candidate model, in this kernel's
        thread: rows, agreement, latency per row and the rows answered differently."""
        from jupyter_serve._replay import replay_deployment

        args = parse_argstring(self.replay, line)
        user_ns: dict[str, Any] = self.shell.user_ns if self.shell is not None else {}
        candidate = user_ns.get(args.candidate, args.candidate)
        try:
            return replay_deployment(args.name, candidate)
        except JupyterServeError as error:
            raise UsageError(str(error)) from None

    @magic_arguments()
    @argument("name", nargs="?", help="The deployment to stop.")
    @argument("--all", action="store_true", help="Stop every deployment of this kernel.")
    @line_magic("unserve")
    def unserve(self, line: str) -> None:
        """Stop a deployment (or --all of them) and free its port."""
        from jupyter_serve._deployments import deployments as running_deployments
        from jupyter_serve._deployments import stop

        args = parse_argstring(self.unserve, line)
        if args.all == (args.name is not None):
            running = ", ".join(d.name for d in running_deployments()) or "none"
            raise UsageError(f"%unserve needs one deployment name or --all (running: {running}).")
        try:
            if args.all:
                count = len(running_deployments())
                stop(all=True)
                print(f"Stopped {count} deployment{'s' if count != 1 else ''}.")
            else:
                stop(args.name)
                print(f"Stopped {args.name!r}; its port is free.")
        except JupyterServeError as error:
            raise UsageError(str(error)) from None


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics (``%load_ext jupyter_serve``)."""
    ipython.register_magics(ServeMagics)


def unload_ipython_extension(ipython: Any) -> None:
    """Unregister the magics; running deployments keep running (``%unserve --all`` stops them)."""
    manager = ipython.magics_manager
    for kind, names in ServeMagics.magics.items():
        for magic_name in names:
            manager.magics[kind].pop(magic_name, None)
    manager.registry.pop(ServeMagics.__name__, None)
