"""Garbage collection is paused while a model loads, and always left as it was found."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_python
from sklearn.dummy import DummyClassifier

from jupyter_serve._gc_pause import gc_paused
from jupyter_serve.errors import InvalidModelError
from jupyter_serve.models import load_model, save_model


@pytest.fixture(autouse=True)
def collection_enabled_again() -> Iterator[None]:
    yield
    gc.enable()


@pytest.fixture
def collections() -> Iterator[list[int]]:
    """The generation of each collection that starts while the test runs."""
    started: list[int] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(info["generation"])

    gc.callbacks.append(record)
    yield started
    gc.callbacks.remove(record)


def test_pauses_nest_and_the_outer_one_resumes_collection() -> None:
    with gc_paused():
        with gc_paused():
            inner = gc.isenabled()
        between = gc.isenabled()

    assert (inner, between, gc.isenabled()) == (False, False, True)


def test_a_pause_keeps_collection_off_when_the_user_turned_it_off() -> None:
    gc.disable()
    with gc_paused():
        pass

    assert not gc.isenabled()


def test_a_pause_that_doubled_the_heap_ends_with_one_full_collection(
    collections: list[int],
) -> None:
    target = 2 * sys.getallocatedblocks()
    kept: list[list[int]] = []
    with gc_paused():
        while sys.getallocatedblocks() < target:  # tracked objects, as imports make
            kept.extend([index] for index in range(50_000))
        during = list(collections)

    oldest = gc.get_objects(generation=2)

    assert (during, collections) == ([], [2])
    # Later automatic collections (in the middle of requests) will not traverse them again.
    assert any(item is kept for item in oldest)


def test_a_small_pause_forces_no_full_collection(collections: list[int]) -> None:
    gc.collect()  # so that no full collection of CPython's own is due
    collections.clear()
    with gc_paused():
        kept = [[index] for index in range(1_000)]

    assert 2 not in collections
    assert len(kept) == 1_000


def test_collection_resumes_after_a_load_and_after_a_failed_one(tmp_path: Path) -> None:
    model_dir = save_model(DummyClassifier().fit([[0], [1]], [0, 1]), tmp_path / "dummy")
    loaded = load_model(model_dir)
    after_load = gc.isenabled()
    (model_dir / "model.skops").write_bytes(b"truncated")

    with pytest.raises(InvalidModelError):
        load_model(model_dir)

    assert after_load and gc.isenabled()
    assert list(loaded.predict([[1]])) == [0]


FREEZE_SCRIPT = """
import gc
import weakref

from jupyter_serve._gc_pause import freeze_what_is_loaded


class Node:
    pass


def cycle():
    node = Node()
    node.itself = node
    return weakref.ref(node)


before = cycle()
freeze_what_is_loaded()
assert before() is None, "garbage from before the freeze is collected first"
assert gc.get_freeze_count() > 1000, gc.get_freeze_count()
after = cycle()
gc.collect()
assert after() is None, "garbage made after the freeze is still collected"
assert gc.get_threshold()[0] == 2_000, gc.get_threshold()
print("ok")
"""

OFF_SCRIPT = """
import gc

from jupyter_serve._gc_pause import freeze_what_is_loaded

gc.set_threshold(0)
freeze_what_is_loaded()
print(gc.get_threshold()[0])
"""


def test_a_serving_process_freezes_what_it_loaded_and_collects_young_objects_less_often() -> None:
    # In a fresh interpreter: a freeze in the test process would outlive the test.
    assert run_python(Path(sys.executable), FREEZE_SCRIPT).strip() == "ok"


def test_a_serving_process_whose_automatic_collection_is_off_keeps_it_off() -> None:
    assert run_python(Path(sys.executable), OFF_SCRIPT).strip() == "0"
