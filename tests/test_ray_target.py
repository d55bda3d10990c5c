"""Deploying to a real Ray Serve cluster: `jupyter-serve deploy --target ray+http://...`.

One local cluster for the whole module (``ray start --head`` from .venv-ray, loopback only:
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` keeps Ray off the routable address), stopped with
``ray stop --force`` even when a test fails. The cluster has nothing of ours installed: the
model, our package and the model's requirements travel with each deployment. The tests run
in order and build on each other (the export deploys the unrelated application that the last
test checks survives an undeploy), so they are one story: export, deploy, compare, V2, swap,
autoscale, undeploy.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import yaml
from _support import Kernel, free_port, wait_until
from differential.cases import Case, numeric_cases, route_cases, text_cases

from jupyter_serve.targets.ray import list_applications

pytestmark = pytest.mark.timeout(900)

REPO_ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).parent / "jupyter-serve")
# Room for a rolling update and a second replica next to the unrelated application, on the
# two logical CPUs of the test cluster.
REPLICA_CPUS = "0.5"
# The first deployment installs the model's requirements on the cluster (pip): minutes.
DEPLOY_SECONDS = 800


@dataclass
class Cluster:
    target: str
    dashboard: str
    serve_url: str
    ray_bin: Path
    env: dict[str, str]
    registry: Path


@pytest.fixture(scope="module")
def ray_python() -> Path:
    """The interpreter of .venv-ray (ray[serve] and nothing of ours); `make test` builds it
    and sets JUPYTER_SERVE_RAY_PYTHON. Missing, it is a failure, not a skip."""
    configured = os.environ.get("JUPYTER_SERVE_RAY_PYTHON")
    candidate = Path(configured) if configured else REPO_ROOT / ".venv-ray" / "bin" / "python"
    if not candidate.exists():
        pytest.fail(
            f"the Ray interpreter {candidate} does not exist; run `make test` (it builds "
            ".venv-ray) or set JUPYTER_SERVE_RAY_PYTHON"
        )
    return candidate


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An embedded registry holding spam version 1 (the demo classifier) and version 2
    (always "ham", so the swap is visible)."""
    root = tmp_path_factory.mktemp("ray-registry")
    script = """
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline
from jupyter_serve.datasets import make_spam_emails, train_spam_classifier
from jupyter_serve.registry import register_model
emails = make_spam_emails()
example = emails[["text"]].head(2)
register_model(train_spam_classifier(emails), "spam", input_example=example)
always_ham = Pipeline([
    ("features", ColumnTransformer([("tfidf", TfidfVectorizer(), "text")])),
    ("classifier", DummyClassifier(strategy="constant", constant="ham")),
]).fit(emails[["text"]], emails["label"])
register_model(always_ham, "spam", input_example=example)
"""
    env = {**os.environ, "JUPYTER_SERVE_REGISTRY": str(root)}
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300, env=env)
    return root


@pytest.fixture(scope="module")
def cluster(
    ray_python: Path, registry: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    ray_bin = ray_python.parent
    temp_dir = tmp_path_factory.mktemp("ray")
    gcs_port, dashboard_port, http_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_ADDRESS": f"127.0.0.1:{gcs_port}",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.pop("VIRTUAL_ENV", None)
    start = [
        str(ray_bin / "ray"), "start", "--head", "--num-cpus", "2",
        "--node-ip-address", "127.0.0.1", "--port", str(gcs_port),
        "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard_port),
        "--temp-dir", str(temp_dir), "--disable-usage-stats",
    ]  # fmt: skip
    stop = [str(ray_bin / "ray"), "stop", "--force"]
    try:
        # On a loaded machine Ray's start may miss its own internal deadlines: a second try.
        if subprocess.run(start, env=env, timeout=300, capture_output=True).returncode != 0:
            subprocess.run(stop, env=env, timeout=120, check=False, capture_output=True)
            _run(start, env, timeout=300)
        # Serve's HTTP proxy on loopback too (Serve's own default host is every interface).
        _run(
            [
                str(ray_bin / "serve"),
                "start",
                "--http-host",
                "127.0.0.1",
                "--http-port",
                str(http_port),
            ],
            env,
            timeout=300,
        )
        yield Cluster(
            target=f"ray+http://127.0.0.1:{dashboard_port}",
            dashboard=f"http://127.0.0.1:{dashboard_port}",
            serve_url=f"http://127.0.0.1:{http_port}",
            ray_bin=ray_bin,
            env=env,
            registry=registry,
        )
    finally:
        subprocess.run(stop, env=env, timeout=120, check=False, capture_output=True)


def _run(
    command: list[str], env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, env=env, timeout=timeout, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(
            f"{command[0]} {command[1]} failed ({done.returncode}):\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done


def _cli(
    cluster: Cluster, *args: str, timeout: float = DEPLOY_SECONDS + 60
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JUPYTER_SERVE_REGISTRY": str(cluster.registry)}
    return subprocess.run([CLI, *args], env=env, timeout=timeout, capture_output=True, text=True)


def _deploy(cluster: Cluster, *args: str) -> str:
    done = _cli(
        cluster, "deploy", *args, "--target", cluster.target, "--replica-cpus", REPLICA_CPUS
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_export_is_accepted_by_serve_deploy(cluster: Cluster, tmp_path: Path) -> None:
    config = tmp_path / "other.yaml"
    done = _cli(
        cluster,
        "deploy",
        "models:/spam/1",
        "--name",
        "other",
        "--export",
        str(config),
        "--target",
        cluster.target,
        "--replica-cpus",
        REPLICA_CPUS,
    )
    assert done.returncode == 0, done.stderr
    assert [app["name"] for app in yaml.safe_load(config.read_text())["applications"]] == ["other"]
    _run(
        [str(cluster.ray_bin / "serve"), "deploy", str(config), "-a", cluster.dashboard],
        cluster.env,
        timeout=120,
    )
    wait_until(
        lambda: _status(cluster.serve_url + "/other/ping") == 200,
        timeout=DEPLOY_SECONDS,
        message="the exported application answering /ping",
    )

    manifest_path = tmp_path / "spam.rayservice.yaml"
    done = _cli(
        cluster,
        "deploy",
        "models:/spam/1",
        "--export",
        str(manifest_path),
        "--target",
        cluster.target,
    )
    assert done.returncode == 0, done.stderr
    manifest = yaml.safe_load(manifest_path.read_text())
    assert manifest["kind"] == "RayService"
    serve_config = yaml.safe_load(manifest["spec"]["serveConfigV2"])
    assert serve_config["applications"][0]["route_prefix"] == "/spam"


def _status(url: str) -> int | None:
    try:
        return requests.get(url, timeout=10).status_code
    except requests.RequestException:  # the proxy may hold a request while replicas start
        return None


def test_deploy_answers_byte_for_byte_like_a_local_server(cluster: Cluster) -> None:
    url = _deploy(cluster, "models:/spam/1", "--name", "spam")
    assert url == cluster.serve_url + "/spam"

    port = free_port()
    env = {**os.environ, "JUPYTER_SERVE_REGISTRY": str(cluster.registry)}
    local = subprocess.Popen(
        [CLI, "models", "serve", "-m", "models:/spam/1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        local_url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _status(local_url + "/ping") == 200, timeout=120, message="local server")
        cases = [*text_cases("spam"), *numeric_cases("spam"), *route_cases("spam"), *_v2_cases()]
        for case in cases:
            ours, theirs = _ask(url, case), _ask(local_url, case)
            assert ours == theirs, f"{case.id}:\n ray:   {ours!r}\n local: {theirs!r}"
    finally:
        local.terminate()
        local.wait(30)


def _v2_cases() -> list[Case]:
    infer = (
        b'{"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", '
        b'"data": ["free cash", "hi"]}]}'
    )
    return [
        Case("v2-ready", "spam", method="GET", path="/v2/health/ready", content_type=None),
        Case("v2-metadata", "spam", method="GET", path="/v2/models/spam", content_type=None),
        Case("v2-infer", "spam", infer, path="/v2/models/spam/infer"),
        Case("v2-unknown-model", "spam", infer, path="/v2/models/nope/infer"),
        Case("ping-wrong-method", "spam", b"", method="DELETE", path="/ping", content_type=None),
    ]


def _ask(base: str, case: Case) -> tuple[int, str | None, bytes]:
    headers = {} if case.content_type is None else {"Content-Type": case.content_type}
    response = requests.request(
        case.method, base + case.path, data=case.body, headers=headers, timeout=60
    )
    return response.status_code, response.headers.get("Content-Type"), _same_paths(response)


# A stack trace names the files it went through: the replica's copies of our package and of
# the libraries live elsewhere than the local server's. Everything from the package or
# site-packages directory on must match.
_FILE_PREFIX = re.compile(r'File "[^"]*/((?:jupyter_serve|site-packages)/[^"]*)"')


def _same_paths(response: requests.Response) -> bytes:
    if b'"stack_trace"' not in response.content:
        return response.content
    answer = response.json()
    answer["stack_trace"] = _FILE_PREFIX.sub(r'File "\1"', answer["stack_trace"])
    return json.dumps(answer).encode()


def test_a_v2_client_scores_the_deployment(cluster: Cluster) -> None:
    import numpy as np
    import tritonclient.http as triton

    client = triton.InferenceServerClient(cluster.serve_url.removeprefix("http://") + "/spam")
    assert client.is_model_ready("spam")
    text = triton.InferInput("text", [2], "BYTES")
    text.set_data_from_numpy(np.array([b"win a free prize now", b"lunch tomorrow?"], dtype=object))
    result = client.infer("spam", [text])
    assert [
        v.decode() if isinstance(v, bytes) else v
        for v in result.as_numpy(result.get_response()["outputs"][0]["name"]).tolist()
    ] == ["spam", "ham"]


@dataclass
class Traffic:
    url: str
    stop: threading.Event = field(default_factory=threading.Event)
    answers: list[tuple[int, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        body = {"dataframe_split": {"columns": ["text"], "data": [["win a free prize now"]]}}
        with requests.Session() as session:
            while not self.stop.is_set():
                try:
                    response = session.post(self.url + "/invocations", json=body, timeout=60)
                    answer = (response.status_code, response.text)
                except requests.RequestException as error:
                    answer = (0, repr(error))
                with self.lock:
                    self.answers.append(answer)


def test_a_swap_to_version_2_under_traffic_fails_no_request(cluster: Cluster) -> None:
    url = cluster.serve_url + "/spam"
    traffic = Traffic(url)
    with ThreadPoolExecutor(4) as pool:
        for _ in range(4):
            pool.submit(traffic.run)
        try:
            wait_until(lambda: len(traffic.answers) > 20, timeout=60, message="steady traffic")
            assert _deploy(cluster, "models:/spam/2", "--name", "spam") == url
            seen = len(traffic.answers)
            wait_until(
                lambda: len(traffic.answers) > seen + 20,
                timeout=60,
                message="traffic after the swap",
            )
        finally:
            traffic.stop.set()
    failures = [a for a in traffic.answers if a[0] != 200]
    assert failures == []
    bodies = [text for _, text in traffic.answers]
    assert bodies[0] == '{"predictions": ["spam"]}'
    assert bodies[-1] == '{"predictions": ["ham"]}'
    assert [app.version for app in list_applications(cluster.target) if app.name == "spam"] == ["2"]


def test_autoscale_adds_a_replica_under_load(cluster: Cluster) -> None:
    url = _deploy(cluster, "models:/spam/2", "--name", "spam", "--autoscale", "1:2")
    traffic = Traffic(url)

    def spam_replicas() -> int:
        return next(app.replicas for app in list_applications(cluster.target) if app.name == "spam")

    with ThreadPoolExecutor(16) as pool:
        for _ in range(16):
            pool.submit(traffic.run)
        try:
            wait_until(lambda: spam_replicas() == 2, timeout=300, message="a second replica")
        finally:
            traffic.stop.set()
    assert [a for a in traffic.answers if a[0] != 200] == []


def test_undeploy_leaves_the_other_application_running(cluster: Cluster) -> None:
    done = _cli(cluster, "undeploy", "spam", "--target", cluster.target, timeout=120)
    assert done.returncode == 0, done.stderr
    wait_until(
        lambda: _status(cluster.serve_url + "/spam/ping") == 404, timeout=120, message="spam gone"
    )
    assert _status(cluster.serve_url + "/other/ping") == 200
    listing = _cli(cluster, "deployments", "--target", cluster.target, timeout=120)
    assert [line.split()[0] for line in listing.stdout.splitlines()[1:]] == ["other"]


def test_a_notebook_serves_lists_predicts_and_stops_on_the_cluster(
    cluster: Cluster, tmp_path: Path
) -> None:
    # The target comes from $JUPYTER_SERVE_TARGET: %serve and %deployments name none.
    kernel = Kernel(
        tmp_path / "runtime", cluster.registry, {"JUPYTER_SERVE_TARGET": cluster.target}
    )
    try:
        kernel.ok("%load_ext jupyter_serve")
        served = kernel.ok("%serve models:/spam/1 --name nb --replicas 1", timeout=DEPLOY_SECONDS)
        assert (
            f"<RemoteDeployment 'nb' on {cluster.target} running with 1 replica(s)" in served.text
        )
        listing = kernel.ok("%deployments")
        assert listing.plain and "nb" in listing.plain[-1] and "RUNNING" in listing.plain[-1]
        used = kernel.ok(
            "import os, jupyter_serve, pandas as pd\n"
            "[d] = [d for d in jupyter_serve.deployments(os.environ['JUPYTER_SERVE_TARGET'])"
            " if d.name == 'nb']\n"
            "print(d.url, d.status, d.replicas, d.predict(pd.DataFrame({'text': ['free cash']})))\n"
            "d.stop()\n"
            "print(d.status)"
        )
        assert used.stdout.split("\n")[:2] == [
            f"{cluster.serve_url}/nb running 1 ['spam']",
            "stopped",
        ]
    finally:
        kernel.shutdown()
    wait_until(
        lambda: _status(cluster.serve_url + "/nb/ping") == 404, timeout=120, message="nb gone"
    )
    assert _status(cluster.serve_url + "/other/ping") == 200


def test_unreachable_cluster_is_one_clear_line(cluster: Cluster) -> None:
    closed = free_port()
    done = _cli(
        cluster,
        "deploy",
        "models:/spam/1",
        "--target",
        f"ray+http://127.0.0.1:{closed}",
        timeout=120,
    )
    assert done.returncode == 1
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(
            f"jupyter-serve: error: cannot reach the Ray dashboard at http://127.0.0.1:{closed}"
        )
    )


def test_missing_resources_end_with_rays_message(cluster: Cluster) -> None:
    done = _cli(
        cluster,
        "deploy",
        "models:/spam/1",
        "--name",
        "huge",
        "--replica-cpus",
        "64",
        "--wait",
        "45",
        "--target",
        cluster.target,
        timeout=300,
    )
    try:
        assert done.returncode == 1
        last = done.stderr.strip().splitlines()[-1]
        assert "'huge' was not running on the Ray cluster after 45 s" in last
        assert "CPU" in last  # Ray's own explanation: the resources a replica asks for
    finally:
        _cli(cluster, "undeploy", "huge", "--target", cluster.target, timeout=120)
    assert _status(cluster.serve_url + "/other/ping") == 200
