"""How deployments look in a notebook: rich HTML, and a clean text/plain for consoles and nbval."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from jupyter_serve._deployments._deployment import Deployment
from jupyter_serve._deployments._sample_request import (
    SECRET_HEADER,
    curl_command,
    sample_invocation_body,
)

_SECRET_PLACEHOLDER = "$JUPYTER_SERVE_SECRET"
_COLUMNS = ("name", "source", "version", "url", "status", "requests", "errors", "p50 ms", "p99 ms")


def _model_label(deployment: Deployment) -> str:
    version = f", version {deployment.version}" if deployment.version else ""
    return f"{deployment.model_uri}{version}"


class ServeSummary:
    """What ``%serve`` shows: where the model answers, and a request to paste into a shell."""

    def __init__(self, deployment: Deployment, *, swapped: bool, picked_port: bool) -> None:
        self.deployment = deployment
        self.swapped = swapped
        self.picked_port = picked_port
        self.curl = curl_command(
            deployment.url,
            sample_invocation_body(deployment.model),
            secret_placeholder=_SECRET_PLACEHOLDER if deployment.require_secret else None,
        )

    def _lines(self) -> list[tuple[str, str]]:
        d = self.deployment
        verb = "Swapped in" if self.swapped else "Serving"
        lines = [("headline", f"{verb} {d.name!r} ({_model_label(d)}) at {d.url}")]
        if d.proxy_url:
            lines.append(("proxy", f"Through Jupyter: {d.proxy_url}"))
        if self.swapped:
            lines.append(
                ("note", f"Same port {d.port}: requests in flight finished on the old model.")
            )
        elif self.picked_port:
            lines.append(
                ("note", f"Port {d.port} was free, so it was picked (--port chooses one).")
            )
        if d.require_secret:
            lines.append(
                (
                    "note",
                    f"Every request needs the header {SECRET_HEADER}: set {_SECRET_PLACEHOLDER} "
                    f"from jupyter_serve.deployments() (.secret); it is not printed here.",
                )
            )
        return lines

    def __repr__(self) -> str:
        text = [line for _, line in self._lines()]
        return "\n".join([*text, "Try it:", f"  {self.curl}"])

    def _repr_html_(self) -> str:
        d = self.deployment
        parts = []
        for kind, line in self._lines():
            escaped = html.escape(line)
            if kind == "headline":
                escaped = escaped.replace(
                    html.escape(d.url),
                    f'<a href="{html.escape(d.url)}/ping">{html.escape(d.url)}</a>',
                )
                parts.append(f"<div><b>{escaped}</b></div>")
            elif kind == "proxy" and d.proxy_url:
                link = html.escape(d.proxy_url)
                parts.append(f'<div>Through Jupyter: <a href="{link}ping">{link}</a></div>')
            else:
                parts.append(f"<div>{escaped}</div>")
        parts.append(
            f'<div>Try it:</div><pre style="white-space: pre-wrap">{html.escape(self.curl)}</pre>'
        )
        return '<div class="jupyter-serve-summary">' + "".join(parts) + "</div>"


def _latency(metrics: dict[str, Any], key: str) -> str:
    latency = metrics.get("latency_ms") or {}
    value = latency.get(key) if isinstance(latency, dict) else None
    return f"{value:.1f}" if isinstance(value, (int, float)) else "-"


def deployment_row(deployment: Deployment) -> tuple[str, ...]:
    """One row of the ``%deployments`` table, as text cells in ``_COLUMNS`` order."""
    try:
        metrics = deployment.metrics
    except Exception:  # a table must render even if one server misbehaves
        metrics = {}
    return (
        deployment.name,
        deployment.model_uri,
        deployment.version or "-",
        deployment.url,
        deployment.status,
        str(metrics.get("requests", "-")),
        str(metrics.get("errors", "-")),
        _latency(metrics, "p50"),
        _latency(metrics, "p99"),
    )


class DeploymentListing:
    """What ``%deployments`` shows: one row per deployment of this kernel."""

    def __init__(self, deployments: Sequence[Deployment]) -> None:
        self.rows = [deployment_row(d) for d in deployments]

    def __repr__(self) -> str:
        if not self.rows:
            return "No deployments in this kernel. Start one with %serve."
        table = [_COLUMNS, *self.rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(_COLUMNS))]
        return "\n".join(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in table
        )

    def _repr_html_(self) -> str:
        if not self.rows:
            return "<div>No deployments in this kernel. Start one with <code>%serve</code>.</div>"
        head = "".join(f"<th>{html.escape(c)}</th>" for c in _COLUMNS)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
            for row in self.rows
        )
        return (
            '<table class="jupyter-serve-deployments">'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )
