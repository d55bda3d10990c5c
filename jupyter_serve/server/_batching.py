"""Predictions off the IO loop, with the requests that arrive together merged into one call.

A model costs far less per row in one call on many rows than in many one-row calls, so the
batcher queues prepared requests and, on the next loop tick (by default no fixed wait:
nothing is added to a lone request's latency; ``max_wait`` lets requests wait that long for
others unless a full batch is queued first), hands what is queued to a prediction thread.
Requests whose inputs are DataFrames (or `PlainColumns`) with the same columns and dtypes,
or arrays with the same dtype and row shape, no params, for the same row-wise model, are
concatenated into one ``predict_prepared`` call and the predictions split back by row
counts. That is the same answer as predicting each request alone; wherever it could not be
(a failed merged call, predictions that do not line up with the rows), each request is
predicted on its own, so one bad request never fails its neighbours.

While every prediction thread is busy, requests keep queueing, so batches grow with the load.
A prediction still running past the request timeout gives its slot up to a spare thread (its
clients already got 504), so a few hung predictions do not stall the whole server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from functools import partial
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
class _PendingPrediction:
    model: Any
    data: Any
    params: dict[str, Any] | None
    wrap: bool
    merge_key: Hashable | None  # None: never merged with another request
    answer: asyncio.Future[ScoringResponse] = field(repr=False)
    # Renders this request's predictions (another protocol's answer); None: MLflow's JSON.
    render: Callable[[Any], ScoringResponse] | None = None

    def rendered(self, predictions: Any) -> ScoringResponse:
        if self.render is not None:
            return self.render(predictions)
        return render_predictions(predictions, wrap=self.wrap)


@dataclass(eq=False)
class _Job:
    group: list[_PendingPrediction]
    holds_slot: bool = True
    overdue_timer: asyncio.TimerHandle | None = None


class PredictionBatcher:
    """Queues prepared requests and answers each with its own `ScoringResponse`.

    Not thread-safe: `submit` must be called on the event loop that owns the batcher; the
    predictions themselves run on ``executor``.
    """

    def __init__(
        self,
        executor: Executor,
        *,
        max_batch_size: int,
        max_concurrent: int,
        max_wait: float = 0.0,
        overdue_after: float | None = None,
        max_overdue: int = 0,
        on_queue_depth: Callable[[int], None] | None = None,
    ) -> None:
        """``max_concurrent`` predictions run at once, of at most ``max_batch_size`` requests;
        a queued request waits up to ``max_wait`` seconds for others to join it. One running
        longer than ``overdue_after`` seconds frees its slot, as long as at most
        ``max_overdue`` do (the executor needs ``max_concurrent + max_overdue`` threads).
        ``on_queue_depth`` hears how many requests wait for a prediction thread whenever that
        changes."""
        self._executor = executor
        self._max_batch_size = max(1, max_batch_size)
        self._max_concurrent = max(1, max_concurrent)
        self._max_wait = max(0.0, max_wait)
        self._wait_timer: asyncio.TimerHandle | None = None
        self._overdue_after = overdue_after
        self._max_overdue = max_overdue
        self._queue: deque[_PendingPrediction] = deque()
        self._running = 0
        self._overdue = 0
        self._flush_scheduled = False
        self._on_queue_depth = on_queue_depth

    def submit(
        self,
        model: Any,
        data: Any,
        params: dict[str, Any] | None,
        *,
        wrap: bool,
        render: Callable[[Any], ScoringResponse] | None = None,
    ) -> asyncio.Future[ScoringResponse]:
        """Queue one prepared request; the future resolves to its response (never raises).

        ``render`` turns this request's predictions into its answer (default: MLflow's JSON);
        it may raise ScoringError. Requests merge whatever their renderers."""
        loop = asyncio.get_running_loop()
        pending = _PendingPrediction(
            model=model,
            data=data,
            params=params,
            wrap=wrap,
            merge_key=merge_key(model, data, params, wrap) if self._max_batch_size > 1 else None,
            answer=loop.create_future(),
            render=render,
        )
        self._queue.append(pending)
        self._report_queue_depth()
        if self._max_wait > 0 and len(self._queue) < self._max_batch_size:
            if self._wait_timer is None and not self._flush_scheduled:
                self._wait_timer = loop.call_later(self._max_wait, self._flush)
        else:
            self._schedule_flush()
        return pending.answer

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._wait_timer is not None:
            self._wait_timer.cancel()
            self._wait_timer = None
        loop = asyncio.get_running_loop()
        while self._queue and self._running < self._max_concurrent:
            job = _Job(self._take_group())
            self._running += 1
            if self._overdue_after is not None and self._max_overdue > 0:
                job.overdue_timer = loop.call_later(self._overdue_after, self._release, job)
            computing = self._executor.submit(predict_group, job.group)
            computing.add_done_callback(partial(_post, loop, self._done, job))
        self._report_queue_depth()

    def _report_queue_depth(self) -> None:
        if self._on_queue_depth is not None:
            self._on_queue_depth(len(self._queue))

    def _take_group(self) -> list[_PendingPrediction]:
        first = self._queue.popleft()
        if first.merge_key is None:
            return [first]
        group, others = [first], deque[_PendingPrediction]()
        while self._queue and len(group) < self._max_batch_size:
            candidate = self._queue.popleft()
            (group if candidate.merge_key == first.merge_key else others).append(candidate)
        others.extend(self._queue)
        self._queue = others
        return group

    def _release(self, job: _Job) -> None:
        if not job.holds_slot or self._overdue >= self._max_overdue:
            return
        logger.warning(
            "a prediction of %d request(s) is still running after %g s; its clients got 504",
            len(job.group),
            self._overdue_after,
        )
        job.holds_slot = False
        self._running -= 1
        self._overdue += 1
        self._schedule_flush()

    def _done(self, job: _Job, computing: Future[list[ScoringResponse]]) -> None:
        if job.overdue_timer is not None:
            job.overdue_timer.cancel()
        if job.holds_slot:
            self._running -= 1
        else:
            self._overdue -= 1
        error = computing.exception()
        group = job.group
        if error is None:
            responses = computing.result()
        else:
            logger.error("prediction job failed", exc_info=error)
            responses = [internal_error_response()] * len(group)
        for pending, response in zip(group, responses, strict=True):
            if not pending.answer.done():
                pending.answer.set_result(response)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if self._queue and not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)


def _post(loop: asyncio.AbstractEventLoop, callback: Any, *args: Any) -> None:
    # RuntimeError: the server stopped while this prediction ran; nobody waits for it now.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)


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


def predict_group(group: Sequence[_PendingPrediction]) -> list[ScoringResponse]:
    """Predict a group of mergeable requests in one call, or each alone when that fails.

    Runs on a prediction thread. Never raises: every request gets a response.
    """
    if len(group) > 1:
        merged = _predict_merged(group)
        if merged is not None:
            return merged
        logger.debug("merged predict of %d requests failed; predicting each alone", len(group))
    return [_predict_alone(pending) for pending in group]


def _predict_alone(pending: _PendingPrediction) -> ScoringResponse:
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


def _predict_merged(group: Sequence[_PendingPrediction]) -> list[ScoringResponse] | None:
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
