from __future__ import annotations

import pandas as pd

from jupyter_serve.datasets import (
    SAMPLE_HAM_EMAIL,
    SAMPLE_SPAM_EMAIL,
    make_spam_emails,
    train_spam_classifier,
)


def test_corpus_is_deterministic_and_has_both_classes() -> None:
    first = make_spam_emails(120, seed=3)
    assert first.equals(make_spam_emails(120, seed=3))
    assert set(first["label"]) == {"spam", "ham"}
    assert len(first) == 120
    assert not first.equals(make_spam_emails(120, seed=4))


def test_classifier_tells_spam_from_ham_one_prediction_per_row() -> None:
    classifier = train_spam_classifier()
    emails = pd.DataFrame({"text": [SAMPLE_SPAM_EMAIL, SAMPLE_HAM_EMAIL, SAMPLE_SPAM_EMAIL]})
    assert list(classifier.predict(emails)) == ["spam", "ham", "spam"]
