"""While no worker of a pool serves, the pool itself answers on its port: 503, saying why.

Between the death of the last worker and the start of its replacement (seconds, while the model
loads), nobody would listen on the port: clients would get "connection refused", with no word
of what happened, and any other program could take the port. For that time the pool joins the
port's SO_REUSEPORT group with a socket of its own and answers every request 503 with the error
JSON (MLflow's ``error_code`` and ``message``) and ``Retry-After``. The socket exists only while
no worker serves: never on the path of a served request.
"""

from __future__ import annotations

import json
import selectors
import socket
import threading
import time

from jupyter_serve.server._request_ids import REQUEST_ID_HEADER, new_request_id
from jupyter_serve.server._server import bind_listening_sockets

_MAX_HEAD_BYTES = 65536
_MAX_DRAINED_BYTES = 1 << 20
_CONNECTION_SECONDS = 1.0  # one slow client delays the others by this much at most


def unavailable_answer(reason: str) -> bytes:
    """The 503 answered while no worker serves, as HTTP/1.1 bytes that end the connection;
    ``reason`` says what happened to the workers. Each call has a new request ID."""
    body = json.dumps(
        {
            "error_code": "TEMPORARILY_UNAVAILABLE",
            "message": f"No worker process is serving this model right now: {reason}. A "
            "replacement is starting; retry in a moment.",
        }
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 1\r\n"
        f"{REQUEST_ID_HEADER}: {new_request_id()}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


class UnavailableResponder:
    """Answers 503 on ``host:port`` (joining its reuse-port group) from a thread, until
    `close`. Raises `DeploymentError` when the port cannot be joined. Thread-safe."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        self._sockets = bind_listening_sockets(host, port, reuse_port=True)
        for sock in self._sockets:
            sock.setblocking(False)
        self._reason = reason
        self._closing = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"jupyter-serve-{port}-unavailable", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Answer the connections already waiting, then leave the port. Idempotent."""
        self._closing.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        with selectors.DefaultSelector() as selector:
            for sock in self._sockets:
                selector.register(sock, selectors.EVENT_READ)
            while not self._closing.is_set():
                for key, _ in selector.select(0.05):
                    self._answer_waiting(key.fileobj)  # type: ignore[arg-type]
        for sock in self._sockets:
            self._answer_waiting(sock)  # closing a listening socket would reset them
            sock.close()

    def _answer_waiting(self, listening: socket.socket) -> None:
        while True:
            try:
                connection, _ = listening.accept()
            except OSError:  # nothing waiting (BlockingIOError), or the socket is gone
                return
            with connection:
                self._answer_one(connection)

    def _answer_one(self, connection: socket.socket) -> None:
        deadline = time.monotonic() + _CONNECTION_SECONDS
        try:
            connection.settimeout(_CONNECTION_SECONDS)
            received = b""
            while b"\r\n\r\n" not in received and len(received) < _MAX_HEAD_BYTES:
                chunk = connection.recv(65536)
                if not chunk:
                    return
                received += chunk
            connection.sendall(unavailable_answer(self._reason))
            connection.shutdown(socket.SHUT_WR)
            # Read on a little: closing with unread bytes would reset the answer away.
            drained = 0
            while drained < _MAX_DRAINED_BYTES and time.monotonic() < deadline:
                connection.settimeout(max(deadline - time.monotonic(), 0.01))
                chunk = connection.recv(65536)
                if not chunk:
                    return
                drained += len(chunk)
        except OSError:
            return
