"""The scoring protocol's error: one exception type that carries its MLflow-shaped answer."""

from __future__ import annotations

import json

from jupyter_serve.protocol._responses import JSON_CONTENT_TYPE, ScoringResponse

# MLflow derives both from the error code (mlflow/error_classification.py); only the codes the
# scoring server can produce are listed.
_ERROR_CLASS = {
    "BAD_REQUEST": "INVALID_PARAMETER_VALUE",
    "INVALID_PARAMETER_VALUE": "INVALID_PARAMETER_VALUE",
    "INTERNAL_ERROR": "CLIENT_INTERNAL_ERROR",
    "RESOURCE_DOES_NOT_EXIST": "RESOURCE_NOT_FOUND",
}
_SQLSTATE_OF_CLASS = {
    "SCHEMA_ENFORCEMENT_FAILED": "KAM01",
    "PREDICTION_FUNCTION_FAILED": "KAM02",
}
_SQLSTATE_OF_CODE = {
    "BAD_REQUEST": "KAM00",
    "INVALID_PARAMETER_VALUE": "KAM00",
    "INTERNAL_ERROR": "XXM00",
    "RESOURCE_DOES_NOT_EXIST": "KAM00",
}


class ScoringError(Exception):
    """A request the scoring protocol refuses; carries the status and MLflow error JSON fields.

    ``error_class`` and ``sqlstate`` default to what MLflow derives from ``error_code``.
    """

    def __init__(
        self,
        status: int,
        error_code: str,
        message: str,
        *,
        stack_trace: str | None = None,
        error_class: str | None = None,
        sqlstate: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.stack_trace = stack_trace
        self.error_class = error_class or _ERROR_CLASS.get(error_code)
        self.sqlstate = sqlstate or (
            _SQLSTATE_OF_CLASS.get(self.error_class or "") or _SQLSTATE_OF_CODE.get(error_code)
        )

    def to_response(self) -> ScoringResponse:
        """The MLflow error JSON: error_code, message, sqlstate, error_class[, stack_trace]."""
        fields: dict[str, str] = {"error_code": self.error_code, "message": self.message}
        if self.sqlstate is not None:
            fields["sqlstate"] = self.sqlstate
        if self.error_class is not None:
            fields["error_class"] = self.error_class
        if self.stack_trace is not None:
            fields["stack_trace"] = self.stack_trace
        return ScoringResponse(self.status, json.dumps(fields).encode("utf-8"), JSON_CONTENT_TYPE)


def bad_request(message: str, *, stack_trace: str | None = None) -> ScoringError:
    """A 400 ``BAD_REQUEST``, the answer to a body the protocol cannot read."""
    return ScoringError(400, "BAD_REQUEST", message, stack_trace=stack_trace)


def invalid_input(message: str) -> ScoringError:
    """MLflow's ``MlflowInvalidInputException``: 400 ``BAD_REQUEST``, message prefixed."""
    return ScoringError(400, "BAD_REQUEST", f"Invalid input. {message}")


def unsupported_media_type(message: str) -> ScoringError:
    """A 415: MLflow answers these in plain text; we answer the error JSON (documented)."""
    return ScoringError(415, "BAD_REQUEST", message)
