"""Telling the user what a build is doing: building takes tens of seconds.

A build goes through a few steps (create, install, link, done); `BuildProgress` receives them.
In a notebook with a front end it is a progress bar with the current step; elsewhere (the CLI,
a console, a script) it is one line on stderr per step.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any, Protocol

BUILD_STEPS = 4  # create the environment, install build tools, install requirements, link us


class BuildProgress(Protocol):
    """Receives a build's steps; called from the building thread only."""

    def step(self, done: int, message: str) -> None:
        """``done`` of `BUILD_STEPS` steps are finished; ``message`` says what happens now."""

    def finish(self, message: str) -> None:
        """The build ended (successfully or not) with ``message``."""


class TextProgress:
    """One ``jupyter-serve: ...`` line per step on ``stream`` (stderr by default)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream
        self._started = time.monotonic()

    def _write(self, message: str) -> None:
        stream = self._stream if self._stream is not None else sys.stderr
        stream.write(f"jupyter-serve: {message}\n")
        stream.flush()

    def step(self, done: int, message: str) -> None:
        self._write(message)

    def finish(self, message: str) -> None:
        self._write(f"{message} in {time.monotonic() - self._started:.1f} s")


class WidgetProgress:
    """An ipywidgets progress bar and a label, shown in the cell that started the build."""

    def __init__(self) -> None:
        import ipywidgets
        from IPython.display import display

        self._started = time.monotonic()
        self._bar = ipywidgets.IntProgress(value=0, min=0, max=BUILD_STEPS, bar_style="info")
        self._label = ipywidgets.Label(value="preparing the environment…")
        display(ipywidgets.HBox([self._bar, self._label]))  # type: ignore[no-untyped-call]

    def step(self, done: int, message: str) -> None:
        self._bar.value = min(done, BUILD_STEPS)
        self._label.value = message

    def finish(self, message: str) -> None:
        self._bar.value = BUILD_STEPS
        self._bar.bar_style = "success" if "fail" not in message else "danger"
        self._label.value = f"{message} in {time.monotonic() - self._started:.1f} s"


def default_progress() -> BuildProgress:
    """A progress bar inside a kernel with a front end, text on stderr anywhere else."""
    try:
        from IPython import get_ipython

        shell: Any = get_ipython()
        if shell is not None and getattr(shell, "kernel", None) is not None:
            return WidgetProgress()
    except ImportError:
        pass
    return TextProgress()
