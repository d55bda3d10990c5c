"""The dashboard and try-it panel, headless: real deployments, real HTTP, real button clicks."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import jupyter_serve
from jupyter_serve.datasets import SAMPLE_SPAM_EMAIL, train_spam_classifier
from jupyter_serve.widgets import Dashboard, DeploymentCard, TryItPanel, dashboard


@pytest.fixture(scope="module")
def spam_classifier() -> object:
    return train_spam_classifier()


@pytest.fixture
def board() -> Iterator[Dashboard]:
    created = dashboard()
    yield created
    created.stop_updates()
    jupyter_serve.stop(all=True)


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def _card(board: Dashboard, name: str) -> DeploymentCard:
    board.sync()
    return board.cards[name]


def _register_spam(spam_classifier: object) -> None:
    example = pd.DataFrame({"text": [SAMPLE_SPAM_EMAIL]})
    jupyter_serve.register_model(spam_classifier, "spam", input_example=example)


def test_dashboard_lists_deployments_started_before_and_after_it(
    board: Dashboard, spam_classifier: object
) -> None:
    first = jupyter_serve.serve(spam_classifier, name="first")
    second = jupyter_serve.serve(spam_classifier, name="second")
    card = _card(board, "second")
    assert "second" in card.summary.value and "running" in card.summary.value
    assert second.url in card.summary.value
    assert "first" in board.cards
    # text/plain, what nbval and consoles show
    assert "first" in repr(board) and first.url in repr(board)


def test_try_it_sends_the_sample_email_and_shows_spam_with_its_probability(
    board: Dashboard, spam_classifier: object
) -> None:
    _register_spam(spam_classifier)
    deployment = jupyter_serve.serve("models:/spam/1", name="spam")
    card = _card(board, "spam")
    card.try_button.click()
    panel = card.try_it
    assert isinstance(panel, TryItPanel)
    assert panel.text.value == SAMPLE_SPAM_EMAIL
    before = deployment.metrics["requests"]
    panel.send_button.click()
    assert "<b>spam</b>" in panel.result.value
    assert "spam " in panel.result.value and "%" in panel.result.value  # class probabilities
    assert " ms" in panel.result.value
    assert "curl" in panel.details.value and "/invocations" in panel.details.value
    assert deployment.metrics["requests"] == before + 1  # a real request reached the server


def test_try_it_explains_empty_text_without_sending(
    board: Dashboard, spam_classifier: object
) -> None:
    _register_spam(spam_classifier)
    deployment = jupyter_serve.serve("models:/spam/1", name="spam")
    panel = TryItPanel(deployment)
    panel.text.value = "   "
    panel.send_button.click()
    assert "empty" in panel.result.value
    assert deployment.metrics["requests"] == 0
    panel.text.value = "Lunch on Friday?"
    panel.send_button.click()
    assert "HTTP" not in panel.result.value  # still works after the bad input


def test_tabular_form_checks_types_and_shows_server_errors(board: Dashboard) -> None:
    frame = pd.DataFrame({"age": [20, 35, 50, 65], "income": [1.0, 2.5, 3.0, 4.5]})
    model = LogisticRegression().fit(frame, [0, 0, 1, 1])
    jupyter_serve.register_model(model, "risk", input_example=frame.head(1))
    deployment = jupyter_serve.serve("models:/risk/1", name="risk")
    panel = TryItPanel(deployment)
    assert [field.column for field in panel.fields] == ["age", "income"]
    panel.inputs["age"].value = "abc"
    panel.inputs["income"].value = "2.0"
    panel.send_button.click()
    assert "age" in panel.result.value and "whole number" in panel.result.value
    panel.inputs["age"].value = "60"
    panel.send_button.click()
    assert "<b>1</b>" in panel.result.value


def test_raw_json_panel_shows_the_server_error_as_sent(board: Dashboard) -> None:
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    deployment = jupyter_serve.serve(model, name="raw")
    panel = TryItPanel(deployment)
    panel.text.value = '{"dataframe_split": {"data": [[1.0]]}, "instances": [[1.0]]}'
    panel.send_button.click()
    assert "HTTP 400 BAD_REQUEST" in panel.result.value
    panel.text.value = "{not json"
    panel.send_button.click()
    assert "not valid JSON" in panel.result.value


def test_stop_and_restart_buttons_act_on_the_real_deployment(
    board: Dashboard, spam_classifier: object
) -> None:
    deployment = jupyter_serve.serve(
        spam_classifier, name="spam", timeout=7, max_batch_size=8, max_batch_wait=0.002
    )
    card = _card(board, "spam")
    panel = TryItPanel(deployment)
    card.stop_button.click()
    assert "Stopped" in card.feedback.value
    assert _port_is_free(deployment.port)
    assert jupyter_serve.deployments() == []
    panel.send_button.click()
    assert "stopped" in panel.result.value  # a deployment stopped meanwhile, explained
    card.restart_button.click()
    assert "Restarted" in card.feedback.value
    assert card.deployment.status == "running" and card.deployment.port == deployment.port
    # Served again the way it was started.
    settings = card.deployment.settings
    assert (settings.timeout, settings.max_batch_size, settings.max_batch_wait) == (7, 8, 0.002)
    TryItPanel(card.deployment).send_button.click()


def test_swap_dropdown_comes_from_the_registry_and_swaps_in_place(
    board: Dashboard, spam_classifier: object
) -> None:
    _register_spam(spam_classifier)
    _register_spam(spam_classifier)
    deployment = jupyter_serve.serve("models:/spam/1", name="spam")
    card = _card(board, "spam")
    uris = [uri for _label, uri in card.swap_choice.options]
    assert "models:/spam/2" in uris and "models:/spam/1" in uris
    card.swap_choice.value = "models:/spam/2"
    card.swap_button.click()
    assert "Now serving models:/spam/2" in card.feedback.value
    assert card.deployment.version == "2" and card.deployment.port == deployment.port
    panel = TryItPanel(card.deployment)
    assert panel.send() is not None and "<b>spam</b>" in panel.result.value


def test_swap_to_a_missing_version_is_reported_and_the_deployment_keeps_serving(
    board: Dashboard, spam_classifier: object
) -> None:
    _register_spam(spam_classifier)
    jupyter_serve.serve("models:/spam/1", name="spam")
    card = _card(board, "spam")
    card.swap("models:/spam/9")
    assert "spam" in card.feedback.value and "9" in card.feedback.value
    assert card.deployment.status == "running" and card.deployment.version == "1"
    exchange = TryItPanel(card.deployment).send()
    assert exchange is not None and exchange.ok
