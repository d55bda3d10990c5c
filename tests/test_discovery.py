"""Discovery files on a real filesystem: what the kernel side refuses to write, and what
readers (the Jupyter server's listing and proxy) refuse to believe."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from jupyter_serve.discovery import (
    DeploymentRecord,
    UnsafeDiscoveryDirectoryError,
    read_record,
    read_records,
    record_path,
    write_record,
)

NOBODY = 65534


def _record(name: str = "spam", **changes: object) -> DeploymentRecord:
    fields: dict[str, object] = {
        "name": name,
        "pid": os.getpid(),
        "host": "127.0.0.1",
        "port": 8080,
        "model_uri": "models:/spam/1",
        "status": "running",
        "started_at": 1_700_000_000.0,
        "kernel_id": "k-1",
        "secret": "s3cret",
    }
    fields.update(changes)
    return DeploymentRecord(**fields)  # type: ignore[arg-type]


def _plant(directory: Path, file_name: str, content: object) -> Path:
    path = directory / file_name
    path.write_text(json.dumps(content), encoding="utf-8")
    path.chmod(0o600)
    return path


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    private = tmp_path / "jupyter-serve"
    private.mkdir(mode=0o700)
    return private


BAD_RECORDS: list[tuple[str, object]] = [
    ("pid-text", {"pid": "abc"}),
    ("pid-huge", {"pid": 10**12}),
    ("pid-negative", {"pid": -1}),
    ("pid-bool", {"pid": True}),
    ("host-number", {"host": 5}),
    ("kernel-list", {"kernel_id": ["k-1"]}),
    ("port-text", {"port": "8080"}),
    ("port-out-of-range", {"port": 70000}),
    ("name-slash", {"name": "../etc"}),
    ("metrics-list", {"metrics": [1, 2]}),
    ("metrics-deep", {"metrics": json.loads('{"a":' * 900 + "1" + "}" * 900)}),
    ("secret-number", {"secret": 42}),
    ("started-text", {"started_at": "yesterday"}),
    ("require-secret-text", {"require_secret": "yes"}),
    ("missing-port", {"port": None}),
]


def test_malformed_records_are_skipped_and_logged_and_good_ones_still_listed(
    directory: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = write_record(_record("good"), directory)
    for label, change in BAD_RECORDS:
        content = {**json.loads(good.read_text()), **change, "name": f"bad-{label}"}
        if change.get("port", 0) is None:
            del content["port"]
        if label == "name-slash":
            content["name"] = "../etc"
        _plant(directory, f"deployment-{os.getpid()}-bad-{label}.json", content)
    for label, content in [
        ("array", []),
        ("null", None),
        ("string", "x"),
        ("deep", json.loads("[" * 50 + "]" * 50)),
    ]:
        _plant(directory, f"deployment-{os.getpid()}-{label}.json", content)
    (directory / f"deployment-{os.getpid()}-notjson.json").write_text("{not json")
    (directory / f"deployment-{os.getpid()}-deeper.json").write_text("[" * 100_000)

    with caplog.at_level(logging.WARNING, logger="jupyter_serve.discovery"):
        assert [record.name for record in read_records(directory)] == ["good"]
        read_records(directory)  # polled again: nothing new to say

    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == len(BAD_RECORDS) + 6, messages
    assert any("field 'pid' must be an integer from 1 to" in m for m in messages)
    assert any("field 'host' must be a string, not int" in m for m in messages)
    assert any("field 'kernel_id' must be a string, not list" in m for m in messages)
    assert any("field 'port' is missing" in m for m in messages)
    assert any("field 'metrics' nests deeper than 8 levels" in m for m in messages)
    assert any("a discovery record is a JSON object, not list" in m for m in messages)
    assert any("a discovery record is a JSON object, not NoneType" in m for m in messages)
    assert read_record(f"{os.getpid()}-bad-pid-text", directory) is None
    assert read_record(f"{os.getpid()}-good", directory) == _record("good")


def test_a_file_naming_another_deployment_is_not_believed(directory: Path) -> None:
    content = _record("victim").to_json()
    _plant(directory, f"deployment-{os.getpid()}-other.json", content)

    assert read_records(directory) == []
    assert read_record(f"{os.getpid()}-other", directory) is None


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777, 0o1777])
def test_a_group_or_world_writable_directory_is_refused_and_ignored(
    directory: Path, mode: int
) -> None:
    planted = write_record(_record(), directory)
    directory.chmod(mode)

    with pytest.raises(UnsafeDiscoveryDirectoryError) as refused:
        write_record(_record("next"), directory)

    message = str(refused.value)
    assert "writable by group or others" in message
    assert f"chmod 700 {directory}" in message and "JUPYTER_RUNTIME_DIR" in message
    assert not record_path(_record("next").id, directory).exists(), "nothing written there"
    assert read_records(directory) == []
    assert read_record(_record().id, directory) is None
    assert planted.exists(), "a reader does not delete what it does not trust"


@pytest.mark.skipif(os.getuid() != 0, reason="changing a file's owner needs root")
def test_a_directory_owned_by_another_user_is_refused(directory: Path) -> None:
    os.chown(directory, NOBODY, NOBODY)

    with pytest.raises(UnsafeDiscoveryDirectoryError, match=f"owned by uid {NOBODY}"):
        write_record(_record(), directory)


@pytest.mark.skipif(os.getuid() != 0, reason="changing a file's owner needs root")
def test_a_record_owned_by_another_user_is_ignored(directory: Path) -> None:
    ours = write_record(_record("ours"), directory)
    theirs = write_record(_record("theirs"), directory)
    os.chown(theirs, NOBODY, NOBODY)

    assert [record.name for record in read_records(directory)] == ["ours"]
    assert read_record(_record("theirs").id, directory) is None
    assert read_record(_record("ours").id, directory) is not None
    assert ours.exists()


def test_a_symlinked_record_is_not_followed(directory: Path, tmp_path: Path) -> None:
    elsewhere = write_record(_record("ours"), tmp_path)
    (directory / elsewhere.name).symlink_to(elsewhere)

    assert read_records(directory) == []


def test_writer_creates_a_private_directory(tmp_path: Path) -> None:
    target = tmp_path / "fresh" / "jupyter-serve"
    path = write_record(_record(), target)

    assert target.stat().st_mode & 0o777 == 0o700
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_records(target) == [_record()]
