"""Discovery files: how a kernel announces its deployments to the Jupyter server.

One JSON file per deployment in ``{jupyter_runtime_dir}/jupyter-serve/``. The kernel side
writes them (atomically, owner-only since a file may hold the proxy secret) and removes them
on stop; the Jupyter Server extension, another process, only reads them. This small format is
the one thing both sides share: no kernel object ever crosses.

A file whose ``pid`` no longer runs belongs to a killed kernel: readers treat it as stale and
may delete it. A record of kind ``remote`` announces a deployment on a remote target (a Ray
cluster): it outlives the kernel that wrote it, as the deployment does, and holds the status and
replicas that kernel last saw; it is removed when the deployment is undeployed.

Records carry a secret and name where the proxy forwards, so both sides trust the directory
and its files only when this user owns them and nobody else may write there: the writer
refuses an unsafe directory, readers skip files another user owns and records that do not
hold the fields they need with the types they need (each is logged once, never fatal).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_runtime_dir

from jupyter_serve._discovery_fields import (
    DEPLOYMENT_NAME,
    FIELD_CHECKS,
    LOCAL,
    MISSING,
    REMOTE,
    REQUIRED_FIELDS,
    InvalidRecordError,
    check_remote_fields,
)

FORMAT_VERSION = 1
_log = logging.getLogger(__name__)
_reported: set[tuple[str, int, int]] = set()


class UnsafeDiscoveryDirectoryError(PermissionError):
    """The discovery directory is owned by another user or writable by group or others."""


def discovery_dir() -> Path:
    """The directory holding discovery files (``JUPYTER_RUNTIME_DIR`` is honoured)."""
    return Path(jupyter_runtime_dir()) / "jupyter-serve"


def is_valid_deployment_name(name: str) -> bool:
    """Names appear in URLs and file names: letters, digits, ``_.-``, at most 64 characters."""
    return bool(DEPLOYMENT_NAME.match(name))


def deployment_id(pid: int, name: str) -> str:
    """The stable, URL-safe id of deployment ``name`` in process ``pid``."""
    return f"{pid}-{name}"


def remote_deployment_id(target: str, name: str) -> str:
    """The id of application ``name`` on ``target``: one record per remote deployment, whichever
    kernel wrote it last (and never the id of a local deployment of the same name)."""
    digest = hashlib.sha256(target.encode()).hexdigest()[:8]
    return f"remote-{digest}-{name}"


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
    # "remote": a deployment on ``target`` (``ray+http://HOST:8265``), answering at
    # ``http://host:port{route_prefix}``; ``pid`` is the kernel that last wrote the record, and
    # status, replicas and target_replicas are as it saw them at ``seen_at``.
    kind: str = LOCAL
    target: str | None = None
    route_prefix: str = ""
    replicas: int | None = None
    target_replicas: int | None = None
    seen_at: float | None = None

    @property
    def id(self) -> str:
        if self.kind == REMOTE and self.target is not None:
            return remote_deployment_id(self.target, self.name)
        return deployment_id(self.pid, self.name)

    @property
    def is_remote(self) -> bool:
        return self.kind == REMOTE

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.route_prefix}"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, **asdict(self)}

    @classmethod
    def from_json(cls, data: Any) -> DeploymentRecord:
        """The record held by parsed JSON ``data``; unknown keys are ignored.

        Raises :class:`InvalidRecordError` naming the first field that is missing or of the
        wrong type or range (a record is data from another process, never trusted as is).
        """
        if not isinstance(data, dict):
            raise InvalidRecordError(
                f"a discovery record is a JSON object, not {type(data).__name__}"
            )
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        for name, check in FIELD_CHECKS.items():
            if name in values or name in REQUIRED_FIELDS:
                problem = check(values.get(name, MISSING))
                if problem:
                    raise InvalidRecordError(f"field {name!r} {problem}")
        if values.get("kind") == REMOTE:
            check_remote_fields(values)
        return cls(**values)


def record_path(record_id: str, directory: Path | None = None) -> Path:
    return (directory or discovery_dir()) / f"deployment-{record_id}.json"


def _unsafe_because(info: os.stat_result) -> str | None:
    if info.st_uid != os.getuid():
        return f"it is owned by uid {info.st_uid}, not by this user (uid {os.getuid()})"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"it is writable by group or others (mode {stat.filemode(info.st_mode)})"
    return None


def check_private_directory(directory: Path) -> None:
    """Raise :class:`UnsafeDiscoveryDirectoryError` unless this user alone can write there.

    Records hold the proxy's secret and tell the Jupyter server where to forward: a directory
    another user owns or may write to would leak the one and let them plant the other.
    """
    info = directory.stat()
    problem = "it is not a directory" if not stat.S_ISDIR(info.st_mode) else None
    problem = problem or _unsafe_because(info)
    if problem:
        raise UnsafeDiscoveryDirectoryError(
            f"jupyter-serve refuses the discovery directory {directory}: {problem}. Its records "
            "hold a secret, so it must belong to you with mode 700: remove it (it is recreated) "
            f"or run `chmod 700 {directory}` if it is yours, or point JUPYTER_RUNTIME_DIR at a "
            "private directory."
        )


def write_record(record: DeploymentRecord, directory: Path | None = None) -> Path:
    """Write or replace ``record``'s file atomically (readers never see half a file).

    Raises :class:`UnsafeDiscoveryDirectoryError` when the directory already exists and
    another user owns it or may write to it; nothing is written there then.
    """
    target_dir = directory or discovery_dir()
    target_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    check_private_directory(target_dir)
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
    except (ProcessLookupError, OverflowError, ValueError):
        return False
    except PermissionError:
        return True  # alive, owned by another user
    return True


def _report_once(path: Path, info: os.stat_result | None, reason: str) -> None:
    """Log a skipped file once per version of it: the listing is polled every few seconds."""
    key = (str(path), info.st_mtime_ns if info else 0, info.st_size if info else 0)
    if key not in _reported:
        if len(_reported) > 10_000:
            _reported.clear()
        _reported.add(key)
        _log.warning("jupyter-serve: ignoring discovery file %s: %s", path, reason)


def _load_owned_record(path: Path) -> DeploymentRecord | None:
    """The record in ``path`` if this user owns the file and it holds a valid record."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as error:
        _report_once(path, None, f"it cannot be opened ({error.strerror})")
        return None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        problem = _unsafe_because(info)
        if problem is None and not stat.S_ISREG(info.st_mode):
            problem = "it is not a regular file"
        if problem:
            _report_once(path, info, problem)
            return None
        try:
            return DeploymentRecord.from_json(json.loads(file.read(_MAX_RECORD_BYTES + 1)))
        except (ValueError, RecursionError) as error:
            _report_once(path, info, f"it holds no valid record ({error})")
            return None


# A record is a few hundred bytes; anything far larger is not one (and is not read whole).
_MAX_RECORD_BYTES = 1024 * 1024


def _private_directory_or_none(source: Path) -> bool:
    try:
        check_private_directory(source)
    except FileNotFoundError:
        return False
    except OSError as error:
        _report_once(source, None, str(error))
        return False
    return True


def read_record(record_id: str, directory: Path | None = None) -> DeploymentRecord | None:
    """The record of ``record_id`` if its file is present, ours and valid; else None.

    The record's own id must match the file's name. Liveness is not checked here.
    """
    source = directory or discovery_dir()
    if not _private_directory_or_none(source):
        return None
    path = record_path(record_id, source)
    record = _load_owned_record(path)
    if record is not None and record.id != record_id:
        _report_once(path, None, f"it announces deployment {record.id}, not {record_id}")
        return None
    return record


def read_records(
    directory: Path | None = None, *, remove_stale: bool = False
) -> list[DeploymentRecord]:
    """Every live deployment announced in ``directory``.

    Files another user owns, and files that hold no valid record, are skipped and logged;
    an unsafe directory (see :func:`check_private_directory`) yields no records at all.
    Records of dead processes are left out, and deleted when ``remove_stale`` is true; remote
    records are kept whatever became of their kernel (the deployment outlives it).
    """
    source = directory or discovery_dir()
    if not _private_directory_or_none(source):
        return []
    records: list[DeploymentRecord] = []
    for path in sorted(source.glob("deployment-*.json")):
        record = _load_owned_record(path)
        if record is None:
            continue
        if path.name != record_path(record.id, source).name:
            _report_once(path, None, f"it announces deployment {record.id}, another file name")
            continue
        if record.is_remote or pid_is_alive(record.pid):
            records.append(record)
        elif remove_stale:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    return records
