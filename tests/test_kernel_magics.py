"""%serve, %deployments and %unserve in a real IPython kernel, answered over real sockets.

One kernel is shared by the module (kernels cost about a second each); tests that stop what
they start leave it clean for the next.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from _support import (
    CellResult,
    Kernel,
    discovery_files,
    free_port,
    port_is_listening,
    wait_until,
)

from jupyter_serve.datasets import SAMPLE_HAM_EMAIL, SAMPLE_SPAM_EMAIL

JUPYTER_URL = "http://localhost:8888/user/ann/"
EMAILS = {
    "dataframe_split": {"columns": ["text"], "data": [[SAMPLE_SPAM_EMAIL], [SAMPLE_HAM_EMAIL]]}
}

SETUP = """
%load_ext jupyter_serve
import threading, time
import requests
import jupyter_serve
from jupyter_serve.datasets import train_spam_classifier
from jupyter_serve.registry import register_model

class Constant:
    def __init__(self, label):
        self.label = label
    def predict(self, data):
        return [self.label] * len(data)

clf = train_spam_classifier()
def our_threads():
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("jupyter-serve"))
"""


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    root = tmp_path_factory.mktemp("kernel")
    # The kernel's parent (this process) poses as a Jupyter server, as far as its file goes.
    (root / "runtime").mkdir()
    (root / "runtime" / f"jpserver-{os.getpid()}.json").write_text(
        json.dumps({"url": JUPYTER_URL, "base_url": "/user/ann/"})
    )
    session = Kernel(root / "runtime", root / "registry")
    try:
        session.ok(SETUP, timeout=120)
        yield session
    finally:
        session.shutdown()


@pytest.fixture(autouse=True)
def nothing_left_running(kernel: Kernel) -> Iterator[None]:
    yield
    kernel.ok("%unserve --all")


def served_url(result: CellResult) -> str:
    match = re.search(r"at (http://127\.0\.0\.1:\d+)", result.text)
    assert match, result.text
    return match.group(1)


def curl_body(result: CellResult) -> object:
    [curl] = [line.strip() for line in result.text.splitlines() if line.strip().startswith("curl")]
    words = shlex.split(curl)
    return json.loads(words[words.index("-d") + 1])


def test_serve_a_variable_shows_url_and_a_curl_that_works(kernel: Kernel) -> None:
    result = kernel.ok("%serve clf")

    url = served_url(result)
    assert f"Serving 'clf' (in-memory:clf) at {url}" in result.text
    assert f"Port {url.rsplit(':', 1)[1]} was free, so it was picked" in result.text
    assert any("jupyter-serve-summary" in html for html in result.html)
    answer = requests.post(f"{url}/invocations", json=curl_body(result), timeout=10)
    assert answer.status_code == 200
    assert answer.json() == {"predictions": ["spam"]}


def test_serve_a_registered_model_on_a_chosen_port(kernel: Kernel) -> None:
    port = free_port()
    kernel.ok('register_model(clf, "spam", stage="Production")')

    result = kernel.ok(f"%serve models:/spam/Production --port {port}")

    assert f"Serving 'spam' (models:/spam/Production, version 1) at http://127.0.0.1:{port}" in (
        result.text
    )
    assert "was free" not in result.text
    proxied = f"{JUPYTER_URL}jupyter-serve/proxy/{kernel.pid}-spam/"
    assert f"Through Jupyter: {proxied}" in result.text
    answer = requests.post(f"http://127.0.0.1:{port}/invocations", json=EMAILS, timeout=10)
    assert answer.json() == {"predictions": ["spam", "ham"]}
    [record_file] = discovery_files(kernel.runtime_dir)
    record = json.loads(record_file.read_text())
    assert (record["kernel_id"], record["port"], record["version"], record["proxy_url"]) == (
        kernel.kernel_id,
        port,
        "1",
        proxied,
    )


def test_serve_leaves_garbage_collection_as_it_found_it(kernel: Kernel) -> None:
    kernel.ok('register_model(clf, "gc-check")')

    served = kernel.ok(
        "import gc\n%serve models:/gc-check/latest --name gc-on\nprint(gc.isenabled())"
    )
    refused = kernel.run("%serve models:/no-such-model/1")
    after_error = kernel.ok("print(gc.isenabled())")
    kept_off = kernel.ok(
        "gc.disable()\n%serve clf --name gc-off\nprint(gc.isenabled())\ngc.enable()"
    )

    assert served.stdout.split()[-1] == "True"
    assert "no-such-model" in refused.stderr and after_error.stdout.split()[-1] == "True"
    assert kept_off.stdout.split()[-1] == "False"


def test_a_variable_holding_a_uri_serves_that_uri(kernel: Kernel) -> None:
    kernel.ok('version = register_model(clf, "ham-filter")\nuri = f"models:/ham-filter/{version}"')

    result = kernel.ok("%serve uri")

    assert re.search(r"Serving 'ham-filter' \(models:/ham-filter/\d+, version \d+\)", result.text)
    answer = requests.post(f"{served_url(result)}/invocations", json=EMAILS, timeout=10)
    assert answer.json() == {"predictions": ["spam", "ham"]}


def test_requests_are_answered_while_a_cell_runs(kernel: Kernel, tmp_path: Path) -> None:
    url = served_url(kernel.ok("%serve clf"))
    answered = tmp_path / "answered"
    # The cell stays busy until the test has its answer (or 30 s pass).
    busy_cell = kernel.submit(
        "import pathlib\n"
        f"flag = pathlib.Path({str(answered)!r})\n"
        "print('busy', flush=True)\n"
        "deadline = time.monotonic() + 30\n"
        "while not flag.exists() and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
        "print('answered while busy' if flag.exists() else 'gave up')"
    )
    kernel.collect(busy_cell, until_stdout="busy")

    answer = requests.post(f"{url}/invocations", json=EMAILS, timeout=10)
    answered.touch()

    assert answer.json() == {"predictions": ["spam", "ham"]}
    assert "answered while busy" in kernel.collect(busy_cell, timeout=60).stdout


def test_a_cell_can_call_its_own_endpoint(kernel: Kernel) -> None:
    url = served_url(kernel.ok("%serve clf --name own"))

    result = kernel.ok(
        f"print(requests.post('{url}/invocations', json={EMAILS!r}, timeout=10).json())"
    )

    assert result.stdout.strip() == "{'predictions': ['spam', 'ham']}"


def test_swap_under_steady_traffic_fails_no_request(kernel: Kernel) -> None:
    url = served_url(kernel.ok("%serve clf --name live"))
    answers: list[object] = []
    failures: list[str] = []
    stop = threading.Event()

    def client() -> None:
        session = requests.Session()
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                reply = session.post(f"{url}/invocations", json=EMAILS, timeout=10)
                if reply.status_code != 200:
                    failures.append(f"{reply.status_code} {reply.text}")
                else:
                    answers.append(reply.json()["predictions"])
            except requests.RequestException as error:
                failures.append(repr(error))

    traffic = [threading.Thread(target=client) for _ in range(2)]
    for thread in traffic:
        thread.start()
    try:
        wait_until(lambda: len(answers) >= 20, timeout=30, message="traffic on the old model")
        swapped = kernel.ok("replacement = Constant('swapped')\n%serve replacement --name live")
        seen_after_swap = len(answers)
        wait_until(
            lambda: len(answers) >= seen_after_swap + 20, timeout=30, message="traffic after swap"
        )
    finally:
        stop.set()
        for thread in traffic:
            thread.join(timeout=30)

    assert failures == []
    assert "Swapped in 'live' (in-memory:replacement)" in swapped.text
    assert served_url(swapped) == url
    assert answers[0] == ["spam", "ham"]
    assert answers[-1] == ["swapped", "swapped"]


def test_deployments_lists_traffic_and_unserve_frees_the_port(kernel: Kernel) -> None:
    url = served_url(kernel.ok("%serve clf --name listed"))
    port = int(url.rsplit(":", 1)[1])
    for _ in range(3):
        requests.post(f"{url}/invocations", json=EMAILS, timeout=10).raise_for_status()

    listing = kernel.ok("%deployments")
    header, row = listing.text.splitlines()
    stopped = kernel.ok("%unserve listed")

    assert header.split() == [
        "name", "source", "version", "url", "status", "requests", "errors", "p50", "ms", "p99", "ms"
    ]  # fmt: skip
    assert row.split()[:7] == ["listed", "in-memory:clf", "-", url, "running", "3", "0"]
    assert any("<table" in html for html in listing.html)
    assert "Stopped 'listed'" in stopped.stdout
    assert not port_is_listening(port)
    assert discovery_files(kernel.runtime_dir) == []
    assert kernel.ok("print(our_threads())").stdout.strip() == "[]"
    assert "No deployments in this kernel" in kernel.ok("%deployments").text


def test_remote_stop_removes_it_from_the_kernels_table(kernel: Kernel) -> None:
    url = served_url(kernel.ok("%serve clf --name remote"))
    [record_file] = discovery_files(kernel.runtime_dir)
    secret = json.loads(record_file.read_text())["secret"]

    answer = requests.post(
        f"{url}/-/jupyter-serve/stop", headers={"X-Jupyter-Serve-Secret": secret}, timeout=10
    )

    assert answer.status_code == 202
    wait_until(lambda: not record_file.exists(), message="discovery file removed")
    assert "No deployments in this kernel" in kernel.ok("%deployments").text


def test_serve_help_documents_every_option(kernel: Kernel) -> None:
    result = kernel.ok("%serve?")

    help_text = json.dumps(result.payload)
    assert "%serve [--name NAME] [--registry-uri REGISTRY_URI] [-p PORT] [-h HOST]" in help_text
    for option in ("--name", "--port", "--host", "--timeout", "--workers", "--env-manager"):
        assert option in help_text
    assert "--require-secret" in help_text
    assert "--max-batch-size" in help_text and "--max-batch-wait" in help_text


BAD_INPUT = [
    ("%serve nosuchvariable", "No variable named 'nosuchvariable'"),
    ("not_a_model = 42\n%serve not_a_model", "cannot be served"),
    ("%serve models:/nothing/Production", "nothing"),
    ("%serve clf --port {busy_port}", "{busy_port}"),
    ("%serve clf --host 203.0.113.7", "203.0.113.7"),
    ("%serve clf --workers many", "many"),
    ("%serve clf --bogus", "--bogus"),
    ("%serve clf --env-manager conda", "conda"),
    ("%serve clf --name 'not valid'", "not valid"),
    ("%serve clf --max-batch-size 0", "Invalid --max-batch-size: expected a whole number"),
    ("%serve clf --max-batch-wait -1", "Invalid --max-batch-wait"),
    ("%serve clf --capture -1", "Invalid --capture"),
    ("%serve clf --log-format xml", "xml"),
    ("%unserve nosuch", "No deployment named 'nosuch'"),
    ("%unserve", "needs one deployment name or --all"),
    ("%deployments extra", "takes no arguments"),
]


@pytest.mark.parametrize(("cell", "expected"), BAD_INPUT)
def test_bad_input_shows_one_line_and_starts_nothing(
    kernel: Kernel, cell: str, expected: str
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        busy_port = str(busy.getsockname()[1])
        before = kernel.ok("print(our_threads())").stdout

        result = kernel.run(cell.format(busy_port=busy_port))

        assert result.status == "error"
        shown = result.error_text
        assert shown.startswith("UsageError: ") and "\n" not in shown, shown
        assert expected.format(busy_port=busy_port) in shown
        assert "Traceback" not in shown
        assert kernel.ok("print(our_threads())").stdout == before
        assert kernel.ok("print(jupyter_serve.deployments())").stdout.strip() == "[]"
        assert discovery_files(kernel.runtime_dir) == []


def test_unload_unregisters_the_magics_but_keeps_serving(kernel: Kernel) -> None:
    url = served_url(kernel.ok("%serve clf --name kept"))

    kernel.ok("%unload_ext jupyter_serve")
    gone = kernel.run("%deployments")
    still = requests.post(f"{url}/invocations", json=EMAILS, timeout=10)
    kernel.ok("%load_ext jupyter_serve")

    assert gone.status == "error" and "deployments" in gone.error_text
    assert still.json() == {"predictions": ["spam", "ham"]}


def test_kernel_restart_and_shutdown_leave_nothing_behind(tmp_path: Path) -> None:
    # The extension comes from IPython's config here, as c.InteractiveShellApp.extensions.
    profile = tmp_path / "ipython" / "profile_default"
    profile.mkdir(parents=True)
    (profile / "ipython_kernel_config.py").write_text(
        'c.InteractiveShellApp.extensions = ["jupyter_serve"]\n'
    )
    session = Kernel(
        tmp_path / "runtime", tmp_path / "registry", {"IPYTHONDIR": str(tmp_path / "ipython")}
    )
    setup = "class Constant:\n    def predict(self, data): return [1]\nmodel = Constant()"
    try:
        session.ok(setup)
        first = int(served_url(session.ok("%serve model")).rsplit(":", 1)[1])
        [record] = discovery_files(session.runtime_dir)
        assert json.loads(record.read_text())["kernel_id"] == session.kernel_id

        session.shutdown(restart=True)

        assert not port_is_listening(first)
        assert discovery_files(session.runtime_dir) == []
        session.ok(setup)
        second = int(served_url(session.ok("%serve model")).rsplit(":", 1)[1])
    finally:
        session.shutdown()

    assert not port_is_listening(second)
    assert discovery_files(session.runtime_dir) == []
