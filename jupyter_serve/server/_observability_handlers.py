"""The routes that describe a deployment rather than score with it: ``/metrics`` (Prometheus),
``/openapi.json`` and ``/docs`` (Swagger UI, its assets served from the swagger-ui-py
package, so the page works offline and through the Jupyter proxy).

They are handlers like the others (`_ScoringHandler`): the same secret check, limits, 405s
and request counting.
"""

from __future__ import annotations

import importlib.util
import mimetypes
from functools import lru_cache
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from jupyter_serve.protocol import ScoringResponse, not_found_response
from jupyter_serve.server._handlers import ServingState, _ScoringHandler
from jupyter_serve.server._prometheus import CONTENT_TYPE, exposition, registry_for

# The Swagger UI files the page loads (URL name: file name); nothing else of the package is
# served. /docs/oauth2-redirect is where MLflow's (FastAPI's) page has it too.
_SWAGGER_ASSETS = {
    "swagger-ui.css": "swagger-ui.css",
    "swagger-ui-bundle.js": "swagger-ui-bundle.js",
    "favicon-32x32.png": "favicon-32x32.png",
    "favicon-16x16.png": "favicon-16x16.png",
    "oauth2-redirect": "oauth2-redirect.html",
}


class MetricsHandler(_ScoringHandler):
    allowed_methods = ("GET",)

    def initialize(self, state: ServingState, registry: CollectorRegistry) -> None:  # type: ignore[override]
        super().initialize(state)
        self._registry = registry

    async def respond(self) -> ScoringResponse:
        return ScoringResponse(200, exposition(self._registry), CONTENT_TYPE)


class OpenAPIHandler(_ScoringHandler):
    allowed_methods = ("GET",)

    async def respond(self) -> ScoringResponse:
        from jupyter_serve.server._openapi import openapi_document_bytes

        return ScoringResponse(
            200, openapi_document_bytes(self._state), "application/json; charset=utf-8"
        )


class DocsHandler(_ScoringHandler):
    allowed_methods = ("GET",)

    async def respond(self) -> ScoringResponse:
        from jupyter_serve.server._openapi import docs_page

        return ScoringResponse(200, docs_page(self._state), "text/html; charset=utf-8")


class DocsAssetHandler(_ScoringHandler):
    allowed_methods = ("GET",)

    async def respond(self) -> ScoringResponse:
        name = self.request.path.rpartition("/")[2]
        if name == "swagger-initializer.js":
            from jupyter_serve.server._openapi import INITIALIZER_SCRIPT

            return ScoringResponse(200, INITIALIZER_SCRIPT, "text/javascript; charset=utf-8")
        file_name = _SWAGGER_ASSETS.get(name)
        asset = swagger_asset(file_name) if file_name is not None else None
        if asset is None:
            return not_found_response()
        body, content_type = asset
        return ScoringResponse(200, body, content_type, (("Cache-Control", "max-age=3600"),))


def swagger_ui_directory() -> Path:
    """Where the installed swagger-ui-py package keeps Swagger UI's files (found without
    importing the package, which would import its web-framework glue)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the swagger-ui-py package is not installed; it ships the /docs page's files. "
            "Reinstall jupyter-serve (pip install jupyter-serve) to get it."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "static"


@lru_cache(maxsize=len(_SWAGGER_ASSETS))
def swagger_asset(name: str) -> tuple[bytes, str] | None:
    """The bytes and content type of one Swagger UI file, or None when it is missing."""
    path = swagger_ui_directory() / name
    if not path.is_file():
        return None
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if content_type == "application/javascript":
        content_type = "text/javascript"  # RFC 9239
    if content_type.startswith("text/") or content_type.endswith("javascript"):
        content_type += "; charset=utf-8"
    return path.read_bytes(), content_type


def observability_routes(state: ServingState) -> list[Any]:
    """The routes of this module, for one deployment's Tornado route table."""
    arguments = {"state": state}
    return [
        (r"/metrics", MetricsHandler, {**arguments, "registry": registry_for(state)}),
        (r"/openapi.json", OpenAPIHandler, arguments),
        (r"/docs", DocsHandler, arguments),
        (r"/docs/[^/]+", DocsAssetHandler, arguments),
    ]
