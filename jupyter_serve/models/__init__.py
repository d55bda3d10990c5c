"""MLflow model directories in and out, live objects, signatures and their enforcement.

Reads and writes the MLflow 3.17.2 model format (MLmodel, skops/cloudpickle/pickle) without
MLflow installed. ``LoadedModel.prepare_input`` applies a signature exactly as MLflow's pyfunc
does before predict; ``predict_prepared`` runs the model on already-prepared input.

Names are imported on first use: importing this package (or its ``_artifacts`` module) does not
import pandas, so ``load_model`` can import the model's own libraries first (see
``_artifacts.load``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from jupyter_serve._lazy import lazy_attributes

if TYPE_CHECKING:
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

_LAZY_ATTRIBUTES = {
    "load_model": "jupyter_serve.models._directory",
    "save_model": "jupyter_serve.models._directory",
    "infer_signature": "jupyter_serve.models._inference",
    "LoadedModel": "jupyter_serve.models._loaded",
    "from_object": "jupyter_serve.models._loaded",
    "MLFLOW_COMPATIBLE_VERSION": "jupyter_serve.models._mlmodel",
    "ColSpec": "jupyter_serve.models._schema",
    "DataType": "jupyter_serve.models._schema",
    "ModelSignature": "jupyter_serve.models._schema",
    "NestedType": "jupyter_serve.models._schema",
    "ParamSchema": "jupyter_serve.models._schema",
    "ParamSpec": "jupyter_serve.models._schema",
    "Schema": "jupyter_serve.models._schema",
    "TensorSpec": "jupyter_serve.models._schema",
}

__getattr__ = lazy_attributes(__name__, _LAZY_ATTRIBUTES, globals())

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
