"""The dashboard and try-it panel, headless: real deployments, real HTTP, real button clicks."""

from __future__ import annotations

import html
import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from xml.etree import ElementTree

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import jupyter_serve
from jupyter_serve.datasets import SAMPLE_SPAM_EMAIL, train_spam_classifier
from jupyter_serve.widgets import Dashboard, DeploymentCard, TryItPanel, dashboard
from jupyter_serve.widgets._prediction_mix import prediction_counts, prediction_mix_svg
from jupyter_serve.widgets._traffic_chart import RATE_PANEL, TrafficHistory


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
    options = card.deployment.options
    assert (options["timeout"], options["max_batch_size"], options["max_batch_wait"]) == (
        7,
        8,
        0.002,
    )
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


def _post(url: str, body: dict[str, object]) -> int:
    request = urllib.request.Request(
        f"{url}/invocations", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _wait_for(condition: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"the dashboard did not show {what}"
        time.sleep(0.1)


def _series_points(chart: str, name: str) -> list[tuple[float, float]]:
    svg = ElementTree.fromstring(chart)
    for line in svg.iter("polyline"):
        if line.get("data-series") == name:
            pairs = (point.split(",") for point in (line.get("points") or "").split())
            return [(float(x), float(y)) for x, y in pairs]
    return []


EMAILS = [
    "Congratulations! You have won a free cruise. Reply WIN to claim your prize.",
    "Are we still on for lunch on Friday? I booked the usual place.",
    "URGENT: your account is suspended, send your password to claim the reward now",
]


def test_dashboard_charts_live_traffic_and_lists_the_real_requests(
    board: Dashboard, spam_classifier: object
) -> None:
    deployment = jupyter_serve.serve(spam_classifier, name="spam")
    card = _card(board, "spam")
    sent: list[str] = []
    zero_rate_y = RATE_PANEL.top + RATE_PANEL.height

    def traffic_drawn() -> bool:
        email = EMAILS[len(sent) % len(EMAILS)]
        assert _post(deployment.url, {"dataframe_split": {"columns": ["text"], "data": [[email]]}})
        sent.append(email)
        points = _series_points(card.charts.value, "requests/s")
        return len(points) >= 2 and any(y < zero_rate_y for _x, y in points)

    _wait_for(traffic_drawn, "a requests/s line above zero")
    chart = card.charts.value
    assert len(_series_points(chart, "p50")) >= 2 and len(_series_points(chart, "p99")) >= 2
    assert "requests/s" in chart and "p99" in chart and "now" in chart  # legend, time axis
    assert _post(deployment.url, {"dataframe_split": {"columns": ["wrong"], "data": [["x"]]}})
    total = len(sent) + 1

    _wait_for(lambda: str(total) in card.recent.heading.value, f"all {total} requests")
    frame = deployment.requests
    answered = frame[frame["status"] == 200]
    assert list(answered["text"]) == sent
    # The prediction mix counts the real answers, and the failed request as an error.
    mix = ElementTree.fromstring(card.mix.value)
    counts = {g.get("data-label"): int(g.get("data-count") or 0) for g in mix.iter("g")}
    assert counts == {**answered["prediction"].value_counts().to_dict(), "errors": 1}
    assert set(counts) == {"spam", "ham", "errors"}

    labels = [label for label, _key in card.recent.table.options]
    assert len(labels) == min(20, total)
    assert "400" in labels[0]  # newest first: the failed request
    newest_email = next(key for label, key in card.recent.table.options if " 200 " in label)
    card.recent.table.value = newest_email
    detail = card.recent.detail.value
    last = answered.iloc[-1]
    assert html.escape(json.dumps(sent[-1])) in detail and last["request_id"] in detail
    assert "wrong" not in detail  # the failed request's column is not this request's input
    assert html.escape(json.dumps(last["prediction"])) in detail
    curl = html.unescape(detail.split("<b>Send it again</b><pre style='")[1].split("'>", 1)[1])
    curl = curl.split("</pre>")[0]
    answer = subprocess.run(curl, shell=True, capture_output=True, text=True, timeout=60)
    assert json.loads(answer.stdout) == {"predictions": [last["prediction"]]}


def test_traffic_history_is_the_rate_between_samples_and_skips_restarts() -> None:
    history = TrafficHistory()
    assert not history.add({"requests": 10}, 100.0)  # the first sample only sets the start
    assert history.add({"requests": 30, "latency_ms": {"p50": 1.0, "p99": 9.0}}, 102.0)
    assert not history.add({"requests": 40}, 102.5)  # under a second after the last one
    assert history.add({"requests": 4}, 104.0)  # restarted: counts from zero
    assert [(s.requests_per_second, s.p99_ms) for s in history.samples] == [(10.0, 9.0), (0, None)]
    history.add({"requests": 4}, 104.0 + 301)
    assert [s.time for s in history.samples] == [405.0]  # five minutes kept


def test_prediction_mix_counts_classes_and_bins_many_numbers() -> None:
    kind, bars = prediction_counts(["spam", "ham", "spam", None], [None, None, None, "HTTP 400"])
    assert (kind, bars) == ("classes", [("spam", 2), ("ham", 1), ("errors", 1)])
    kind, bars = prediction_counts([float(v) for v in range(100)], [None] * 100)
    assert kind == "histogram" and [count for _, count in bars] == [10] * 10
    assert bars[0][0] == "0 \u2013 9.9"
    assert "<svg" not in prediction_mix_svg(pd.DataFrame({"prediction": [], "error": []}))
