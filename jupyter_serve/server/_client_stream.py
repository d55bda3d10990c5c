"""A client's socket as the scoring server reads it: when bytes last arrived, an answer to a
head over the limit (Tornado would close without one), the error JSON instead of Tornado's bare
400 for a request it cannot parse, and a lingering close.

Closing a socket whose peer is still sending makes the kernel reset the connection, and the
peer often loses the answer it was sent (a 413 mid-upload, a 414 for a 1 MB URL). A lingering
close stops writing, discards what still arrives for a few seconds, then closes.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from tornado.iostream import IOStream, UnsatisfiableReadError

from jupyter_serve.server._limit_responses import (
    headers_too_large_response,
    malformed_request_response,
    serialize_closing,
    uri_too_long_response,
)

LINGER_SECONDS = 5.0
_DISCARD = bytearray(256 * 1024)
_READS_PER_TURN = 16
# What Tornado's HTTP1Connection writes, and nothing else, when its parser refuses a request
# (a garbage request line, a bad header or chunk size); it closes the connection right after.
_TORNADO_MALFORMED_ANSWER = b"HTTP/1.1 400 Bad Request\r\n\r\n"


class ClientStream(IOStream):
    """A client's socket: notes when bytes last arrived, answers an oversized head, and can
    close lingering."""

    def __init__(self, sock: socket.socket, head_limit: int, **kwargs: Any) -> None:
        super().__init__(sock, **kwargs)
        self.head_limit = head_limit
        self.last_received = time.monotonic()
        self.reading_head = True
        self.linger = False

    def read_from_fd(self, buf: bytearray | memoryview) -> int | None:
        received = super().read_from_fd(buf)
        if received:
            self.last_received = time.monotonic()
        return received

    def write(self, data: bytes | memoryview) -> Any:
        if isinstance(data, bytes) and data == _TORNADO_MALFORMED_ANSWER:
            data = serialize_closing(malformed_request_response())
        return super().write(data)

    def close(self, exc_info: Any = False) -> None:
        # Tornado closes at once when the head passes its max_bytes; answer first.
        if self.reading_head and isinstance(exc_info, UnsatisfiableReadError):
            self._refuse_oversized_head()
        super().close(exc_info)

    def close_fd(self) -> None:
        if self.linger and self.socket is not None:
            close_lingering(self.socket)
            self.socket = None  # type: ignore[assignment]
        else:
            super().close_fd()

    def _refuse_oversized_head(self) -> None:
        if self.closed() or self.socket is None:
            return
        # Tornado's read buffer: the head so far. No line end within the limit: the URL.
        if self._read_buffer.find(b"\n", 0, self.head_limit) < 0:
            response = uri_too_long_response(self.head_limit)
        else:
            response = headers_too_large_response(self.head_limit)
        try:
            self.socket.send(serialize_closing(response))
        except OSError:
            return
        self.linger = True


def close_lingering(sock: socket.socket) -> None:
    """Stop writing on ``sock``, discard what the peer still sends for up to
    `LINGER_SECONDS`, then close it: closing with unread bytes would reset the connection,
    and the peer could lose the answer it was sent. Call on the IO loop's thread."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        sock.close()
        return
    loop = asyncio.get_running_loop()
    fd = sock.fileno()

    def finish() -> None:
        loop.remove_reader(fd)
        deadline.cancel()
        sock.close()

    def discard() -> None:
        try:
            for _ in range(_READS_PER_TURN):
                if not sock.recv_into(_DISCARD):
                    break
            else:
                return  # more to come; other connections get a turn first
        except BlockingIOError:
            return
        except OSError:
            pass
        finish()

    deadline = loop.call_later(LINGER_SECONDS, finish)
    loop.add_reader(fd, discard)
