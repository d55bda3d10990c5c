"""Train and save the benchmark spam model with the REAL MLflow (run with .venv-mlflow).

Usage: ``python -m benchmarks.build_model OUT_DIR``. Writes ``OUT_DIR/model`` (an MLflow model
directory: skops, signature with one string column "text"), ``OUT_DIR/payload.json`` (the
one-row ``dataframe_split`` body every load test sends) and ``OUT_DIR/check_emails.json``
(unseen emails whose predictions must agree between the servers).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mlflow.sklearn
import pandas as pd
from mlflow.models import infer_signature
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from benchmarks.corpus import generate_corpus

TRAINING_EMAILS = 2000
CHECK_EMAILS = 200


def build(out_dir: Path) -> None:
    """Fit the pipeline, save it with ``mlflow.sklearn.save_model`` and write the payloads."""
    corpus = generate_corpus(TRAINING_EMAILS, seed=1)
    frame = pd.DataFrame({"text": [text for text, _ in corpus]})
    labels = [label for _, label in corpus]
    pipeline = Pipeline(
        [
            ("features", ColumnTransformer([("tfidf", TfidfVectorizer(), "text")])),
            ("clf", LogisticRegression()),
        ]
    )
    pipeline.fit(frame, labels)
    example = frame.head(1)
    signature = infer_signature(example, pipeline.predict(example))
    model_dir = out_dir / "model"
    mlflow.sklearn.save_model(
        pipeline, str(model_dir), signature=signature, serialization_format="skops"
    )
    payload = {"dataframe_split": {"columns": ["text"], "data": [[corpus[0][0]]]}}
    (out_dir / "payload.json").write_text(json.dumps(payload))
    check = [text for text, _ in generate_corpus(CHECK_EMAILS, seed=2)]
    (out_dir / "check_emails.json").write_text(json.dumps(check))


if __name__ == "__main__":
    build(Path(sys.argv[1]))
