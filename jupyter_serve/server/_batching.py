"""Predictions off the IO loop, with the requests that arrive together merged into one call,
and no thread time spent on a request that can no longer be answered in time.

A model costs far less per row in one call on many rows than in many one-row calls, so the
batcher queues prepared requests and, on the next loop tick (by default no fixed wait:
nothing is added to a lone request's latency; ``max_wait`` lets requests wait that long for
others unless a full batch is queued first), hands what is queued to a prediction thread,
merged wherever that is the same answer (`_merging.py`). While every prediction thread is
busy, requests keep queueing, so batches grow with the load.

Every request has a deadline, its client's timeout, and merging must never cost a request its
answer, which includes getting it in time:

- A request withdrawn (its client got 504 or left), or with less time left than the fastest
  recent prediction took, leaves the queue unpredicted.
- A merged call still running well before its members' deadlines (after several typical
  calls' time, but not before a twentieth of the time left to the first deadline, and at most
  halfway to it) hands its slot to a spare thread, and its waiting members are predicted
  again in smaller groups ahead of the queue (about the square root of their number, then one
  by one): a member whose rows are slow ends up alone, the others are answered by whichever
  call ends first.
- A prediction still running once none of its clients waits (they got 504) hands its slot to
  a spare thread too, so a few hung predictions do not stall the whole server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from functools import partial
from typing import Any

from jupyter_serve.protocol import ScoringResponse
from jupyter_serve.server._merging import PendingPrediction, merge_key, predict_group
from jupyter_serve.server._responses import internal_error_response

logger = logging.getLogger("jupyter_serve.server")

__all__ = ["PredictionBatcher", "merge_key"]

# A merged call is re-run in smaller groups once it has taken this many typical calls' time,
# but not before a twentieth of the time left to its first deadline (at least the floor): on
# a busy machine a call of a few ms can stall for a hundred, and re-running it then is waste.
_RESCUE_AFTER_TYPICAL_CALLS = 8
_RESCUE_NOT_BEFORE_FRACTION = 1 / 20
_RESCUE_FLOOR_SECONDS = 0.1
# Up to this many waiting members are re-run one by one; more, in groups of sqrt(n).
_RESCUE_ALONE_UP_TO = 8
_RECENT_CALLS = 16


@dataclass(eq=False)
class _Job:
    group: list[PendingPrediction]
    started: float
    holds_slot: bool = True
    finished: bool = False
    review: asyncio.TimerHandle | None = None


class _RecentDurations:
    """How long the last few predictions of the served model took (those that kept their
    slot to the end)."""

    def __init__(self) -> None:
        self._model: Any = None
        self._seconds: deque[float] = deque(maxlen=_RECENT_CALLS)
        self.fastest = 0.0  # 0 while none is known
        self.typical: float | None = None

    def add(self, model: Any, seconds: float) -> None:
        if model is not self._model:  # a swapped model: the old one's times say nothing
            self._model = model
            self._seconds.clear()
        self._seconds.append(seconds)
        ordered = sorted(self._seconds)
        self.fastest = ordered[0]
        self.typical = ordered[len(ordered) // 2]


class PredictionBatcher:
    """Queues prepared requests and answers each with its own `ScoringResponse`.

    Not thread-safe: `submit` and `withdraw` must be called on the event loop that owns the
    batcher; the predictions themselves run on ``executor``.
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
        on_predict: Callable[[list[Any]], None] | None = None,
    ) -> None:
        """``max_concurrent`` predictions run at once, of at most ``max_batch_size`` requests;
        a queued request waits up to ``max_wait`` seconds for others to join it. A request
        submitted without a deadline has ``overdue_after`` seconds (None: no deadline). Up to
        ``max_overdue`` predictions at a time may hand their slot to a spare thread (a merged
        one that overruns, one that nobody waits for any more): the executor needs
        ``max_concurrent + max_overdue`` threads. ``on_queue_depth`` hears how many requests
        wait for a prediction thread whenever that changes; ``on_predict`` hears the inputs of
        each predict call it starts."""
        self._executor = executor
        self._max_batch_size = max(1, max_batch_size)
        self._max_concurrent = max(1, max_concurrent)
        self._max_wait = max(0.0, max_wait)
        self._wait_timer: asyncio.TimerHandle | None = None
        self._default_timeout = overdue_after
        self._max_spares = max(0, max_overdue)
        self._spares_in_use = 0
        self._jobs_awaiting_spare: list[_Job] = []
        self._queue: deque[PendingPrediction] = deque()
        self._rescued: deque[list[PendingPrediction]] = deque()
        self._withdrawn_since_purge = 0
        self._running = 0
        self._flush_scheduled = False
        self._durations = _RecentDurations()
        self._on_queue_depth = on_queue_depth
        self._on_predict = on_predict

    def submit(
        self,
        model: Any,
        data: Any,
        params: dict[str, Any] | None,
        *,
        wrap: bool,
        render: Callable[[Any], ScoringResponse] | None = None,
        deadline: float | None = None,
    ) -> asyncio.Future[ScoringResponse]:
        """Queue one prepared request; the future resolves to its response (never raises).

        ``render`` turns this request's predictions into its answer (default: MLflow's JSON);
        it may raise ScoringError. Requests merge whatever their renderers. ``deadline`` (event
        loop time) is when the client stops waiting: the request is not started once it could
        not finish by then; `withdraw` it when its client no longer waits."""
        loop = asyncio.get_running_loop()
        if deadline is None:
            timeout = self._default_timeout
            deadline = math.inf if timeout is None else loop.time() + timeout
        pending = PendingPrediction(
            model=model,
            data=data,
            params=params,
            wrap=wrap,
            merge_key=merge_key(model, data, params, wrap) if self._max_batch_size > 1 else None,
            answer=loop.create_future(),
            deadline=deadline,
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

    def withdraw(self, answer: asyncio.Future[ScoringResponse]) -> None:
        """Give up on a submitted request (its client got 504, or left): queued, it is never
        predicted; in a running prediction, its answer is dropped. Idempotent."""
        if answer.done():
            return
        answer.cancel()
        self._withdrawn_since_purge += 1
        # Purged once enough are withdrawn, so a timeout storm costs O(1) per request.
        if self._withdrawn_since_purge * 4 >= len(self._queue):
            self._withdrawn_since_purge = 0
            self._queue = deque(pending for pending in self._queue if not pending.answer.done())
            self._report_queue_depth()

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._wait_timer is not None:
            self._wait_timer.cancel()
            self._wait_timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._running < self._max_concurrent:
            group = self._next_group(now + self._durations.fastest)
            if group is None:
                break
            self._start(group, loop, now)
        self._report_queue_depth()

    def _report_queue_depth(self) -> None:
        if self._on_queue_depth is not None:
            rescued = sum(map(len, self._rescued)) if self._rescued else 0
            self._on_queue_depth(len(self._queue) + rescued)

    def _next_group(self, cutoff: float) -> list[PendingPrediction] | None:
        """The next requests to predict together, leaving out those that are withdrawn or due
        before ``cutoff`` (they cannot be answered in time); None when none is left."""
        while self._rescued:
            group = [p for p in self._rescued.popleft() if _can_wait(p, cutoff)]
            if group:
                return group
        queue = self._queue
        while queue:
            first = queue.popleft()
            if not _can_wait(first, cutoff):
                continue
            if first.merge_key is None:
                return [first]
            group, others = [first], deque[PendingPrediction]()
            while queue and len(group) < self._max_batch_size:
                candidate = queue.popleft()
                if _can_wait(candidate, cutoff):
                    (group if candidate.merge_key == first.merge_key else others).append(candidate)
            others.extend(queue)
            self._queue = others
            return group
        return None

    def _start(
        self, group: list[PendingPrediction], loop: asyncio.AbstractEventLoop, now: float
    ) -> None:
        job = _Job(group, now)
        self._running += 1
        if self._on_predict is not None:
            self._on_predict([pending.data for pending in group])
        if self._max_spares > 0:
            review_at = self._review_time(group, now)
            if review_at < math.inf:
                job.review = loop.call_at(review_at, self._review, job)
        computing = self._executor.submit(predict_group, group)
        computing.add_done_callback(partial(_post, loop, self._done, job))

    def _review_time(self, group: list[PendingPrediction], now: float) -> float:
        """When a prediction of ``group`` started at ``now`` has run too long: alone, at its
        deadline; merged, once it overruns a typical call, well before the first deadline."""
        if len(group) == 1:
            return group[0].deadline
        time_left = min(pending.deadline for pending in group) - now
        typical = self._durations.typical
        overrun = math.inf if typical is None else _RESCUE_AFTER_TYPICAL_CALLS * typical
        not_before = max(_RESCUE_NOT_BEFORE_FRACTION * time_left, _RESCUE_FLOOR_SECONDS)
        return now + min(max(overrun, not_before), time_left / 2)

    def _review(self, job: _Job) -> None:
        job.review = None
        if job.finished or not job.holds_slot:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        waiting = [p for p in job.group if not p.answer.done() and p.deadline > now]
        if len(job.group) == 1 and waiting:
            job.review = loop.call_at(waiting[0].deadline, self._review, job)
            return
        if self._spares_in_use >= self._max_spares:
            # Reviewed again when a spare is free (those finished meanwhile are let go).
            awaiting = [other for other in self._jobs_awaiting_spare if not other.finished]
            self._jobs_awaiting_spare = [*awaiting, job]
            return
        job.holds_slot = False
        self._running -= 1
        self._spares_in_use += 1
        if waiting:
            logger.warning(
                "a prediction of %d merged requests is still running after %.2f s; "
                "predicting its %d waiting requests again in smaller groups",
                len(job.group),
                now - job.started,
                len(waiting),
            )
            self._rescued.extend(_smaller_groups(waiting))
        else:
            timeout = self._default_timeout
            logger.warning(
                "a prediction of %d request(s) is still running after %g s; its clients got 504",
                len(job.group),
                timeout if timeout is not None else round(now - job.started, 3),
            )
        self._schedule_flush()

    def _done(self, job: _Job, computing: Future[list[ScoringResponse | None]]) -> None:
        job.finished = True
        if job.review is not None:
            job.review.cancel()
        group = job.group
        if job.holds_slot:
            self._running -= 1
            self._durations.add(group[0].model, asyncio.get_running_loop().time() - job.started)
        else:
            self._spares_in_use -= 1
            awaiting, self._jobs_awaiting_spare = self._jobs_awaiting_spare, []
            for stuck in awaiting:
                self._review(stuck)
        responses: list[ScoringResponse | None]
        if computing.cancelled():
            responses = [None] * len(group)  # the server is stopping
        elif (error := computing.exception()) is not None:
            logger.error("prediction job failed", exc_info=error)
            responses = [internal_error_response()] * len(group)
        else:
            responses = computing.result()
        for pending, response in zip(group, responses, strict=True):
            if response is not None and not pending.answer.done():
                pending.answer.set_result(response)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if (self._queue or self._rescued) and not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)


def _can_wait(pending: PendingPrediction, cutoff: float) -> bool:
    return pending.deadline > cutoff and not pending.answer.done()


def _smaller_groups(waiting: list[PendingPrediction]) -> list[list[PendingPrediction]]:
    size = 1 if len(waiting) <= _RESCUE_ALONE_UP_TO else math.isqrt(len(waiting))
    return [waiting[start : start + size] for start in range(0, len(waiting), size)]


def _post(loop: asyncio.AbstractEventLoop, callback: Any, *args: Any) -> None:
    # RuntimeError: the server stopped while this prediction ran; nobody waits for it now.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)
