"""What a deployment learns about the process it runs in: its kernel and its Jupyter server.

Both are optional: from a plain Python script there is neither, and every answer is ``None``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from jupyter_core.paths import jupyter_runtime_dir

_KERNEL_FILE = re.compile(r"^kernel-(?P<id>.+)\.json$")


def current_kernel_id() -> str | None:
    """The id of the Jupyter kernel this process is, or ``None`` outside a kernel.

    Read from the kernel's connection file name (``kernel-<id>.json``). ipykernel is only
    consulted when it is already imported, so plain scripts never pay for importing it.
    """
    if "ipykernel" not in sys.modules:
        return None
    try:
        from ipykernel import get_connection_file

        connection_file = get_connection_file()
    except Exception:  # not running inside a kernel application
        return None
    match = _KERNEL_FILE.match(Path(connection_file).name)
    return match.group("id") if match else None


def jupyter_server_url(parent_pid: int | None = None) -> str | None:
    """The URL (ending with its ``base_url`` and ``/``) of the Jupyter server that started us.

    Found in the server's ``jpserver-<pid>.json`` in the runtime directory, where ``pid`` is our
    parent's; ``None`` when this process was not started by a Jupyter server.
    """
    pid = os.getppid() if parent_pid is None else parent_pid
    server_file = Path(jupyter_runtime_dir()) / f"jpserver-{pid}.json"
    try:
        info = json.loads(server_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    url = info.get("url") if isinstance(info, dict) else None
    if not isinstance(url, str) or not url:
        return None
    return url if url.endswith("/") else url + "/"


def proxy_url(deployment_id: str, server_url: str | None) -> str | None:
    """The URL under which the Jupyter server proxies deployment ``deployment_id``."""
    if server_url is None:
        return None
    return f"{server_url}jupyter-serve/proxy/{deployment_id}/"
