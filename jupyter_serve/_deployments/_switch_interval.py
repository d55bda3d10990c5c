"""A shorter GIL switch interval while this process serves.

An in-process server thread competes with the kernel's own cells for the GIL. At CPython's
default 5 ms switch interval, every hand-off from a CPU-bound cell to the server thread may
wait up to 5 ms, and one request needs several hand-offs (read, predict, write), so the
server's p99 climbs to tens of milliseconds while a cell computes. At 1 ms those waits shrink
five-fold. A thread that does not ask for the GIL costs nothing, so an idle server leaves the
cell's speed as it was; the previous interval comes back when the last deployment stops.
"""

from __future__ import annotations

import sys
import threading

SERVING_SWITCH_INTERVAL_SECONDS = 0.001


class SwitchInterval:
    """Shortens ``sys.setswitchinterval`` while serving and restores it after. Thread-safe."""

    def __init__(self) -> None:
        self._saved: float | None = None
        self._lock = threading.Lock()

    def shorten(self) -> None:
        with self._lock:
            if self._saved is not None:
                return
            self._saved = sys.getswitchinterval()
            if self._saved > SERVING_SWITCH_INTERVAL_SECONDS:
                sys.setswitchinterval(SERVING_SWITCH_INTERVAL_SECONDS)

    def restore(self) -> None:
        with self._lock:
            if self._saved is None:
                return
            sys.setswitchinterval(self._saved)
            self._saved = None
