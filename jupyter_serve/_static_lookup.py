"""``inspect.getattr_static`` on Python 3.11 given the per-class cache Python 3.12 has.

scikit-learn (from 1.8, through narwhals) asks ``getattr_static`` whether its input is a
dataframe ~20 times in one ``Pipeline.predict``. Each call on 3.11 re-derives, for every class
in the input's MRO and for that class's metaclass, whether the class overrides ``__dict__``:
a walk that raises and catches a KeyError per class. That was ~0.2 ms of the benchmark
pipeline's ~1.2 ms one-row predict. Python 3.12 caches that answer per MRO (gh-103193); this
module does the same on 3.11, so the answers, and when they could go stale (only if code
assigns a new ``__dict__`` attribute to a class after it was looked up), are 3.12's.
"""

from __future__ import annotations

import functools
import inspect
import sys
from typing import Any

_read_mro = type.__dict__["__mro__"].__get__  # as inspect reads it: no metaclass hooks run
_MOST_CLASSES_REMEMBERED = 1024


def cache_class_dict_lookups() -> bool:
    """Make ``inspect.getattr_static`` remember, per MRO, whether a class shadows ``__dict__``.

    Process-wide: for processes that only serve, never a user's kernel. True when installed
    now; False on Python >= 3.12 (which caches it itself) or when already installed.
    """
    if sys.version_info >= (3, 12):
        return False
    uncached = inspect._shadowed_dict  # type: ignore[attr-defined]
    if hasattr(uncached, "__wrapped__"):
        return False

    # Each answer holds its class's MRO tuple, so a class whose bases were reassigned (a new
    # tuple) is looked up afresh. That keeps the classes alive: hence the bound.
    answers: dict[type, tuple[tuple[type, ...], Any]] = {}

    @functools.wraps(uncached)
    def shadowed_dict(klass: type) -> Any:
        mro = _read_mro(klass)
        known = answers.get(klass)
        if known is not None and known[0] is mro:
            return known[1]
        answer = uncached(klass)
        if len(answers) >= _MOST_CLASSES_REMEMBERED:
            answers.clear()
        answers[klass] = (mro, answer)
        return answer

    inspect._shadowed_dict = shadowed_dict  # type: ignore[attr-defined]
    return True
