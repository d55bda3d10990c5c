"""A process that only serves caches ``inspect.getattr_static``'s class walks (Python 3.11),
answering exactly what the uncached lookup answers, and freezes what it loaded."""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import run_python

# Run in a fresh interpreter: the cache is process-wide and would outlive a test.
CACHED_LOOKUP_SCRIPT = """
import gc
import inspect
import sys

import pandas as pd

from jupyter_serve import _static_lookup
from jupyter_serve._serving_process import tune_for_serving


class ShadowsDict:
    __dict__ = property(lambda self: {"hidden": 1})
    visible = 2


class Slotted:
    __slots__ = ("value",)


class Plain:
    attribute = "class"


class Other:
    other = "other"


class Meta(type):
    on_meta = 1


class WithMeta(metaclass=Meta):
    pass


plain = Plain()
plain.attribute = "instance"
slotted = Slotted()
slotted.value = 3
cases = [
    (pd.DataFrame({"a": [1]}), "__narwhals_dataframe__"),
    (pd.DataFrame({"a": [1]}), "columns"),
    (pd.Series([1]), "__narwhals_series__"),
    (ShadowsDict(), "hidden"),
    (ShadowsDict(), "visible"),
    (slotted, "value"),
    (plain, "attribute"),
    (Plain, "attribute"),
    (WithMeta, "on_meta"),
    (WithMeta(), "on_meta"),
    (3, "real"),
]
missing = object()


def answers():
    return [repr(inspect.getattr_static(obj, name, missing)) for obj, name in cases]


uncached = answers()
was_installed = sys.version_info < (3, 12)
tune_for_serving()
assert hasattr(inspect._shadowed_dict, "__wrapped__") == was_installed
assert _static_lookup.cache_class_dict_lookups() is False, "installed once only"
assert answers() == uncached, (answers(), uncached)
assert answers() == uncached, "cached answers differ from the first ones"

# A class whose bases change is looked up again, as the uncached lookup would: once no base
# shadows __dict__ any more, the instance's own attributes are seen.
child = type("Child", (ShadowsDict,), {})()
child.own = "instance"
assert inspect.getattr_static(child, "own", None) is None
type(child).__bases__ = (Plain,)
assert inspect.getattr_static(child, "own") == "instance"

# Classes made and dropped by the thousand are not kept forever.
for _ in range(5000):
    inspect.getattr_static(type("Passing", (), {})(), "x", None)
gc.collect()
passing = [c for c in gc.get_objects() if isinstance(c, type) and c.__name__ == "Passing"]
assert len(passing) <= 1100, len(passing)
print("ok")
"""


def test_getattr_static_answers_the_same_with_the_serving_process_cache() -> None:
    assert run_python(Path(sys.executable), CACHED_LOOKUP_SCRIPT).strip() == "ok"
