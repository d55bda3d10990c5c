"""A ready-to-paste request for a freshly started deployment: a body that fits its signature.

The body is the model's own ``serving_input_example`` when it has one. Otherwise a one-row
``dataframe_split`` is built from the signature's columns, with a plausible value for each
column type (an email-like text for strings, since the typical first model is a spam filter).
Without a signature, what scikit-learn knows about the fitted features is used.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Iterable
from typing import Any

SAMPLE_TEXT = "Congratulations! You have won a free cruise. Reply WIN to claim your prize."
SECRET_HEADER = "X-Jupyter-Serve-Secret"


def sample_value(type_name: str) -> Any:
    """A JSON value that MLflow's schema enforcement accepts for a column of ``type_name``."""
    kind = type_name.lower()
    if "str" in kind:
        return SAMPLE_TEXT
    if "bool" in kind:
        return True
    if "int" in kind or "long" in kind:
        return 1
    if "float" in kind or "double" in kind or "fp" in kind:
        return 0.5
    if "datetime" in kind or "timestamp" in kind:
        return "2024-01-01T00:00:00"
    return ""


def _type_name(spec_type: Any) -> str:
    name = getattr(spec_type, "name", None)
    return name if isinstance(name, str) else str(spec_type)


def _column_specs(signature: Any) -> list[tuple[str, str]]:
    inputs = getattr(signature, "inputs", None)
    if inputs is None:
        return []
    is_tensor_spec = getattr(inputs, "is_tensor_spec", None)
    if callable(is_tensor_spec) and is_tensor_spec():
        return []
    specs = getattr(inputs, "inputs", inputs)
    if not isinstance(specs, Iterable):
        return []
    columns: list[tuple[str, str]] = []
    for spec in specs:
        name = getattr(spec, "name", None)
        if not isinstance(name, str) or not name:
            return []  # tensor-style or unnamed inputs: no columnar example possible
        columns.append((name, _type_name(getattr(spec, "type", ""))))
    return columns


def _as_body(example: Any) -> str | None:
    if example is None:
        return None
    if isinstance(example, bytes):
        return example.decode("utf-8")
    if isinstance(example, str):
        return example
    try:
        return json.dumps(example)
    except (TypeError, ValueError):
        return None


def _body_from_input_example(model: Any) -> str | None:
    example = getattr(model, "input_example", None)
    to_json = getattr(example, "to_json", None)
    head = getattr(example, "head", None)
    if callable(to_json) and callable(head):  # a pandas DataFrame
        split = json.loads(head(1).to_json(orient="split", index=False))
        return json.dumps({"dataframe_split": split})
    return None


def _body_from_estimator(model: Any) -> str | None:
    raw_model = getattr(model, "raw_model", None)
    names = getattr(raw_model, "feature_names_in_", None)
    if names is not None:
        # The fitted features have names but no recorded types: offer the first sample row
        # (all text, then all numbers) that the model actually accepts.
        import pandas as pd

        columns = [str(name) for name in names]
        for value in (SAMPLE_TEXT, 0.5):
            row = [value for _ in columns]
            try:
                model.predict(pd.DataFrame([row], columns=columns))
            except Exception:
                continue
            return json.dumps({"dataframe_split": {"columns": columns, "data": [row]}})
        return None
    width = getattr(raw_model, "n_features_in_", None)
    if isinstance(width, int) and width > 0:
        return json.dumps({"inputs": [[0.5] * width]})
    return None


def sample_invocation_body(model: Any) -> str:
    """A JSON ``/invocations`` body for ``model`` (a LoadedModel); never raises.

    Without a signature, may call ``model.predict`` on a candidate row to check that it fits.
    Falls back to a template with a placeholder column when nothing is known about the inputs.
    """
    body = _as_body(getattr(model, "serving_input_example", None))
    if body is not None:
        return body
    columns = _column_specs(getattr(model, "signature", None))
    if columns:
        split = {
            "columns": [name for name, _ in columns],
            "data": [[sample_value(kind) for _, kind in columns]],
        }
        return json.dumps({"dataframe_split": split})
    fallbacks: list[Callable[[Any], str | None]] = [_body_from_input_example, _body_from_estimator]
    for build in fallbacks:
        try:
            body = build(model)
        except Exception:  # a sample is a courtesy: never fail a deployment over it
            body = None
        if body is not None:
            return body
    return json.dumps({"dataframe_split": {"columns": ["text"], "data": [[SAMPLE_TEXT]]}})


def curl_command(url: str, body: str, *, secret_placeholder: str | None = None) -> str:
    """A shell command that POSTs ``body`` to ``url``'s ``/invocations`` (POSIX quoting).

    ``secret_placeholder``, when given, is sent as the secret header (e.g. ``$SECRET``), for
    deployments that require it; the secret itself never lands in a notebook.
    """
    parts = ["curl", "-X", "POST", f"{url.rstrip('/')}/invocations"]
    parts += ["-H", "Content-Type: application/json"]
    command = " ".join(shlex.quote(part) for part in parts)
    if secret_placeholder is not None:
        command += f' -H "{SECRET_HEADER}: {secret_placeholder}"'
    return f"{command} -d {shlex.quote(body)}"
