"""Before any speed is measured: do the servers give the same predictions as MLflow?

Each server is asked twice: once with every check email in one request, and once with one
request per email sent from several threads at once (so a batching server merges them).
"""

from __future__ import annotations

import http.client
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from benchmarks.outcome import MeasurementUnavailable
from benchmarks.servers import post_json

CONCURRENT_CLIENTS = 16


def _body(texts: list[str]) -> bytes:
    return json.dumps(
        {"dataframe_split": {"columns": ["text"], "data": [[t] for t in texts]}}
    ).encode()


def _predictions(port: int, texts: list[str]) -> list[Any]:
    try:
        status, answer = post_json(port, _body(texts), timeout=60.0)
    except (OSError, http.client.HTTPException) as error:
        raise MeasurementUnavailable(f"/invocations did not answer: {error}") from error
    if status != 200:
        raise MeasurementUnavailable(f"/invocations answered {status}: {answer[:300]!r}")
    try:
        predictions: list[Any] = json.loads(answer)["predictions"]
    except (ValueError, KeyError, TypeError) as error:
        raise MeasurementUnavailable(f"no predictions in the answer {answer[:300]!r}") from error
    return predictions


@dataclass(frozen=True)
class ServerPredictions:
    """What one server answered: the whole set in one request, and one request per email."""

    batched: list[Any]
    one_by_one: list[Any]


def collect_predictions(port: int, texts: list[str]) -> ServerPredictions:
    """Ask the server on ``port`` for the predictions of ``texts`` both ways."""
    batched = _predictions(port, texts)
    with ThreadPoolExecutor(CONCURRENT_CLIENTS) as pool:
        singles = list(pool.map(lambda text: _predictions(port, [text]), texts))
    return ServerPredictions(batched=batched, one_by_one=[single[0] for single in singles])


def count_mismatches(reference: list[Any], candidate: ServerPredictions) -> int:
    """Emails whose prediction differs from ``reference`` in either way of asking."""
    if len(candidate.batched) != len(reference) or len(candidate.one_by_one) != len(reference):
        return len(reference)
    return sum(
        1
        for expected, batched, single in zip(
            reference, candidate.batched, candidate.one_by_one, strict=True
        )
        if batched != expected or single != expected
    )
