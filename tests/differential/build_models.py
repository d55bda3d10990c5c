"""Save the differential suite's models with the real MLflow (run by the reference interpreter).

Usage: ``python build_models.py OUT_DIR``. Writes one MLflow model directory per model under
OUT_DIR; the data is generated here, deterministically, so no download is needed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline

TEXTS = [
    "win a free prize now",
    "cheap meds click here",
    "claim your free money",
    "lunch tomorrow at noon",
    "meeting notes attached",
    "see you at the game",
    "free entry win cash",
    "can you review my draft",
]
LABELS = ["spam", "spam", "spam", "ham", "ham", "ham", "spam", "ham"]


def text_pipeline() -> Pipeline:
    frame = pd.DataFrame({"text": TEXTS})
    pipeline = Pipeline(
        [
            ("features", ColumnTransformer([("tfidf", TfidfVectorizer(), "text")])),
            ("clf", LogisticRegression()),
        ]
    )
    return pipeline.fit(frame, LABELS)


def numeric_data() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    features = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    classes = (features["a"] + 0.5 * features["b"] - features["c"] > 0).astype(int).to_numpy()
    target = (2.0 * features["a"] - 3.0 * features["b"] + 0.25 * features["c"]).to_numpy()
    return features, classes, target


def main(out_dir: Path) -> None:
    text_model = text_pipeline()
    text_frame = pd.DataFrame({"text": TEXTS[:2]})
    text_signature = infer_signature(text_frame, text_model.predict(text_frame))
    for fmt in ("skops", "cloudpickle"):
        mlflow.sklearn.save_model(
            text_model,
            str(out_dir / f"text_{fmt}"),
            serialization_format=fmt,
            signature=text_signature,
        )

    features, classes, target = numeric_data()
    classifier = LogisticRegression().fit(features, classes)
    mlflow.sklearn.save_model(
        classifier,
        str(out_dir / "classifier"),
        signature=infer_signature(features, classifier.predict(features)),
    )
    mlflow.sklearn.save_model(
        classifier,
        str(out_dir / "classifier_proba"),
        signature=infer_signature(features, classifier.predict_proba(features)),
        pyfunc_predict_fn="predict_proba",
    )
    regressor = LinearRegression().fit(features, target)
    mlflow.sklearn.save_model(
        regressor,
        str(out_dir / "regressor"),
        signature=infer_signature(
            features, regressor.predict(features), params={"scale": 1.0, "mode": "plain"}
        ),
    )
    mlflow.sklearn.save_model(regressor, str(out_dir / "regressor_unsigned"))
    # Fitted on a bare array: MLflow infers a tensor signature (float64, shape [-1, 3]).
    array = features.to_numpy()
    tensor_regressor = LinearRegression().fit(array, target)
    mlflow.sklearn.save_model(
        tensor_regressor,
        str(out_dir / "regressor_tensor"),
        signature=infer_signature(array, tensor_regressor.predict(array)),
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
