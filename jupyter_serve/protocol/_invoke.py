"""One ``/invocations`` request end to end: parse, enforce the schema, predict, render."""

from __future__ import annotations

import traceback
from typing import Any

from jupyter_serve.errors import SchemaEnforcementError
from jupyter_serve.protocol._errors import ScoringError
from jupyter_serve.protocol._frames import PlainColumns
from jupyter_serve.protocol._parsing import ScoringRequest, parse_invocation
from jupyter_serve.protocol._rendering import render_predictions
from jupyter_serve.protocol._responses import ScoringResponse

_MODEL_FAILED = (
    "Encountered an unexpected error while evaluating the model. Verify that the serialized "
    "input Dataframe is compatible with the model for inference."
)
# The params half of schema enforcement is classified apart from the columns half by MLflow.
_PARAMS_MESSAGES = ("Invalid parameters", "Parameters must")


def _schema_error(error: SchemaEnforcementError) -> ScoringError:
    message = str(error)
    error_class = (
        "INVALID_PARAMETER_VALUE"
        if message.startswith(_PARAMS_MESSAGES)
        else "SCHEMA_ENFORCEMENT_FAILED"
    )
    return ScoringError(
        400,
        "INVALID_PARAMETER_VALUE",
        f"Failed to predict: the input does not match the model signature. Error: {message}",
        error_class=error_class,
    )


def _model_error() -> ScoringError:
    return ScoringError(400, "BAD_REQUEST", _MODEL_FAILED, stack_trace=traceback.format_exc())


def prepare_input(model: Any, request: ScoringRequest) -> tuple[Any, dict[str, Any] | None]:
    """The request's data and params after the model's schema enforcement.

    Raises ScoringError: 400 ``INVALID_PARAMETER_VALUE`` when the input does not match the
    signature, 400 ``BAD_REQUEST`` with a stack trace when enforcement fails otherwise (as
    MLflow answers both). Thread-safe when the model's ``prepare_input`` is.
    """
    try:
        data, params = model.prepare_input(request.data, request.params)
    except SchemaEnforcementError as error:
        raise _schema_error(error) from error
    except Exception as error:
        raise _model_error() from error
    return data, params


def prepare_plain_columns(model: Any, columns: PlainColumns) -> Any:
    """The model input of `PlainColumns` (one request's or a batch's): their DataFrame after
    the model's schema enforcement, which raises as `prepare_input` does."""
    frame = columns.to_frame()
    return prepare_input(model, ScoringRequest(frame, None, True, columns.rows))[0]


def run_prediction(model: Any, data: Any, params: dict[str, Any] | None) -> Any:
    """The model's predictions for already prepared input.

    Any exception the model raises becomes ScoringError 400 ``BAD_REQUEST`` with its stack
    trace, as MLflow answers; the caller goes on serving.
    """
    try:
        return model.predict_prepared(data, params)
    except SchemaEnforcementError as error:
        raise _schema_error(error) from error
    except Exception as error:
        raise _model_error() from error


def _internal_error(error: Exception) -> ScoringResponse:
    return ScoringError(
        500,
        "INTERNAL_ERROR",
        f"The server failed to answer this request ({type(error).__name__}: {error}). This is "
        "a bug in jupyter-serve or in the model's output type; please report it.",
    ).to_response()


def invoke(model: Any, body: bytes, content_type: str | None) -> ScoringResponse:
    """The full answer to ``POST /invocations``; never raises.

    Runs parse -> schema enforcement -> predict -> render on the calling thread. Thread-safe
    when the model is (every step is pure apart from the model call).
    """
    try:
        request = parse_invocation(body, content_type, model)
        data, params = prepare_input(model, request)
        predictions = run_prediction(model, data, params)
        return render_predictions(predictions, wrap=request.wrap_predictions)
    except ScoringError as error:
        return error.to_response()
    except Exception as error:
        return _internal_error(error)
