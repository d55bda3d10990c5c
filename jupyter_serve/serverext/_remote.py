"""Remote deployments seen from the Jupyter server: where the proxy may go, and undeploying.

The Jupyter server contacts a remote host (Ray's HTTP proxy, its dashboard) only when the
administrator lists it in ``c.JupyterServeProxy.allowed_remote_hosts``: the host comes from a
discovery record, and a Jupyter server reaching out to whatever a file names is the SSRF this
proxy exists to avoid. Loopback hosts are no exception: on a shared machine another port is
another user's server.
"""

from __future__ import annotations

import asyncio
import urllib.parse

from jupyter_serve.discovery import DeploymentRecord, remove_record
from jupyter_serve.errors import DeploymentError
from jupyter_serve.serverext._settings import JupyterServeProxy
from jupyter_serve.serverext._target import ProxyTargetError, UpstreamTarget, remote_refusal


class RemoteHostRefused(DeploymentError):
    """A remote host the configuration does not allow; the message names the setting."""


def remote_upstream(
    record: DeploymentRecord, settings: JupyterServeProxy, path: str
) -> UpstreamTarget:
    """Where to forward ``path`` of remote ``record``: its endpoint, if its host is allowed."""
    if not settings.allows_remote_host(record.host):
        raise RemoteHostRefused(
            remote_refusal(record.host, f"the endpoint of remote deployment {record.id}")
        )
    try:
        return UpstreamTarget(record.host, record.port, path, prefix=record.route_prefix)
    except ProxyTargetError as error:
        raise DeploymentError(f"deployment {record.id} cannot be proxied: {error}") from error


def is_proxied(record: DeploymentRecord, settings: JupyterServeProxy) -> bool:
    """Whether the proxy forwards to ``record`` (always for a kernel's own deployment)."""
    return not record.is_remote or settings.allows_remote_host(record.host)


async def undeploy_remote(record: DeploymentRecord, settings: JupyterServeProxy) -> None:
    """Remove remote ``record``'s application from its target (only that application) and
    its record. A deployment already gone from the target just loses its record.

    Raises :class:`RemoteHostRefused` when the target's host is not allowed, and
    `DeploymentError` with the target's own words when it cannot be reached or refuses.
    """
    assert record.target is not None
    from jupyter_serve.targets.ray import RayCluster, parse_target

    address, _ = parse_target(record.target)
    dashboard_host = urllib.parse.urlsplit(address).hostname or ""
    if not settings.allows_remote_host(dashboard_host):
        raise RemoteHostRefused(
            remote_refusal(dashboard_host, f"the dashboard of {record.target}, to undeploy")
        )

    def undeploy() -> None:
        cluster = RayCluster(record.target or "")
        if any(app.name == record.name for app in cluster.applications()):
            cluster.undeploy(record.name)

    await asyncio.to_thread(undeploy)
    remove_record(record.id)
