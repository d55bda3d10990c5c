"""How a deployment learns its Jupyter server's proxied URL and its sample request."""

from __future__ import annotations

import json
import os
from pathlib import Path

from jupyter_serve._deployments._environment import (
    current_kernel_id,
    jupyter_server_url,
    proxy_url,
)
from jupyter_serve._deployments._sample_request import (
    SAMPLE_TEXT,
    curl_command,
    sample_invocation_body,
)


def test_proxy_url_comes_from_the_parent_jupyter_servers_file(tmp_path: Path) -> None:
    runtime = Path(os.environ["JUPYTER_RUNTIME_DIR"])
    runtime.mkdir(parents=True, exist_ok=True)
    (runtime / "jpserver-4242.json").write_text(
        json.dumps({"url": "http://localhost:8888/lab-base/", "base_url": "/lab-base/"})
    )

    server_url = jupyter_server_url(parent_pid=4242)

    assert server_url == "http://localhost:8888/lab-base/"
    assert (
        proxy_url("77-spam", server_url)
        == "http://localhost:8888/lab-base/jupyter-serve/proxy/77-spam/"
    )


def test_no_proxy_url_outside_a_jupyter_server() -> None:
    assert jupyter_server_url(parent_pid=4243) is None
    assert proxy_url("77-spam", None) is None


def test_a_plain_python_process_has_no_kernel_id() -> None:
    assert current_kernel_id() is None


class _Column:
    def __init__(self, name: str, type_name: str) -> None:
        self.name = name
        self.type = type("DataType", (), {"name": type_name})()


class _ModelWithSignature:
    serving_input_example = None
    input_example = None
    raw_model = None

    def __init__(self, columns: list[_Column]) -> None:
        self.signature = type(
            "Signature", (), {"inputs": type("Schema", (), {"inputs": columns})()}
        )


def test_sample_body_fits_the_signature_columns_and_types() -> None:
    model = _ModelWithSignature(
        [_Column("text", "string"), _Column("count", "long"), _Column("score", "double")]
    )

    body = json.loads(sample_invocation_body(model))

    assert body == {
        "dataframe_split": {"columns": ["text", "count", "score"], "data": [[SAMPLE_TEXT, 1, 0.5]]}
    }


def test_the_models_own_serving_example_wins() -> None:
    model = _ModelWithSignature([_Column("text", "string")])
    model.serving_input_example = '{"inputs": {"text": ["hi"]}}'  # type: ignore[assignment]

    assert sample_invocation_body(model) == '{"inputs": {"text": ["hi"]}}'


def test_curl_quotes_the_body_for_a_posix_shell() -> None:
    command = curl_command("http://127.0.0.1:5000", '{"inputs": ["it\'s"]}')

    assert command.startswith("curl -X POST http://127.0.0.1:5000/invocations")
    assert "-H 'Content-Type: application/json'" in command
    assert command.endswith("""-d '{"inputs": ["it'"'"'s"]}'""")
