"""Which headers cross the proxy, in each direction.

Towards a deployment: never Jupyter's credentials (cookies, ``Authorization``, XSRF tokens), never
hop-by-hop headers, never a client-chosen deployment secret. Back to the browser: never anything
that would let a deployment act on the Jupyter origin (cookies, CORS grants) or loosen the
security headers Jupyter sets on every answer.
"""

from __future__ import annotations

from collections.abc import Iterable

from tornado.httputil import HTTPHeaders

# Same name as jupyter_serve.server.SECRET_HEADER, kept here to leave the scoring stack unloaded.
SECRET_HEADER = "X-Jupyter-Serve-Secret"

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)

# Every cookie a browser sends to the Jupyter origin belongs to Jupyter or JupyterHub (login,
# _xsrf); a scoring server needs none, so no cookie is forwarded at all.
_REQUEST_ONLY_HERE = frozenset(
    {
        "host",
        "cookie",
        "authorization",
        "x-xsrftoken",
        "x-xsrf-token",
        "x-csrftoken",
        SECRET_HEADER.lower(),
        # Tornado answered any 100-continue already; the body is re-sent as it arrives.
        "expect",
        "content-length",
    }
)

_RESPONSE_ONLY_THERE = frozenset(
    {
        "set-cookie",
        "set-cookie2",
        "content-security-policy",
        "x-content-type-options",
        "x-frame-options",
        "strict-transport-security",
    }
)


def _connection_tokens(headers: HTTPHeaders) -> set[str]:
    """Header names listed in ``Connection``: hop-by-hop too (RFC 9110 section 7.6.1)."""
    tokens: set[str] = set()
    for value in headers.get_list("Connection"):
        tokens.update(token.strip().lower() for token in value.split(",") if token.strip())
    return tokens


def request_headers_to_forward(
    incoming: HTTPHeaders, *, secret: str | None, body_length: int | None
) -> HTTPHeaders:
    """The headers to send to the deployment for a request that arrived with ``incoming``.

    ``secret`` (the deployment's, from its record) is added as ``X-Jupyter-Serve-Secret``;
    ``body_length`` is the declared Content-Length, kept when the body is forwarded.
    """
    dropped = HOP_BY_HOP | _REQUEST_ONLY_HERE | _connection_tokens(incoming)
    forwarded = HTTPHeaders()
    for name, value in incoming.get_all():
        if name.lower() not in dropped:
            forwarded.add(name, value)
    if body_length is not None:
        forwarded["Content-Length"] = str(body_length)
    if secret:
        forwarded[SECRET_HEADER] = secret
    return forwarded


def response_headers_to_return(upstream: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The deployment's answer headers that go back to the client, in order."""
    pairs = list(upstream)
    connection = {
        token.strip().lower()
        for name, value in pairs
        if name.lower() == "connection"
        for token in value.split(",")
    }
    dropped = HOP_BY_HOP | _RESPONSE_ONLY_THERE | connection
    return [
        (name, value)
        for name, value in pairs
        if name.lower() not in dropped and not name.lower().startswith("access-control-")
    ]


def docs_page_policy(docs_url: str) -> str:
    """The Content-Security-Policy of a deployment's ``/docs`` page (Swagger UI) seen through
    the proxy at ``docs_url`` (absolute, ending in ``/docs``).

    Jupyter's API policy (``default-src 'none'``) would block the page's own scripts and
    styles. This one lets it run only the scripts and styles its own deployment serves under
    ``docs_url/`` (the files come from a package, not from the model), and call back only into
    the Jupyter origin, where the proxy's authentication and XSRF checks still apply.
    """
    assets = docs_url + "/"
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {assets}",
            # Swagger UI's React components set style attributes on the elements they draw.
            f"style-src {assets} 'unsafe-inline'",
            f"img-src {assets} data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
        ]
    )


def is_docs_page(upstream_path: str) -> bool:
    """Whether a proxied path is a deployment's ``/docs`` page or one of its assets."""
    path = upstream_path.partition("?")[0]
    return path == "/docs" or path.startswith("/docs/")
