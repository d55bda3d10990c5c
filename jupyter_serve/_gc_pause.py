"""Cyclic garbage collection paused while a model and its libraries load.

Loading a skops model into a fresh kernel imports pandas, all of scikit-learn and skops:
about a million long-lived objects. Each automatic collection on the way traverses again
those already allocated (about 400 collections, two of them full): ~0.17 s. Paused, then
caught up with one full collection (~0.1 s), they are traversed once. Reference counting frees
memory as usual meanwhile; only cyclic garbage waits, for the second or so of the load.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterator

# Net allocations between two young collections while serving (CPython's default: 700). Each
# young collection under load finds the objects of the requests in flight alive and promotes
# them, so every later collection of the older generations traverses them again; at 2,000
# those promotions are about three times rarer. Measured: in a kernel, see
# `_deployments/_serving_runtime.py`; in `models serve` (callgrind, 64 connections) the
# collector's share of the instructions per request fell from 2.7 % to 1.8 % with the access
# log and capture on, and from 1.9 % to 1.6 % with them off.
SERVING_YOUNG_COLLECTION_THRESHOLD = 2_000


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No automatic cyclic garbage collection in the process while the block runs; afterwards
    it is enabled again if it was enabled before (so pauses nest, and a user's ``gc.disable()``
    is kept). Threads share this switch: code that toggles ``gc`` in another thread during the
    block may see its change undone.

    When the block grew the heap by more than a quarter, a full collection runs before
    collection resumes: CPython runs one once the objects added since the last outnumber a
    quarter of those that survived it, so it would have run (at least) one during the block.
    Done now, it lands here rather than in the middle of a later request. After a smaller
    block, collection simply resumes (the deferred young collections are small).
    """
    was_enabled = gc.isenabled()
    blocks_before = sys.getallocatedblocks()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            # Collected before enabling: else another thread's next allocation would first run
            # an automatic pass over everything the block allocated.
            if sys.getallocatedblocks() - blocks_before > blocks_before // 4:
                gc.collect()
            gc.enable()


def freeze_what_is_loaded() -> None:
    """Exempt every object alive now from later collections (``gc.freeze``), after one last
    collection.

    For processes that only serve, once their model is loaded: the model and its libraries
    (~160,000 tracked objects) live as long as the process, yet each full collection would
    traverse them again, an ~85 ms pause every few seconds under load. Never in a kernel: the
    user's objects would never be collected either. Young collections become rarer too
    (`SERVING_YOUNG_COLLECTION_THRESHOLD`), unless automatic collection is off.
    """
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    if 0 < young < SERVING_YOUNG_COLLECTION_THRESHOLD:
        gc.set_threshold(SERVING_YOUNG_COLLECTION_THRESHOLD, middle, old)
