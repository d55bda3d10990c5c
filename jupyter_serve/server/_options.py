"""How one scoring server is configured: the knobs of `mlflow models serve` and a few of ours."""

from __future__ import annotations

from dataclasses import dataclass

from jupyter_serve.options import server_default

DEFAULT_MAX_BODY_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True)
class ServerOptions:
    """Everything a `ScoringServer` needs besides its model.

    The defaults of the options users set come from `jupyter_serve.options` (``models
    serve``'s, which are MLflow's: 127.0.0.1:5000, 60 s per request, one worker); the others
    are the scoring server's own, such as the 100 MB body limit of MLflow's serving container.
    """

    host: str = server_default("host")
    port: int = server_default("port")  # 0 picks a free port; the server's `port` then says which
    timeout: float = server_default("timeout")  # seconds per request; past it the client gets 504
    workers: int = server_default("workers")
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES  # larger bodies get 413, unread
    log_requests: bool = server_default("log_requests")
    # Guards POST /-/jupyter-serve/stop (header X-Jupyter-Serve-Secret), and with
    # `require_secret` every route, so that other local users cannot bypass Jupyter's auth.
    secret: str | None = None
    require_secret: bool = server_default("require_secret")
    # Requests queued together are merged into one predict call of at most this many
    # requests (when provably the same answer); 1 turns merging off.
    max_batch_size: int = server_default("max_batch_size")
    # Seconds a request may wait for others to join its batch (unless the batch fills first);
    # 0 flushes on the next loop tick, adding no latency.
    max_batch_wait: float = server_default("max_batch_wait")
    # Predictions (merged or not) computed at the same time; more queue up and merge.
    prediction_threads: int = 2
    # Share the port with other processes (SO_REUSEPORT): how worker processes listen.
    reuse_port: bool = False
    # The name Open Inference Protocol clients use for the model (/v2/models/<name>): the
    # deployment's name; None derives it from the model URI.
    model_name: str | None = None
    # Seconds a connection may take to send a request's complete head, counted from its
    # opening or its previous answer: idle keep-alive connections close after this (uvicorn's,
    # so MLflow's, 5 s), and so do headers sent a byte at a time.
    keep_alive_timeout: float = 5.0
    # Seconds a request body may go without a byte arriving before it gets 408 and its
    # connection closes; a slow upload that keeps progressing is never cut.
    body_stall_timeout: float = 30.0
    # Bytes of request bodies held at once, server-wide (None: twice max_body_bytes); a body
    # that does not fit gets 503, so concurrent large uploads cannot exhaust memory.
    max_body_bytes_in_flight: int | None = None
    # Seconds a stopping server lets the requests it already read finish before it answers
    # them 503 and closes (None: the request timeout).
    drain_timeout: float | None = server_default("drain_timeout")
    # One access-log line per request to the logger jupyter_serve.access (the CLI prints it
    # on stdout, as uvicorn does), "text" (uvicorn's line) or "json" (one object per line).
    access_log: bool = server_default("access_log")
    log_format: str = server_default("log_format")
    # The most recent scored rows kept in memory for `Deployment.requests`; 0 keeps none.
    capture: int = server_default("capture")
    # Append the scored rows as JSON lines to this file (a share of them: log_sample), without
    # the input columns of log_exclude, rotated past log_max_bytes, keeping log_backups files.
    log_predictions: str | None = server_default("log_predictions")
    log_sample: float = server_default("log_sample")
    log_exclude: tuple[str, ...] = server_default("log_exclude")
    log_max_bytes: int = server_default("log_max_bytes")
    log_backups: int = server_default("log_backups")

    @property
    def body_budget_bytes(self) -> int:
        """The bytes of request bodies the server holds at once (never below one body)."""
        if self.max_body_bytes_in_flight is None:
            return 2 * self.max_body_bytes
        return max(self.max_body_bytes_in_flight, self.max_body_bytes)
