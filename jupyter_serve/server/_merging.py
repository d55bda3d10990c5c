"""Merging requests into one predict call, and splitting the predictions back.

Requests whose inputs are DataFrames (or `PlainColumns`) with the same columns and dtypes, or
arrays with the same dtype and row shape, no params, for the same row-wise model, are
concatenated into one ``predict_prepared`` call and the predictions split back by row counts.
That is the same answer as predicting each request alone; wherever it could not be (a failed
merged call, predictions that do not line up with the rows), each request is predicted on its
own, so one bad request never fails its neighbours.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from jupyter_serve.models._loaded import is_scikit_learn_estimator
from jupyter_serve.protocol import (
    PlainColumns,
    ScoringError,
    ScoringResponse,
    prepare_plain_columns,
    render_predictions,
    run_prediction,
)
from jupyter_serve.server._responses import internal_error_response

logger = logging.getLogger("jupyter_serve.server")


@dataclass(eq=False)
class PendingPrediction:
    """One prepared request waiting for its predictions."""

    model: Any
    data: Any
    params: dict[str, Any] | None
    wrap: bool
    merge_key: Hashable | None  # None: never merged with another request
    answer: asyncio.Future[ScoringResponse] = field(repr=False)
    # Event-loop time by which its client wants the answer (it gets 504 then).
    deadline: float
    # Renders this request's predictions (another protocol's answer); None: MLflow's JSON.
    render: Callable[[Any], ScoringResponse] | None = None

    def rendered(self, predictions: Any) -> ScoringResponse:
        if self.render is not None:
            return self.render(predictions)
        return render_predictions(predictions, wrap=self.wrap)


def merge_key(model: Any, data: Any, params: dict[str, Any] | None, wrap: bool) -> Hashable | None:
    """What must be equal for two requests to share one predict call; None if never.

    Only DataFrames (or `PlainColumns`) and arrays without params for a row-wise model merge,
    and only with inputs of the very same columns and dtypes (arrays: dtype and row shape), so
    that concatenating never casts a value.
    """
    if params or not wrap or not is_row_wise(model):
        return None
    if isinstance(data, PlainColumns):
        return (id(model), PlainColumns, data.names, data.kinds)
    import numpy as np
    import pandas as pd

    if isinstance(data, np.ndarray):
        # A tensor input (``inputs``/``instances``): rows of the same shape and dtype.
        return (id(model), np.ndarray, data.dtype, data.shape[1:]) if data.ndim else None
    if not isinstance(data, pd.DataFrame) or data.columns.has_duplicates:
        return None
    return (id(model), params is None, tuple(data.columns), tuple(data.dtypes))


def is_row_wise(model: Any) -> bool:
    """Whether each output row of the model depends on its input row alone.

    A model (or the object it serves, its ``raw_model``) may say so with a boolean
    ``row_wise`` attribute; otherwise scikit-learn estimators (and their subclasses) are,
    since predict, predict_proba, ... are per-sample by the library's contract; nothing else
    is assumed to be.
    """
    for declaring in (model, getattr(model, "raw_model", None)):
        declared = getattr(declaring, "row_wise", None)
        if isinstance(declared, bool):
            return declared
    flavors = getattr(model, "flavors", None) or {}
    loader = (flavors.get("python_function") or {}).get("loader_module")
    if loader not in (None, "mlflow.sklearn"):
        return False  # another loader's predict wraps the estimator and may look across rows
    return is_scikit_learn_estimator(getattr(model, "raw_model", None))


def predict_group(group: Sequence[PendingPrediction]) -> list[ScoringResponse | None]:
    """Predict a group of mergeable requests in one call, or each alone when that fails.

    Runs on a prediction thread. Never raises: every request still waiting gets a response;
    one answered meanwhile (by another prediction, or with 504) is not predicted alone and
    gets None.
    """
    if len(group) > 1:
        merged = _predict_merged(group)
        if merged is not None:
            return list(merged)
        logger.debug("merged predict of %d requests failed; predicting each alone", len(group))
    # Reading done() off the loop is safe: at worst a request answered this very moment is
    # predicted once more, and that answer is dropped.
    return [None if pending.answer.done() else _predict_alone(pending) for pending in group]


def _predict_alone(pending: PendingPrediction) -> ScoringResponse:
    try:
        data = pending.data
        if isinstance(data, PlainColumns):
            data = prepare_plain_columns(pending.model, data)
        predictions = run_prediction(pending.model, data, pending.params)
        return pending.rendered(predictions)
    except ScoringError as error:
        return error.to_response()
    except Exception:
        logger.exception("unexpected failure while predicting")
        return internal_error_response()


def _predict_merged(group: Sequence[PendingPrediction]) -> list[ScoringResponse] | None:
    import numpy as np
    import pandas as pd

    row_counts = [len(pending.data) for pending in group]
    model = group[0].model
    try:
        if isinstance(group[0].data, PlainColumns):
            merged = prepare_plain_columns(model, PlainColumns.concat([p.data for p in group]))
        elif isinstance(group[0].data, np.ndarray):
            merged = np.concatenate([pending.data for pending in group])
        else:
            merged = pd.concat([pending.data for pending in group], ignore_index=True)
        predictions = run_prediction(model, merged, group[0].params)
    except Exception:
        return None
    parts = split_rows(predictions, row_counts)
    if parts is None:
        return None
    responses = []
    for pending, part in zip(group, parts, strict=True):
        try:
            responses.append(pending.rendered(part))
        except ScoringError as error:
            responses.append(error.to_response())
    return responses


def split_rows(predictions: Any, row_counts: Sequence[int]) -> list[Any] | None:
    """Cut predictions for concatenated inputs back into one part per input, or None when
    they do not have exactly one leading entry per input row (then they cannot be split)."""
    import numpy as np
    import pandas as pd

    total = sum(row_counts)
    take: Callable[[slice], Any]
    if isinstance(predictions, (pd.DataFrame, pd.Series)):
        if len(predictions) != total:
            return None
        take = predictions.iloc.__getitem__
    elif isinstance(predictions, np.ndarray):
        if predictions.ndim == 0 or predictions.shape[0] != total:
            return None
        take = predictions.__getitem__
    elif isinstance(predictions, list):
        if len(predictions) != total:
            return None
        take = predictions.__getitem__
    else:
        return None
    parts, start = [], 0
    for count in row_counts:
        parts.append(take(slice(start, start + count)))
        start += count
    return parts
