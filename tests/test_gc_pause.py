"""Garbage collection is paused while a model loads, and always left as it was found."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from sklearn.dummy import DummyClassifier

from jupyter_serve._gc_pause import gc_paused
from jupyter_serve.errors import InvalidModelError
from jupyter_serve.models import load_model, save_model


@pytest.fixture(autouse=True)
def collection_enabled_again() -> Iterator[None]:
    yield
    gc.enable()


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


def test_what_a_pause_allocated_is_collected_before_it_returns() -> None:
    with gc_paused():
        kept = [[index] for index in range(100_000)]  # tracked objects, as imports make

    oldest = gc.get_objects(generation=2)

    # Otherwise later automatic collections (in the middle of requests) would traverse them.
    assert any(item is kept for item in oldest)


def test_a_pause_ends_with_exactly_one_collection() -> None:
    collections: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.callbacks.append(count)
    try:
        with gc_paused():
            kept = [[index] for index in range(100_000)]
    finally:
        gc.callbacks.remove(count)

    assert len(collections) == 1, f"collections of generations {collections}"
    assert len(kept) == 100_000


def test_collection_resumes_after_a_load_and_after_a_failed_one(tmp_path: Path) -> None:
    model_dir = save_model(DummyClassifier().fit([[0], [1]], [0, 1]), tmp_path / "dummy")
    loaded = load_model(model_dir)
    after_load = gc.isenabled()
    (model_dir / "model.skops").write_bytes(b"truncated")

    with pytest.raises(InvalidModelError):
        load_model(model_dir)

    assert after_load and gc.isenabled()
    assert list(loaded.predict([[1]])) == [0]
