"""A Ray cluster's dashboard over plain HTTP: the Serve REST API and runtime-environment packages.

Only the standard library: the kernel needs neither Ray nor the cluster's Python version. The
routes are those of Ray's own clients (``serve deploy``, ``JobSubmissionClient``):
``GET /api/version``, ``GET|PUT /api/serve/applications/``, ``GET|PUT /api/packages/gcs/<name>``.
Every failure becomes one `DeploymentError` line saying what and what to do.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from jupyter_serve._version import __version__
from jupyter_serve.errors import DeploymentError

# Serve's REST API v2 with deployment options Ray 2.9 introduced (max_ongoing_requests).
MIN_RAY_VERSION = (2, 9)
_REQUEST_SECONDS = 60.0
_UPLOAD_SECONDS = 300.0


class RayDashboard:
    """The dashboard of one cluster at ``address`` (``http://host:8265``). Thread-safe."""

    def __init__(self, address: str) -> None:
        self.address = address.rstrip("/")

    def ray_version(self) -> str:
        """The cluster's Ray version; `DeploymentError` when it is unreachable, not a Ray
        dashboard, or too old for the Serve REST API."""
        status, body = self._request("GET", "/api/version")
        try:
            version = str(json.loads(body)["ray_version"])
        except (ValueError, KeyError, TypeError):
            version = ""
        if status != 200 or not version:
            raise DeploymentError(
                f"{self.address} does not answer as a Ray dashboard (GET /api/version: HTTP "
                f"{status}). Give the dashboard's address, e.g. ray+http://HOST:8265."
            )
        if _version_tuple(version) < MIN_RAY_VERSION:
            wanted = ".".join(map(str, MIN_RAY_VERSION))
            raise DeploymentError(
                f"the Ray cluster at {self.address} runs Ray {version}; deploying needs Ray "
                f"{wanted} or newer (Serve's REST API v2). Upgrade the cluster."
            )
        return version

    def serve_details(self) -> dict[str, Any]:
        """``GET /api/serve/applications/``: Serve's state, every application included."""
        status, body = self._request("GET", "/api/serve/applications/")
        if status in (404, 501):
            raise DeploymentError(
                f"the Ray cluster at {self.address} has no Serve REST API (HTTP {status}): its "
                "dashboard runs without the Serve module. Install ray[serve] on the cluster and "
                "start it with the dashboard (ray start --head --dashboard-host ...)."
            )
        if status != 200:
            raise DeploymentError(
                f"the Ray cluster at {self.address} failed to list its Serve applications "
                f"(HTTP {status}): {_one_line(body)}"
            )
        details: dict[str, Any] = json.loads(body)
        return details

    def put_applications(self, config: dict[str, Any]) -> None:
        """``PUT /api/serve/applications/``: the complete Serve config (it replaces every
        application: callers merge first)."""
        status, body = self._request(
            "PUT", "/api/serve/applications/", json.dumps(config).encode(), "application/json"
        )
        if status != 200:
            raise DeploymentError(
                f"the Ray cluster at {self.address} refused the Serve config (HTTP {status}): "
                f"{_one_line(body)}"
            )

    def has_package(self, uri: str) -> bool:
        status, body = self._request("GET", _package_route(uri))
        if status == 200:
            return True
        if status == 404:
            return False
        raise DeploymentError(
            f"the Ray cluster at {self.address} failed to look up package {uri} "
            f"(HTTP {status}): {_one_line(body)}"
        )

    def upload_package(self, uri: str, content: bytes) -> None:
        """Store ``content`` (a zip) as ``uri`` (``gcs://_ray_pkg_<hash>.zip``) unless the
        cluster has it already."""
        if self.has_package(uri):
            return
        status, body = self._request(
            "PUT", _package_route(uri), content, "application/octet-stream", _UPLOAD_SECONDS
        )
        if status != 200:
            raise DeploymentError(
                f"the Ray cluster at {self.address} refused package {uri} ({len(content)} "
                f"bytes, HTTP {status}): {_one_line(body)}"
            )

    def _request(
        self,
        method: str,
        route: str,
        body: bytes | None = None,
        content_type: str | None = None,
        timeout: float = _REQUEST_SECONDS,
    ) -> tuple[int, str]:
        # Not a browser's User-Agent: the dashboard redacts runtime_env for browsers, and a
        # read-merge-write must get the other applications' runtime_env back intact.
        headers = {"User-Agent": f"jupyter-serve/{__version__}"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(
            self.address + route, data=body, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode("utf-8", "replace")
        except (TimeoutError, urllib.error.URLError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            raise DeploymentError(
                f"cannot reach the Ray dashboard at {self.address} ({reason}). Check that the "
                "cluster is running and its dashboard listens there (ray start --head "
                "--dashboard-host ...; on Kubernetes: kubectl port-forward svc/<head> 8265)."
            ) from None


def _package_route(uri: str) -> str:
    protocol, _, name = uri.partition("://")
    return f"/api/packages/{protocol}/{name}"


def _version_tuple(version: str) -> tuple[int, ...]:
    parts: list[int] = []
    for part in version.split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def _one_line(text: str, limit: int = 2000) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + " ..."
