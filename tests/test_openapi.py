"""``GET /openapi.json`` and ``GET /docs`` on a real server: the document validates, describes
the served model's own inputs, its example gets a prediction as it is, a property-based
client (schemathesis) finds no 5xx and no answer the document contradicts, and the Swagger UI
page comes with its files from the deployment itself."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

import numpy as np
import pandas as pd
import pytest
import requests
from openapi_spec_validator import validate
from sklearn.linear_model import LinearRegression, LogisticRegression

from jupyter_serve.models import (
    DataType,
    ModelSignature,
    ParamSchema,
    ParamSpec,
    infer_signature,
    load_model,
    save_model,
)
from jupyter_serve.server import SECRET_HEADER, ScoringServer, ServerOptions

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
# The operation ids of MLflow 3.17.2's own /openapi.json (FastAPI's), which ours keeps.
MLFLOW_OPERATION_IDS = {
    ("/ping", "get"): "ping_ping_get",
    ("/health", "get"): "ping_health_get",
    ("/version", "get"): "version_version_get",
    ("/invocations", "post"): "transformation_invocations_post",
}


@pytest.fixture(scope="module")
def columns_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classifier on a double, a long and a string column, with a params schema."""
    frame = pd.DataFrame(
        {
            "amount": np.linspace(0.0, 100.0, 40),
            "count": np.arange(40, dtype="int64"),
            "kind": ["a", "b"] * 20,
        }
    )
    labels = (frame["amount"] > 50).astype(int)
    classifier = LogisticRegression().fit(frame[["amount", "count"]], labels)
    wrapped = _IgnoringKind(classifier)
    inferred = infer_signature(frame, wrapped.predict(frame))
    signature = ModelSignature(
        inputs=inferred.inputs,
        outputs=inferred.outputs,
        params=ParamSchema([ParamSpec("threshold", DataType.double, 0.5)]),
    )
    path = tmp_path_factory.mktemp("openapi") / "columns"
    return save_model(wrapped, path, signature=signature, input_example=frame.head(2))


class _IgnoringKind:
    """A model whose input has a string column it does not use (saved with cloudpickle)."""

    def __init__(self, classifier: LogisticRegression) -> None:
        self.classifier = classifier

    def predict(self, frame: pd.DataFrame) -> Any:
        return self.classifier.predict(frame[["amount", "count"]])


@pytest.fixture(scope="module")
def tensor_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    features = np.arange(20.0).reshape(10, 2)
    regression = LinearRegression().fit(features, features.sum(axis=1))
    path = tmp_path_factory.mktemp("openapi") / "tensor"
    return save_model(regression, path, input_example=features[:2])


def _serving(path: Path, **options: Any) -> Iterator[ScoringServer]:
    server = ScoringServer(
        load_model(path),
        ServerOptions(port=0, **options),
        model_uri="models:/fraud/2",
        version="2",
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def columns_server(columns_model: Path) -> Iterator[ScoringServer]:
    yield from _serving(columns_model)


def document_of(url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = requests.get(url + "/openapi.json", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    document: dict[str, Any] = response.json()
    return document


def test_the_document_validates_and_describes_the_models_columns_and_params(
    columns_server: ScoringServer,
) -> None:
    document = document_of(columns_server.url)

    validate(document)  # raises on an invalid OpenAPI 3.1 document
    assert document["openapi"] == "3.1.0"
    assert "models:/fraud/2" in document["info"]["description"]
    paths = document["paths"]
    for route in ("/invocations", "/ping", "/health", "/version", "/metrics", "/docs"):
        assert route in paths
    for route in ("/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/{model_name}/infer"):
        assert route in paths
    for (route, method), operation_id in MLFLOW_OPERATION_IDS.items():
        assert paths[route][method]["operationId"] == operation_id
    schemas = document["components"]["schemas"]
    records = schemas["DataframeRecords"]["properties"]["dataframe_records"]["items"]
    assert records["properties"] == {
        "amount": {"type": "number"},
        "count": {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
        "kind": {"type": "string"},
    }
    assert records["required"] == ["amount", "count", "kind"]
    split = schemas["DataframeSplit"]["properties"]["dataframe_split"]["properties"]
    assert split["columns"]["items"]["enum"] == ["amount", "count", "kind"]
    assert [item["type"] for item in split["data"]["items"]["prefixItems"]] == [
        "number",
        "integer",
        "string",
    ]
    assert schemas["Params"]["properties"] == {"threshold": {"type": "number", "default": 0.5}}
    body = paths["/invocations"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "text/csv"}
    name = paths["/v2/models/{model_name}"]["get"]["parameters"][0]
    assert name["example"] == "fraud"


def test_the_saved_examples_posted_as_they_are_get_predictions(
    columns_server: ScoringServer, columns_model: Path
) -> None:
    body = document_of(columns_server.url)["paths"]["/invocations"]["post"]["requestBody"]
    json_example = body["content"]["application/json"]["example"]
    saved = (columns_model / "serving_input_example.json").read_text()
    assert json_example == json.loads(saved)

    answer = requests.post(columns_server.url + "/invocations", json=json_example, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"predictions": [0, 0]}
    csv_example = body["content"]["text/csv"]["example"]
    assert csv_example.splitlines()[0] == "amount,count,kind"
    answer = requests.post(
        columns_server.url + "/invocations",
        data=csv_example,
        headers={"Content-Type": "text/csv"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"predictions": [0, 0]}


def test_a_tensor_model_is_described_by_its_shape(tensor_model: Path) -> None:
    for server in _serving(tensor_model):
        document = document_of(server.url)
        validate(document)
        inputs = document["components"]["schemas"]["Inputs"]["properties"]["inputs"]
        assert inputs == {
            "type": "array",
            "items": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
        }
        body = document["paths"]["/invocations"]["post"]["requestBody"]["content"]
        example = body["application/json"]["example"]
        answer = requests.post(server.url + "/invocations", json=example, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"predictions": pytest.approx([1.0, 5.0])}


def test_with_a_required_secret_the_document_says_so_and_needs_it(columns_model: Path) -> None:
    for server in _serving(columns_model, secret="s3cret", require_secret=True):
        assert requests.get(server.url + "/openapi.json", timeout=30).status_code == 403
        assert requests.get(server.url + "/docs", timeout=30).status_code == 403
        document = document_of(server.url, headers={SECRET_HEADER: "s3cret"})
        validate(document)
        scheme = document["components"]["securitySchemes"]["deploymentSecret"]
        assert scheme == {"type": "apiKey", "in": "header", "name": SECRET_HEADER}
        assert document["security"] == [{"deploymentSecret": []}]
        assert "403" in document["paths"]["/invocations"]["post"]["responses"]


def test_schemathesis_finds_no_server_error_and_no_answer_the_document_contradicts(
    columns_server: ScoringServer,
) -> None:
    url = columns_server.url
    checks = (
        "not_a_server_error,status_code_conformance,content_type_conformance,"
        "response_schema_conformance"
    )
    run = subprocess.run(
        [
            SCHEMATHESIS,
            "run",
            url + "/openapi.json",
            "--url",
            url,
            "--checks",
            checks,
            "--phases",
            "examples,coverage,fuzzing",
            # Bounded: ~600 requests, about 30 s on a busy 2-core machine; one worker, since
            # Hypothesis's lambda descriptions are not thread-safe.
            "--max-examples",
            "10",
            "--seed",
            "16",
            "--workers",
            "1",
            "--request-timeout",
            "30",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert re.search(r"\d+ generated, \d+ passed", run.stdout), run.stdout[-2000:]


def test_the_docs_page_and_everything_it_loads_come_from_the_deployment(
    columns_server: ScoringServer,
) -> None:
    page_url = columns_server.url + "/docs"
    page = requests.get(page_url, timeout=30)
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    referenced = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert referenced, page.text
    expected_types = {
        ".css": "text/css",
        ".js": "text/javascript",
        ".png": "image/png",
    }
    scripts = []
    for reference in referenced:
        # Relative: the page works under any prefix, such as the Jupyter server's proxy.
        assert not urlparse(reference).scheme and not reference.startswith("/"), reference
        asset = requests.get(urljoin(page_url, reference), timeout=30)
        assert asset.status_code == 200, reference
        suffix = Path(reference).suffix
        assert asset.headers["Content-Type"].split(";")[0] == expected_types[suffix], reference
        if suffix == ".js":
            scripts.append(asset.text)
    bundle, initializer = scripts
    assert "SwaggerUIBundle" in bundle and len(bundle) > 500_000
    assert 'new URL("openapi.json", here)' in initializer
    assert not re.search(r"https?://", page.text + initializer)
    redirect = requests.get(page_url + "/oauth2-redirect", timeout=30)
    assert redirect.status_code == 200
    assert redirect.headers["Content-Type"].startswith("text/html")
    # Nothing else of the package is served.
    assert requests.get(page_url + "/swagger-editor.js", timeout=30).status_code == 404


def _try_the_example_in_chromium(docs_url: str) -> tuple[str, str, list[str]]:
    """Open Swagger UI at ``docs_url`` in Chromium, "Try it out" on ``/invocations`` with the
    prefilled example, "Execute": the status and body it shows, and every URL requested."""
    from playwright import sync_api as playwright_sync
    from test_browser import CHROMIUM, CHROMIUM_ARGS

    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            page.goto(docs_url)
            operation = page.locator("#operations-default-transformation_invocations_post")
            operation.locator(".opblock-summary").click()
            operation.get_by_role("button", name="Try it out").click()
            operation.get_by_role("button", name="Execute").click()
            status = operation.locator(
                ".live-responses-table td.response-col_status:not(.col_header)"
            )
            status.wait_for()
            body = operation.locator(".live-responses-table .microlight").first
            return status.inner_text().strip(), body.inner_text(), requested
        finally:
            browser.close()


def test_in_a_browser_the_docs_page_renders_and_try_it_out_predicts_offline(
    columns_server: ScoringServer,
) -> None:
    status, body, requested = _try_the_example_in_chromium(columns_server.url + "/docs")

    assert status == "200", body
    assert json.loads(body) == {"predictions": [0, 0]}
    assert columns_server.url + "/invocations" in requested
    for url in requested:
        assert urlparse(url).hostname == "127.0.0.1", url


def test_docs_through_the_jupyter_proxy_try_it_out_predicts(tmp_path: Path) -> None:
    from test_browser import TOKEN, NotebookKernel, start_lab

    lab = start_lab(tmp_path / "lab")
    try:
        kernel = NotebookKernel(lab, "docs.ipynb")
        try:
            kernel.run(
                "import pandas as pd\n"
                "from jupyter_serve import serve\n"
                "from jupyter_serve.datasets import SAMPLE_SPAM_EMAIL, train_spam_classifier\n"
                "from jupyter_serve.models import save_model\n"
                "example = pd.DataFrame({'text': [SAMPLE_SPAM_EMAIL]})\n"
                "path = save_model(train_spam_classifier(), 'spam', input_example=example)\n"
                "deployment = serve(str(path), name='spam')"
            )
            [listed] = lab.deployments()
            proxied = f"{lab.url}jupyter-serve/proxy/{listed['id']}"
            page = lab.api("GET", f"jupyter-serve/proxy/{listed['id']}/docs")
            assert page.status_code == 200
            # Fails fast (not after the browser's timeout) when the proxy's policy forbids
            # the page's own scripts: it cannot render at all then.
            policy = page.headers.get("Content-Security-Policy", "")
            assert f"script-src {proxied}/docs/" in policy, policy
            status, body, requested = _try_the_example_in_chromium(f"{proxied}/docs?token={TOKEN}")
            assert status == "200", body
            assert json.loads(body) == {"predictions": ["spam"]}
            assert f"{proxied}/invocations" in requested
            for url in requested:
                assert urlparse(url).hostname == "127.0.0.1", url
        finally:
            kernel.close()
    finally:
        lab.stop()
