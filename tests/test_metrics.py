"""``GET /metrics``: a scrape after a known mix of requests, parsed with prometheus_client's
own parser, counts exactly what was sent, for the in-process server (the one a kernel runs),
a real kernel, and `jupyter-serve models serve -w 2` (one scrape sums both workers)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
from _support import Kernel, free_port, wait_until
from prometheus_client.parser import text_string_to_metric_families
from sklearn.linear_model import LogisticRegression

from jupyter_serve.models import load_model, save_model
from jupyter_serve.server import SECRET_HEADER, ScoringServer, ServerOptions

COLUMNS = ["a", "b"]
GOOD = {"dataframe_split": {"columns": COLUMNS, "data": [[1.0, 2.0], [30.0, 0.0], [3.0, 1.0]]}}
ROWS_PER_GOOD_REQUEST = 3
CLI = [str(Path(sys.executable).parent / "jupyter-serve"), "models", "serve"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    features = pd.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0) % 3}, columns=COLUMNS)
    classifier = LogisticRegression().fit(features, (features["a"] > 19).astype(int))
    return save_model(classifier, tmp_path_factory.mktemp("metrics") / "model")


def scrape(url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """The samples of one scrape: {(sample name, sorted labels): value}, and each family's
    type: {("TYPE", family name): type}."""
    response = requests.get(url + "/metrics", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    samples: dict[Any, Any] = {}
    for family in text_string_to_metric_families(response.text):
        samples[("TYPE", family.name)] = family.type
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def requests_of(samples: dict[Any, Any], route: str, code: int) -> float:
    key = ("jupyter_serve_requests_total", (("code", str(code)), ("route", route)))
    return float(samples.get(key, 0.0))


def send_known_mix(url: str, good: int, headers: dict[str, str] | None = None) -> None:
    """``good`` predictions, 2 bodies that are not JSON, 1 GET on /invocations, 2 unknown
    paths and 1 ping; each on a new connection (so a pool spreads them over its workers)."""
    headers = headers or {}
    for _ in range(good):
        answer = requests.post(url + "/invocations", json=GOOD, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
    for _ in range(2):
        bad = requests.post(
            url + "/invocations",
            data=b"{not json",
            headers={**headers, "Content-Type": "application/json"},
            timeout=30,
        )
        assert bad.status_code == 400
    assert requests.get(url + "/invocations", headers=headers, timeout=30).status_code == 405
    for path in ("/nope", "/v1/models"):
        assert requests.get(url + path, headers=headers, timeout=30).status_code == 404
    assert requests.get(url + "/ping", headers=headers, timeout=30).status_code == 200


def assert_counts_of_known_mix(samples: dict[Any, Any], good: int) -> None:
    assert requests_of(samples, "/invocations", 200) == good
    assert requests_of(samples, "/invocations", 400) == 2
    assert requests_of(samples, "/invocations", 405) == 1
    assert requests_of(samples, "unmatched", 404) == 2
    assert requests_of(samples, "/ping", 200) == 1
    invocations = (("route", "/invocations"),)
    assert samples[("jupyter_serve_request_duration_seconds_count", invocations)] == good + 3
    inf_bucket = (("le", "+Inf"), ("route", "/invocations"))
    assert samples[("jupyter_serve_request_duration_seconds_bucket", inf_bucket)] == good + 3
    assert samples[("jupyter_serve_request_duration_seconds_sum", invocations)] > 0
    # Sent one at a time, each good request is one predict call on its own rows.
    assert samples[("jupyter_serve_predict_calls_total", ())] == good
    assert samples[("jupyter_serve_predict_batch_rows_count", ())] == good
    assert samples[("jupyter_serve_predict_batch_rows_sum", ())] == good * ROWS_PER_GOOD_REQUEST
    assert samples[("jupyter_serve_predict_batch_rows_bucket", (("le", "2.0"),))] == 0
    assert samples[("jupyter_serve_predict_batch_rows_bucket", (("le", "4.0"),))] == good
    assert samples[("jupyter_serve_requests_in_flight", ())] == 1  # the scrape itself
    assert samples[("jupyter_serve_requests_queued", ())] == 0


def test_a_scrape_counts_a_known_mix_of_requests_exactly(model_dir: Path) -> None:
    server = ScoringServer(
        load_model(model_dir),
        ServerOptions(port=0, model_name="spam"),
        model_uri="models:/spam/3",
        version="3",
    )
    server.start()
    try:
        send_known_mix(server.url, good=5)
        first = scrape(server.url)
        assert_counts_of_known_mix(first, good=5)
        info = ("model_name", "spam"), ("model_uri", "models:/spam/3"), ("model_version", "3")
        assert first[("jupyter_serve_model_info", info)] == 1
        assert 0 < first[("jupyter_serve_model_load_seconds", ())] < 60
        assert first[("TYPE", "jupyter_serve_requests")] == "counter"
        assert first[("TYPE", "jupyter_serve_request_duration_seconds")] == "histogram"
        assert first[("TYPE", "jupyter_serve_requests_in_flight")] == "gauge"
        assert first[("TYPE", "jupyter_serve_predict_batch_rows")] == "histogram"
        assert first[("TYPE", "jupyter_serve_model_info")] == "gauge"  # an info, in text

        second = scrape(server.url)
        assert requests_of(second, "/metrics", 200) == 1  # the first scrape, counted once done
        assert requests_of(second, "/invocations", 200) == 5
        # The widgets read the same counts.
        assert server.metrics.snapshot()["requests"] == 5 + 6 + 2
        assert server.metrics.snapshot()["errors"] == 5
    finally:
        server.stop()


def test_metrics_are_per_deployment_and_follow_a_swap(model_dir: Path) -> None:
    model = load_model(model_dir)
    first = ScoringServer(model, ServerOptions(port=0), model_uri="models:/spam/1", version="1")
    other = ScoringServer(model, ServerOptions(port=0), model_uri="models:/ham/1", version="1")
    first.start()
    other.start()
    try:
        send_known_mix(first.url, good=2)
        assert requests_of(scrape(other.url), "/invocations", 200) == 0
        first.swap_model(model, model_uri="models:/spam/2", version="2")
        samples = scrape(first.url)
        info = ("model_name", "spam"), ("model_uri", "models:/spam/2"), ("model_version", "2")
        assert samples[("jupyter_serve_model_info", info)] == 1
        assert requests_of(samples, "/invocations", 200) == 2
    finally:
        first.stop()
        other.stop()


def test_the_metrics_route_needs_the_secret_when_every_route_does(model_dir: Path) -> None:
    options = ServerOptions(port=0, secret="s3cret", require_secret=True)
    server = ScoringServer(load_model(model_dir), options, model_uri="models:/spam/1")
    server.start()
    try:
        refused = requests.get(server.url + "/metrics", timeout=30)
        assert refused.status_code == 403
        assert "jupyter_serve" not in refused.text
        samples = scrape(server.url, headers={SECRET_HEADER: "s3cret"})
        assert requests_of(samples, "/metrics", 403) == 1
    finally:
        server.stop()


@pytest.fixture
def two_workers(model_dir: Path, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    process = subprocess.Popen(
        [*CLI, "-m", str(model_dir), "-p", str(port), "-w", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, "JUPYTER_SERVE_REGISTRY": str(tmp_path / "registry")},
    )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert process.poll() is None, process.communicate()[0]
        try:
            return requests.get(url + "/ping", timeout=5).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_until(answers, timeout=120, message="the two workers to answer")
        yield url, process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()


def test_with_two_workers_any_scrape_sums_both(
    two_workers: tuple[str, subprocess.Popen[str]],
) -> None:
    url, _ = two_workers
    pings_while_waiting = requests_of(scrape(url), "/ping", 200)
    # 40 connections: the kernel spreads them over both workers (all on one: 2**-39).
    send_known_mix(url, good=40)
    # Each scrape is a new connection, landing on either worker: every one sees the sum.
    for scraped in range(6):
        samples = scrape(url)
        assert requests_of(samples, "/invocations", 200) == 40
        assert requests_of(samples, "/ping", 200) == pings_while_waiting + 1
        assert requests_of(samples, "/metrics", 200) == scraped + 1
        assert samples[("jupyter_serve_predict_calls_total", ())] == 40
        assert samples[("jupyter_serve_predict_batch_rows_sum", ())] == 40 * 3
        assert samples[("jupyter_serve_requests_in_flight", ())] == 1
        assert samples[("jupyter_serve_requests_queued", ())] == 0
        [info] = [key for key in samples if key[0] == "jupyter_serve_model_info"]
        assert dict(info[1])["model_name"] == "model"  # the model directory's name


def test_the_server_in_a_kernel_answers_metrics(tmp_path: Path) -> None:
    kernel = Kernel(tmp_path / "runtime", tmp_path / "registry")
    try:
        kernel.ok(
            "import numpy as np, pandas as pd\n"
            "from sklearn.linear_model import LogisticRegression\n"
            "from jupyter_serve import serve\n"
            "X = pd.DataFrame({'a': np.arange(40.0), 'b': np.arange(40.0) % 3})\n"
            "clf = LogisticRegression().fit(X, (X['a'] > 19).astype(int))\n"
            "deployment = serve(clf, name='spam')\n"
            "print('URL', deployment.url)",
            timeout=120,
        )
        url = kernel.ok("print('URL', deployment.url)").stdout.split("URL ")[1].strip()
        send_known_mix(url, good=3)
        samples = scrape(url)
        assert requests_of(samples, "/invocations", 200) == 3
        assert requests_of(samples, "/invocations", 400) == 2
        assert samples[("jupyter_serve_predict_calls_total", ())] == 3
        [info] = [key for key in samples if key[0] == "jupyter_serve_model_info"]
        assert dict(info[1])["model_name"] == "spam"
    finally:
        kernel.shutdown()
