"""The SQLite file behind the embedded registry: connections, schema, transactions.

WAL (on local disks) lets readers go on while one writer works; writers take the lock up front
(``BEGIN IMMEDIATE``) so a version number read inside a transaction is still free when the
row is inserted, and wait for each other through the busy timeout rather than failing.
A connection lives for one transaction: that keeps every call safe across threads and
processes at the cost of an open(), which SQLite makes cheap.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from jupyter_serve.errors import RegistryError

SCHEMA_VERSION = 1
BUSY_TIMEOUT_SECONDS = 60.0
DATABASE_FILE = "registry.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS registered_models (
    name TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    last_version INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS model_versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    stage TEXT NOT NULL,
    created_at REAL NOT NULL,
    source TEXT NOT NULL,
    description TEXT,
    artifact_dir TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS model_aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (name, alias)
);
"""

UNWRITABLE_HINT = "set JUPYTER_SERVE_REGISTRY to a directory you can write, or fix the permissions"


def unwritable_error(root: Path, error: BaseException) -> RegistryError:
    """The error for a registry location that cannot be created or written."""
    return RegistryError(
        f"the model registry at {root} cannot be written ({error}); {UNWRITABLE_HINT}"
    )


_NETWORK_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smb", "smbfs", "smb3", "9p", "fuse.sshfs", "ceph")


def journal_mode_for(root: Path, mounts_text: str | None = None) -> str:
    """``WAL`` on local disks; ``DELETE`` on network file systems, where SQLite's WAL (shared
    memory between processes) is unsafe. JupyterHub home directories are often on NFS.

    ``mounts_text`` is ``/proc/mounts``-formatted text (read from the system when omitted).
    """
    if mounts_text is None:
        try:
            mounts_text = Path("/proc/mounts").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "WAL"
    target = str(root.absolute())
    best, fstype = "", ""
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point = fields[1].replace("\\040", " ")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, fstype = mount_point, fields[2]
    return "DELETE" if fstype.lower() in _NETWORK_FILESYSTEMS else "WAL"


def _set_journal_mode(connection: sqlite3.Connection, mode: str) -> None:
    # Switching a new database to WAL needs an exclusive lock, and while another connection
    # is switching it too SQLite says "locked" at once, without waiting in its busy handler
    # (seen with two kernels, or threads, using a new registry at the same moment): retry.
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            connection.execute(f"PRAGMA journal_mode={mode}")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error).lower() or time.monotonic() > deadline:
                raise
        time.sleep(0.01)


class RegistryDatabase:
    """The metadata database of one registry directory. Thread-safe; process-safe."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / DATABASE_FILE
        self._initialised = False

    def ensure_root(self) -> None:
        """Create the registry directory and schema on first use (idempotent)."""
        if self._initialised and self.path.exists():
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise unwritable_error(self.root, error) from error
        if not self.root.is_dir():
            raise unwritable_error(self.root, NotADirectoryError("it is not a directory"))
        with self._connection() as connection:
            _set_journal_mode(connection, journal_mode_for(self.root))
            self._run(connection, "BEGIN IMMEDIATE")
            try:
                # executescript() would commit first; one statement at a time stays atomic.
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        connection.execute(statement)
                connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
        self._initialised = True

    def check_writable(self) -> None:
        """``RegistryError`` naming the path when this process may not write the registry.

        Checked up front because SQLite and the staging area live in subdirectories that can
        stay writable when only the registry directory itself was made read-only.
        """
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise unwritable_error(self.root, PermissionError("no write permission"))

    @contextlib.contextmanager
    def transaction(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        """One transaction: committed when the block ends, rolled back when it raises.

        ``write=True`` takes the write lock at once (waiting up to the busy timeout for other
        writers), so reads inside the block see the state the writes will be applied to.
        """
        self.ensure_root()
        if write:
            self.check_writable()
        with self._connection() as connection:
            self._run(connection, "BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield connection
                self._run(connection, "COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        try:
            connection = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None
            )
        except sqlite3.Error as error:
            raise unwritable_error(self.root, error) from error
        try:
            connection.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")
            yield connection
        except sqlite3.OperationalError as error:
            message = str(error).lower()
            if "readonly" in message or "unable to open" in message or "disk i/o" in message:
                raise unwritable_error(self.root, error) from error
            raise RegistryError(
                f"the model registry database {self.path} failed: {error}; retry, and if it "
                f"persists, {UNWRITABLE_HINT}"
            ) from error
        except sqlite3.DatabaseError as error:
            raise RegistryError(
                f"the registry database {self.path} is corrupt or not a jupyter-serve registry "
                f"({error}); move it away, or set JUPYTER_SERVE_REGISTRY to another directory"
            ) from error
        finally:
            connection.close()

    @staticmethod
    def _run(connection: sqlite3.Connection, statement: str) -> None:
        connection.execute(statement)
