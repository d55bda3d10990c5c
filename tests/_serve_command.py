"""``jupyter-serve models serve`` run as a user runs it: a real console script in a real
directory, its output read as it comes (both streams drained, so a chatty server never blocks)."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO


class ServeCommand:
    """``<jupyter_serve> models serve ARGS`` started in ``cwd`` with ``env`` added."""

    def __init__(
        self,
        jupyter_serve: str | Path,
        args: list[str],
        cwd: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.process = subprocess.Popen(
            [str(jupyter_serve), "models", "serve", *args],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout_lines: queue.Queue[str] = queue.Queue()
        self.stdout_seen: list[str] = []
        self.stderr_lines: list[str] = []
        assert self.process.stdout is not None and self.process.stderr is not None
        self._readers = [
            threading.Thread(target=self._pump_stdout, args=(self.process.stdout,), daemon=True),
            threading.Thread(target=self._pump_stderr, args=(self.process.stderr,), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _pump_stdout(self, stream: IO[str]) -> None:
        for line in stream:
            self.stdout_seen.append(line)
            self.stdout_lines.put(line)

    def _pump_stderr(self, stream: IO[str]) -> None:
        for line in stream:
            self.stderr_lines.append(line)

    def wait_for_url(self, timeout: float = 300) -> str:
        """The URL the command says it serves at; fails if it exits or stays silent."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.stdout_lines.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None:
                    raise AssertionError(f"serve exited early: {self.stop()[-4000:]}") from None
                continue
            if " at http://" in line:
                return line.split(" at ", 1)[1].split()[0]
        raise AssertionError(f"serve never said where it serves: {self.stop()[-4000:]}")

    def stop(self, signum: int = signal.SIGINT) -> str:
        """Send ``signum`` (a Ctrl+C by default), wait for the exit, return all of stderr;
        kill the command if it does not stop within a minute."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
        for reader in self._readers:
            reader.join(timeout=10)
        return "".join(self.stderr_lines)

    @property
    def stdout(self) -> str:
        return "".join(self.stdout_seen)
