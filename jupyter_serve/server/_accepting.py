"""Accepting connections on a listening socket without spinning when the process runs out of
file descriptors.

At EMFILE/ENFILE (or ENOBUFS/ENOMEM) ``accept`` fails while the connection stays queued, so
the listening socket stays readable: Tornado's accept handler lets the error escape to the
event loop, which logs a traceback and calls the handler again at once, forever (100 % CPU
and a log growing by a traceback per attempt). Here accepting pauses instead, until a
connection of this server closes or a short backoff passes, and the condition is reported at
most once per interval, with what to do about it.
"""

from __future__ import annotations

import errno
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from tornado.ioloop import IOLoop

logger = logging.getLogger("jupyter_serve.server")

_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# Accepted per readiness event before other work gets a turn (Tornado uses the backlog size).
_ACCEPTS_PER_EVENT = 128
BACKOFF_SECONDS = 0.2
REPORT_INTERVAL_SECONDS = 60.0


class ResourceExhaustionReport:
    """Logs "cannot accept" at most once per interval, counting the failures in between."""

    def __init__(self, url: str, open_connections: Callable[[], int]) -> None:
        self._url = url
        self._open_connections = open_connections
        self._last_logged: float | None = None
        self._unreported = 0

    def failed(self, error: OSError) -> None:
        now = time.monotonic()
        self._unreported += 1
        if self._last_logged is not None and now - self._last_logged < REPORT_INTERVAL_SECONDS:
            return
        logger.warning(
            "the scoring server on %s cannot accept new connections: %s (%d failed accepts "
            "since the last report; %d connections open; this process may open %s files, "
            "`ulimit -n`). New clients wait until connections close (idle ones close after "
            "the keep-alive timeout). Raise the limit (`ulimit -n 65536` before starting) or "
            "spread the load over more processes.",
            self._url,
            error.strerror or error,
            self._unreported,
            self._open_connections(),
            _open_files_limit(),
        )
        self._last_logged = now
        self._unreported = 0


def _open_files_limit() -> str:
    try:
        import resource  # not on Windows

        soft_limit, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return "a limited number of"
    return "an unlimited number of" if soft_limit == resource.RLIM_INFINITY else str(soft_limit)


class ConnectionAcceptor:
    """Accepts connections on ``sock`` and hands each to ``on_connection``, pausing when the
    process is out of descriptors. Used from the IO loop's thread only."""

    def __init__(
        self,
        sock: socket.socket,
        on_connection: Callable[[socket.socket, Any], None],
        report: ResourceExhaustionReport,
    ) -> None:
        self._sock = sock
        self._on_connection = on_connection
        self._report = report
        self._io_loop = IOLoop.current()
        self._listening = False
        self._stopped = False
        self._retry: object | None = None
        self._listen()

    def stop(self) -> None:
        """Stop accepting for good (the caller closes the socket)."""
        self._stopped = True
        self._cancel_retry()
        self._unlisten()

    def resume(self) -> None:
        """Accept again now if paused (a descriptor was just freed)."""
        if self._retry is not None:
            self._cancel_retry()
            self._listen()

    def _listen(self) -> None:
        if not self._stopped and not self._listening:
            self._io_loop.add_handler(self._sock, self._accept, IOLoop.READ)
            self._listening = True

    def _unlisten(self) -> None:
        if self._listening:
            self._io_loop.remove_handler(self._sock)
            self._listening = False

    def _cancel_retry(self) -> None:
        if self._retry is not None:
            self._io_loop.remove_timeout(self._retry)
            self._retry = None

    def _accept(self, sock: socket.socket, events: int) -> None:
        for _ in range(_ACCEPTS_PER_EVENT):
            if not self._listening:
                return
            try:
                connection, address = sock.accept()
            except BlockingIOError:
                return
            except ConnectionAbortedError:
                continue
            except OSError as error:
                if error.errno not in _OUT_OF_RESOURCES:
                    raise
                self._pause()
                self._report.failed(error)
                return
            self._on_connection(connection, address)

    def _pause(self) -> None:
        self._unlisten()
        self._retry = self._io_loop.call_later(BACKOFF_SECONDS, self._retry_now)

    def _retry_now(self) -> None:
        self._retry = None
        self._listen()
