"""Every serving option, defined once.

One `Option` per knob: its keyword (``serve()``'s, and the field of ``ServerOptions`` when the
scoring server reads it), its default, its help text, and how each front end spells it:
``jupyter-serve models serve`` (with MLflow's flags, defaults and environment variables) and
``%serve``. The CLI, ``%serve``, ``serve()``, the dashboard's restart and the worker processes
all read this table, so a new option is one entry here plus the code that acts on it.

Importing this module is cheap (no Tornado, no pandas): the CLI reads it before it knows
whether the arguments are valid.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from jupyter_serve.errors import DeploymentError

Front = Literal["cli", "magic"]
"""Where an option is spelled as a flag: ``models serve`` (cli) or ``%serve`` (magic)."""

_UNSET: Any = object()
ENV_MANAGERS = ("local", "virtualenv", "uv", "conda")


@dataclass(frozen=True)
class Option:
    """One serving option. ``default`` is what ``serve()`` and ``%serve`` use;
    ``cli_default`` is ``models serve``'s when it differs (MLflow's, e.g. port 5000), and
    ``env`` the MLflow environment variable that overrides it there."""

    name: str
    default: Any
    help: str
    flags: tuple[str, ...] = ()
    fronts: frozenset[str] = frozenset({"cli", "magic"})
    cli_default: Any = _UNSET
    env: str | None = None
    # Front ends take the value in milliseconds where the API takes seconds: value / scale.
    scale: float = 1.0
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    # "store_false" (a --no-... flag of a True default) or "append" (a repeatable flag).
    action: str | None = None
    # What a flag's text parses to, when the default (None) does not say.
    kind: type | None = None
    # What a default of None means, in the help text.
    none_means: str = "none"
    # True: the scoring server reads it (a ServerOptions field, shipped to worker processes).
    server: bool = True
    # Part of serve()'s keywords (False: only a front end has it, e.g. --no-conda).
    api: bool = True
    # Returns what is wrong with a value (in the API's units), given every value, or None.
    problem: Callable[[Any, Mapping[str, Any]], str | None] | None = field(
        default=None, compare=False
    )

    def front_default(self, front: Front) -> Any:
        """The default as ``front`` shows and parses it (its units; the CLI's env var read now)."""
        default = self.default
        if front == "cli" and self.cli_default is not _UNSET:
            default = self.cli_default
        if front == "cli" and self.env and os.environ.get(self.env):
            return os.environ[self.env]
        return default * self.scale if _is_number(default) and self.scale != 1 else default

    def spelled(self, front: Front | None) -> str:
        """How the user wrote this option: ``--max-batch-wait`` or ``max_batch_wait``."""
        if front is not None and self.flags:
            return self.flags[-1]
        return self.name


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive(value: Any, _: Mapping[str, Any]) -> str | None:
    if not (_is_number(value) and math.isfinite(value) and value > 0):
        return f"expected a positive number of seconds, got {value!r}"
    return None


def _at_least_one(value: Any, _: Mapping[str, Any]) -> str | None:
    if not (isinstance(value, int) and value >= 1):
        return f"expected a whole number of at least 1, got {value!r}"
    return None


def _port(value: Any, _: Mapping[str, Any]) -> str | None:
    if value is not None and not (isinstance(value, int) and 0 <= value <= 65535):
        return f"expected 0-65535 (0 or none picks a free port), got {value!r}"
    return None


def _batch_wait(value: Any, values: Mapping[str, Any]) -> str | None:
    timeout = values.get("timeout", 0)
    if not (_is_number(value) and 0 <= value <= timeout):
        return f"expected 0 (no wait) up to the timeout ({timeout:g} s), got {value!r} s"
    return None


def _env_manager(value: Any, _: Mapping[str, Any]) -> str | None:
    if value is not None and value not in ENV_MANAGERS:
        return (
            f"expected 'local' (this environment), or 'virtualenv', 'uv' or 'conda' (an "
            f"environment built from the model's requirements), got {value!r}"
        )
    return None


def _non_negative(value: Any, _: Mapping[str, Any]) -> str | None:
    if not (_is_number(value) and math.isfinite(value) and value >= 0):
        return f"expected 0 or a positive number, got {value!r}"
    return None


OPTIONS: tuple[Option, ...] = (
    Option(
        "port",
        None,
        "the port to listen on",
        ("-p", "--port"),
        cli_default=5000,
        env="MLFLOW_PORT",
        kind=int,
        none_means="a free one",
        problem=_port,
    ),
    Option(
        "host",
        "127.0.0.1",
        "the network interface to bind (0.0.0.0 exposes the model to the network)",
        ("-h", "--host"),
        env="MLFLOW_HOST",
        metavar="HOST",
    ),
    Option(
        "timeout",
        60.0,
        "seconds one request may take before the client gets 504",
        ("-t", "--timeout"),
        env="MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT",
        problem=_positive,
    ),
    Option(
        "workers",
        1,
        "worker processes sharing the port (1: a thread of this process)",
        ("-w", "--workers"),
        env="MLFLOW_MODELS_WORKERS",
        problem=_at_least_one,
    ),
    Option(
        "env_manager",
        "local",
        "where the model runs: 'local' (this environment), or an environment built (once, "
        "then cached) from the model's python_env.yaml/requirements.txt: 'virtualenv', 'uv' "
        "or 'conda'",
        ("--env-manager",),
        cli_default=None,
        metavar="{local,virtualenv,uv,conda}",
        none_means="local",
        server=False,
        problem=_env_manager,
    ),
    Option(
        "install_mlflow",
        False,
        "install MLflow (the model's mlflow_version) into the built environment",
        ("--install-mlflow",),
        server=False,
    ),
    Option(
        "max_batch_size",
        64,
        "merge at most N queued requests into one predict call; 1 turns merging off",
        ("--max-batch-size",),
        metavar="N",
        problem=_at_least_one,
    ),
    Option(
        "max_batch_wait",
        0.0,
        "milliseconds a request may wait for others to share its predict call (0: no added "
        "latency)",
        ("--max-batch-wait",),
        scale=1000.0,
        metavar="MS",
        problem=_batch_wait,
    ),
    Option(
        "require_secret",
        False,
        "require the X-Jupyter-Serve-Secret header on every route, so that only the Jupyter "
        "proxy (or who knows the secret) can call the port directly",
        ("--require-secret",),
        fronts=frozenset({"magic"}),
    ),
    Option(
        "log_requests",
        False,
        "log every request at INFO (costs throughput)",
        ("--log-requests",),
        fronts=frozenset({"cli"}),
        api=False,
    ),
    Option(
        "drain_timeout",
        None,
        "seconds a stopping deployment lets the requests in flight finish before they get 503",
        ("--drain-timeout",),
        metavar="SECONDS",
        kind=float,
        none_means="the timeout",
        problem=lambda value, values: None if value is None else _non_negative(value, values),
    ),
    Option(
        "access_log",
        True,
        "one access-log line per request (method, path, status, latency, request id, model "
        "version): printed on stdout by models serve, as uvicorn does for MLflow; sent to the "
        "logger jupyter_serve.access in a kernel",
        ("--no-access-log",),
        action="store_false",
    ),
    Option(
        "log_format",
        "text",
        "access-log lines as uvicorn's text or as JSON lines",
        ("--log-format",),
        choices=("text", "json"),
    ),
    Option(
        "capture",
        1000,
        "the most recent scored rows kept in memory for Deployment.requests (0: none)",
        ("--capture",),
        metavar="N",
        problem=lambda value, _: (
            None
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0
            else f"expected 0 (off) or a number of rows, got {value!r}"
        ),
    ),
    Option(
        "log_predictions",
        None,
        "append every scored row (input, prediction, status, request id) to this file as JSON "
        "lines; read it back with jupyter_serve.read_inference_log(PATH)",
        ("--log-predictions",),
        metavar="PATH",
    ),
    Option(
        "log_sample",
        1.0,
        "the random share of scored rows written to --log-predictions",
        ("--log-sample",),
        metavar="FRACTION",
        problem=lambda value, _: (
            None
            if _is_number(value) and 0.0 <= value <= 1.0
            else f"expected a fraction between 0 and 1, got {value!r}"
        ),
    ),
    Option(
        "log_exclude",
        (),
        "an input column never written to --log-predictions (repeatable)",
        ("--log-exclude",),
        metavar="COLUMN",
        action="append",
    ),
    Option(
        "log_max_bytes",
        100 * 1024 * 1024,
        "rotate --log-predictions past this many bytes (0: never)",
        ("--log-max-bytes",),
        metavar="BYTES",
        problem=lambda value, values: _non_negative(value, values),
    ),
    Option(
        "log_backups",
        5,
        "rotated files of --log-predictions kept, PATH.1 .. PATH.N",
        ("--log-backups",),
        metavar="N",
        problem=lambda value, values: _non_negative(value, values),
    ),
)

BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}
API_NAMES: tuple[str, ...] = tuple(option.name for option in OPTIONS if option.api)


def defaults() -> dict[str, Any]:
    """Every ``serve()`` option at its default, in the API's units."""
    return {option.name: option.default for option in OPTIONS if option.api}


def server_default(name: str) -> Any:
    """The default of a ``ServerOptions`` field defined here: ``models serve``'s, since a
    scoring server started on its own is that command's."""
    option = BY_NAME[name]
    return option.default if option.cli_default is _UNSET else option.cli_default


def add_arguments(parser: argparse.ArgumentParser, front: Front) -> None:
    """Add the options ``front`` spells as flags to ``parser``; their values parse in the
    front's units (see `from_arguments`)."""
    for option in options_of(front):
        parser.add_argument(*option.flags, **argument_settings(option, front))


def options_of(front: Front) -> Iterable[Option]:
    return (option for option in OPTIONS if front in option.fronts and option.flags)


def argument_settings(option: Option, front: Front) -> dict[str, Any]:
    """``add_argument`` keywords for ``option`` in ``front``: dest, default, type, help."""
    default = option.front_default(front)
    settings: dict[str, Any] = {"dest": option.name, "help": option.help}
    if option.action == "append":
        return {**settings, "action": "append", "default": [], "metavar": option.metavar}
    if isinstance(option.default, bool):
        if option.action == "store_false":
            settings["help"] = f"turn off {option.help}"
        return {**settings, "action": option.action or "store_true", "default": option.default}
    settings["default"] = default
    kind = option.kind or type(option.default)
    if kind is int and option.scale != 1:
        kind = float  # milliseconds of a seconds option may have a fraction
    if kind in (int, float):
        settings["type"] = kind
    if option.choices:
        settings["choices"] = option.choices
    if option.metavar:
        settings["metavar"] = option.metavar
    shown = option.none_means if default is None else _format(default)
    env = f", or ${option.env}" if front == "cli" and option.env else ""
    settings["help"] = f"{option.help} (default: {shown}{env})"
    return settings


def _format(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def from_arguments(arguments: argparse.Namespace, front: Front) -> dict[str, Any]:
    """The ``serve()`` keywords ``front``'s parsed ``arguments`` stand for, in the API's
    units, with every option that ``arguments`` do not hold at its default."""
    values = defaults()
    for option in options_of(front):
        if not option.api or not hasattr(arguments, option.name):
            continue  # a command may spell only some of the options (deploy: three)
        value = getattr(arguments, option.name)
        if option.scale != 1 and _is_number(value):
            value = value / option.scale
        if option.action == "append":
            value = tuple(value)
        values[option.name] = value
    return values


def server_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """The `ServerOptions` fields among ``values`` (what the scoring server itself reads)."""
    fields = {
        name: value for name, value in values.items() if name in BY_NAME and BY_NAME[name].server
    }
    if fields.get("port") is None and "port" in fields:
        fields["port"] = 0  # none asked: the server picks a free one
    if fields.get("log_predictions") is not None:
        fields["log_predictions"] = os.fspath(fields["log_predictions"])
    if isinstance(fields.get("log_exclude"), str):
        fields["log_exclude"] = (fields["log_exclude"],)
    elif "log_exclude" in fields:
        fields["log_exclude"] = tuple(fields["log_exclude"])
    return fields


def check(values: Mapping[str, Any], front: Front | None = None) -> None:
    """Raise ``DeploymentError`` naming the first option in ``values`` (API units) that cannot
    work, spelled as ``front`` spells it (a flag) or as a keyword (``front=None``)."""
    for option in OPTIONS:
        if option.name not in values:
            continue
        value = values[option.name]
        if option.choices and value not in option.choices:
            problem: str | None = f"expected one of {', '.join(option.choices)}, got {value!r}"
        elif option.problem is not None:
            problem = option.problem(value, values)
        else:
            continue
        if problem is not None:
            if option.scale != 1 and front is not None:
                problem += f"; {option.spelled(front)} is in milliseconds"
            raise DeploymentError(f"Invalid {option.spelled(front)}: {problem}.")


def unknown_keywords(keywords: Iterable[str]) -> None:
    """Raise ``TypeError`` for a ``serve()`` keyword that is no option, listing the options."""
    unknown = sorted(set(keywords) - set(API_NAMES))
    if unknown:
        raise TypeError(
            f"serve() got unknown option(s) {', '.join(unknown)}; the options are "
            f"{', '.join(API_NAMES)} (see help(jupyter_serve.serve))."
        )


def api_reference() -> str:
    """The options as ``serve()``'s docstring lists them."""
    lines = []
    for option in OPTIONS:
        if not option.api:
            continue
        unit = " (seconds)" if option.scale != 1 else ""
        help_text = option.help.replace("milliseconds", "seconds")
        lines.append(f"    {option.name}={option.default!r}{unit}: {help_text}")
    return "\n".join(lines)
