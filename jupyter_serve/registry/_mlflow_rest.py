"""MLflow's REST API spoken with the standard library, so the backend needs no ``mlflow``.

Endpoints as served by ``mlflow server`` 3.x (checked against 3.17.2): ``/api/2.0/mlflow/...``
for the registry, runs and logged models, and the artifact proxy
``/api/2.0/mlflow-artifacts/artifacts/<path>`` for downloads and uploads. Credentials come
from the environment as MLflow's own client reads them: ``MLFLOW_TRACKING_TOKEN`` (bearer),
else ``MLFLOW_TRACKING_USERNAME`` + ``MLFLOW_TRACKING_PASSWORD`` (basic);
``MLFLOW_TRACKING_INSECURE_TLS`` and ``MLFLOW_TRACKING_SERVER_CERT_PATH`` for TLS. Every
request has a timeout (``MLFLOW_HTTP_REQUEST_TIMEOUT``, default 30 s) so a dead server is an
error, never a hang.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import posixpath
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from jupyter_serve.errors import RegistryError

API_PREFIX = "/api/2.0/mlflow"
ARTIFACTS_PREFIX = "/api/2.0/mlflow-artifacts/artifacts"
DEFAULT_TIMEOUT_SECONDS = 30.0
_MAX_LISTED_FILES = 100_000


class MlflowApiError(Exception):
    """An MLflow server answered with an error (``error_code`` as MLflow names it)."""

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(f"{error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message

    def __str__(self) -> str:
        return f"{self.error_code}: {self.message}"

    @property
    def not_found(self) -> bool:
        """True for answers meaning "no such entity" (MLflow uses 404 and, for aliases, 400)."""
        return self.error_code == "RESOURCE_DOES_NOT_EXIST" or self.status == 404


def request_timeout() -> float:
    """Seconds one request may take: ``MLFLOW_HTTP_REQUEST_TIMEOUT`` if set, else 30."""
    configured = os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT")
    try:
        return float(configured) if configured else DEFAULT_TIMEOUT_SECONDS
    except ValueError:
        return DEFAULT_TIMEOUT_SECONDS


def _auth_header() -> str | None:
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        return f"Bearer {token}"
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        encoded = base64.standard_b64encode(f"{user}:{password}".encode()).decode("ascii")
        return f"Basic {encoded}"
    return None


def _ssl_context() -> ssl.SSLContext | None:
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        return ssl._create_unverified_context()
    cert_path = os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH")
    if cert_path:
        return ssl.create_default_context(cafile=cert_path)
    return None


class MlflowRestClient:
    """HTTP calls to one MLflow tracking server at ``base_url``. Thread-safe (no shared state
    besides immutable settings; each call opens its own connection)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def __repr__(self) -> str:
        return f"MlflowRestClient({self.base_url!r})"

    # -- JSON API -----------------------------------------------------------------------------

    def get(self, endpoint: str, **params: str) -> dict[str, Any]:
        """``GET /api/2.0/mlflow/<endpoint>?params``; the decoded JSON answer."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        return self._json("GET", f"{API_PREFIX}/{endpoint}{query}", None)

    def post(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/2.0/mlflow/<endpoint>`` with a JSON body; the decoded JSON answer."""
        return self._json("POST", f"{API_PREFIX}/{endpoint}", body)

    def delete(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        """``DELETE /api/2.0/mlflow/<endpoint>`` with a JSON body, as MLflow's client sends it."""
        return self._json("DELETE", f"{API_PREFIX}/{endpoint}", body)

    def _json(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode("utf-8")
        raw = self._send(method, self.base_url + path, data, "application/json")
        try:
            decoded = json.loads(raw or b"{}")
        except ValueError as error:
            raise RegistryError(
                f"the MLflow server at {self.base_url} answered {method} {path} with something "
                f"that is not JSON ({raw[:80]!r}); check that MLFLOW_TRACKING_URI points to an "
                "MLflow tracking server"
            ) from error
        return decoded if isinstance(decoded, dict) else {}

    # -- artifact proxy -----------------------------------------------------------------------

    def list_artifacts(self, path: str) -> list[tuple[str, bool]]:
        """``(name, is_dir)`` of the entries directly under ``path`` of the artifact proxy."""
        query = urllib.parse.urlencode({"path": path})
        raw = self._send("GET", f"{self.base_url}{ARTIFACTS_PREFIX}?{query}", None, None)
        files = json.loads(raw or b"{}").get("files", [])
        entries = []
        for entry in files[:_MAX_LISTED_FILES]:
            name = posixpath.basename(str(entry.get("path", "")).rstrip("/"))
            if name in ("", ".", ".."):
                continue
            entries.append((name, bool(entry.get("is_dir"))))
        return entries

    def download_tree(self, path: str, destination: Path) -> None:
        """Copy the artifact directory (or single file) ``path`` into ``destination``.

        Raises ``MlflowApiError`` (404) when nothing exists at ``path``.
        """
        entries = self.list_artifacts(path)
        if not entries:
            # A file, or nothing: the proxy lists both as empty.
            destination.parent.mkdir(parents=True, exist_ok=True)
            self._download_file(path, destination / posixpath.basename(path))
            return
        destination.mkdir(parents=True, exist_ok=True)
        for name, is_dir in entries:
            child = f"{path.rstrip('/')}/{name}"
            if is_dir:
                self.download_tree(child, destination / name)
            else:
                self._download_file(child, destination / name)

    def _download_file(self, path: str, target: Path) -> None:
        url = f"{self.base_url}{ARTIFACTS_PREFIX}/{urllib.parse.quote(path.lstrip('/'))}"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as out:
                self._exchange("GET", url, None, None, lambda answer: _copy_to(answer, out))
        except (OSError, _LocalWriteError) as error:
            cause = error.__cause__ if isinstance(error, _LocalWriteError) else error
            raise RegistryError(
                f"cannot write the downloaded model file {target} ({cause}); free disk space "
                "or set JUPYTER_SERVE_MLFLOW_CACHE to a writable directory with room"
            ) from None

    def upload_tree(self, source: Path, path: str) -> None:
        """Upload every file under the local directory ``source`` to artifact ``path``."""
        for file in sorted(p for p in source.rglob("*") if p.is_file()):
            relative = file.relative_to(source).as_posix()
            url = (
                f"{self.base_url}{ARTIFACTS_PREFIX}/"
                f"{urllib.parse.quote(path.strip('/') + '/' + relative)}"
            )
            self._send("PUT", url, file.read_bytes(), "application/octet-stream")

    # -- transport ----------------------------------------------------------------------------

    def _send(self, method: str, url: str, data: bytes | None, content_type: str | None) -> bytes:
        body: list[bytes] = []
        self._exchange(method, url, data, content_type, lambda answer: body.append(answer.read()))
        return body[0]

    def _exchange(
        self,
        method: str,
        url: str,
        data: bytes | None,
        content_type: str | None,
        consume: Callable[[Any], object],
    ) -> None:
        """One request whose answer ``consume`` reads; a timeout or a dropped connection while
        connecting or reading is a ``RegistryError`` naming the server."""
        request = urllib.request.Request(url, data=data, method=method)
        if content_type is not None:
            request.add_header("Content-Type", content_type)
        auth = _auth_header()
        if auth is not None and url.startswith(self.base_url):
            request.add_header("Authorization", auth)
        try:
            with urllib.request.urlopen(
                request, timeout=request_timeout(), context=_ssl_context()
            ) as answer:
                consume(answer)
        except urllib.error.HTTPError as error:
            raise _api_error(error) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            reason = getattr(error, "reason", None) or error or type(error).__name__
            raise RegistryError(
                f"cannot reach the MLflow tracking server at {self.base_url} ({reason}); check "
                "that it runs and that MLFLOW_TRACKING_URI (or --registry-uri) names it"
            ) from None


class _LocalWriteError(Exception):
    """Writing a download to disk failed (kept apart from network errors, which are OSErrors
    too)."""


def _copy_to(answer: Any, out: BinaryIO) -> None:
    while chunk := answer.read(1 << 20):
        try:
            out.write(chunk)
        except OSError as error:
            raise _LocalWriteError() from error


def _api_error(error: urllib.error.HTTPError) -> MlflowApiError | RegistryError:
    try:
        raw = error.read()
    except OSError:
        raw = b""
    try:
        payload = json.loads(raw)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and "error_code" in payload:
        return MlflowApiError(error.code, str(payload["error_code"]), str(payload.get("message")))
    if error.code in (401, 403):
        return RegistryError(
            f"the MLflow server refused the request ({error.code} {error.reason}); set "
            "MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
        )
    text = raw[:200].decode("utf-8", "replace").strip()
    return MlflowApiError(error.code, f"HTTP_{error.code}", text or str(error.reason))
