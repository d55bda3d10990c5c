"""Where ``models serve`` prints its access log (the options themselves are in
`jupyter_serve.options`)."""

from __future__ import annotations

import logging
import sys

from jupyter_serve.server._access_log import ACCESS_LOGGER, BatchedLineHandler


def configure_access_log(enabled: bool) -> None:
    """Print the access log's lines, bare, on stdout (uvicorn's access logger does), and only
    there."""
    ACCESS_LOGGER.propagate = False
    if not enabled:
        return
    ACCESS_LOGGER.addHandler(BatchedLineHandler(_write_stdout))
    ACCESS_LOGGER.setLevel(logging.INFO)


def _write_stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
