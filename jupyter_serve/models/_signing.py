"""The signature a model is saved or served with when none is given: MLflow's save-time rule.

The input schema comes from the example; the output schema from the model's prediction on that
example, enforced through the input schema first. A 1-D prediction on column input is typed as one
column, not a tensor. If anything fails the model gets no signature, as in MLflow.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np
import pandas as pd

from jupyter_serve.models._enforcement import InputEnforcer
from jupyter_serve.models._inference import ColumnType, infer_schema, infer_signature
from jupyter_serve.models._mlmodel import split_example
from jupyter_serve.models._schema import ColSpec, ModelSignature, NestedType, Schema

_logger = logging.getLogger(__name__)
_ANY: ColumnType = NestedType({"type": "any"})


def signature_for(
    model: Any,
    signature: ModelSignature | None,
    input_example: Any,
) -> ModelSignature | None:
    """``signature`` if given, else the one inferred from ``input_example``, else None."""
    if signature is not None or input_example is None:
        return signature
    example, params = split_example(input_example)
    try:
        input_schema = infer_schema(copy.deepcopy(example))
        params_schema = infer_signature(example, params=params).params if params else None
        data = InputEnforcer(input_schema).enforce(copy.deepcopy(example))
        prediction = model.predict(data)
        if (
            not input_schema.is_tensor_spec()
            and isinstance(prediction, np.ndarray)
            and prediction.ndim == 1
        ):
            prediction = pd.Series(prediction)
        try:
            output_schema = infer_schema(prediction)
        except Exception:
            output_schema = Schema([ColSpec(_ANY)])
        return ModelSignature(input_schema, output_schema, params_schema)
    except Exception as error:
        _logger.warning("could not infer a signature from the input example: %r", error)
        return None
