# ruff: noqa: F811 - the imported fixtures are parameters of the tests, as pytest means them
"""A real Jupyter server meeting discovery files it must not believe: malformed records, an
unsafe directory, records another user owns. The listing keeps answering for the good ones
and the proxy never forwards to the bad ones."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403 - fixtures, local to this module
from test_serverext_proxy import (  # fixtures shared with the proxy's suite
    _json,
    _proxy,
    deployment_port,  # noqa: F401
    fetch,  # noqa: F401
    jp_server_config,  # noqa: F401
    kernel_id,  # noqa: F401
    proxy_settings,  # noqa: F401
    record,  # noqa: F401
    run,  # noqa: F401
    usable_event_loop_afterwards,  # noqa: F401
)
from tornado.httpclient import HTTPResponse

from jupyter_serve.discovery import DeploymentRecord, discovery_dir, record_path, write_record

NOBODY = 65534

MALFORMED = {
    "pid-text": {"pid": "abc"},
    "pid-huge": {"pid": 10**12},
    "host-number": {"host": 5},
    "kernel-list": {"kernel_id": ["a", "b"]},
    "port-text": {"port": "80"},
    "metrics-text": {"metrics": "lots"},
    "started-null": {"started_at": None},
    "metrics-deep": {"metrics": json.loads('{"a":' * 900 + "1" + "}" * 900)},
}


def _listed(fetch: Callable[..., HTTPResponse], base_url: str) -> list[str]:
    answer = fetch(f"{base_url}jupyter-serve/api/deployments")
    assert answer.code == 200, answer.body
    return [item["id"] for item in _json(answer)]


def test_malformed_records_do_not_break_the_listing(
    fetch: Callable[..., HTTPResponse], jp_base_url: str, record: DeploymentRecord
) -> None:
    good = record_path(record.id).read_text()
    for label, change in MALFORMED.items():
        content = {**json.loads(good), "name": label, **change}
        path = discovery_dir() / f"deployment-{os.getpid()}-{label}.json"
        path.write_text(json.dumps(content))
    for label, text in {"array": "[]", "null": "null", "cut": '{"name": "x", '}.items():
        (discovery_dir() / f"deployment-{os.getpid()}-{label}.json").write_text(text)

    assert _listed(fetch, jp_base_url) == [record.id]
    for label in [*MALFORMED, "array", "null"]:
        answer = fetch(
            _proxy(jp_base_url, record, "/ping").replace(record.id, f"{os.getpid()}-{label}")
        )
        assert answer.code == 404, label
    assert fetch(_proxy(jp_base_url, record, "/ping")).code == 200


def test_records_in_a_group_writable_directory_are_ignored(
    fetch: Callable[..., HTTPResponse], jp_base_url: str, record: DeploymentRecord
) -> None:
    directory = discovery_dir()
    directory.chmod(0o770)
    try:
        assert _listed(fetch, jp_base_url) == []
        answer = fetch(_proxy(jp_base_url, record, "/ping"))
        assert answer.code == 404
        assert "no running deployment" in _json(answer)["message"]
    finally:
        directory.chmod(0o700)
    assert _listed(fetch, jp_base_url) == [record.id]


@pytest.mark.skipif(os.getuid() != 0, reason="changing a file's owner needs root")
def test_a_record_owned_by_another_user_is_ignored(
    fetch: Callable[..., HTTPResponse], jp_base_url: str, record: DeploymentRecord
) -> None:
    planted = DeploymentRecord(**{**record.__dict__, "name": "planted"})
    path: Path = write_record(planted)
    os.chown(path, NOBODY, NOBODY)

    assert _listed(fetch, jp_base_url) == [record.id]
    assert fetch(_proxy(jp_base_url, planted, "/ping")).code == 404
    assert fetch(_proxy(jp_base_url, record, "/ping")).code == 200
    assert path.exists()
