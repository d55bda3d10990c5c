"""The kernel side of the Ray target, without a cluster: targets, packages, the merge, errors.

The real cluster is in test_ray_target.py; these cover what needs none, in milliseconds.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from jupyter_serve.errors import DeploymentError
from jupyter_serve.targets.ray import parse_target
from jupyter_serve.targets.ray._applications import _merged
from jupyter_serve.targets.ray._config import IMPORT_PATH
from jupyter_serve.targets.ray._packages import model_package, our_package

CLI = str(Path(sys.executable).parent / "jupyter-serve")


def test_a_target_names_the_dashboard() -> None:
    assert parse_target("ray+http://10.0.0.5:8265") == ("http://10.0.0.5:8265", "10.0.0.5")
    for wrong in ("http://10.0.0.5:8265", "ray+ftp://x", "ray+http://"):
        with pytest.raises(DeploymentError, match="ray\\+http://HOST"):
            parse_target(wrong)


def test_packages_are_content_addressed_and_laid_out_for_ray(tmp_path: Path) -> None:
    (tmp_path / "MLmodel").write_text("flavors: {}\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "x.pyc").write_bytes(b"\0")
    first, second = model_package(tmp_path), model_package(tmp_path)
    assert first == second and first.uri.startswith("gcs://_ray_pkg_")
    assert zipfile.ZipFile(io.BytesIO(first.content)).namelist() == ["MLmodel"]
    names = zipfile.ZipFile(io.BytesIO(our_package().content)).namelist()
    assert "jupyter_serve/__init__.py" in names
    assert "jupyter_serve/targets/ray/_replica.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    (tmp_path / "MLmodel").write_text("flavors: {changed: true}\n")
    assert model_package(tmp_path).uri != first.uri


def _app(name: str, import_path: str = "other.module:app") -> dict[str, object]:
    config = {"name": name, "route_prefix": f"/{name}", "import_path": import_path}
    return {"name": name, "status": "RUNNING", "deployed_app_config": config}


def test_a_write_keeps_every_other_application_and_serves_options() -> None:
    details = {
        "http_options": {"host": "127.0.0.1", "port": 8123},
        "proxy_location": "HeadOnly",
        "controller_info": {"node_id": "x"},
        "applications": {
            "theirs": _app("theirs"),
            "spam": _app("spam", IMPORT_PATH),
            "leaving": {**_app("leaving"), "status": "DELETING"},
        },
    }
    new = {"name": "spam", "import_path": IMPORT_PATH, "args": {"version": "2"}}
    merged = _merged(details, keep_out="spam", add=new)
    assert merged["applications"] == [_app("theirs")["deployed_app_config"], new]
    assert merged["http_options"] == {"host": "127.0.0.1", "port": 8123}
    assert merged["proxy_location"] == "HeadOnly"
    assert "controller_info" not in merged
    removed = _merged(details, keep_out="spam", add=None)
    assert removed["applications"] == [_app("theirs")["deployed_app_config"]]


def test_an_application_deployed_from_python_is_never_overwritten() -> None:
    details = {"applications": {"imperative": {"name": "imperative", "status": "RUNNING"}}}
    with pytest.raises(DeploymentError, match="'imperative' deployed from Python"):
        _merged(details, keep_out="spam", add={"name": "spam"})


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["deploy", "models:/spam/1", "--target", "http://x:8265"], "unknown deployment target"),
        (["deploy", "m", "--target", "ray+http://h:1", "--autoscale", "3"], "is not MIN:MAX"),
        (["deploy", "m", "--target", "ray+http://h:1", "--autoscale", "3:1"], "is not a range"),
        (["deploy", "m", "--target", "ray+http://h:1", "--replicas", "0"], "--replicas must be"),
        (["deploy", "m", "--target", "ray+http://h:1", "--max-batch-size", "0"], "batch-size"),
        (
            ["deploy", "m", "--target", "ray+http://h:1", "-t", "1", "--max-batch-wait", "2e3"],
            "is in milliseconds",
        ),
        (["deployments"], "no target"),
    ],
)
def test_cli_mistakes_are_one_line(args: list[str], expected: str) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    done = subprocess.run([CLI, *args], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0]


def test_an_unreachable_dashboard_is_one_line() -> None:
    port = _closed_port()
    target = f"ray+http://127.0.0.1:{port}"
    done = subprocess.run(
        [CLI, "deployments", "--target", target], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"jupyter-serve: error: cannot reach the Ray dashboard at http://127.0.0.1:{port} "
        "([Errno 111] Connection refused). Check that the cluster is running and its dashboard "
        "listens there (ray start --head --dashboard-host ...; on Kubernetes: kubectl "
        "port-forward svc/<head> 8265)."
    )


def test_the_kernel_side_never_imports_ray() -> None:
    code = (
        "import sys, jupyter_serve.cli, jupyter_serve.targets.ray, jupyter_serve.magics\n"
        "from jupyter_serve.targets.ray._deployment import RemoteDeployment\n"
        "assert not [m for m in sys.modules if m == 'ray' or m.startswith('ray.')], 'ray'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_extra_inputs_are_named_alike_in_every_process() -> None:
    # A replica and a local server are different processes with different string hash seeds;
    # an error naming the extra inputs must read the same in both (it once followed set order).
    code = (
        "import pandas as pd\n"
        "from jupyter_serve.models._enforcement import InputEnforcer\n"
        "from jupyter_serve.models._inference import infer_schema\n"
        "enforcer = InputEnforcer(infer_schema(pd.DataFrame({'text': ['x']})))\n"
        "try:\n"
        "    enforcer.enforce(pd.DataFrame({c: [1.0] for c in 'abcdefgh'}))\n"
        "except Exception as error:\n"
        "    print(error)\n"
    )
    messages = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        for seed in range(4)
    }
    assert len(messages) == 1
    assert "extra inputs: ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']" in messages.pop()


def test_invalid_params_are_named_alike_in_every_process() -> None:
    code = (
        "from jupyter_serve.models._params import ParamsEnforcer\n"
        "from jupyter_serve.models._schema import DataType, ParamSchema, ParamSpec\n"
        "specs = [ParamSpec(name, DataType.long, 1) for name in 'abcdef']\n"
        "try:\n"
        "    ParamsEnforcer(ParamSchema(specs)).enforce({name: 'x' for name in 'abcdef'})\n"
        "except Exception as error:\n"
        "    print(error)\n"
    )
    messages = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        for seed in range(4)
    }
    assert len(messages) == 1
    assert messages.pop().startswith("Invalid parameters found: {('a', ")
