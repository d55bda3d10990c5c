"""The kernel's runtime knobs while it serves: a shorter GIL switch interval and rarer young
garbage collections, both put back when the last deployment stops.

Switch interval: an in-process server thread competes with the kernel's own cells for the
GIL. At CPython's default 5 ms, every hand-off from a CPU-bound cell to the server thread may
wait up to 5 ms, and one request needs several hand-offs (read, predict, write), so the
server's p99 climbs to tens of milliseconds while a cell computes. At 1 ms those waits shrink
five-fold. A thread that does not ask for the GIL costs nothing, so an idle server leaves the
cell's speed as it was.

Collections: each young collection under load finds the objects of the requests in flight
alive and promotes them; CPython runs a full collection once the promoted objects reach a
quarter of the long-lived ones, and in a kernel that has imported pandas and scikit-learn a
full collection pauses everything for ~100 ms. At 64 connections that was two full
collections every 5 s and a p99 of 64-106 ms. Collecting the youngest generation every
2,000 net allocations instead of 700 makes those promotions, and so the full collections,
about three times rarer: the p99 measured 19-23 ms, with the same memory (+8.5 MB after
traffic) and the same latency beside a busy cell (10,000 gave no better p99 and +4 MB).
Cyclic garbage waits a little longer for its collection; nothing else changes for the user's
code.
"""

from __future__ import annotations

import gc
import sys
import threading

from jupyter_serve._gc_pause import SERVING_YOUNG_COLLECTION_THRESHOLD

SERVING_SWITCH_INTERVAL_SECONDS = 0.001


class ServingRuntime:
    """Sets the knobs while serving (`enter`) and puts them back (`leave`). Thread-safe;
    `enter` twice is one entry."""

    def __init__(self) -> None:
        self._saved_interval: float | None = None
        self._saved_thresholds: tuple[int, int, int] | None = None
        self._set_thresholds: tuple[int, int, int] | None = None
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            if self._saved_interval is not None:
                return
            self._saved_interval = sys.getswitchinterval()
            if self._saved_interval > SERVING_SWITCH_INTERVAL_SECONDS:
                sys.setswitchinterval(SERVING_SWITCH_INTERVAL_SECONDS)
            young, middle, old = gc.get_threshold()
            # 0 means the user turned automatic collection off: leave that alone.
            if 0 < young < SERVING_YOUNG_COLLECTION_THRESHOLD:
                self._saved_thresholds = (young, middle, old)
                self._set_thresholds = (SERVING_YOUNG_COLLECTION_THRESHOLD, middle, old)
                gc.set_threshold(*self._set_thresholds)

    def leave(self) -> None:
        with self._lock:
            if self._saved_interval is None:
                return
            sys.setswitchinterval(self._saved_interval)
            self._saved_interval = None
            # Unless the user set thresholds of their own meanwhile: those stay.
            if self._saved_thresholds is not None and gc.get_threshold() == self._set_thresholds:
                gc.set_threshold(*self._saved_thresholds)
            self._saved_thresholds = self._set_thresholds = None
