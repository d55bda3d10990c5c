"""What a process that only serves (``jupyter-serve models serve``, each ``-w`` worker) tunes
once its model is loaded. Each change is process-wide and lasts as long as the process, which
is why a kernel never gets them: there they would reach into the user's own code. (A serving
kernel only gets knobs it puts back: see ``_deployments/_serving_runtime.py``.)"""

from __future__ import annotations

from jupyter_serve._gc_pause import freeze_what_is_loaded
from jupyter_serve._static_lookup import cache_class_dict_lookups


def tune_for_serving() -> None:
    """Cache ``inspect.getattr_static``'s class walks (Python 3.11), then freeze what is
    loaded out of the garbage collector's reach."""
    cache_class_dict_lookups()
    freeze_what_is_loaded()
