"""Where a proxied request may go: a registered deployment on loopback, never the URL's choice.

The proxy's URL names a deployment id and a path; the host and port always come from the
deployment's discovery record, and only loopback hosts are accepted (jupyter-server-proxy's
CVE-2022-21697 was an SSRF through a host taken from the URL). The path is forwarded still
percent-encoded, after rejecting anything that could change which resource or which server it
names once some other component decodes it: dot segments (plain or encoded), encoded slashes
and backslashes, empty segments (``//host``), userinfo (``@host``) and control characters.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import unquote, unquote_plus

# ``<pid>-<name>`` for a kernel's deployment, ``remote-<8 hex>-<name>`` for a remote one.
_DEPLOYMENT_ID = re.compile(r"^([0-9]{1,10}|remote-[0-9a-f]{8})-[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PERCENT_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Printable ASCII without the characters that delimit or rewrite URLs (backslash, @, #, space).
_RAW_PATH_CHARS = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,;=:%/]*$")
_FORBIDDEN_ESCAPES = re.compile(r"%(2f|5c|40|00|[01][0-9a-f]|7f)", re.IGNORECASE)
# A server bound to every interface is reachable on the loopback one of the same family.
_WILDCARD_TO_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1", "localhost": "127.0.0.1"}


class ProxyTargetError(ValueError):
    """A proxied URL or record that must not be forwarded; the message is safe to show."""


def is_deployment_id(text: str) -> bool:
    """Whether ``text`` has the shape of a deployment id (``<pid>-<name>``)."""
    return bool(_DEPLOYMENT_ID.match(text))


def loopback_host(record_host: str) -> str:
    """The loopback address to connect to for a deployment announced on ``record_host``.

    Raises :class:`ProxyTargetError` for any host that is not loopback (or a wildcard bind,
    which includes loopback): the proxy never forwards off this machine.
    """
    host = _WILDCARD_TO_LOOPBACK.get(record_host, record_host)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise ProxyTargetError(
            "the deployment listens on a host that is not loopback; the proxy only forwards "
            "to servers on 127.0.0.1 or ::1. Serve it with host='127.0.0.1'."
        )
    return str(address)


def upstream_path(raw_path: str) -> str:
    """Validate the still-encoded path after ``proxy/<id>``; return the path to request.

    An empty path means ``/``. Raises :class:`ProxyTargetError` for paths that try to escape
    the deployment's server or smuggle another host in.
    """
    if raw_path == "":
        return "/"
    if not raw_path.startswith("/"):
        raise ProxyTargetError("the path after the deployment id must start with '/'")
    if not _RAW_PATH_CHARS.match(raw_path) or _PERCENT_ESCAPE.search(raw_path):
        raise ProxyTargetError(
            "the proxied path holds characters a URL path may not carry unescaped "
            "(backslash, '@', spaces, bad %-escapes); percent-encode them"
        )
    if _FORBIDDEN_ESCAPES.search(raw_path):
        raise ProxyTargetError(
            "the proxied path holds an encoded slash, backslash, '@' or control character; "
            "these are refused so the path cannot name another resource or host"
        )
    segments = raw_path[1:].split("/")
    for index, segment in enumerate(segments):
        if segment == "" and index != len(segments) - 1:
            raise ProxyTargetError("the proxied path holds an empty segment ('//'); remove it")
        if unquote(segment) in (".", ".."):
            raise ProxyTargetError(
                "the proxied path holds a '.' or '..' segment (plain or %-encoded); "
                "paths may not climb out of the deployment"
            )
    return raw_path


# Jupyter accepts its token (and XSRF token) as query parameters too: credentials, not data.
_JUPYTER_QUERY_CREDENTIALS = frozenset({"token", "_xsrf"})


def forwarded_query(raw_query: str) -> str:
    """``raw_query`` without Jupyter's credential parameters; the rest untouched, in order."""
    if not raw_query:
        return ""
    kept = [
        part
        for part in raw_query.split("&")
        if unquote_plus(part.partition("=")[0]) not in _JUPYTER_QUERY_CREDENTIALS
    ]
    return "&".join(kept)


@dataclass(frozen=True)
class UpstreamTarget:
    """The one server and path a proxied request goes to."""

    host: str
    port: int
    path: str
    # A remote deployment's route prefix (``/spam`` on Ray's proxy), checked by discovery.
    prefix: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.port, int) or not 0 < self.port < 65536:
            raise ProxyTargetError("the deployment's discovery record holds no valid port")

    def url(self, query: str) -> str:
        """The absolute URL to request, with ``query`` (raw, without ``?``) appended.

        Jupyter's credential parameters (``token``, ``_xsrf``) are left out of the query.
        """
        host = f"[{self.host}]" if ":" in self.host else self.host
        kept = forwarded_query(query)
        suffix = f"?{kept}" if kept else ""
        return f"http://{host}:{self.port}{self.prefix}{self.path}{suffix}"


def remote_refusal(host: str, what: str) -> str:
    """The message refusing to contact remote ``host`` for ``what``, naming the setting."""
    return (
        f"the Jupyter server does not contact remote host {host!r} ({what}): it is not in "
        "c.JupyterServeProxy.allowed_remote_hosts. An administrator may add it to "
        "jupyter_server_config.py, e.g. c.JupyterServeProxy.allowed_remote_hosts = "
        f"[{host!r}]; or reach the deployment at its own URL."
    )
