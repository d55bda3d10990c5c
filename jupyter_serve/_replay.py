"""Captured traffic, and its replay against a candidate model.

`replay` runs the captured inputs of the requests that got an answer through the serving model
and through a candidate, in the calling thread (never the server's), and compares the candidate's
answers, rendered exactly as the server would send them, with what the clients got.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jupyter_serve.errors import DeploymentError
from jupyter_serve.protocol import render_predictions
from jupyter_serve.server._exchanges import RECORD_FIELDS, per_row_predictions, records_frame

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ReplayResult", "captured_requests", "replay", "replay_deployment"]


def captured_requests(server: Any) -> pd.DataFrame:
    """The captured rows of a running server (gathered from every worker) as a DataFrame."""
    gather = getattr(server, "captured_records", None)
    if gather is None:
        raise DeploymentError(
            "this deployment keeps no captured traffic here (a remote target); read its "
            "inference log instead (log_predictions=...)."
        )
    frame: pd.DataFrame = records_frame(gather())
    return frame


@dataclass(frozen=True)
class ReplayResult:
    """How a candidate answers the captured traffic, beside what the clients got."""

    rows: int  # rows replayed: the captured rows answered 200
    agreement: float  # share of them the candidate answers the same (1.0 with none)
    latency_ms_per_row: dict[str, float]  # {"serving": ..., "candidate": ...}
    disagreements: pd.DataFrame  # the rows answered differently: inputs, ids, both answers

    @property
    def summary(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "agreement": self.agreement,
            "disagreements": len(self.disagreements),
            "latency_ms_per_row": self.latency_ms_per_row,
        }

    def __repr__(self) -> str:
        latency = ", ".join(f"{k} {v:.3f} ms" for k, v in self.latency_ms_per_row.items())
        return (
            f"<ReplayResult {self.rows} rows, agreement {self.agreement:.1%}, "
            f"{len(self.disagreements)} differ; per row: {latency}>"
        )


def replay(serving_model: Any, requests: pd.DataFrame, candidate: Any) -> ReplayResult:
    """Run the inputs of ``requests`` (a ``Deployment.requests`` frame) answered 200 through
    ``serving_model`` and ``candidate`` (a model URI or a live model object) in this thread."""
    from jupyter_serve._deployments._sources import load_source

    candidate_model = load_source(candidate).model
    answered = requests[requests["status"] == 200].reset_index(drop=True)
    input_columns = [c for c in answered.columns if c not in RECORD_FIELDS]
    inputs = answered[input_columns]
    if answered.empty:
        empty = answered.assign(candidate_prediction=[])
        return ReplayResult(0, 1.0, {"serving": 0.0, "candidate": 0.0}, empty)
    serving_ms = _per_row_ms(serving_model, inputs)
    started = time.perf_counter()
    candidate_answers = _as_sent(candidate_model.predict(inputs), len(inputs))
    candidate_ms = (time.perf_counter() - started) * 1000 / len(inputs)
    sent = [_normalised(p) for p in answered["prediction"]]
    differs = [a != b for a, b in zip(sent, candidate_answers, strict=True)]
    disagreements = answered.assign(candidate_prediction=candidate_answers)[differs]
    return ReplayResult(
        rows=len(answered),
        agreement=1 - sum(differs) / len(answered),
        latency_ms_per_row={"serving": serving_ms, "candidate": candidate_ms},
        disagreements=disagreements.reset_index(drop=True),
    )


def replay_deployment(name: str, candidate: Any) -> ReplayResult:
    """`Deployment.replay` of the deployment ``name`` of this process (``%replay``)."""
    from jupyter_serve._deployments import deployments

    running = {deployment.name: deployment for deployment in deployments()}
    if name not in running:
        names = ", ".join(running) or "none"
        raise DeploymentError(f"no deployment named {name!r} is running here (running: {names}).")
    result: ReplayResult = running[name].replay(candidate)
    return result


def _per_row_ms(model: Any, inputs: pd.DataFrame) -> float:
    started = time.perf_counter()
    model.predict(inputs)
    return (time.perf_counter() - started) * 1000 / len(inputs)


def _as_sent(predictions: Any, rows: int) -> list[Any]:
    """The predictions as the server would have sent them, row by row."""
    body = json.loads(render_predictions(predictions, wrap=True).body)
    return [_normalised(p) for p in per_row_predictions(body, rows)]


def _normalised(value: Any) -> Any:
    # A prediction read back from a worker or a log went through JSON once more.
    return json.loads(json.dumps(value, default=str))
