"""The ``jupyter-serve`` command (also ``jupyter serve`` and ``python -m jupyter_serve``).

Subcommands live under ``jupyter-serve models``. Each is added by one small
``add_<cmd>_parser(models_commands)`` function that sets ``handler`` to a function taking the
parsed arguments and returning the exit status, so another module can add a command (e.g.
``models serve``) with one import and one call in ``build_parser``.

Errors meant for the user (``JupyterServeError``) print one line on stderr and exit 1;
usage mistakes print one line and exit 2. No tracebacks for either.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import NoReturn, TypeAlias

from jupyter_serve._version import __version__
from jupyter_serve.errors import JupyterServeError
from jupyter_serve.registry import (
    EmbeddedRegistry,
    ModelVersion,
    Registry,
    default_registry,
    signature_summary,
)
from jupyter_serve.server import add_serve_parser
from jupyter_serve.targets._commands import add_target_commands

PROG = "jupyter-serve"
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Handler: TypeAlias = Callable[[argparse.Namespace], int]

__all__ = [
    "add_alias_parser",
    "add_delete_parser",
    "add_describe_parser",
    "add_list_parser",
    "add_models_parser",
    "add_register_parser",
    "add_transition_parser",
    "build_parser",
    "main",
    "registry_from_args",
]


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The complete ``jupyter-serve`` argument parser."""
    parser = OneLineErrorParser(
        prog=PROG,
        description="Model serving inside the Jupyter kernel, wire-compatible with MLflow.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands: Subcommands = parser.add_subparsers(
        title="commands", metavar="COMMAND", parser_class=OneLineErrorParser
    )
    models_commands = add_models_parser(commands)
    add_register_parser(models_commands)
    add_list_parser(models_commands)
    add_describe_parser(models_commands)
    add_transition_parser(models_commands)
    add_alias_parser(models_commands)
    add_delete_parser(models_commands)
    add_serve_parser(models_commands)
    add_target_commands(commands)
    return parser


def add_models_parser(commands: Subcommands) -> Subcommands:
    """Add ``models`` and return its subcommand group, where model commands are added."""
    models = commands.add_parser(
        "models", help="register, list and manage models", description="Manage models."
    )
    models.set_defaults(handler=_help_of(models))
    return models.add_subparsers(title="model commands", metavar="MODEL_COMMAND")


def _add_registry_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--registry",
        metavar="DIR",
        type=Path,
        help="embedded registry directory (default: $JUPYTER_SERVE_REGISTRY, else the Jupyter "
        "data dir)",
    )
    parser.add_argument(
        "--registry-uri",
        metavar="URI",
        help="an MLflow registry (http(s)://... or a database URI) instead of the embedded one "
        "(default: $MLFLOW_REGISTRY_URI, else $MLFLOW_TRACKING_URI, when set)",
    )


def registry_from_args(args: argparse.Namespace) -> Registry:
    """The registry a command works on: ``--registry DIR`` or ``--registry-uri URI`` if
    given, else the default."""
    root: Path | None = getattr(args, "registry", None)
    return (
        EmbeddedRegistry(root)
        if root is not None
        else default_registry(getattr(args, "registry_uri", None))
    )


def add_register_parser(models_commands: Subcommands) -> None:
    """``models register SOURCE --name NAME [--stage S] [--alias A]``."""
    parser = models_commands.add_parser(
        "register",
        help="register an MLflow model directory as a new version",
        description="Copy an MLflow model directory into the registry as the next version "
        "of NAME and print the version number.",
    )
    parser.add_argument("source", metavar="SOURCE", help="an MLflow model directory")
    parser.add_argument("--name", "-n", required=True, help="registered model name")
    parser.add_argument("--stage", help="None, Staging, Production or Archived")
    parser.add_argument("--alias", help="an alias to point at the new version")
    parser.add_argument(
        "--archive-existing-versions",
        action="store_true",
        help="move the versions already in --stage to Archived",
    )
    parser.add_argument("--description", help="a note stored with the version")
    _add_registry_option(parser)
    parser.set_defaults(handler=_register)


def _register(args: argparse.Namespace) -> int:
    version = registry_from_args(args).register_model(
        args.source,
        args.name,
        stage=args.stage,
        alias=args.alias,
        archive_existing_versions=args.archive_existing_versions,
        description=args.description,
    )
    print(f"Registered model '{args.name}' version {version} (models:/{args.name}/{version})")
    return 0


def add_list_parser(models_commands: Subcommands) -> None:
    """``models list [NAME]``: a table of versions, stages and aliases."""
    parser = models_commands.add_parser(
        "list", help="list registered models and their versions", description="List models."
    )
    parser.add_argument("name", nargs="?", metavar="NAME", help="only this model")
    _add_registry_option(parser)
    parser.set_defaults(handler=_list)


def _list(args: argparse.Namespace) -> int:
    registry = registry_from_args(args)
    names = [args.name] if args.name else registry.list_models()
    versions_by_model = {name: registry.list_versions(name) for name in names}
    rows = [version for versions in versions_by_model.values() for version in versions]
    empty_models = [name for name, versions in versions_by_model.items() if not versions]
    if not rows and not empty_models:
        where = getattr(registry, "root", "the registry")
        print(f"No models registered in {where}.")
        return 0
    table = [("MODEL", "VERSION", "STAGE", "ALIASES", "CREATED", "SOURCE")]
    table += [
        (
            v.name,
            str(v.version),
            v.stage.value,
            ", ".join(v.aliases) or "-",
            _timestamp(v.created_at),
            v.source,
        )
        for v in rows
    ]
    table += [(name, "-", "-", "-", "-", "(no versions)") for name in empty_models]
    print(_format_table(table))
    return 0


def add_describe_parser(models_commands: Subcommands) -> None:
    """``models describe NAME [VERSION]`` or ``models describe models:/...``."""
    parser = models_commands.add_parser(
        "describe",
        help="show one version in detail (or every version of a model)",
        description="Describe a model version: stage, aliases, source, path, signature.",
    )
    parser.add_argument("name", metavar="NAME_OR_URI", help="a model name or a models:/ URI")
    parser.add_argument("version", nargs="?", type=int, metavar="VERSION")
    _add_registry_option(parser)
    parser.set_defaults(handler=_describe)


def _describe(args: argparse.Namespace) -> int:
    registry = registry_from_args(args)
    if args.name.startswith("models:"):
        resolved = registry.resolve(args.name)
        assert resolved.name is not None and resolved.version is not None
        versions = [registry.get_version(resolved.name, resolved.version)]
    elif args.version is not None:
        versions = [registry.get_version(args.name, args.version)]
    else:
        versions = registry.list_versions(args.name)
    print("\n\n".join(_describe_version(v) for v in versions))
    return 0


def _describe_version(version: ModelVersion) -> str:
    fields = [
        ("name", version.name),
        ("version", str(version.version)),
        ("stage", version.stage.value),
        ("aliases", ", ".join(version.aliases) or "-"),
        ("created", _timestamp(version.created_at)),
        ("source", version.source),
        ("path", str(version.path)),
        ("signature", signature_summary(version.path) or "-"),
        ("description", version.description or "-"),
        ("uri", f"models:/{version.name}/{version.version}"),
    ]
    return "\n".join(f"{key + ':':<13}{value}" for key, value in fields)


def add_transition_parser(models_commands: Subcommands) -> None:
    """``models transition NAME VERSION STAGE [--archive-existing-versions]``."""
    parser = models_commands.add_parser(
        "transition",
        help="move a version to another stage",
        description="Move a version to None, Staging, Production or Archived.",
    )
    parser.add_argument("name", metavar="NAME")
    parser.add_argument("version", type=int, metavar="VERSION")
    parser.add_argument("stage", metavar="STAGE", help="None, Staging, Production or Archived")
    parser.add_argument(
        "--archive-existing-versions",
        action="store_true",
        help="move the versions already in STAGE to Archived",
    )
    _add_registry_option(parser)
    parser.set_defaults(handler=_transition)


def _transition(args: argparse.Namespace) -> int:
    version = registry_from_args(args).transition_stage(
        args.name,
        args.version,
        args.stage,
        archive_existing_versions=args.archive_existing_versions,
    )
    print(f"Model '{version.name}' version {version.version} is now in stage {version.stage}")
    return 0


def add_alias_parser(models_commands: Subcommands) -> None:
    """``models alias NAME ALIAS VERSION`` sets or moves; ``--delete`` removes."""
    parser = models_commands.add_parser(
        "alias",
        help="set, move or delete an alias",
        description="Point ALIAS at VERSION of NAME (moving it if set), or delete it.",
    )
    parser.add_argument("name", metavar="NAME")
    parser.add_argument("alias", metavar="ALIAS")
    parser.add_argument("version", nargs="?", type=int, metavar="VERSION")
    parser.add_argument("--delete", action="store_true", help="remove the alias")
    _add_registry_option(parser)
    parser.set_defaults(handler=_alias)


def _alias(args: argparse.Namespace) -> int:
    registry = registry_from_args(args)
    if args.delete:
        if args.version is not None:
            raise JupyterServeError("give either VERSION or --delete, not both")
        registry.delete_alias(args.name, args.alias)
        print(f"Deleted alias '{args.alias}' of model '{args.name}'")
        return 0
    if args.version is None:
        raise JupyterServeError(
            "give the VERSION the alias should point at, or --delete to remove it"
        )
    registry.set_alias(args.name, args.alias, args.version)
    print(f"models:/{args.name}@{args.alias} now points at version {args.version}")
    return 0


def add_delete_parser(models_commands: Subcommands) -> None:
    """``models delete NAME VERSION`` or ``models delete NAME --all-versions``."""
    parser = models_commands.add_parser(
        "delete",
        help="delete a version, or a whole model",
        description="Delete one version (with its aliases and artifacts), or the whole model.",
    )
    parser.add_argument("name", metavar="NAME")
    parser.add_argument("version", nargs="?", type=int, metavar="VERSION")
    parser.add_argument(
        "--all-versions", action="store_true", help="delete the model and every version of it"
    )
    _add_registry_option(parser)
    parser.set_defaults(handler=_delete)


def _delete(args: argparse.Namespace) -> int:
    registry = registry_from_args(args)
    if args.all_versions and args.version is not None:
        raise JupyterServeError("give either a VERSION to delete or --all-versions, not both")
    if not args.all_versions and args.version is None:
        raise JupyterServeError(
            f"give the VERSION of '{args.name}' to delete, or --all-versions to delete the model"
        )
    if args.all_versions:
        registry.delete_model(args.name)
        print(f"Deleted model '{args.name}' and all its versions")
    else:
        registry.delete_version(args.name, args.version)
        print(f"Deleted model '{args.name}' version {args.version}")
    return 0


def _help_of(parser: argparse.ArgumentParser) -> Handler:
    def print_help(_: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    return print_help


def _timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")


def _format_table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``) and return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = getattr(args, "handler", _help_of(parser))
    try:
        return handler(args)
    except JupyterServeError as error:
        message = " ".join(str(error).split())
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
