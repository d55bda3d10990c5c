"""One deployment's scoring server, on its own thread and event loop.

ipykernel runs cells on its own event loop: a server sharing it would stop answering while a
cell runs, and deadlock when a cell waits on it. So each server owns a thread running its own
asyncio loop; other threads reach it only through ``call_soon_threadsafe`` (Tornado's one
thread-safe entry point, ``IOLoop.add_callback``, is the same thing).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import thread as futures_thread
from typing import Any

from tornado.netutil import bind_sockets

from jupyter_serve.errors import DeploymentError
from jupyter_serve.server._batching import PredictionBatcher
from jupyter_serve.server._connections import ScoringHTTPServer, make_http_server
from jupyter_serve.server._draining import drain_timeout_response
from jupyter_serve.server._handlers import ServedModel, ServingState
from jupyter_serve.server._invocations import ScoringRoutes
from jupyter_serve.server._metrics import ServerMetrics
from jupyter_serve.server._options import ServerOptions

logger = logging.getLogger("jupyter_serve.server")

_START_TIMEOUT_SECONDS = 30.0
_STOP_MARGIN_SECONDS = 30.0
_CLOSE_CONNECTIONS_TIMEOUT_SECONDS = 5.0
_SPARE_PREDICTION_THREADS = 4


class ScoringServer:
    """Serves one model over the MLflow scoring protocol from a thread of this process.

    ``start``, ``stop``, ``swap_model`` and ``metrics`` may be called from any thread.
    """

    def __init__(
        self,
        model: Any,
        options: ServerOptions,
        *,
        model_uri: str,
        version: str | None = None,
        on_remote_stop: Callable[[], None] | None = None,
    ) -> None:
        if options.workers != 1:
            raise DeploymentError(
                f"ScoringServer runs one in-process server, but workers={options.workers} was "
                "asked; use jupyter_serve.server.WorkerPool to serve with worker processes."
            )
        self.options = options
        self.host = options.host
        self.port = options.port
        self._current = ServedModel(model, model_uri, version)
        self._on_remote_stop = on_remote_stop
        self._metrics = ServerMetrics()
        self._lifecycle = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        self._state: ServingState | None = None
        self._stopped = False

    @property
    def url(self) -> str:
        """``http://host:port`` of the bound server (the real port when 0 was asked)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def metrics(self) -> ServerMetrics:
        """Live traffic figures; ``metrics.snapshot()`` is safe from any thread."""
        return self._metrics

    def captured_records(self) -> list[dict[str, Any]]:
        """The most recent scored rows (`ServerOptions.capture`), oldest first, as records
        (see `jupyter_serve.server._exchanges.Exchange.records`). Thread-safe."""
        state = self._state
        return state.recorder.records() if state is not None else []

    @property
    def model(self) -> Any:
        """The model new requests are answered with."""
        return self._current.model

    @property
    def model_uri(self) -> str:
        return self._current.model_uri

    @property
    def version(self) -> str | None:
        return self._current.version

    @property
    def is_running(self) -> bool:
        """True from a successful `start` until the server thread has ended."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self) -> None:
        """Bind the socket and run the server on its own thread; return once it accepts
        connections. Raises `DeploymentError` when the port is in use or the host cannot be
        bound, or when the server was already started. Thread-safe."""
        with self._lifecycle:
            if self._thread is not None or self._stopped:
                raise DeploymentError(
                    f"the server for {self.model_uri} was already started; create a new "
                    "ScoringServer to serve again."
                )
            sockets = bind_listening_sockets(
                self.host, self.port, reuse_port=self.options.reuse_port
            )
            self.port = sockets[0].getsockname()[1]
            ready = threading.Event()
            failures: list[BaseException] = []
            thread = threading.Thread(
                target=self._run,
                args=(sockets, ready, failures),
                name=f"jupyter-serve-{self.port}",
                daemon=True,
            )
            thread.start()
            if not ready.wait(_START_TIMEOUT_SECONDS) or failures:
                for sock in sockets:
                    sock.close()
                raise DeploymentError(
                    f"the scoring server on {self.url} failed to start: "
                    f"{failures[0] if failures else 'it did not become ready in time'}"
                )
            self._thread = thread

    def stop(self) -> None:
        """Stop serving: free the port at once, let the requests already read finish (up to the
        drain timeout; see `_draining.py`), then join the server thread. Idempotent and
        thread-safe.

        Called from the server thread itself (e.g. by an ``on_remote_stop`` callback), it
        schedules the stop and returns without waiting for it.
        """
        with self._lifecycle:
            self._stopped = True
            thread, loop, stop_requested = self._thread, self._loop, self._stop_requested
        if thread is None or loop is None or stop_requested is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has already closed
            loop.call_soon_threadsafe(stop_requested.set)
        if threading.current_thread() is not thread:
            thread.join(drain_timeout(self.options) + _STOP_MARGIN_SECONDS)

    def swap_model(self, model: Any, *, model_uri: str, version: str | None) -> None:
        """Answer new requests with ``model``; requests already received finish on the old
        one. The port stays and no request fails. Thread-safe."""
        served = ServedModel(model, model_uri, version)
        self._current = served
        state = self._state
        if state is not None:
            state.current = served

    def serve_forever(self) -> None:
        """Start if needed, then block until SIGINT or SIGTERM (or a remote stop) and stop
        cleanly. Signals are only handled when called from the main thread."""
        if self._thread is None:
            self.start()
        try:
            block_until_signalled(lambda: self.is_running)
        finally:
            self.stop()

    def _run(
        self, sockets: list[socket.socket], ready: threading.Event, failures: list[BaseException]
    ) -> None:
        try:
            asyncio.run(self._serve(sockets, ready))
        except BaseException as error:
            failures.append(error)
            logger.exception("the scoring server on %s failed", self.url)
        finally:
            ready.set()

    async def _serve(self, sockets: list[socket.socket], ready: threading.Event) -> None:
        options = self.options
        executor = ThreadPoolExecutor(
            # + one for large-body parsing, + the spares that take over from overdue predictions
            max_workers=options.prediction_threads + 1 + _SPARE_PREDICTION_THREADS,
            thread_name_prefix=f"jupyter-serve-{self.port}-predict",
        )
        state = ServingState(
            current=self._current,
            options=options,
            metrics=self._metrics,
            batcher=PredictionBatcher(
                executor,
                max_batch_size=options.max_batch_size,
                max_wait=options.max_batch_wait,
                max_concurrent=options.prediction_threads,
                overdue_after=options.timeout,
                max_overdue=_SPARE_PREDICTION_THREADS,
                on_queue_depth=self._metrics.set_queued,
                on_predict=self._metrics.predict_started,
            ),
            executor=executor,
            on_remote_stop=self._on_remote_stop,
        )
        http_server = make_http_server(
            ScoringRoutes(state),
            url=lambda: self.url,
            max_body_bytes=options.max_body_bytes,
            max_body_bytes_in_flight=options.body_budget_bytes,
            keep_alive_timeout=options.keep_alive_timeout,
            body_stall_timeout=options.body_stall_timeout,
        )
        self._stop_requested = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._state = state
        state.current = self._current  # a swap that raced the start-up wins
        http_server.add_sockets(sockets)
        ready.set()
        try:
            await self._stop_requested.wait()
        finally:
            await self._drain(http_server)
            # A prediction past its timeout may still run; it finishes on its own thread.
            executor.shutdown(wait=False, cancel_futures=True)
            release_at_exit(executor)
            state.recorder.close()  # the last access-log and inference-log lines are written

    async def _drain(self, http_server: ScoringHTTPServer) -> None:
        # The port is free at once; requests already read finish, up to the drain timeout.
        http_server.begin_drain()
        drain_seconds = drain_timeout(self.options)
        if not await http_server.drained(drain_seconds):
            http_server.answer_unfinished(drain_timeout_response(drain_seconds))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(
                http_server.close_all_connections(), _CLOSE_CONNECTIONS_TIMEOUT_SECONDS
            )


def release_at_exit(executor: ThreadPoolExecutor) -> None:
    """Let the interpreter exit without waiting for ``executor``'s threads: a prediction past
    the drain timeout (its request answered already) would otherwise hold a stopped process
    (or kernel) until it ends, since concurrent.futures joins every executor thread at exit.
    Ours are daemon threads (started from the server's daemon thread), so nothing else does."""
    joined_at_exit = getattr(futures_thread, "_threads_queues", None)
    if joined_at_exit is None:
        return
    for thread in list(getattr(executor, "_threads", ())):
        if thread.daemon:
            joined_at_exit.pop(thread, None)


def drain_timeout(options: ServerOptions) -> float:
    """Seconds a stopping server lets the requests in flight finish: ``drain_timeout``, or
    by default the request timeout (no request is cut before its own timeout)."""
    return options.timeout if options.drain_timeout is None else options.drain_timeout


def block_until_signalled(is_running: Callable[[], bool]) -> None:
    """Block while ``is_running()`` until SIGINT or SIGTERM arrives (signals are only caught
    when called from the main thread; the previous handlers are restored on return)."""
    stop_signal = threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: stop_signal.set())
    try:
        while is_running() and not stop_signal.wait(0.2):
            pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def bind_listening_sockets(
    host: str, port: int, *, reuse_port: bool = False
) -> list[socket.socket]:
    """Listening sockets for ``host:port``, or a `DeploymentError` saying why there are none."""
    try:
        return bind_sockets(port, address=host, reuse_port=reuse_port)
    except socket.gaierror as error:
        raise DeploymentError(
            f"cannot serve on host {host!r}: it does not resolve ({error.strerror}). "
            "Expected an IP address or a name of this machine, such as 127.0.0.1 or 0.0.0.0."
        ) from None
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise DeploymentError(
                f"port {port} on {host} is already in use. Choose another port "
                "(--port, or port 0 for a free one) or stop the server holding it."
            ) from None
        if error.errno == errno.EADDRNOTAVAIL:
            raise DeploymentError(
                f"cannot serve on host {host!r}: it is not an address of this machine. "
                "Use 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)."
            ) from None
        if error.errno == errno.EACCES:
            raise DeploymentError(
                f"not allowed to listen on port {port} of {host} (ports below 1024 need "
                "privileges). Choose a port above 1024."
            ) from None
        raise DeploymentError(
            f"cannot listen on {host}:{port}: {error.strerror or error}. Check the host and port."
        ) from None
