"""``{base_url}jupyter-serve/api/deployments``: list this server's deployments, stop one."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join
from tornado import web

from jupyter_serve.discovery import DeploymentRecord
from jupyter_serve.errors import DeploymentError
from jupyter_serve.serverext._base import JupyterServeHandler, escaped_json, http_error
from jupyter_serve.serverext._deployments import (
    DeploymentStopTimeout,
    deployment_json,
    notebook_paths_by_kernel,
    record_of_kernels,
    records_of_kernels,
    stop_deployment,
    unknown_deployment_message,
)
from jupyter_serve.serverext._remote import RemoteHostRefused, is_proxied, undeploy_remote
from jupyter_serve.serverext._settings import JupyterServeProxy
from jupyter_serve.serverext._upstream import UpstreamClient


def proxy_url(base_url: str, deployment_id: str) -> str:
    """The absolute path under which this server proxies ``deployment_id`` (ends with ``/``).

    The kernel side builds the same path from the server's jpserver file: ``url`` (which ends
    with ``base_url``) followed by ``jupyter-serve/proxy/<id>/``.
    """
    return url_path_join(base_url, "jupyter-serve/proxy", deployment_id) + "/"


class DeploymentListHandler(JupyterServeHandler):
    """``GET``: every live deployment of every kernel of this server, and every remote
    deployment, as a JSON array. A remote one the proxy may not reach has no ``proxy_url``."""

    def initialize(self, settings: JupyterServeProxy) -> None:
        self.proxy_settings = settings

    @web.authenticated
    @authorized
    async def get(self) -> None:
        kernel_ids = set(self.kernel_manager.list_kernel_ids())
        records = records_of_kernels(kernel_ids)
        sessions = await self.session_manager.list_sessions()  # type: ignore[no-untyped-call]
        paths = notebook_paths_by_kernel(sessions)
        listing = [
            deployment_json(
                record,
                proxy_url=proxy_url(self.base_url, record.id)
                if is_proxied(record, self.proxy_settings)
                else None,
                notebook_path=paths.get(record.kernel_id or ""),
            )
            for record in records
        ]
        self.set_header("Cache-Control", "no-store")
        self.finish(escaped_json(listing))


class DeploymentHandler(JupyterServeHandler):
    """``DELETE``: stop one deployment through its server's control route, or undeploy a
    remote one from its target (that application only); 204 once done."""

    def initialize(self, settings: JupyterServeProxy, upstream: UpstreamClient) -> None:
        self.proxy_settings = settings
        self.upstream = upstream

    @web.authenticated
    @authorized
    async def delete(self, deployment_id: str) -> None:
        record = record_of_kernels(deployment_id, set(self.kernel_manager.list_kernel_ids()))
        if record is None:
            raise http_error(404, unknown_deployment_message(deployment_id))
        if record.is_remote:
            await self._undeploy(record)
            return
        try:
            await stop_deployment(
                record, self.upstream.client(), timeout=self.proxy_settings.stop_timeout
            )
        except DeploymentStopTimeout as error:
            raise http_error(504, str(error)) from error
        except DeploymentError as error:
            raise http_error(502, str(error)) from error
        self.set_status(204)
        self.finish()

    async def _undeploy(self, record: DeploymentRecord) -> None:
        try:
            await undeploy_remote(record, self.proxy_settings)
        except RemoteHostRefused as error:
            raise http_error(403, str(error)) from error
        except DeploymentError as error:
            raise http_error(502, str(error)) from error
        self.set_status(204)
        self.finish()
