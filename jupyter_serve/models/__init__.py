"""MLflow model directories in and out, live objects, signatures and their enforcement.

Reads and writes the MLflow 3.17.2 model format (MLmodel, skops/cloudpickle/pickle) without
MLflow installed. ``LoadedModel.prepare_input`` applies a signature exactly as MLflow's pyfunc
does before predict; ``predict_prepared`` runs the model on already-prepared input.
"""

from __future__ import annotations

import logging

from jupyter_serve.models._directory import load_model, save_model
from jupyter_serve.models._inference import infer_signature
from jupyter_serve.models._loaded import LoadedModel, from_object
from jupyter_serve.models._mlmodel import MLFLOW_COMPATIBLE_VERSION
from jupyter_serve.models._schema import (
    ColSpec,
    DataType,
    ModelSignature,
    NestedType,
    ParamSchema,
    ParamSpec,
    Schema,
    TensorSpec,
)

# A library adds no output of its own: without this, Python's last-resort handler would print
# each enforcement warning (extra columns, unknown params) into the notebook. Users who
# configure logging still get them.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "MLFLOW_COMPATIBLE_VERSION",
    "ColSpec",
    "DataType",
    "LoadedModel",
    "ModelSignature",
    "NestedType",
    "ParamSchema",
    "ParamSpec",
    "Schema",
    "TensorSpec",
    "from_object",
    "infer_signature",
    "load_model",
    "save_model",
]
