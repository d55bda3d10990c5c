"""Administrator-tunable limits of the proxy, read from the Jupyter server's configuration.

Set them like any Jupyter option, e.g. ``c.JupyterServeProxy.request_timeout = 300`` in
``jupyter_server_config.py`` or ``--JupyterServeProxy.max_body_size=...`` on the command line.
"""

from __future__ import annotations

import ipaddress

from traitlets import Float, Int, List, Unicode
from traitlets.config import LoggingConfigurable


class JupyterServeProxy(LoggingConfigurable):
    """Timeouts and size limits of ``{base_url}jupyter-serve/``."""

    connect_timeout = Float(
        10.0,
        help="Seconds to wait for a deployment's server to accept a proxied connection.",
    ).tag(config=True)

    # Longer than a deployment's own default --timeout (60 s), so its 504 reaches the client.
    request_timeout = Float(
        120.0,
        help="Seconds a proxied request may take in total before the client gets 504.",
    ).tag(config=True)

    max_body_size = Int(
        256 * 1024 * 1024,
        help="Largest request body, in bytes, the proxy forwards; larger ones get 413.",
    ).tag(config=True)

    stop_timeout = Float(
        15.0,
        help="Seconds DELETE on a deployment waits for it to stop before answering 504.",
    ).tag(config=True)

    max_clients = Int(
        100,
        help="Proxied requests forwarded at once; more wait in a queue (at most "
        "connect_timeout seconds, then 503).",
    ).tag(config=True)

    body_idle_timeout = Float(
        30.0,
        help="Seconds a request body may pause between two chunks; a stalled upload then gets "
        "408 and its connection is closed.",
    ).tag(config=True)

    max_streamed_uploads = Int(
        16,
        help="Request bodies over 1 MiB (or chunked) streamed to deployments at once; kept "
        "below max_clients so slow uploads never take every slot. Further ones wait (at most "
        "connect_timeout seconds, then 503). Smaller bodies are read whole before the "
        "deployment is contacted and hold no slot while they arrive.",
    ).tag(config=True)

    allowed_remote_hosts = List(
        Unicode(),
        default_value=[],
        help="Hosts of remote deployments (e.g. a Ray cluster's HTTP proxy and dashboard) the "
        "proxy may forward to and DELETE may undeploy from, as host names or IP addresses. "
        "Empty by default: the Jupyter server contacts no remote host unless listed here.",
    ).tag(config=True)

    def allows_remote_host(self, host: str) -> bool:
        """Whether ``allowed_remote_hosts`` lists ``host`` (names compared case-insensitively,
        addresses in any spelling)."""
        wanted = _normalized_host(host)
        return any(_normalized_host(allowed) == wanted for allowed in self.allowed_remote_hosts)


def _normalized_host(host: str) -> str:
    bare = host.strip().strip("[]").rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        return bare
