"""A real IPython kernel driven over jupyter_client, as a notebook front end would.

Cells report numbers by printing one ``BENCH_JSON {...}`` line; a cell that fails raises
MeasurementUnavailable with the kernel's error, so a missing piece (`%serve` not written
yet) becomes "not available" in the report instead of a crash.
"""

from __future__ import annotations

import json
import queue
import time
from pathlib import Path
from typing import Any

from jupyter_client.manager import KernelManager
from jupyter_client.provisioning.local_provisioner import LocalProvisioner

from benchmarks.outcome import MeasurementUnavailable

RESULT_MARKER = "BENCH_JSON "


class BenchKernel:
    """One kernel process; not thread-safe (one caller drives it)."""

    def __init__(self, env: dict[str, str], cwd: Path, log_file: Path) -> None:
        self._log = log_file.open("ab")
        self._manager = KernelManager(kernel_name="python3")
        # The kernel's own stderr (start-up warnings, server logs) goes to a file, not the run.
        self._manager.start_kernel(env=env, cwd=str(cwd), stdout=self._log, stderr=self._log)
        self._client = self._manager.client()
        self._client.start_channels()
        try:
            self._client.wait_for_ready(timeout=60)
        except RuntimeError as error:
            self.shutdown()
            raise MeasurementUnavailable(f"the kernel did not start: {error}") from error

    @property
    def pid(self) -> int:
        """The kernel process's id."""
        provisioner = self._manager.provisioner
        if not isinstance(provisioner, LocalProvisioner) or provisioner.pid is None:
            raise MeasurementUnavailable("the kernel is not a local process: no pid to watch")
        pid: int = provisioner.pid
        return pid

    def start_cell(self, code: str) -> str:
        """Send ``code`` for execution without waiting; its message id."""
        msg_id: str = self._client.execute(code, store_history=False)
        return msg_id

    def wait_for_text(self, msg_id: str, text: str, *, timeout: float) -> None:
        """Return once cell ``msg_id`` printed ``text``; MeasurementUnavailable on error/timeout."""
        printed = self._read_outputs(msg_id, timeout=timeout, until_text=text)
        if text not in printed:
            raise MeasurementUnavailable(f"the cell never printed {text!r}; it printed {printed!r}")

    def finish_cell(self, msg_id: str, *, timeout: float) -> str:
        """Everything cell ``msg_id`` prints until it is done; MeasurementUnavailable on error."""
        return self._read_outputs(msg_id, timeout=timeout, until_text=None)

    def run(self, code: str, *, timeout: float = 120.0) -> str:
        """Run ``code`` to completion; what it printed."""
        return self.finish_cell(self.start_cell(code), timeout=timeout)

    def run_for_result(self, code: str, *, timeout: float = 120.0) -> dict[str, Any]:
        """Run ``code`` and return the object of the ``BENCH_JSON`` line it prints."""
        printed = self.run(code, timeout=timeout)
        for line in printed.splitlines():
            if line.startswith(RESULT_MARKER):
                result: dict[str, Any] = json.loads(line[len(RESULT_MARKER) :])
                return result
        # IPython prints a UsageError (e.g. an unknown magic or option) instead of raising it.
        raise MeasurementUnavailable(printed.strip()[-600:] or "the cell printed no result")

    def _read_outputs(self, msg_id: str, *, timeout: float, until_text: str | None) -> str:
        deadline = time.monotonic() + timeout
        printed: list[str] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise MeasurementUnavailable(f"the cell did not finish within {timeout:.0f} s")
            try:
                message = self._client.get_iopub_msg(timeout=remaining)
            except queue.Empty:
                continue
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                printed.append(content["text"])
                if until_text is not None and until_text in "".join(printed):
                    return "".join(printed)
            elif kind == "error":
                raise MeasurementUnavailable(f"{content['ename']}: {content['evalue']}"[:600])
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(printed)

    def shutdown(self) -> None:
        """Stop the kernel (its deployments stop with it); idempotent."""
        self._client.stop_channels()
        if self._manager.is_alive():
            self._manager.shutdown_kernel(now=False)
        self._log.close()
