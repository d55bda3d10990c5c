from __future__ import annotations

from pathlib import Path

import pytest

from jupyter_serve.errors import ModelNotFoundError
from jupyter_serve.uris import (
    AliasRef,
    LatestVersionRef,
    LocalPathRef,
    LoggedModelRef,
    RunArtifactRef,
    StageRef,
    VersionRef,
    parse_model_uri,
)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("models:/spam/3", VersionRef("spam", 3)),
        ("models:/spam/latest", LatestVersionRef("spam")),
        ("models:/spam/LATEST", LatestVersionRef("spam")),
        ("models:/spam@latest", LatestVersionRef("spam")),
        ("models:/spam/Production", StageRef("spam", "Production")),
        ("models:/spam/staging", StageRef("spam", "staging")),
        ("models:/spam/Prod", StageRef("spam", "Prod")),
        ("models:/spam/\u00b2", StageRef("spam", "\u00b2")),
        ("models:/spam/007", VersionRef("spam", 7)),
        ("models:/spam@champion", AliasRef("spam", "champion")),
        ("models:/my model@v-2_b", AliasRef("my model", "v-2_b")),
        ("models:/m-0123abcd", LoggedModelRef("m-0123abcd")),
        ("runs:/0a1b2c/model", RunArtifactRef("0a1b2c", "model")),
        ("runs:/0a1b2c/nested/dir/", RunArtifactRef("0a1b2c", "nested/dir")),
        ("/tmp/models/spam", LocalPathRef(Path("/tmp/models/spam"))),
        ("relative/spam", LocalPathRef(Path("relative/spam"))),
        ("file:///tmp/my%20models/spam", LocalPathRef(Path("/tmp/my models/spam"))),
        ("file://localhost/tmp/spam", LocalPathRef(Path("/tmp/spam"))),
        ("  models:/spam/1  ", VersionRef("spam", 1)),
    ],
)
def test_each_accepted_form_parses_into_its_reference(uri: str, expected: object) -> None:
    assert parse_model_uri(uri) == expected


def test_a_home_relative_path_is_expanded() -> None:
    assert parse_model_uri("~/spam") == LocalPathRef(Path.home() / "spam")


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("", "empty"),
        ("models:/", "name is missing"),
        ("models:/spam/", "version, stage or 'latest'"),
        ("models:/spam/1/extra", "expected models:/<name>/<suffix>"),
        ("models://spam/1", "no host part"),
        ("models:/@champion", "both parts"),
        ("models:/spam@", "both parts"),
        ("runs:/abc", "expected runs:/<run_id>/<artifact path>"),
        ("runs://abc/model", "one slash"),
        ("s3://bucket/spam", "scheme 's3:' is not supported"),
        ("http://example.invalid/spam", "scheme 'http:' is not supported"),
        ("file://otherhost/tmp/spam", "not local"),
    ],
)
def test_malformed_uris_name_the_problem_and_the_accepted_forms(uri: str, reason: str) -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        parse_model_uri(uri)
    message = str(caught.value)
    assert reason in message
    assert "Accepted forms: models:/<name>/<version>" in message
    assert "models:/<name>@<alias>" in message
