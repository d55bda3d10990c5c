"""Cyclic garbage collection paused while a model and its libraries load.

Loading pandas, scikit-learn, skops and a model allocates about a million long-lived objects.
Each automatic collection on the way traverses again those already allocated (about 400
collections, two of them full): ~0.17 s of `%serve` in a fresh kernel. Paused, then caught up
with one collection at the end (~0.1 s), the same objects are traversed once. Reference
counting frees memory as usual meanwhile; only cyclic garbage waits, for the second or two of
the pause.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No automatic cyclic garbage collection in the process while the block runs; afterwards
    it is enabled again if it was enabled before (so pauses nest, and a user's ``gc.disable()``
    is kept), after collecting what the pause deferred. Threads share this switch: code that
    toggles ``gc`` in another thread during the block may see its change undone."""
    was_enabled = gc.isenabled()
    blocks_before = sys.getallocatedblocks()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            # Collected before enabling: else the first allocation would already run an
            # automatic pass over everything the pause allocated, and the catch-up a second.
            _catch_up(blocks_before)
            gc.enable()


def _catch_up(blocks_before: int) -> None:
    # Now, rather than as a pause in the middle of the first requests. CPython runs a full
    # collection once the objects added since the last one outnumber a quarter of those that
    # survived it: after a heap grown by more than that, one full collection is what it would
    # have run anyway (at least once); otherwise the young generations suffice.
    grown = sys.getallocatedblocks() - blocks_before
    gc.collect(2 if grown > blocks_before // 4 else 1)
