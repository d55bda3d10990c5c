"""What the proxy answers on its own, and whose fault it names.

A client's fault (a body over the limit, a stalled upload) is a 4xx that says so; the proxy's
own limits (too many requests or uploads at once) are a 503 naming the setting; only a
deployment that refuses, drops or does not answer in time is blamed (502, 504).
"""

from __future__ import annotations

from tornado.concurrent import Future
from tornado.httpclient import HTTPResponse
from tornado.simple_httpclient import HTTPTimeoutError

from jupyter_serve.serverext._settings import JupyterServeProxy


def over_limit_message(what: str, limit: int) -> str:
    """The 413 message for ``what`` (a body) over the proxy's ``limit``."""
    return f"{what} is over the proxy's limit of {limit} bytes (c.JupyterServeProxy.max_body_size)"


def stalled_body_message(timeout: float) -> str:
    """The 408 message for a body that paused longer than ``timeout`` seconds."""
    return (
        f"the request body stalled: no byte of it arrived for {timeout:g} s "
        "(c.JupyterServeProxy.body_idle_timeout). The client must send its body without "
        "pausing; the deployment was not at fault."
    )


def busy_uploads_message(waited: float) -> str:
    """The 503 message for a streamed upload that found no free permit in ``waited`` s."""
    return (
        "the proxy is streaming as many uploads to deployments as it may "
        f"(c.JupyterServeProxy.max_streamed_uploads) and none ended within {waited:g} s; "
        "retry later"
    )


def failure_of(answer: Future[HTTPResponse]) -> BaseException | None:
    """The error a finished upstream request ended with, if any (marks it as seen)."""
    return None if answer.cancelled() else answer.exception()


def failure_answer(
    error: BaseException, settings: JupyterServeProxy, deployment_id: str
) -> tuple[int, str]:
    """Status and message for an upstream request to ``deployment_id`` that ended in ``error``."""
    if isinstance(error, HTTPTimeoutError) and "queue" in str(error):
        return 503, (
            "the proxy already forwards as many requests as it may "
            f"(c.JupyterServeProxy.max_clients = {settings.max_clients}) and none ended "
            f"within {settings.connect_timeout:g} s; retry later. Deployment "
            f"{deployment_id} was not contacted."
        )
    if isinstance(error, HTTPTimeoutError):
        return 504, (
            f"deployment {deployment_id} did not answer in time "
            f"(connect {settings.connect_timeout:g} s, request "
            f"{settings.request_timeout:g} s; c.JupyterServeProxy)"
        )
    return 502, (  # refused, reset, ...: all mean "not reachable"
        f"deployment {deployment_id} did not answer: its server refused or dropped "
        "the connection. It may have stopped or crashed; check its notebook."
    )
