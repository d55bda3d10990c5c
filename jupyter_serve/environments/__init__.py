"""Isolated environments for a model's workers: ``--env-manager virtualenv|uv|conda``.

`prepare_environment` turns a model directory into a Python executable whose environment holds
the model's requirements (``python_env.yaml``, ``requirements.txt``) and what our worker needs
to serve; the worker pool then runs its processes with it. Environments are cached by a hash
of those files (see `EnvironmentSpec.key`) and built once, safely across processes.
"""

from __future__ import annotations

from jupyter_serve.environments._builders import ENV_MANAGERS, require_env_manager
from jupyter_serve.environments._cache import (
    CACHE_DIR_VARIABLE,
    PreparedEnvironment,
    environments_dir,
    prepare_environment,
)
from jupyter_serve.environments._progress import BuildProgress, TextProgress, WidgetProgress
from jupyter_serve.environments._spec import EnvironmentSpec, read_environment_spec
from jupyter_serve.environments._stand_in import ModelInItsEnvironment, describe_model

__all__ = [
    "CACHE_DIR_VARIABLE",
    "ENV_MANAGERS",
    "BuildProgress",
    "EnvironmentSpec",
    "ModelInItsEnvironment",
    "PreparedEnvironment",
    "TextProgress",
    "WidgetProgress",
    "describe_model",
    "environments_dir",
    "prepare_environment",
    "read_environment_spec",
    "require_env_manager",
]
