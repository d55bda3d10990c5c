"""The MLflow registry backend against a real `mlflow server` 3.17.2 filled by MLflow's client.

One server per module (sqlite backend, artifact proxy, loopback). Every `models:/` and
`runs:/` form is resolved by us and by MLflow's own resolution, and the models both load must
predict the same. Each version is a constant regressor (version k predicts 10*k), so a wrong
version shows in the predictions too.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import pytest
import requests

from jupyter_serve.errors import MissingDependencyError, ModelNotFoundError, RegistryError
from jupyter_serve.models import load_model
from jupyter_serve.registry import (
    EmbeddedRegistry,
    MlflowRegistry,
    default_registry,
    register_model,
    registry_uri_scope,
    resolve_model_uri,
)
from tests._support import free_port
from tests.conftest import run_python

pytestmark = pytest.mark.mlflow

CLI = [sys.executable, "-m", "jupyter_serve.cli"]
FEATURES = pd.DataFrame({"x": [1.0, 2.0, 3.0]})

# Run once by MLflow's own client: fill the registry (model ``spam`` v1-v4 with stages and
# aliases, a logged model, a plain run artifact), then say what MLflow resolves each URI to
# (with the function `mlflow models serve` uses) and what the model it loads predicts, and
# what it sees of the model ``ours`` that jupyter-serve registered before.
MLFLOW_SIDE = r"""
import json, os, sys, tempfile
import mlflow, pandas as pd
from mlflow import MlflowClient
from mlflow.store.artifact.utils.models import get_model_name_and_version
from sklearn.dummy import DummyRegressor

mlflow.set_tracking_uri(sys.argv[1])
client = MlflowClient()
X = pd.DataFrame({"x": [1.0, 2.0]})
def constant(value):
    return DummyRegressor(strategy="constant", constant=value).fit(X, [0.0, 0.0])
out = {"runs": {}}
for k in (1, 2, 3, 4):
    with mlflow.start_run() as run:
        # No input example: MLflow would load and score each model to validate it (slow).
        mlflow.sklearn.log_model(constant(10.0 * k), name="model",
                                 registered_model_name="spam", pip_requirements=["scikit-learn"])
        out["runs"][str(k)] = run.info.run_id
client.transition_model_version_stage("spam", "1", "Production")
client.transition_model_version_stage("spam", "2", "Production")
client.transition_model_version_stage("spam", "3", "Staging")
client.set_registered_model_alias("spam", "champion", "2")
client.set_registered_model_alias("spam", "challenger", "3")
with mlflow.start_run() as run:
    info = mlflow.sklearn.log_model(constant(77.0), name="lonely", input_example=X,
                                    pip_requirements=["scikit-learn"])
    out["logged_model_id"] = info.model_id
    out["lonely_run"] = run.info.run_id
    plain = os.path.join(tempfile.mkdtemp(), "plain")
    mlflow.sklearn.save_model(constant(55.0), plain, pip_requirements=["scikit-learn"])
    mlflow.log_artifacts(plain, artifact_path="plain")
# MLflow 2 style: a version whose source (and download location) is a runs:/ URI.
client.create_registered_model("legacy")
client.create_model_version("legacy", f"runs:/{out['lonely_run']}/plain", out["lonely_run"])

features = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
uris = [
    "models:/spam/1", "models:/spam/3", "models:/spam/latest", "models:/spam/LATEST",
    "models:/spam/Production", "models:/spam/staging", "models:/spam/none",
    "models:/spam@champion", "models:/spam@challenger", "models:/spam@latest",
    f"models:/{out['logged_model_id']}", f"runs:/{out['runs']['2']}/model",
    f"runs:/{out['lonely_run']}/lonely", f"runs:/{out['lonely_run']}/plain",
    "models:/legacy/1", "models:/legacy@latest",
]
resolved = {}
for uri in uris:
    name = version = None
    if uri.startswith("models:/") and not uri.startswith("models:/m-"):
        name, version = get_model_name_and_version(client, uri)
        version = int(version)
    predictions = mlflow.pyfunc.load_model(uri).predict(features)
    resolved[uri] = {
        "name": name, "version": version, "predictions": [float(p) for p in predictions]
    }
out["resolved"] = resolved
out["by_alias"] = int(client.get_model_version_by_alias("spam", "champion").version)
latest = client.get_latest_versions("spam", ["Production"])
out["latest_production"] = [int(v.version) for v in latest]
found = client.search_model_versions("name = 'ours'")
ours = [client.get_model_version("ours", v.version) for v in found]
out["ours"] = [
    {"version": int(v.version), "stage": v.current_stage, "aliases": sorted(v.aliases)}
    for v in sorted(ours, key=lambda v: int(v.version))
]
ours = mlflow.pyfunc.load_model("models:/ours@fresh").predict(pd.DataFrame({"x": [1.0]}))
out["ours_predictions"] = [float(p) for p in ours]
print(json.dumps(out))
"""


def _register_ours(url: str) -> list[int]:
    """Two versions of ``ours`` registered by jupyter-serve: by argument, then by env var."""
    from sklearn.dummy import DummyRegressor

    model = DummyRegressor(strategy="constant", constant=99.0).fit(FEATURES, [0.0] * 3)
    first = register_model(model, "ours", input_example=FEATURES, registry_uri=url)
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = url
    try:
        second = register_model(model, "ours", stage="Staging", alias="fresh")
    finally:
        if previous is None:
            del os.environ["MLFLOW_TRACKING_URI"]
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous
    return [first, second]


@pytest.fixture(scope="module")
def mlflow_server(
    mlflow_python: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, Any]]]:
    """A live `mlflow server` holding what ``MLFLOW_SIDE`` and ``_register_ours`` put there;
    yields its URL and what the MLflow client reported (ids, its resolutions)."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    mlflow_bin = mlflow_python.parent / "mlflow"
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    log = (root / "server.log").open("wb")
    server = subprocess.Popen(
        [
            str(mlflow_bin),
            "server",
            "--backend-store-uri",
            f"sqlite:///{root}/mlflow.db",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        _wait_for_health(url, server, root / "server.log")
        ours = _register_ours(url)
        reported = json.loads(run_python(mlflow_python, MLFLOW_SIDE, url).strip().splitlines()[-1])
        yield url, {**reported, "ours_versions": ours}
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(20)
        log.close()


def _wait_for_health(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"mlflow server exited early:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    pytest.fail(f"mlflow server at {url} did not answer /health within 90 s")


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlflow-cache")


@pytest.fixture
def tracking_env(
    mlflow_server: tuple[str, dict[str, Any]], cache_root: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    url = mlflow_server[0]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.setenv("JUPYTER_SERVE_MLFLOW_CACHE", str(cache_root))
    return url


def _predict(path: Path) -> list[float]:
    return [float(p) for p in load_model(path).predict(FEATURES)]


def test_every_uri_form_resolves_to_what_mlflow_resolves(
    tracking_env: str, mlflow_server: tuple[str, dict[str, Any]]
) -> None:
    reported = mlflow_server[1]
    theirs = reported["resolved"]
    assert reported["by_alias"] == 2 and reported["latest_production"] == [2]
    assert len(theirs) == 16
    for uri, answer in theirs.items():
        ours = resolve_model_uri(uri)
        assert ours.uri == uri
        assert (ours.name, ours.version) == (answer["name"], answer["version"]), uri
        assert _predict(ours.path) == answer["predictions"], uri
    # Spot checks that the comparison is not vacuous.
    assert theirs["models:/spam/Production"]["predictions"] == [20.0] * 3
    assert theirs[f"runs:/{reported['lonely_run']}/plain"]["predictions"] == [55.0] * 3
    assert theirs["models:/legacy/1"]["predictions"] == [55.0] * 3


def test_a_resolved_version_is_downloaded_once_and_reused(
    tracking_env: str, cache_root: Path
) -> None:
    first = resolve_model_uri("models:/spam@challenger")
    marker = first.path / "MLmodel"
    stamp = marker.stat().st_mtime_ns
    second = resolve_model_uri("models:/spam/3")
    assert second.path == first.path
    assert marker.stat().st_mtime_ns == stamp
    assert first.path.is_relative_to(cache_root)
    assert not list((cache_root / ".incoming").iterdir())


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            "models:/nope/1",
            "no model named 'nope' in the MLflow registry at {url}; registered models: ",
        ),
        ("models:/Spam@champion", "(did you mean 'spam'?)"),
        (
            "models:/spam@gold",
            "model 'spam' has no alias 'gold' in the MLflow registry at {url}; "
            "aliases: challenger -> version 3, champion -> version 2",
        ),
        ("models:/spam@Champion", "(did you mean 'champion'?)"),
        (
            "models:/spam/Archived",
            "no version of 'spam' is in stage 'Archived' in the MLflow registry at {url}; "
            "versions: 1 (Production), 2 (Production), 3 (Staging), 4 (None)",
        ),
        ("models:/spam/9", "model 'spam' has no version 9"),
        ("models:/spam/Shipping", "'Shipping' is not a version number, 'latest' or a stage"),
        ("models:/m-0000000000000000", "no logged model 'm-0000000000000000'"),
        ("runs:/0123456789abcdef/model", "no run '0123456789abcdef'"),
    ],
)
def test_unknown_models_versions_aliases_and_stages_say_what_exists(
    tracking_env: str, uri: str, expected: str
) -> None:
    with pytest.raises(ModelNotFoundError) as raised:
        resolve_model_uri(uri)
    assert expected.format(url=tracking_env) in str(raised.value)


def test_a_run_path_without_a_model_is_refused(
    tracking_env: str, mlflow_server: tuple[str, dict[str, Any]]
) -> None:
    run = mlflow_server[1]["lonely_run"]
    with pytest.raises(ModelNotFoundError, match="holds no artifacts"):
        resolve_model_uri(f"runs:/{run}/missing")


def test_cli_serves_the_aliased_version_over_http(tracking_env: str, cache_root: Path) -> None:
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_env}
    process = subprocess.Popen(
        [*CLI, "models", "serve", "-m", "models:/spam@champion", "-p", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"the server exited: {process.communicate()[1]}")
            try:
                if requests.get(f"{url}/ping", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "models serve never answered /ping"
            time.sleep(0.05)
        answer = requests.post(
            f"{url}/invocations",
            json={"dataframe_split": {"columns": ["x"], "data": [[1.0], [5.0]]}},
            timeout=30,
        )
        assert answer.status_code == 200
        assert answer.json() == {"predictions": [20.0, 20.0]}
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(20)


def test_registering_from_our_side_creates_versions_mlflow_serves(
    tracking_env: str, mlflow_server: tuple[str, dict[str, Any]]
) -> None:
    reported = mlflow_server[1]
    first, second = reported["ours_versions"]
    assert second == first + 1
    assert reported["ours"] == [
        {"version": first, "stage": "None", "aliases": []},
        {"version": second, "stage": "Staging", "aliases": ["fresh"]},
    ]
    assert reported["ours_predictions"] == [99.0]
    listed = default_registry().list_versions("ours")
    assert [(v.version, v.stage.value, v.aliases) for v in listed] == [
        (first, "None", ()),
        (second, "Staging", ("fresh",)),
    ]


def test_cli_manages_an_mlflow_registry_given_by_registry_uri(
    mlflow_server: tuple[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    listing = subprocess.run(
        [*CLI, "models", "list", "spam", "--registry-uri", mlflow_server[0]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listing.returncode == 0, listing.stderr
    rows = [line.split()[:4] for line in listing.stdout.splitlines()[1:]]
    assert rows == [
        ["spam", "1", "Production", "-"],
        ["spam", "2", "Production", "champion"],
        ["spam", "3", "Staging", "challenger"],
        ["spam", "4", "None", "-"],
    ]


def test_serve_magic_resolves_through_its_registry_uri(
    mlflow_server: tuple[str, dict[str, Any]],
    cache_root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    from jupyter_serve._deployments import stop
    from jupyter_serve.magics import ServeMagics

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.setenv("JUPYTER_SERVE_MLFLOW_CACHE", str(cache_root))
    shell = InteractiveShell.instance()
    shell.register_magics(ServeMagics)
    port = free_port()
    shell.run_line_magic(
        "serve",
        f"models:/spam@challenger --registry-uri {mlflow_server[0]} --port {port} "
        "--name from-mlflow",
    )
    try:
        answer = requests.post(
            f"http://127.0.0.1:{port}/invocations",
            json={"dataframe_split": {"columns": ["x"], "data": [[1.0]]}},
            timeout=30,
        )
        assert answer.json() == {"predictions": [30.0]}
    finally:
        stop("from-mlflow")
    # The option did not leak: without it the embedded registry answers again.
    assert isinstance(default_registry(), EmbeddedRegistry)


def test_the_registry_uri_is_chosen_at_call_time(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    assert isinstance(default_registry(), EmbeddedRegistry)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    chosen = default_registry()
    assert isinstance(chosen, MlflowRegistry) and chosen.registry_uri == "http://127.0.0.1:1"
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "http://127.0.0.1:2")
    chosen = default_registry()
    assert isinstance(chosen, MlflowRegistry)
    assert (chosen.registry_uri, chosen.tracking_uri) == (
        "http://127.0.0.1:2",
        "http://127.0.0.1:1",
    )
    with registry_uri_scope("http://127.0.0.1:3"):
        scoped = default_registry()
        assert isinstance(scoped, MlflowRegistry) and scoped.registry_uri == "http://127.0.0.1:3"
    assert isinstance(default_registry("http://127.0.0.1:4"), MlflowRegistry)
    # A directory needs no registry, even with a dead one configured.
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "MLmodel").write_text("flavors: {}\n")
    assert resolve_model_uri(tmp_path / "m").path == tmp_path / "m"


def test_an_unreachable_server_is_a_clear_error_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", dead)
    with pytest.raises(RegistryError, match=f"cannot reach the MLflow tracking server at {dead}"):
        resolve_model_uri("models:/spam@champion")


def test_a_server_that_never_answers_is_an_error_after_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections complete in the backlog; nothing ever answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "0.5")
        with pytest.raises(
            RegistryError, match=f"cannot reach the MLflow tracking server at {url}"
        ):
            resolve_model_uri("models:/spam/1")


class _AuthCheckingServer(http.server.BaseHTTPRequestHandler):
    """Answers the model search only to requests carrying the expected Authorization (the
    reference venv lacks Flask-WTF, so MLflow's own basic-auth app cannot run here)."""

    expected = ""
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        received = self.headers.get("Authorization", "")
        self.seen.append(received)
        ok = received == self.expected
        body = json.dumps({"registered_models": [{"name": "guarded"}]} if ok else {}).encode()
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"MLFLOW_TRACKING_TOKEN": "s3cret"}, "Bearer s3cret"),
        (
            {"MLFLOW_TRACKING_USERNAME": "ada", "MLFLOW_TRACKING_PASSWORD": "pw"},
            "Basic " + base64.b64encode(b"ada:pw").decode(),
        ),
    ],
)
def test_credentials_from_the_environment_are_sent_as_mlflow_sends_them(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], expected: str
) -> None:
    _AuthCheckingServer.expected = expected
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AuthCheckingServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        for name in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME"):
            monkeypatch.delenv(name, raising=False)
        with pytest.raises(RegistryError, match="set MLFLOW_TRACKING_TOKEN"):
            MlflowRegistry(url).list_models()
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        assert MlflowRegistry(url).list_models() == ["guarded"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_a_database_uri_without_mlflow_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Holds where mlflow is installed too: the import is made to fail.
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    with pytest.raises(MissingDependencyError) as raised:
        resolve_model_uri("models:/spam/1")
    message = str(raised.value)
    assert "pip install 'jupyter-serve[mlflow]'" in message
    assert f"sqlite:///{tmp_path}/mlflow.db" in message


def test_hostile_names_are_refused_before_anything_reaches_mlflow(tracking_env: str) -> None:
    from sklearn.dummy import DummyRegressor

    model = DummyRegressor(strategy="constant", constant=1.0).fit(FEATURES, [0.0] * 3)
    before = default_registry().list_models()
    for name, rule in [
        ("..", "would read as a path"),
        ("a\\b", "a path separator on Windows"),
        ("a\nb", "the character U+000A"),
        ("s" * 1000, "is 1000 characters long; a model name has at most 256"),
    ]:
        with pytest.raises(RegistryError) as caught:
            register_model(model, name, input_example=FEATURES)
        assert rule in str(caught.value)
    assert default_registry().list_models() == before


def test_a_long_name_made_in_mlflow_is_cached_under_short_file_names(
    tracking_env: str, mlflow_server: tuple[str, dict[str, Any]], cache_root: Path
) -> None:
    # MLflow's SQLite store keeps names of any length; each "é" is 6 bytes once quoted.
    name = "é" * 250
    api = f"{tracking_env}/api/2.0/mlflow"
    run_id = mlflow_server[1]["lonely_run"]
    created = requests.post(f"{api}/registered-models/create", json={"name": name}, timeout=30)
    assert created.status_code == 200, created.text
    version = {"name": name, "source": f"runs:/{run_id}/plain", "run_id": run_id}
    created = requests.post(f"{api}/model-versions/create", json=version, timeout=30)
    assert created.status_code == 200, created.text
    resolved = resolve_model_uri(f"models:/{name}/1")
    assert (resolved.name, resolved.version) == (name, 1)
    assert _predict(resolved.path) == [55.0] * 3
    assert all(len(part.encode()) <= 200 for part in resolved.path.relative_to(cache_root).parts)
