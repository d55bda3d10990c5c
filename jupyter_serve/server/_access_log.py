"""Access-log lines: uvicorn's (so ``mlflow models serve``'s) line, with the latency, the
request id and the model version added; or the same fields as one JSON object per line.

They go to the logger ``jupyter_serve.access``: the CLI gives it a handler writing to stdout
(as uvicorn's access logger does); in a kernel it has none of ours, so nothing reaches a cell's
output unless the user attaches a handler.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from http import HTTPStatus
from typing import Any

from jupyter_serve.server._exchanges import Exchange

ACCESS_LOGGER = logging.getLogger("jupyter_serve.access")
# Only its own handlers write it (uvicorn.access does the same): a root handler that a
# notebook configured would otherwise print every request into a cell.
ACCESS_LOGGER.propagate = False
LOG_FORMATS = ("text", "json")
_PHRASES = {status.value: status.phrase for status in HTTPStatus}


class BatchedLineHandler(logging.Handler):
    """A handler that also takes a tick's lines at once (`write_lines`: one write, not one
    per request); the recorder uses that when every handler of the access logger can."""

    def __init__(self, write: Any) -> None:
        super().__init__()
        self._write = write  # takes the text of one or more whole lines, each ending in \n

    def emit(self, record: logging.LogRecord) -> None:
        self.write_lines([record.getMessage()])

    def write_lines(self, lines: list[str]) -> None:
        if not lines:
            return
        try:
            self._write("\n".join(lines) + "\n")
        except Exception:  # a closed stdout must not take the writer thread down
            self.handleError(logging.makeLogRecord({"msg": lines[0]}))


def write_access_lines(lines: list[str]) -> None:
    """Log ``lines``, in one write per handler when the handlers allow it."""
    handlers = ACCESS_LOGGER.handlers
    if handlers and all(isinstance(h, BatchedLineHandler) for h in handlers):
        for handler in handlers:
            assert isinstance(handler, BatchedLineHandler)
            handler.write_lines(lines)
        return
    for line in lines:
        ACCESS_LOGGER.info(line)


# uvicorn's access line, with the latency, the request id and the model version added.
_TEXT_LINE = 'INFO:     %s - "%s %s HTTP/1.1" %d %s %.1fms request_id=%s model_version=%s'


def access_line(exchange: Exchange, log_format: str) -> str:
    """The access-log line of one exchange, ``text`` (uvicorn's) or ``json``."""
    if log_format == "json":
        return json.dumps(
            {
                "time": datetime.fromtimestamp(exchange.time, timezone.utc).isoformat(),
                "client": _client_text(exchange.client),
                "method": exchange.method,
                "path": exchange.path,
                "status": exchange.status,
                "latency_ms": round(exchange.latency * 1000, 3),
                "request_id": exchange.request_id,
                "model_version": exchange.model_version,
            }
        )
    status = exchange.status
    return _TEXT_LINE % (
        _client_text(exchange.client),
        exchange.method,
        exchange.path,
        status,
        _PHRASES.get(status, ""),
        exchange.latency * 1000,
        exchange.request_id,
        exchange.model_version or "-",
    )


def _client_text(address: Any) -> str:
    """``host:port`` of a client's address, or ``-`` when unknown (a Unix socket)."""
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return "-"
