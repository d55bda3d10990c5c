"""The inference log: captured traffic appended as JSON lines, read back as a DataFrame.

Written by the server's request-log thread, never on the IO loop. Each batch of lines is one
``write`` of whole lines; a process killed in the middle of one leaves at most a torn last
line, which `read_inference_log` skips, and the next writer starts on a fresh line. Rotated by
size as logging's RotatingFileHandler does: ``PATH`` is the newest, ``PATH.1`` the one before.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jupyter_serve.errors import JupyterServeError

__all__ = ["InferenceLogWriter", "read_inference_log"]


class InferenceLogWriter:
    """Appends the records of exchanges to ``path``. Not thread-safe: one writer thread."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        sample: float = 1.0,
        exclude: Iterable[str] = (),
        max_bytes: int = 100 * 1024 * 1024,
        backups: int = 5,
    ) -> None:
        if not 0.0 <= sample <= 1.0:
            raise JupyterServeError(
                f"the inference log's sample fraction must be between 0 and 1, got {sample}."
            )
        self.path = Path(path)
        self._sample = sample
        self._exclude = frozenset(exclude)
        self._max_bytes = max_bytes
        self._backups = max(0, backups)
        self._random = random.Random()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self._open()
        except OSError as error:
            raise JupyterServeError(
                f"cannot write the inference log {self.path}: {error.strerror or error}. "
                "Give a writable file path to --log-predictions."
            ) from None

    def _open(self) -> Any:
        file = open(self.path, "ab")  # noqa: SIM115 - held open across batches
        if file.tell() > 0:
            with open(self.path, "rb") as existing:
                existing.seek(-1, os.SEEK_END)
                if existing.read(1) != b"\n":
                    file.write(b"\n")  # a torn line of a killed writer ends here
        return file

    def write(self, exchanges: Iterable[Any]) -> None:
        """Append the sampled records of ``exchanges`` (see `Exchange.records`)."""
        lines = [
            json.dumps(self._scrubbed(record), default=str) + "\n"
            for exchange in exchanges
            for record in exchange.records()
            if self._sample >= 1.0 or self._random.random() < self._sample
        ]
        for chunk in self._chunks_fitting(lines):
            self._file.write(chunk)
            self._file.flush()

    def _chunks_fitting(self, lines: list[str]) -> Iterator[bytes]:
        """Whole lines, rotating before a line that would take the file past ``max_bytes``
        (a line larger than that gets a file of its own)."""
        chunk: list[bytes] = []
        size = self._file.tell()
        for line in lines:
            encoded = line.encode()
            if 0 < self._max_bytes < size + len(encoded) and size > 0:
                if chunk:
                    yield b"".join(chunk)
                    chunk = []
                self._rotate()
                size = 0
            chunk.append(encoded)
            size += len(encoded)
        if chunk:
            yield b"".join(chunk)

    def _scrubbed(self, record: dict[str, Any]) -> dict[str, Any]:
        record["time"] = datetime.fromtimestamp(record["time"], timezone.utc).isoformat()
        if self._exclude:
            record["input"] = {k: v for k, v in record["input"].items() if k not in self._exclude}
        return record

    def _rotate(self) -> None:
        self._file.close()
        if self._backups == 0:
            self.path.unlink(missing_ok=True)
        else:
            for index in range(self._backups - 1, 0, -1):
                older = _rotated(self.path, index)
                if older.exists():
                    older.replace(_rotated(self.path, index + 1))
            self.path.replace(_rotated(self.path, 1))
        self._file = self._open()

    def close(self) -> None:
        self._file.close()


def read_inference_log(path: str | os.PathLike[str]) -> Any:
    """The records of the inference log at ``path`` (and its rotated files ``PATH.1``, ...,
    oldest first) as a pandas DataFrame: the input columns, then time, request_id, route,
    status, latency_ms, prediction and error. Lines that do not parse (the torn last line of a
    killed writer) are skipped."""
    from jupyter_serve.server._exchanges import records_frame

    path = Path(path)
    files = sorted(
        (p for p in path.parent.glob(path.name + ".*") if p.suffix[1:].isdigit()),
        key=lambda p: -int(p.suffix[1:]),
    )
    if path.exists():
        files.append(path)
    if not files:
        raise JupyterServeError(
            f"no inference log at {path}; it is written by serving with --log-predictions "
            f"{path} (serve(log_predictions=...))."
        )
    return records_frame(list(_records(files)))


def _records(files: list[Path]) -> Iterator[dict[str, Any]]:
    for file in files:
        with open(file, "rb") as lines:
            for line in lines:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    yield record


def _rotated(path: Path, index: int) -> Path:
    return path.with_name(f"{path.name}.{index}")
