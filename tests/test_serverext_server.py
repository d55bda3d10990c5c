"""End to end: a real ``jupyter server`` process, a real kernel serving the spam model.

The server runs with a token and ``base_url=/base/``, the extension enabled by the config file
the package installs; the kernel is started through the server's REST API and serves the model
with ``jupyter_serve.serve``. Everything is asserted from outside, as a user's HTTP client sees
it (requests, or http.client where a path must reach the server unnormalised).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import select
import signal
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from _support import free_port, jupyter_server_process, wait_until
from jupyter_client.blocking import BlockingKernelClient
from jupyter_server.extension.config import ExtensionConfigManager

from jupyter_serve.datasets import SAMPLE_HAM_EMAIL, SAMPLE_SPAM_EMAIL
from jupyter_serve.discovery import DeploymentRecord, read_records

TOKEN = "test-token-0123456789"
BASE_URL = "/base/"
EMAILS = {
    "dataframe_split": {"columns": ["text"], "data": [[SAMPLE_SPAM_EMAIL], [SAMPLE_HAM_EMAIL]]}
}
_UNNEEDED = ("jupyterlab", "jupyter_lsp", "notebook_shim", "jupyter_server_terminals", "notebook")
VERBS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@dataclass
class JupyterServer:
    url: str  # ends with BASE_URL
    port: int
    runtime_dir: Path

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"token {TOKEN}", **kwargs.pop("headers", {})}
        return requests.request(method, self.url + path, headers=headers, timeout=60, **kwargs)

    def raw(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        """Send ``path`` exactly as written (no client-side normalisation of ``..``)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, headers=headers)
            answer = connection.getresponse()
            return answer.status, answer.read()
        finally:
            connection.close()

    def records(self) -> list[DeploymentRecord]:
        return read_records(self.runtime_dir / "jupyter-serve")


class ServerKernel:
    """A kernel the Jupyter server started, driven over its connection file."""

    def __init__(self, server: JupyterServer, kernel_id: str) -> None:
        self.kernel_id = kernel_id
        self.client = BlockingKernelClient(
            connection_file=str(server.runtime_dir / f"kernel-{kernel_id}.json")
        )
        self.client.load_connection_file()
        # No heartbeat: a client without the kernel's manager would read a heartbeat that has
        # not beaten yet as a dead kernel; kernel_info replies are the readiness test.
        self.client.start_channels(hb=False)
        self.client.wait_for_ready(timeout=60)

    def run(self, code: str, timeout: float = 120) -> str:
        """Run ``code``; return its stdout, fail the test with the kernel's error."""
        printed: list[str] = []
        errors: list[str] = []

        def collect(message: dict[str, Any]) -> None:
            content = message["content"]
            if message["msg_type"] == "stream":
                (printed if content["name"] == "stdout" else errors).append(content["text"])
            elif message["msg_type"] == "error":
                errors.extend(content["traceback"])

        reply = self.client.execute_interactive(code, timeout=timeout, output_hook=collect)
        assert reply["content"]["status"] == "ok", "\n".join(errors)
        return "".join(printed)

    def close(self) -> None:
        self.client.stop_channels()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    home = tmp_path_factory.mktemp("jupyter-server")
    runtime_dir = home / "runtime"
    port = free_port()
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(runtime_dir),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_SERVE_REGISTRY": str(home / "registry"),
        "PYTHONWARNINGS": "ignore",
    }
    # Only what this test needs: JupyterLab and friends take seconds to load on CI.
    (home / "config").mkdir()
    (home / "config" / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": dict.fromkeys(_UNNEEDED, False)}})
    )
    with jupyter_server_process(home, port, TOKEN, env, BASE_URL):
        yield JupyterServer(f"http://127.0.0.1:{port}{BASE_URL}", port, runtime_dir)


def _start_kernel(server: JupyterServer, notebook: str) -> ServerKernel:
    session = server.api(
        "POST",
        "api/sessions",
        json={"path": notebook, "type": "notebook", "kernel": {"name": "python3"}},
    )
    assert session.status_code == 201, session.text
    return ServerKernel(server, session.json()["kernel"]["id"])


@pytest.fixture(scope="module")
def kernel(server: JupyterServer) -> Iterator[ServerKernel]:
    started = _start_kernel(server, "spam.ipynb")
    started.run(
        "import jupyter_serve\n"
        "from jupyter_serve.datasets import train_spam_classifier\n"
        "from jupyter_serve.registry import register_model\n"
        "register_model(train_spam_classifier(), 'spam', stage='Production')\n"
        "spam = jupyter_serve.serve('models:/spam/Production', require_secret=True)\n"
    )
    yield started
    started.close()


@pytest.fixture(scope="module")
def deployment(server: JupyterServer, kernel: ServerKernel) -> dict[str, Any]:
    listing = server.api("GET", "jupyter-serve/api/deployments")
    assert listing.status_code == 200
    (listed,) = [d for d in listing.json() if d["kernel_id"] == kernel.kernel_id]
    return dict(listed)


def test_installing_the_package_enables_the_extension_in_its_environment() -> None:
    environment_config = Path(sys.prefix) / "etc" / "jupyter"
    config = ExtensionConfigManager(read_config_path=[str(environment_config)])

    assert config.get_jpserver_extensions().get("jupyter_serve") is True
    # (The server in the fixture is not told about the extension: it loads it from there.)


def test_the_deployment_is_listed_with_its_notebook_and_proxy_url(
    server: JupyterServer, kernel: ServerKernel, deployment: dict[str, Any]
) -> None:
    in_kernel = json.loads(kernel.run("import json; print(json.dumps([spam.proxy_url, spam.url]))"))

    assert deployment["name"] == "spam"
    assert deployment["model_uri"].startswith("models:/spam/")
    assert deployment["version"] == "1"
    assert deployment["status"] == "running"
    assert deployment["notebook_path"] == "spam.ipynb"
    assert deployment["proxy_url"] == f"{BASE_URL}jupyter-serve/proxy/{deployment['id']}/"
    assert in_kernel == [f"{server.url}jupyter-serve/proxy/{deployment['id']}/", deployment["url"]]
    assert set(deployment["metrics"]) >= {"requests", "errors", "in_flight", "latency_ms"}
    assert "secret" not in deployment


def test_the_proxy_answers_exactly_like_the_deployment(
    server: JupyterServer, deployment: dict[str, Any]
) -> None:
    (record,) = [r for r in server.records() if r.id == deployment["id"]]
    direct = {"X-Jupyter-Serve-Secret": record.secret or ""}
    proxied = f"jupyter-serve/proxy/{deployment['id']}"

    for path, method, body in (("/ping", "GET", None), ("/invocations", "POST", EMAILS)):
        via_proxy = server.api(method, proxied + path, json=body)
        straight = requests.request(
            method, deployment["url"] + path, json=body, headers=direct, timeout=30
        )
        assert (via_proxy.status_code, via_proxy.content) == (
            straight.status_code,
            straight.content,
        )
        assert via_proxy.headers["Content-Type"] == straight.headers["Content-Type"]

    assert server.api("POST", proxied + "/invocations", json=EMAILS).json() == {
        "predictions": ["spam", "ham"]
    }
    without_secret = requests.get(deployment["url"] + "/ping", timeout=30)
    assert without_secret.status_code == 403, "require_secret keeps the direct port closed"


def test_every_unauthenticated_request_gets_403(
    server: JupyterServer, deployment: dict[str, Any]
) -> None:
    routes = [
        "jupyter-serve/api/deployments",
        f"jupyter-serve/api/deployments/{deployment['id']}",
        f"jupyter-serve/proxy/{deployment['id']}/ping",
        f"jupyter-serve/proxy/{deployment['id']}/invocations",
    ]
    for route in routes:
        for method in VERBS:
            for credentials in ({}, {"Authorization": "token not-the-token"}):
                answer = requests.request(
                    method, server.url + route, headers=credentials, data=b"{}", timeout=30
                )
                assert answer.status_code == 403, (method, route, credentials)
    upgrade = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    ws_path = f"{BASE_URL}jupyter-serve/proxy/{deployment['id']}/ping"
    assert server.raw("GET", ws_path, upgrade)[0] == 403
    status, body = server.raw("GET", ws_path, {**upgrade, "Authorization": f"token {TOKEN}"})
    assert status == 400 and b"upgrade" in body
    assert [r.id for r in server.records()] == [deployment["id"]], "nothing was stopped"


def test_cookie_authenticated_writes_need_the_xsrf_token(
    server: JupyterServer, deployment: dict[str, Any]
) -> None:
    browser = requests.Session()
    login = browser.get(f"{server.url}?token={TOKEN}", timeout=30)
    xsrf = browser.cookies.get("_xsrf")
    assert xsrf, ("the login set no XSRF cookie", login.status_code, browser.cookies.keys())
    invocations = f"{server.url}jupyter-serve/proxy/{deployment['id']}/invocations"

    forged = browser.post(invocations, json=EMAILS, timeout=30)
    genuine = browser.post(invocations, json=EMAILS, headers={"X-XSRFToken": xsrf}, timeout=30)

    assert forged.status_code == 403, forged.text
    assert genuine.status_code == 200, genuine.text
    assert genuine.json() == {"predictions": ["spam", "ham"]}
    assert browser.get(f"{server.url}jupyter-serve/api/deployments", timeout=30).ok


@pytest.mark.parametrize(
    "path",
    [
        "/../../api/kernels",
        "/%2e%2e/%2e%2e/api/kernels",
        "/ping%2F..%2F..",
        "//127.0.0.1:22/",
        "/@169.254.169.254/latest",
        "/http://169.254.169.254/latest",
    ],
)
def test_escapes_and_ssrf_attempts_are_refused(
    server: JupyterServer, deployment: dict[str, Any], path: str
) -> None:
    status, body = server.raw(
        "GET",
        f"{BASE_URL}jupyter-serve/proxy/{deployment['id']}{path}",
        {"Authorization": f"token {TOKEN}"},
    )

    assert status == 400
    assert json.loads(body)["message"]


def _upload_reading_early(port: int, head: bytes, declared: int) -> tuple[int, bytes, int]:
    """Send ``head`` and up to ``declared`` body bytes, reading the answer as it comes (as
    curl does); stop sending once it is complete. Returns its status, its body, bytes sent."""
    piece = b"x" * 65536
    received = b""
    sent = 0
    deadline = time.monotonic() + 60
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        while time.monotonic() < deadline:
            sending = [sock] if sent < declared else []
            readable, writable, _ = select.select([sock], sending, [], 1.0)
            if readable:
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    break
                if not data:
                    break
                received += data
                head_end = received.find(b"\r\n\r\n")
                if head_end >= 0:
                    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", received[:head_end])
                    if length and len(received) - head_end - 4 >= int(length.group(1)):
                        break
            elif writable:
                try:
                    sent += sock.send(piece[: declared - sent])
                except (BrokenPipeError, ConnectionResetError):
                    sent = declared  # the server stopped reading: only its answer is left
    status_line, _, rest = received.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2], sent


def test_an_upload_over_the_deployments_limit_gets_its_413_at_once_every_time(
    server: JupyterServer, deployment: dict[str, Any]
) -> None:
    (record,) = [r for r in server.records() if r.id == deployment["id"]]
    declared = 150_000_000  # over the deployment's 100 MiB, under the proxy's 256 MiB
    fields = f"Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
    direct_head = (
        f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"X-Jupyter-Serve-Secret: {record.secret}\r\n" + fields
    )
    proxied_head = (
        f"POST {BASE_URL}jupyter-serve/proxy/{record.id}/invocations HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{server.port}\r\n"
        f"Authorization: token {TOKEN}\r\n" + fields
    )
    direct_status, direct_body, _ = _upload_reading_early(
        record.port, direct_head.encode(), declared
    )
    assert direct_status == 413

    for _ in range(5):
        status, body, sent = _upload_reading_early(server.port, proxied_head.encode(), declared)

        assert (status, body) == (413, direct_body)
        assert sent < declared // 10, "answered early, not after reading the body"
    assert server.api("POST", f"jupyter-serve/proxy/{record.id}/invocations", json=EMAILS).ok


def test_delete_stops_a_deployment_in_its_kernel(
    server: JupyterServer, kernel: ServerKernel, deployment: dict[str, Any]
) -> None:
    kernel.run("extra = jupyter_serve.serve('models:/spam/1', name='extra')")
    listing = server.api("GET", "jupyter-serve/api/deployments").json()
    (extra,) = [d for d in listing if d["name"] == "extra"]

    stopped = server.api("DELETE", f"jupyter-serve/api/deployments/{extra['id']}")

    assert stopped.status_code == 204
    names = [d["name"] for d in server.api("GET", "jupyter-serve/api/deployments").json()]
    assert names == ["spam"]
    in_kernel = kernel.run("print(sorted(d.name for d in jupyter_serve.deployments()))")
    assert in_kernel.strip() == "['spam']"
    gone = server.api("DELETE", f"jupyter-serve/api/deployments/{extra['id']}")
    assert gone.status_code == 404
    assert "no running deployment" in gone.json()["message"]


def test_a_killed_kernels_deployment_disappears(server: JupyterServer) -> None:
    doomed = _start_kernel(server, "doomed.ipynb")
    doomed.run(
        "import jupyter_serve\n"
        "class Echo:\n"
        "    def predict(self, frame):\n"
        "        return list(frame.iloc[:, 0])\n"
        "echo = jupyter_serve.serve(Echo(), name='doomed')\n"
    )
    listed = server.api("GET", "jupyter-serve/api/deployments").json()
    (entry,) = [d for d in listed if d["kernel_id"] == doomed.kernel_id]
    pid = int(entry["id"].split("-", 1)[0])
    doomed.close()

    os.kill(pid, signal.SIGKILL)

    def entry_gone() -> bool:
        listing = server.api("GET", "jupyter-serve/api/deployments").json()
        return all(d["id"] != entry["id"] for d in listing)

    wait_until(entry_gone, timeout=30, message="the killed kernel's deployment dropped")
    proxied = server.api("GET", f"jupyter-serve/proxy/{entry['id']}/ping")
    assert proxied.status_code == 404
