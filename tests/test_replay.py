"""Replay: the captured inputs run through a candidate in the calling thread; against a model
that inverts one class, exactly the rows of that class differ."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests

import jupyter_serve
from jupyter_serve.datasets import make_spam_emails, train_spam_classifier
from jupyter_serve.registry import register_model


class HamToSpam:
    """The spam classifier, except that whatever it calls ham this one calls spam."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.threads: set[str] = set()

    def predict(self, data: pd.DataFrame) -> np.ndarray:
        self.threads.add(threading.current_thread().name)
        predictions = np.asarray(self.inner.predict(data), dtype=object)
        predictions[predictions == "ham"] = "spam"
        return predictions


@pytest.fixture
def served(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("JUPYTER_SERVE_REGISTRY", str(tmp_path / "registry"))
    spam = train_spam_classifier()
    deployment = jupyter_serve.serve(spam, name="spam")
    emails = make_spam_emails(30, seed=21)["text"].tolist()
    for index, text in enumerate(emails):
        answer = requests.post(
            deployment.url + "/invocations",
            json={"dataframe_split": {"columns": ["text"], "data": [[text]]}},
            headers={"X-Request-ID": f"r-{index}"},
            timeout=60,
        )
        assert answer.status_code == 200
    requests.post(deployment.url + "/invocations", data=b"{", timeout=60)  # 4xx: not replayed
    try:
        yield deployment, spam, emails
    finally:
        jupyter_serve.stop(all=True)


def test_replay_against_a_live_model_reports_exactly_the_rows_that_differ(served: Any) -> None:
    deployment, spam, emails = served
    candidate = HamToSpam(spam)
    result = deployment.replay(candidate)
    served_as = spam.predict(pd.DataFrame({"text": emails}))
    hams = [f"r-{i}" for i, label in enumerate(served_as) if label == "ham"]
    assert 0 < len(hams) < 30
    assert result.rows == 30
    assert result.agreement == pytest.approx(1 - len(hams) / 30)
    assert result.disagreements["request_id"].tolist() == hams
    assert set(result.disagreements["prediction"]) == {"ham"}
    assert set(result.disagreements["candidate_prediction"]) == {"spam"}
    assert result.disagreements["text"].tolist() == [emails[int(i[2:])] for i in hams]
    assert set(result.latency_ms_per_row) == {"serving", "candidate"}
    assert all(ms > 0 for ms in result.latency_ms_per_row.values())
    # Off the serving path: the candidate ran in this (the calling) thread only.
    assert candidate.threads == {threading.current_thread().name}


def test_replay_against_a_registered_uri(served: Any) -> None:
    deployment, spam, _ = served
    register_model(HamToSpam(spam), "spam-candidate", stage="Staging")
    by_uri = deployment.replay("models:/spam-candidate/Staging")
    by_object = deployment.replay(HamToSpam(spam))
    assert by_uri.rows == 30
    assert by_uri.disagreements["request_id"].tolist() == (
        by_object.disagreements["request_id"].tolist()
    )


def test_replay_against_the_same_model_agrees_everywhere(served: Any) -> None:
    deployment, spam, _ = served
    result = deployment.replay(spam)
    assert (result.rows, result.agreement, len(result.disagreements)) == (30, 1.0, 0)


def test_the_replay_magic_in_a_kernel(tmp_path: Any) -> None:
    from _support import Kernel

    kernel = Kernel(tmp_path / "runtime", tmp_path / "registry")
    try:
        kernel.ok(
            "%load_ext jupyter_serve\n"
            "import numpy as np, requests, jupyter_serve\n"
            "from jupyter_serve.datasets import make_spam_emails, train_spam_classifier\n"
            "spam = train_spam_classifier()\n"
            "class AllSpam:\n"
            "    def predict(self, data): return np.array(['spam'] * len(data), dtype=object)\n"
            "candidate = AllSpam()\n",
            timeout=120,
        )
        kernel.ok("%serve spam --name spam --capture 100", timeout=120)
        kernel.ok(
            "url = jupyter_serve.deployments()[0].url\n"
            "for text in make_spam_emails(20, seed=2)['text']:\n"
            "    requests.post(url + '/invocations',\n"
            "        json={'dataframe_split': {'columns': ['text'], 'data': [[text]]}})\n"
            "hams = int((spam.predict(make_spam_emails(20, seed=2)[['text']]) == 'ham').sum())"
        )
        shown = kernel.ok("result = %replay spam candidate\nresult").text
        assert "<ReplayResult 20 rows" in shown
        count = kernel.ok("print(len(result.disagreements), hams)").stdout.split()
        assert count[0] == count[1] and int(count[0]) > 0
    finally:
        kernel.shutdown()
