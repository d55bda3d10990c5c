"""Deploy, list and remove our applications on a Ray cluster, through its dashboard only.

A ``PUT /api/serve/applications/`` replaces every application of the cluster, so each change
is a read, merge, write: the other applications are written back exactly as the cluster
reported their configs, Serve's HTTP and proxy options are kept, and only ours is added,
replaced or left out. Serving again under a running name is a rolling update done by Ray:
new replicas start before the old ones go, and no request fails.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_serve.errors import DeploymentError
from jupyter_serve.targets.ray._config import (
    DEPLOYMENT_NAME,
    Scaling,
    ServingArgs,
    application_config,
    is_ours,
)
from jupyter_serve.targets.ray._dashboard import RayDashboard
from jupyter_serve.targets.ray._packages import model_package, our_package

SCHEME = "ray+"
_TOP_LEVEL_KEYS = ("proxy_location", "http_options", "grpc_options", "target_capacity")
_DEFAULT_HTTP_PORT = 8000
_POLL_SECONDS = 1.0
_FAILED_STATUSES = ("DEPLOY_FAILED", "UNHEALTHY")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class RemoteApplication:
    """One of our applications on a cluster, as its dashboard reports it."""

    name: str
    target: str
    url: str
    status: str
    message: str
    model_uri: str
    version: str | None
    replicas: int
    target_replicas: int | None


def parse_target(target: str) -> tuple[str, str]:
    """``ray+http://host:8265`` -> (the dashboard's address, the host clients reach)."""
    if not target.startswith(SCHEME):
        raise DeploymentError(
            f"unknown deployment target {target!r}; expected ray+http://HOST:8265 (a Ray "
            "cluster's dashboard address)."
        )
    address = target[len(SCHEME) :]
    parsed = urllib.parse.urlsplit(address)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise DeploymentError(
            f"invalid Ray target {target!r}; expected ray+http://HOST:PORT, e.g. "
            "ray+http://127.0.0.1:8265."
        )
    return f"{parsed.scheme}://{parsed.netloc}", parsed.hostname


class RayCluster:
    """Our applications on the Ray cluster at ``target`` (``ray+http://host:8265``)."""

    def __init__(self, target: str) -> None:
        address, host = parse_target(target)
        self.target = target
        self.host = host
        self.dashboard = RayDashboard(address)

    def build_application(
        self, model_dir: Path, serving: ServingArgs, scaling: Scaling, requirements: list[str]
    ) -> dict[str, Any]:
        """Upload the model and our package (once each), and return our application's config."""
        model = model_package(model_dir)
        ours = our_package()
        self.dashboard.upload_package(model.uri, model.content)
        self.dashboard.upload_package(ours.uri, ours.content)
        return application_config(
            serving,
            scaling,
            model_package_uri=model.uri,
            our_package_uri=ours.uri,
            pip_requirements=requirements,
        )

    def deploy(
        self, application: dict[str, Any], *, wait: float, progress: Progress | None = None
    ) -> RemoteApplication:
        """Add or replace ``application``, keeping every other one; return once it answers
        ``/ping`` through Ray's HTTP proxy. `DeploymentError` with Ray's message when the
        deployment fails or is not ready within ``wait`` seconds."""
        self.dashboard.ray_version()
        name = application["name"]
        details = self.dashboard.serve_details()
        previous = details.get("applications", {}).get(name)
        if previous is not None and not is_ours(previous.get("deployed_app_config")):
            raise DeploymentError(
                f"the Ray cluster at {self.target} already runs an application named {name!r} "
                "that is not a jupyter-serve deployment; choose another name (--name)."
            )
        self.dashboard.put_applications(_merged(details, keep_out=name, add=application))
        before = None if previous is None else previous.get("last_deployed_time_s")
        app = self._wait_until_running(name, before, wait, progress)
        self._wait_until_pinged(app, wait, progress)
        return app

    def undeploy(self, name: str) -> None:
        """Remove our application ``name``; every other application keeps running."""
        details = self.dashboard.serve_details()
        app = details.get("applications", {}).get(name)
        if app is None or not is_ours(app.get("deployed_app_config")):
            ours = ", ".join(a.name for a in self._ours(details)) or "none"
            raise DeploymentError(
                f"no jupyter-serve deployment named {name!r} on the Ray cluster at "
                f"{self.target} (ours there: {ours})."
            )
        self.dashboard.put_applications(_merged(details, keep_out=name, add=None))

    def applications(self) -> list[RemoteApplication]:
        """Our applications on the cluster, by name."""
        return self._ours(self.dashboard.serve_details())

    def _ours(self, details: dict[str, Any]) -> list[RemoteApplication]:
        port = (details.get("http_options") or {}).get("port") or _DEFAULT_HTTP_PORT
        found = [
            self._describe(app, port)
            for app in (details.get("applications") or {}).values()
            if is_ours(app.get("deployed_app_config"))
        ]
        return sorted(found, key=lambda a: a.name)

    def _describe(self, app: dict[str, Any], port: int) -> RemoteApplication:
        config = app.get("deployed_app_config") or {}
        args = config.get("args") or {}
        deployment = (app.get("deployments") or {}).get(DEPLOYMENT_NAME) or {}
        replicas = [r for r in deployment.get("replicas") or [] if r.get("state") == "RUNNING"]
        prefix = app.get("route_prefix") or config.get("route_prefix") or f"/{app['name']}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        message = app.get("message") or deployment.get("message") or ""
        return RemoteApplication(
            name=app["name"],
            target=self.target,
            url=f"http://{host}:{port}{prefix}",
            status=str(app.get("status", "UNKNOWN")),
            message=str(message),
            model_uri=str(args.get("model_uri", "")),
            version=None if args.get("version") is None else str(args["version"]),
            replicas=len(replicas),
            target_replicas=deployment.get("target_num_replicas"),
        )

    def _wait_until_running(
        self, name: str, before: float | None, wait: float, progress: Progress | None
    ) -> RemoteApplication:
        deadline = time.monotonic() + wait
        said = ""
        last: RemoteApplication | None = None
        while True:
            details = self.dashboard.serve_details()
            port = (details.get("http_options") or {}).get("port") or _DEFAULT_HTTP_PORT
            raw = (details.get("applications") or {}).get(name)
            if raw is not None:
                last = self._describe(raw, port)
                fresh = before is None or raw.get("last_deployed_time_s") != before
                if fresh and last.status == "RUNNING":
                    return last
                if fresh and last.status in _FAILED_STATUSES:
                    raise DeploymentError(
                        f"Ray failed to deploy {name!r} ({last.status}): {_short(last.message)}"
                    )
                news = f"{last.status}: {_short(last.message)}" if last.message else last.status
                if progress is not None and news != said:
                    progress(f"{name}: {news}")
                    said = news
            if time.monotonic() > deadline:
                state = f"{last.status}: {_short(last.message)}" if last else "not listed"
                raise DeploymentError(
                    f"{name!r} was not running on the Ray cluster after {wait:g} s ({state}). "
                    "If replicas wait for resources, free some or ask for fewer (--replicas); "
                    "a first deployment installs the model's requirements, which can take "
                    "minutes (--wait)."
                )
            time.sleep(_POLL_SECONDS)

    def _wait_until_pinged(
        self, app: RemoteApplication, wait: float, progress: Progress | None
    ) -> None:
        deadline = time.monotonic() + wait
        problem = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{app.url}/ping", timeout=10) as response:
                    if response.status == 200:
                        return
            except urllib.error.HTTPError as error:
                problem = f"HTTP {error.code}"
            except OSError as error:
                problem = str(getattr(error, "reason", error))
            time.sleep(_POLL_SECONDS)
        raise DeploymentError(
            f"{app.name!r} runs on the Ray cluster but {app.url}/ping did not answer within "
            f"{wait:g} s ({problem}). Check that Serve's HTTP proxy is reachable from here "
            "(its port, and its host: serve start --http-host)."
        )


def _merged(
    details: dict[str, Any], *, keep_out: str, add: dict[str, Any] | None
) -> dict[str, Any]:
    """The complete Serve config to PUT: every other application as the cluster has it."""
    applications = []
    for name, app in (details.get("applications") or {}).items():
        if name == keep_out or app.get("status") == "DELETING":
            continue
        config = app.get("deployed_app_config")
        if not config:
            raise DeploymentError(
                f"the Ray cluster runs application {name!r} deployed from Python (serve.run), "
                "not from a config; Serve's REST API would delete it. Deploy it with "
                "`serve deploy` first, or use a cluster without it."
            )
        applications.append(config)
    if add is not None:
        applications.append(add)
    merged: dict[str, Any] = {
        key: details[key] for key in _TOP_LEVEL_KEYS if details.get(key) is not None
    }
    merged["applications"] = applications
    return merged


def _short(text: str, limit: int = 600) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + " ..."


class RemoteListing:
    """Our applications on one cluster as a table (text and HTML), for ``%deployments``."""

    def __init__(self, target: str, applications: list[RemoteApplication]) -> None:
        self.target = target
        self.applications = applications

    def rows(self) -> list[tuple[str, ...]]:
        rows: list[tuple[str, ...]] = [("name", "status", "replicas", "model", "url")]
        for app in self.applications:
            wanted = "?" if app.target_replicas is None else str(app.target_replicas)
            model = f"{app.model_uri} (version {app.version})" if app.version else app.model_uri
            rows.append((app.name, app.status, f"{app.replicas}/{wanted}", model, app.url))
        return rows

    def __repr__(self) -> str:
        rows = self.rows()
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = [f"jupyter-serve deployments on {self.target}:"]
        lines += [
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
        ]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        import html

        head, *body = self.rows()
        cells = "".join(f"<th>{html.escape(c)}</th>" for c in head)
        trs = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body
        )
        caption = f"<caption>jupyter-serve deployments on {html.escape(self.target)}</caption>"
        return f"<table>{caption}<thead><tr>{cells}</tr></thead><tbody>{trs}</tbody></table>"
