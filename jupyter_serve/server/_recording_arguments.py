"""The command line's options of the recording path: access log, capture, inference log."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterable
from typing import Any

from jupyter_serve.errors import DeploymentError
from jupyter_serve.server._access_log import ACCESS_LOGGER, LOG_FORMATS, BatchedLineHandler
from jupyter_serve.server._options import ServerOptions


def add_recording_arguments(parser: argparse.ArgumentParser) -> None:
    """``--no-access-log``, ``--log-format``, ``--capture`` and the ``--log-*`` options of the
    inference log."""
    parser.add_argument(
        "--no-access-log",
        dest="access_log",
        action="store_false",
        help="do not print one access-log line per request on stdout (printed by default, as "
        "uvicorn does for mlflow models serve)",
    )
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=ServerOptions.log_format,
        help="access-log lines as uvicorn's text (default) or as JSON lines",
    )
    parser.add_argument(
        "--capture",
        type=int,
        default=ServerOptions.capture,
        metavar="N",
        help="keep the last N scored rows in memory (default: %(default)s; 0: none)",
    )
    parser.add_argument(
        "--log-predictions",
        metavar="PATH",
        default=None,
        help="append every scored row (input, prediction, status, request id) to PATH as "
        "JSON lines; read it back with jupyter_serve.read_inference_log(PATH)",
    )
    parser.add_argument(
        "--log-sample",
        type=float,
        default=ServerOptions.log_sample,
        metavar="FRACTION",
        help="write only this random share of the rows to --log-predictions (default: 1)",
    )
    parser.add_argument(
        "--log-exclude",
        action="append",
        default=[],
        metavar="COLUMN",
        help="never write this input column to --log-predictions (repeatable)",
    )
    parser.add_argument(
        "--log-max-bytes",
        type=int,
        default=ServerOptions.log_max_bytes,
        metavar="BYTES",
        help="rotate --log-predictions past this size (default: 100 MB; 0: never)",
    )
    parser.add_argument(
        "--log-backups",
        type=int,
        default=ServerOptions.log_backups,
        metavar="N",
        help="rotated files of --log-predictions kept, PATH.1 .. PATH.N (default: %(default)s)",
    )


def check_recording_arguments(args: argparse.Namespace) -> None:
    """Raise `DeploymentError` naming a recording option that cannot work."""
    if args.capture < 0:
        raise DeploymentError(f"--capture must be 0 (off) or a number of rows, got {args.capture}.")
    if not 0.0 <= args.log_sample <= 1.0:
        raise DeploymentError(
            f"--log-sample must be a fraction between 0 and 1, got {args.log_sample}."
        )
    if args.log_max_bytes < 0 or args.log_backups < 0:
        raise DeploymentError("--log-max-bytes and --log-backups must not be negative.")


def recording_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The `ServerOptions` fields the recording arguments set."""
    return {
        **recording_options(
            args.access_log,
            args.log_format,
            args.capture,
            args.log_predictions,
            args.log_sample,
            args.log_exclude,
        ),
        "log_max_bytes": args.log_max_bytes,
        "log_backups": args.log_backups,
    }


def recording_options(
    access_log: bool,
    log_format: str,
    capture: int,
    log_predictions: str | os.PathLike[str] | None,
    log_sample: float,
    log_exclude: Iterable[str],
) -> dict[str, Any]:
    """The `ServerOptions` fields of ``serve()``'s recording keywords, checked: a
    `DeploymentError` names the one that cannot work."""
    if log_format not in LOG_FORMATS:
        raise DeploymentError(f"log_format must be 'text' or 'json', got {log_format!r}.")
    if isinstance(capture, bool) or not isinstance(capture, int) or capture < 0:
        raise DeploymentError(f"capture must be 0 (off) or a number of rows, got {capture!r}.")
    if not 0.0 <= log_sample <= 1.0:
        raise DeploymentError(f"log_sample must be a fraction between 0 and 1, got {log_sample}.")
    if isinstance(log_exclude, str):
        log_exclude = (log_exclude,)
    return {
        "access_log": bool(access_log),
        "log_format": log_format,
        "capture": capture,
        "log_predictions": None if log_predictions is None else os.fspath(log_predictions),
        "log_sample": float(log_sample),
        "log_exclude": tuple(log_exclude),
    }


def configure_access_log(enabled: bool) -> None:
    """Print the access log's lines, bare, on stdout (uvicorn's access logger does), and only
    there."""
    ACCESS_LOGGER.propagate = False
    if not enabled:
        return
    ACCESS_LOGGER.addHandler(BatchedLineHandler(_write_stdout))
    ACCESS_LOGGER.setLevel(logging.INFO)


def _write_stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
