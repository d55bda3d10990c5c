"""The deployments this Jupyter server may show and reach, read from the kernels' discovery files.

A deployment belongs to this server when its record names one of this server's kernels; files
of dead processes are removed as they are met. Remote deployments (records of kind ``remote``)
outlive the kernel that made them, so every remote record of this user is listed. Nothing here
keeps state between requests: the discovery directory is the single source of truth, shared
with the kernels.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Collection, Mapping
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from jupyter_serve.discovery import (
    DeploymentRecord,
    pid_is_alive,
    read_record,
    read_records,
    record_path,
)
from jupyter_serve.errors import DeploymentError
from jupyter_serve.serverext._headers import SECRET_HEADER
from jupyter_serve.serverext._target import ProxyTargetError, is_deployment_id, loopback_host

# The kernel side's control route (jupyter_serve.server.STOP_ROUTE). Not imported from there:
# that module pulls in the scoring stack (pandas), which the Jupyter server process never needs.
STOP_ROUTE = "/-/jupyter-serve/stop"
_POLL_INTERVAL = 0.05


class DeploymentStopTimeout(DeploymentError):
    """A deployment was asked to stop and was still running when the deadline passed."""


def unknown_deployment_message(deployment_id: str) -> str:
    """The 404 message for ``deployment_id``; names it only when it is a well-formed id."""
    named = f"deployment {deployment_id}" if is_deployment_id(deployment_id) else "that deployment"
    return (
        f"no running {named} in a kernel of this Jupyter server; it may have stopped. "
        "GET jupyter-serve/api/deployments lists the running ones."
    )


def records_of_kernels(kernel_ids: Collection[str]) -> list[DeploymentRecord]:
    """Live deployments whose kernel is in ``kernel_ids``, and every remote deployment; stale
    files are deleted on the way."""
    return [
        record
        for record in read_records(remove_stale=True)
        if record.is_remote or (record.kernel_id is not None and record.kernel_id in kernel_ids)
    ]


def record_of_kernels(deployment_id: str, kernel_ids: Collection[str]) -> DeploymentRecord | None:
    """The live record of ``deployment_id`` if one of ``kernel_ids`` owns it, else None.

    Reads only that deployment's file, so the proxy's per-request cost does not grow with the
    number of deployments.
    """
    if not is_deployment_id(deployment_id):
        return None
    record = read_record(deployment_id)
    if record is not None and record.is_remote:
        return record
    if record is None or record.kernel_id not in kernel_ids:
        return None
    if not pid_is_alive(record.pid):
        with contextlib.suppress(FileNotFoundError):
            record_path(deployment_id).unlink()
        return None
    return record


def deployment_json(
    record: DeploymentRecord, *, proxy_url: str | None, notebook_path: str | None
) -> dict[str, Any]:
    """The API's view of one deployment: everything the front end shows, never the secret."""
    listed = {
        "id": record.id,
        "name": record.name,
        "kernel_id": record.kernel_id,
        "notebook_path": notebook_path,
        "model_uri": record.model_uri,
        "version": record.version,
        "status": record.status,
        "url": record.url,
        "proxy_url": proxy_url,
        "started_at": record.started_at,
        "metrics": record.metrics,
    }
    if record.is_remote:
        # Status and replicas as the kernel that deployed (or listed) it last saw them.
        listed |= {
            "target": record.target,
            "replicas": record.replicas,
            "target_replicas": record.target_replicas,
            "seen_at": record.seen_at,
        }
    return listed


def notebook_paths_by_kernel(sessions: list[Mapping[str, Any]]) -> dict[str, str]:
    """Map kernel id -> the session path, from the session manager's ``list_sessions()``."""
    paths: dict[str, str] = {}
    for session in sessions:
        kernel = session.get("kernel") or {}
        kernel_id, path = kernel.get("id"), session.get("path")
        if isinstance(kernel_id, str) and isinstance(path, str):
            paths[kernel_id] = path
    return paths


async def _port_answers(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=1.0)
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def stop_deployment(
    record: DeploymentRecord, http_client: AsyncHTTPClient, *, timeout: float
) -> None:
    """Ask ``record``'s server to stop it, and return once it has stopped.

    Stopped means its discovery file is gone or its port no longer accepts connections.
    Raises :class:`DeploymentError` when the server refuses, and
    :class:`DeploymentStopTimeout` when it is still up after ``timeout`` seconds.
    """
    if not record.secret:
        raise DeploymentError(
            f"deployment {record.id} cannot be stopped from the Jupyter server: its discovery "
            "record holds no secret. Stop it from its notebook with jupyter_serve.stop()."
        )
    try:
        host = loopback_host(str(record.host))
    except ProxyTargetError as error:
        raise DeploymentError(f"deployment {record.id} cannot be stopped: {error}") from error
    target = f"http://{host if ':' not in host else f'[{host}]'}:{record.port}{STOP_ROUTE}"
    deadline = time.monotonic() + timeout
    request = HTTPRequest(
        target,
        method="POST",
        body=b"",
        headers={SECRET_HEADER: record.secret},
        connect_timeout=min(timeout, 5.0),
        request_timeout=timeout,
        follow_redirects=False,
    )
    try:
        answer = await http_client.fetch(request, raise_error=False)
    except (OSError, HTTPClientError):
        answer = None  # not answering any more: the polling below decides
    if answer is not None and answer.code not in (200, 202, 204):
        raise DeploymentError(
            f"deployment {record.id} refused to stop: its server answered {answer.code} to "
            f"POST {STOP_ROUTE} (expected 202). Stop it from its notebook instead."
        )
    while time.monotonic() < deadline:
        if not record_path(record.id).exists() or not await _port_answers(host, record.port):
            return
        await asyncio.sleep(_POLL_INTERVAL)
    raise DeploymentStopTimeout(
        f"deployment {record.id} was asked to stop but still runs after {timeout:g} s; "
        "its kernel may be busy. Try again, or interrupt the kernel."
    )
