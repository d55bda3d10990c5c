"""Cyclic garbage collection paused while a model and its libraries load.

Loading pandas, scikit-learn, skops and a model allocates about a million long-lived objects.
Each automatic collection on the way traverses again those already allocated (about 400
collections, two of them full): ~0.17 s of `%serve` in a fresh kernel. Paused, the new objects
are traversed once when collection resumes (~0.08 s). Reference counting frees memory as usual
meanwhile; only cyclic garbage waits, for the second or two of the pause.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No automatic cyclic garbage collection in the process while the block runs; afterwards
    it is enabled again if it was enabled before (so pauses nest, and a user's ``gc.disable()``
    is kept). Threads share this switch: code that toggles ``gc`` in another thread during the
    block may see its change undone."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
