"""Serving in-process shortens the GIL switch interval, and the last stop restores it."""

from __future__ import annotations

import sys

from sklearn.linear_model import LogisticRegression

import jupyter_serve


def test_switch_interval_is_short_while_serving_and_restored_after() -> None:
    original = sys.getswitchinterval()
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    try:
        jupyter_serve.serve(model, name="first")
        jupyter_serve.serve(model, name="second")
        assert sys.getswitchinterval() == 0.001
        jupyter_serve.stop("first")
        assert sys.getswitchinterval() == 0.001  # still serving "second"
    finally:
        jupyter_serve.stop(all=True)
    assert sys.getswitchinterval() == original
