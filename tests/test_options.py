"""One options model: every front end reads its defaults, names and help from the same table."""

from __future__ import annotations

import dataclasses

import pytest
from sklearn.linear_model import LogisticRegression

import jupyter_serve
from jupyter_serve import options as serving_options
from jupyter_serve.magics import ServeMagics
from jupyter_serve.server import ServerOptions
from jupyter_serve.server._command import build_serve_parser


@pytest.fixture(scope="module")
def classifier() -> LogisticRegression:
    return LogisticRegression().fit([[0.0, 1.0], [1.0, 0.0], [0.9, 0.1], [0.1, 0.9]], [0, 1, 1, 0])


def _flattened(text: str) -> str:
    return " ".join(text.split())


def test_every_front_end_documents_every_option_with_the_same_help() -> None:
    cli_help = _flattened(build_serve_parser().format_help())
    magic_help = _flattened(ServeMagics.serve.__doc__ or "")
    api_help = _flattened(jupyter_serve.serve.__doc__ or "")
    for option in serving_options.OPTIONS:
        first_words = " ".join(option.help.split()[:6])
        if "cli" in option.fronts:
            assert option.flags[-1] in cli_help and first_words in cli_help, option.name
        if "magic" in option.fronts:
            assert option.flags[-1] in magic_help and first_words in magic_help, option.name
        if option.api:
            assert f"{option.name}=" in api_help, option.name


def test_the_server_defaults_are_the_tables() -> None:
    fields = {field.name: field.default for field in dataclasses.fields(ServerOptions)}
    for option in serving_options.OPTIONS:
        if option.server:
            assert fields[option.name] == serving_options.server_default(option.name), option.name


def test_the_command_line_parses_what_serve_takes_in_its_units() -> None:
    arguments = build_serve_parser().parse_args(
        ["-m", "m", "--max-batch-wait", "5", "--log-exclude", "a", "--log-exclude", "b"]
    )
    values = serving_options.from_arguments(arguments, "cli")
    assert values["max_batch_wait"] == 0.005
    assert values["log_exclude"] == ("a", "b")
    assert values["port"] == 5000 and values["timeout"] == 60
    assert set(values) == set(serving_options.API_NAMES)


def test_mlflows_environment_variables_set_the_command_lines_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_PORT", "5123")
    monkeypatch.setenv("MLFLOW_MODELS_WORKERS", "3")
    arguments = build_serve_parser().parse_args(["-m", "m"])
    assert (arguments.port, arguments.workers) == (5123, 3)


def test_serve_refuses_a_keyword_that_is_no_option(classifier: LogisticRegression) -> None:
    with pytest.raises(TypeError, match="max_batch_sise") as raised:
        jupyter_serve.serve(classifier, max_batch_sise=8)
    assert "max_batch_size" in str(raised.value)  # the options are listed
    assert jupyter_serve.deployments() == []


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"capture": -1}, "Invalid capture"),
        ({"log_format": "xml"}, "Invalid log_format: expected one of text, json"),
        ({"log_sample": 2}, "Invalid log_sample"),
        ({"drain_timeout": -1}, "Invalid drain_timeout"),
        ({"timeout": float("nan")}, "Invalid timeout"),
    ],
)
def test_serve_names_the_option_that_cannot_work(
    classifier: LogisticRegression, options: dict[str, object], named: str
) -> None:
    with pytest.raises(jupyter_serve.DeploymentError, match=named):
        jupyter_serve.serve(classifier, **options)
    assert jupyter_serve.deployments() == []


def test_a_deployment_keeps_every_option_it_was_started_with(
    classifier: LogisticRegression,
) -> None:
    deployment = jupyter_serve.serve(classifier, name="kept", capture=5, max_batch_wait=0.002)
    try:
        assert deployment.options == {
            **serving_options.defaults(),
            "capture": 5,
            "max_batch_wait": 0.002,
        }
    finally:
        deployment.stop()
