"""Serving in-process shortens the GIL switch interval and makes young collections rarer;
the last stop puts both back, and a user's own GC settings are left alone."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator

import pytest
from sklearn.linear_model import LogisticRegression

import jupyter_serve


@pytest.fixture
def model() -> Iterator[LogisticRegression]:
    thresholds = gc.get_threshold()
    yield LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    jupyter_serve.stop(all=True)
    gc.set_threshold(*thresholds)


def test_serving_sets_the_runtime_knobs_and_the_last_stop_restores_them(
    model: LogisticRegression,
) -> None:
    interval, thresholds = sys.getswitchinterval(), gc.get_threshold()
    jupyter_serve.serve(model, name="first")
    jupyter_serve.serve(model, name="second")
    assert sys.getswitchinterval() == 0.001
    assert gc.get_threshold() == (2_000, *thresholds[1:])
    jupyter_serve.stop("first")
    assert sys.getswitchinterval() == 0.001  # still serving "second"
    assert gc.get_threshold()[0] == 2_000
    jupyter_serve.stop("second")
    assert (sys.getswitchinterval(), gc.get_threshold()) == (interval, thresholds)


def test_gc_settings_the_user_makes_are_left_alone(model: LogisticRegression) -> None:
    gc.set_threshold(0)  # automatic collection off
    jupyter_serve.serve(model, name="off")
    assert gc.get_threshold()[0] == 0
    jupyter_serve.stop("off")
    assert gc.get_threshold()[0] == 0

    gc.set_threshold(700, 10, 10)
    jupyter_serve.serve(model, name="changed")
    gc.set_threshold(50_000, 20, 20)  # the user tunes it while serving
    jupyter_serve.stop("changed")
    assert gc.get_threshold() == (50_000, 20, 20)
