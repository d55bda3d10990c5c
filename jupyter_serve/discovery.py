"""Discovery files: how a kernel announces its deployments to the Jupyter server.

One JSON file per deployment in ``{jupyter_runtime_dir}/jupyter-serve/``. The kernel side
writes them (atomically, owner-only since a file may hold the proxy secret) and removes them
on stop; the Jupyter Server extension, another process, only reads them. This small format is
the one thing both sides share: no kernel object ever crosses.

A file whose ``pid`` no longer runs belongs to a killed kernel: readers treat it as stale and
may delete it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_runtime_dir

FORMAT_VERSION = 1
_DEPLOYMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def discovery_dir() -> Path:
    """The directory holding discovery files (``JUPYTER_RUNTIME_DIR`` is honoured)."""
    return Path(jupyter_runtime_dir()) / "jupyter-serve"


def is_valid_deployment_name(name: str) -> bool:
    """Names appear in URLs and file names: letters, digits, ``_.-``, at most 64 characters."""
    return bool(_DEPLOYMENT_NAME.match(name))


def deployment_id(pid: int, name: str) -> str:
    """The stable, URL-safe id of deployment ``name`` in process ``pid``."""
    return f"{pid}-{name}"


@dataclass
class DeploymentRecord:
    """What the Jupyter server needs to know about one deployment."""

    name: str
    pid: int
    host: str
    port: int
    model_uri: str
    status: str
    started_at: float
    kernel_id: str | None = None
    version: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    # Known only to the kernel and to readers of this owner-only file (the proxy). It always
    # guards the control route (remote stop); with ``require_secret`` it guards every route,
    # so other local users cannot bypass Jupyter's auth by calling the port directly.
    secret: str | None = None
    require_secret: bool = False
    # Set by the kernel side when it runs under a Jupyter server (see the server's jpserver file).
    proxy_url: str | None = None
    format_version: int = FORMAT_VERSION

    @property
    def id(self) -> str:
        return deployment_id(self.pid, self.name)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeploymentRecord:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def record_path(record_id: str, directory: Path | None = None) -> Path:
    return (directory or discovery_dir()) / f"deployment-{record_id}.json"


def write_record(record: DeploymentRecord, directory: Path | None = None) -> Path:
    """Write or replace ``record``'s file atomically (readers never see half a file)."""
    target_dir = directory or discovery_dir()
    target_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = record_path(record.id, target_dir)
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=target_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            json.dump(record.to_json(), tmp)
        os.chmod(tmp_name, 0o600)
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    return target


def remove_record(record_id: str, directory: Path | None = None) -> None:
    with contextlib.suppress(FileNotFoundError):
        record_path(record_id, directory).unlink()


def pid_is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by another user
    return True


def read_records(
    directory: Path | None = None, *, remove_stale: bool = False
) -> list[DeploymentRecord]:
    """Every live deployment announced in ``directory``; unreadable files are skipped.

    Records of dead processes are left out, and deleted when ``remove_stale`` is true.
    """
    source = directory or discovery_dir()
    records: list[DeploymentRecord] = []
    for path in sorted(source.glob("deployment-*.json")):
        try:
            record = DeploymentRecord.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            continue
        if pid_is_alive(record.pid):
            records.append(record)
        elif remove_stale:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    return records
