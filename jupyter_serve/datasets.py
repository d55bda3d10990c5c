"""A small, realistic spam/ham email corpus made on the spot, and the classifier the tutorials use.

The machines jupyter-serve is taught and tested on are offline, so nothing is downloaded: emails
are assembled from templates with a seeded random generator, so every run gives the same corpus.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

SAMPLE_SPAM_EMAIL = (
    "Congratulations! You have been selected to receive a FREE iPhone. "
    "Click here to claim your prize now, offer expires tonight!"
)
SAMPLE_HAM_EMAIL = (
    "Hi Anna, could you send me the slides from Tuesday's planning meeting? "
    "I'd like to review the budget section before we talk tomorrow."
)

_SPAM_OPENINGS = [
    "Congratulations!",
    "URGENT:",
    "Dear winner,",
    "Limited time offer!",
    "You have been selected!",
    "Act now!",
    "Final notice:",
    "Exclusive deal for you:",
]
_SPAM_BODIES = [
    "claim your free {prize} today",
    "you won {amount} in our lottery",
    "get {amount} cash with no credit check",
    "lose weight fast with this miracle pill",
    "your account is suspended, verify your password at {link}",
    "cheap meds without prescription, {discount} off",
    "earn {amount} a week working from home",
    "a {prize} is waiting for you, just pay shipping",
]
_SPAM_CALLS = [
    "Click here now!",
    "Reply with your bank details.",
    "Offer expires tonight!",
    "Call {phone} immediately.",
    "Visit {link} to claim.",
    "Don't miss out!!!",
]
_HAM_OPENINGS = [
    "Hi {name},",
    "Hello {name},",
    "Dear {name},",
    "Hey {name},",
    "Good morning {name},",
]
_HAM_BODIES = [
    "could you send me the slides from {day}'s meeting?",
    "the {project} review is moved to {day} at {time}.",
    "thanks for the notes on the {project} budget, they were very helpful.",
    "are we still on for lunch on {day}?",
    "I pushed the fix for the {project} report, can you take a look?",
    "please find attached the minutes of the {project} sync.",
    "the quarterly figures for {project} are in the shared folder.",
    "can we move our call to {time} on {day}?",
]
_HAM_CLOSINGS = ["Best, {sender}", "Thanks, {sender}", "Cheers, {sender}", "Regards, {sender}"]
_WORDS = {
    "prize": ["iPhone", "gift card", "cruise", "laptop", "vacation"],
    "amount": ["$1,000", "$5,000", "$250", "$10,000"],
    "link": ["www.win-big.example", "bit.ly/claim-now", "secure-verify.example"],
    "discount": ["80%", "90%", "70%"],
    "phone": ["0800 555 0199", "+1 555 0100"],
    "name": ["Anna", "Ben", "Chloe", "David", "Emma", "Farid", "Grace"],
    "sender": ["Maria", "Tom", "Priya", "Lukas", "Sofia"],
    "day": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"],
    "time": ["10:00", "14:30", "16:00", "9:15"],
    "project": ["Apollo", "billing", "onboarding", "data platform", "Q3 forecast"],
}


def _fill(template: str, rng: random.Random) -> str:
    return template.format(**{key: rng.choice(values) for key, values in _WORDS.items()})


def _spam(rng: random.Random) -> str:
    parts = [rng.choice(_SPAM_OPENINGS), rng.choice(_SPAM_BODIES), rng.choice(_SPAM_CALLS)]
    return " ".join(_fill(part, rng) for part in parts)


def _ham(rng: random.Random) -> str:
    parts = [rng.choice(_HAM_OPENINGS), rng.choice(_HAM_BODIES), rng.choice(_HAM_CLOSINGS)]
    return " ".join(_fill(part, rng) for part in parts)


def make_spam_emails(n: int = 400, *, seed: int = 0, spam_ratio: float = 0.4) -> pd.DataFrame:
    """A DataFrame of ``n`` emails with columns ``text`` and ``label`` ("spam" or "ham").

    Deterministic for a given ``seed``.
    """
    import pandas as pd

    if n < 2:
        raise ValueError(f"n must be at least 2 to hold both classes, got {n}")
    rng = random.Random(seed)
    n_spam = max(1, min(n - 1, round(n * spam_ratio)))
    rows = [(_spam(rng), "spam") for _ in range(n_spam)]
    rows += [(_ham(rng), "ham") for _ in range(n - n_spam)]
    rng.shuffle(rows)
    emails: pd.DataFrame = pd.DataFrame(rows, columns=["text", "label"])
    return emails


def train_spam_classifier(emails: pd.DataFrame | None = None) -> Pipeline:
    """A fitted TF-IDF + logistic regression pipeline that takes a DataFrame with a ``text`` column.

    The vectorizer sits in a ColumnTransformer on purpose: a bare TfidfVectorizer fed a
    one-column DataFrame iterates the column names and predicts once per batch, not per row.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    data = make_spam_emails() if emails is None else emails
    pipeline = Pipeline(
        [
            ("features", ColumnTransformer([("tfidf", TfidfVectorizer(), "text")])),
            ("classifier", LogisticRegression(max_iter=1000)),
        ]
    )
    pipeline.fit(data[["text"]], data["label"])
    return pipeline
