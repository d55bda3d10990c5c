"""What every jupyter-serve handler shares: Jupyter auth, and errors as escaped JSON.

Authentication and authorization apply to every verb, OPTIONS included (Jupyter's APIHandler
lets OPTIONS through unauthenticated for CORS preflights; these routes do not). Error messages
never reflect request text as markup: they are JSON with ``<``, ``>`` and ``&`` escaped, sent
as ``application/json`` with ``X-Content-Type-Options: nosniff`` (CVE-2024-35225 was a
reflected XSS through an error page of jupyter-server-proxy).
"""

from __future__ import annotations

import json
import math
from http.client import responses
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

# Deployments run in kernels and score with kernel code: whoever may use a kernel may use its
# deployments, the same way (read: list and GET; write: POST, PUT, DELETE, ...).
AUTH_RESOURCE = "kernels"


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def escaped_json(value: Any) -> str:
    """Strict JSON text of ``value`` with no character a browser could take for markup.

    Non-finite numbers (a latency percentile before the first request, say) become ``null``:
    ``NaN`` is not JSON and would break the front end's parser.
    """
    text = json.dumps(_finite(value), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def http_error(status: int, message: str) -> web.HTTPError:
    """An HTTPError whose message is shown as is (no %-formatting of request text)."""
    return web.HTTPError(status, "%s", message)


class JupyterServeHandler(APIHandler):
    """Base of the jupyter-serve routes: Jupyter's auth on every verb, JSON errors."""

    auth_resource = AUTH_RESOURCE

    async def prepare(self) -> None:  # type: ignore[override]
        """Authenticate before anything else, whatever the verb.

        Jupyter Server lets unauthenticated requests reach undecorated or unimplemented verbs
        unless ``allow_unauthenticated_access`` is off; these routes answer 403 to them all.
        """
        await super().prepare()
        if not self._finished and not self.current_user:
            raise http_error(403, "authentication required: send a Jupyter token or log in")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Answer ``{"message": ...}``; HTTPError messages are shown, anything else hidden."""
        exc_info = kwargs.get("exc_info")
        error = exc_info[1] if exc_info else None
        message = responses.get(status_code, "Unknown HTTP Error")
        if isinstance(error, web.HTTPError) and error.log_message:
            message = error.log_message % error.args if error.args else error.log_message
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(escaped_json({"message": message}))

    @web.authenticated
    @authorized
    def options(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Answer an authenticated OPTIONS with the allowed methods."""
        super().options(*args, **kwargs)
        self.set_status(204)
        self.finish()
