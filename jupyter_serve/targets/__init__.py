"""Where a deployment runs besides this process: remote serving engines, one subpackage each.

``ray`` (``ray+http://HOST:8265``): a Ray Serve cluster reached through its dashboard.
Nothing here imports an engine's client library on the kernel side.
"""

from __future__ import annotations

import os

TARGET_VARIABLE = "JUPYTER_SERVE_TARGET"


def default_target() -> str | None:
    """``$JUPYTER_SERVE_TARGET`` when set and not empty: where deployments go by default."""
    return os.environ.get(TARGET_VARIABLE) or None


def is_remote(target: str | None) -> bool:
    """True for a target other than this process/host (``None``, ``""`` and ``local``)."""
    return target not in (None, "", "local")


__all__ = ["TARGET_VARIABLE", "default_target", "is_remote"]
