"""The fields of a discovery record and the check of each: a record is data another process
wrote, so every field is checked for type and range before it is used."""

from __future__ import annotations

import ipaddress
import math
import re
from typing import Any

# Linux pids stay below 2**22; anything past a C int cannot name a process at all.
_MAX_PID = 2**31 - 1

DEPLOYMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_HOST_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9-]{1,63})*$")
_REMOTE_TARGET = re.compile(r"^ray\+https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?/?$")
# Ray's route prefix of the application: plain segments only, never "." or "..".
_ROUTE_PREFIX = re.compile(r"^(/(?!\.\.?(/|$))[A-Za-z0-9_.~-]+)*$")
LOCAL = "local"
REMOTE = "remote"


class InvalidRecordError(ValueError):
    """A discovery file that does not hold a usable record; the message names the field."""


def check_remote_fields(values: dict[str, Any]) -> None:
    """A remote record names where it answers: a target and a host the proxy could allow."""
    if not isinstance(values.get("target"), str):
        raise InvalidRecordError("field 'target' is missing (a remote record names its target)")
    host = values["host"]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOST_NAME.match(host):
            raise InvalidRecordError(
                "field 'host' is neither an IP address nor a host name"
            ) from None


MISSING = object()


def _text(value: Any) -> str | None:
    if value is MISSING:
        return "is missing"
    return None if isinstance(value, str) else f"must be a string, not {type(value).__name__}"


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _integer_in(low: int, high: int) -> Any:
    def check(value: Any) -> str | None:
        if value is MISSING:
            return "is missing"
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return f"must be an integer from {low} to {high}"
        return None

    return check


def _name(value: Any) -> str | None:
    problem = _text(value)
    if problem is None and not DEPLOYMENT_NAME.match(value):
        return "is not a deployment name (letters, digits, '_.-', at most 64 characters)"
    return problem


def _finite_number(value: Any) -> str | None:
    if value is MISSING:
        return "is missing"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "must be a number"
    return None if math.isfinite(value) else "must be a finite number"


def _optional(check: Any) -> Any:
    return lambda value: None if value is None else check(value)


def _pattern(regex: re.Pattern[str], shape: str) -> Any:
    def check(value: Any) -> str | None:
        problem = _text(value)
        if problem is None and not regex.match(value):
            return f"is not {shape}"
        return problem

    return check


def _kind(value: Any) -> str | None:
    return None if value in (LOCAL, REMOTE) else f"must be {LOCAL!r} or {REMOTE!r}"


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


# Figures nest two or three levels deep; the listing walks them (escaping, NaN -> null), so
# a planted record must not be able to nest them deep enough to exhaust the stack.
_MAX_METRICS_DEPTH = 8


def _depth(value: Any, limit: int) -> int:
    if limit < 0 or not isinstance(value, (dict, list)):
        return 0
    items = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(item, limit - 1) for item in items), default=0)


def _metrics(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "must be a JSON object"
    if _depth(value, _MAX_METRICS_DEPTH) > _MAX_METRICS_DEPTH:
        return f"nests deeper than {_MAX_METRICS_DEPTH} levels"
    return None


FIELD_CHECKS = {
    "name": _name,
    "pid": _integer_in(1, _MAX_PID),
    "host": _text,
    "port": _integer_in(1, 65535),
    "model_uri": _text,
    "status": _text,
    "started_at": _finite_number,
    "kernel_id": _optional_text,
    "version": _optional_text,
    "metrics": _metrics,
    "secret": _optional_text,
    "require_secret": _boolean,
    "proxy_url": _optional_text,
    "format_version": _integer_in(1, 2**31 - 1),
    "kind": _kind,
    "target": _optional(_pattern(_REMOTE_TARGET, "a target like ray+http://HOST:8265")),
    "route_prefix": _pattern(_ROUTE_PREFIX, "a route prefix like /spam"),
    "replicas": _optional(_integer_in(0, 100_000)),
    "target_replicas": _optional(_integer_in(0, 100_000)),
    "seen_at": _optional(_finite_number),
}
REQUIRED_FIELDS = frozenset({"name", "pid", "host", "port", "model_uri", "status", "started_at"})
