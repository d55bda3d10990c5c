"""Remote deployments through a real ``jupyter server``: listed, proxied if allowed, undeployed.

The "remote host" is a stand-in on another loopback address (127.0.0.2, allowed by the server's
configuration; 127.0.0.3, not allowed): one small HTTP server playing both Ray's HTTP proxy
(``/spam/...`` answers) and its dashboard's Serve REST API (``/api/version``,
``GET|PUT /api/serve/applications/``). The real cluster is exercised by tests/test_ray_target.py;
here what is under test is the Jupyter server's side, which only speaks HTTP to those routes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from _support import free_port, jupyter_server_process

from jupyter_serve._deployments._remote import remote_deployments
from jupyter_serve.discovery import (
    DeploymentRecord,
    read_records,
    record_path,
    remote_deployment_id,
    write_record,
)
from jupyter_serve.targets.ray._config import DEPLOYMENT_NAME, IMPORT_PATH

TOKEN = "remote-test-token-0123456789"
BASE_URL = "/base/"
ALLOWED = "127.0.0.2"
NOT_ALLOWED = "127.0.0.3"
_UNNEEDED = ("jupyterlab", "jupyter_lsp", "notebook_shim", "jupyter_server_terminals", "notebook")


def _application(name: str, *, ours: bool = True, replicas: int = 2) -> dict[str, Any]:
    config: dict[str, Any] = {"name": name, "route_prefix": f"/{name}"}
    if ours:
        config |= {"import_path": IMPORT_PATH, "args": {"model_uri": f"models:/{name}/1"}}
    else:
        config |= {"import_path": "elsewhere:app"}
    return {
        "name": name,
        "route_prefix": f"/{name}",
        "status": "RUNNING",
        "message": "",
        "deployed_app_config": config,
        "deployments": {
            DEPLOYMENT_NAME: {
                "replicas": [{"state": "RUNNING"}] * replicas,
                "target_num_replicas": replicas,
            }
        },
    }


@dataclass
class StandIn:
    """Ray's HTTP proxy and dashboard on one loopback address, recording what reached it."""

    host: str
    port: int
    applications: dict[str, dict[str, Any]]
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    puts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def target(self) -> str:
        return f"ray+http://{self.host}:{self.port}"


def _start_stand_in(host: str) -> tuple[StandIn, ThreadingHTTPServer]:
    state = StandIn(
        host, 0, {"spam": _application("spam"), "other": _application("other", ours=False)}
    )

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            state.seen.append(("GET", self.path, dict(self.headers)))
            if self.path == "/api/version":
                self._answer(200, {"ray_version": "2.60.0"})
            elif self.path == "/api/serve/applications/":
                details = {"http_options": {"port": state.port}, "applications": state.applications}
                self._answer(200, details)
            elif self.path.startswith("/spam/"):
                self._answer(200, {"route": self.path})
            else:
                self._answer(404, {"message": "not here"})

        def do_PUT(self) -> None:
            state.seen.append(("PUT", self.path, dict(self.headers)))
            config = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.puts.append(config)
            kept = {app["name"] for app in config["applications"]}
            state.applications = {n: a for n, a in state.applications.items() if n in kept}
            self._answer(200, {})

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    state.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return state, server


@pytest.fixture
def allowed() -> Iterator[StandIn]:
    state, server = _start_stand_in(ALLOWED)
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def not_allowed() -> Iterator[StandIn]:
    state, server = _start_stand_in(NOT_ALLOWED)
    yield state
    server.shutdown()
    server.server_close()


@dataclass
class JupyterServer:
    url: str
    runtime_dir: Path

    def api(self, method: str, path: str) -> requests.Response:
        headers = {"Authorization": f"token {TOKEN}"}
        return requests.request(method, self.url + path, headers=headers, timeout=60)

    @property
    def discovery_dir(self) -> Path:
        return self.runtime_dir / "jupyter-serve"

    def listing(self) -> dict[str, dict[str, Any]]:
        answer = self.api("GET", "jupyter-serve/api/deployments")
        assert answer.status_code == 200, answer.text
        return {d["id"]: d for d in answer.json()}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    home = tmp_path_factory.mktemp("jupyter-server-remote")
    runtime_dir = home / "runtime"
    port = free_port()
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime_dir), "PYTHONWARNINGS": "ignore"}
    env["JUPYTER_CONFIG_DIR"] = str(home / "config")
    (home / "config").mkdir()
    (home / "config" / "jupyter_server_config.json").write_text(
        json.dumps(
            {
                "ServerApp": {"jpserver_extensions": dict.fromkeys(_UNNEEDED, False)},
                "JupyterServeProxy": {"allowed_remote_hosts": [ALLOWED, "LocalHost"]},
            }
        )
    )
    with jupyter_server_process(home, port, TOKEN, env, BASE_URL):
        yield JupyterServer(f"http://127.0.0.1:{port}{BASE_URL}", runtime_dir)


def _dead_pid() -> int:
    """The pid of a process that has ended: the kernel that deployed is gone, not its work."""
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return finished.pid


def _remote_record(stand_in: StandIn, **changes: Any) -> DeploymentRecord:
    values: dict[str, Any] = {
        "kind": "remote",
        "name": "spam",
        "pid": _dead_pid(),
        "host": stand_in.host,
        "port": stand_in.port,
        "route_prefix": "/spam",
        "model_uri": "models:/spam/1",
        "status": "running",
        "started_at": 1.0,
        "replicas": 2,
        "target_replicas": 2,
        "target": stand_in.target,
        "seen_at": 2.0,
    }
    return DeploymentRecord(**(values | changes))


def test_a_remote_deployment_is_listed_with_target_status_and_replicas(
    server: JupyterServer, allowed: StandIn
) -> None:
    record = _remote_record(allowed)
    write_record(record, server.discovery_dir)

    listed = server.listing()[record.id]

    assert listed["target"] == allowed.target
    assert (listed["status"], listed["replicas"], listed["target_replicas"]) == ("running", 2, 2)
    assert listed["url"] == f"http://{ALLOWED}:{allowed.port}/spam"
    assert listed["proxy_url"] == f"{BASE_URL}jupyter-serve/proxy/{record.id}/"
    assert listed["seen_at"] == 2.0
    assert "secret" not in listed


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"target": None}, "no target"),
        ({"route_prefix": "/../admin"}, "a climbing route prefix"),
        ({"host": "evil host/x"}, "a host that is no host name"),
        ({"replicas": "2"}, "replicas as text"),
        ({"target": "http://127.0.0.2:8265"}, "a target of no known kind"),
        ({"kind": "elsewhere"}, "an unknown kind"),
    ],
)
def test_a_malformed_remote_record_is_skipped_and_the_rest_still_listed(
    server: JupyterServer, allowed: StandIn, change: dict[str, Any], why: str
) -> None:
    good = _remote_record(allowed, name="good")
    write_record(good, server.discovery_dir)
    data = {**_remote_record(allowed, name="bad").to_json(), **change}
    bad_id = remote_deployment_id(allowed.target, "bad")
    record_path(bad_id, server.discovery_dir).write_text(json.dumps(data))
    os.chmod(record_path(bad_id, server.discovery_dir), 0o600)

    try:
        listing = server.listing()
    finally:
        record_path(bad_id, server.discovery_dir).unlink()

    assert good.id in listing
    assert bad_id not in listing, why
    assert not any(d["name"] == "bad" for d in listing.values()), why


def test_the_proxy_forwards_to_an_allowed_remote_host_under_its_route_prefix(
    server: JupyterServer, allowed: StandIn
) -> None:
    record = _remote_record(allowed)
    write_record(record, server.discovery_dir)

    answer = server.api("GET", f"jupyter-serve/proxy/{record.id}/ping?token={TOKEN}&x=1")

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"route": "/spam/ping?x=1"}
    (_, _, headers), *_ = [s for s in allowed.seen if s[1].startswith("/spam/")]
    assert "Authorization" not in headers


def test_a_host_allowed_by_name_is_looked_up_and_forwarded_to(server: JupyterServer) -> None:
    state, stand_in = _start_stand_in("127.0.0.1")
    try:
        record = _remote_record(state, host="localhost")
        write_record(record, server.discovery_dir)

        answer = server.api("GET", f"jupyter-serve/proxy/{record.id}/ping")
    finally:
        stand_in.shutdown()
        stand_in.server_close()

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"route": "/spam/ping"}


def test_the_proxy_refuses_a_remote_host_not_allowed_naming_the_setting(
    server: JupyterServer, not_allowed: StandIn
) -> None:
    record = _remote_record(not_allowed)
    write_record(record, server.discovery_dir)

    listed = server.listing()[record.id]
    answer = server.api("GET", f"jupyter-serve/proxy/{record.id}/ping")

    assert listed["proxy_url"] is None
    assert answer.status_code == 403
    message = answer.json()["message"]
    assert "c.JupyterServeProxy.allowed_remote_hosts" in message
    assert NOT_ALLOWED in message
    assert not_allowed.seen == []


def test_delete_undeploys_only_that_application_and_unlists_it(
    server: JupyterServer, allowed: StandIn
) -> None:
    record = _remote_record(allowed)
    write_record(record, server.discovery_dir)

    answer = server.api("DELETE", f"jupyter-serve/api/deployments/{record.id}")

    assert answer.status_code == 204, answer.text
    (written,) = allowed.puts
    assert [app["name"] for app in written["applications"]] == ["other"]
    assert record.id not in server.listing()
    assert not record_path(record.id, server.discovery_dir).exists()


def test_delete_of_a_remote_deployment_already_gone_just_unlists_it(
    server: JupyterServer, allowed: StandIn
) -> None:
    record = _remote_record(allowed, name="vanished")
    write_record(record, server.discovery_dir)

    answer = server.api("DELETE", f"jupyter-serve/api/deployments/{record.id}")

    assert answer.status_code == 204, answer.text
    assert allowed.puts == []
    assert record.id not in server.listing()


def test_delete_refuses_a_dashboard_not_allowed_and_keeps_the_record(
    server: JupyterServer, not_allowed: StandIn
) -> None:
    record = _remote_record(not_allowed)
    write_record(record, server.discovery_dir)

    answer = server.api("DELETE", f"jupyter-serve/api/deployments/{record.id}")

    assert answer.status_code == 403
    assert "c.JupyterServeProxy.allowed_remote_hosts" in answer.json()["message"]
    assert not_allowed.seen == []
    assert record.id in server.listing()


def test_the_kernel_side_announces_what_it_sees_and_forgets_what_is_gone(
    allowed: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    allowed.applications["spam"] = _application("spam", replicas=3)

    (spam,) = remote_deployments(allowed.target)
    (record,) = read_records()
    assert (record.id, record.target, record.status) == (
        remote_deployment_id(allowed.target, "spam"),
        allowed.target,
        "running",
    )
    assert (record.replicas, record.target_replicas, record.url) == (3, 3, spam.url)

    spam.stop()
    assert read_records() == []
    assert [app["name"] for app in allowed.puts[-1]["applications"]] == ["other"]

    allowed.applications["spam"] = _application("spam")
    remote_deployments(allowed.target)
    assert len(read_records()) == 1
    del allowed.applications["spam"]
    assert remote_deployments(allowed.target) == []
    assert read_records() == []
