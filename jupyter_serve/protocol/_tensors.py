"""Model input from the TF-serving style keys ``instances`` and ``inputs``.

Mirrors MLflow's ``parse_tf_serving_input``: values are converted to numpy arrays of the
signature's types, ``instances`` rows become columns, and every conversion failure is a 400
``BAD_REQUEST``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jupyter_serve.protocol._errors import ScoringError, invalid_input
from jupyter_serve.protocol._signature_view import InputSpec, SignatureView


def _convert(data: Any, spec: InputSpec | None) -> Any:
    """MLflow's ``convert_data_type``: a value as the numpy type its spec names."""
    try:
        if spec is None:
            return np.array(data)
        if spec.kind == "nested":
            return data
        if spec.kind == "tensor":
            return np.array(data, dtype=spec.numpy_dtype)
        if isinstance(data, (list, np.ndarray)):
            return np.array(data, spec.numpy_dtype)
        return np.array([data], spec.numpy_dtype)[0]
    except Exception as error:
        raise invalid_input(f"{error}") from error


def _cast_to_schema(data: Any, view: SignatureView) -> Any:
    """MLflow's ``_cast_schema_type``: columns or a tensor as the signature's numpy types."""
    by_name = view.by_name()
    if view.has_schema:
        if (
            len(by_name) == 1
            and isinstance(data, list)
            and not any(isinstance(x, dict) for x in data)
        ):
            data = {next(iter(by_name)): data}
        elif not view.named and not (isinstance(data, list) or np.isscalar(data)):
            raise invalid_input(
                "Failed to parse input data. This model contains an un-named model signature "
                "which expects a single n-dimensional array or a single value as input, however, "
                f"an input of type {type(data)} was found."
            )
    first_spec = view.specs[0] if view.specs else None
    if isinstance(data, dict):
        return {column: _convert(values, by_name.get(column)) for column, values in data.items()}
    if isinstance(data, list):
        if all(isinstance(row, dict) for row in data):
            return [
                {column: _convert(value, by_name.get(column)) for column, value in row.items()}
                for row in data
            ]
        return _convert(data, first_spec)
    try:
        return _convert(data, first_spec)
    except ScoringError as error:
        raise invalid_input(
            f"Failed to convert data `{data}` to type `{first_spec}` defined in the model "
            "signature."
        ) from error


def _columns_from_instances(rows: list[dict[Any, Any]], view: SignatureView) -> dict[Any, Any]:
    by_name = view.by_name()
    columns: dict[Any, list[Any]] = {}
    for row in rows:
        for column, value in row.items():
            columns.setdefault(column, []).append(_convert(value, by_name.get(column)))
    return {column: np.array(values) for column, values in columns.items()}


def _check_column_lengths(data: dict[Any, Any], view: SignatureView) -> None:
    sized = {k: v for k, v in data.items() if isinstance(v, (list, np.ndarray))}
    if view.named:
        # MLflow checks the required columns only, and never array columns.
        required = {spec.name for spec in view.specs if spec.required and not spec.is_array}
        to_check = [name for name in sized if name in required]
    else:
        to_check = list(sized)
    if to_check and len({len(sized[name]) for name in to_check}) > 1:
        raise invalid_input("The length of values for each input/column name are not the same")


def parse_instances(instances: Any, view: SignatureView) -> Any:
    """Model input for an ``instances`` value; ScoringError 400 when it cannot be converted."""
    try:
        if isinstance(instances, list) and instances and isinstance(instances[0], dict):
            data = _columns_from_instances(instances, view)
        else:
            data = _cast_to_schema(instances, view)
        if isinstance(data, dict):
            _check_column_lengths(data, view)
        return data
    except ScoringError:
        raise
    except Exception as error:
        raise invalid_input(
            f"Ensure that the input is a valid JSON-formatted string.\nError: {error!r}"
        ) from error


def parse_inputs(inputs: Any, view: SignatureView) -> Any:
    """Model input for an ``inputs`` value; ScoringError 400 when it cannot be converted."""
    try:
        return _cast_to_schema(inputs, view)
    except ScoringError:
        raise
    except Exception as error:
        raise invalid_input(
            f"Ensure that the input is a valid JSON-formatted string.\nError: {error!r}"
        ) from error
