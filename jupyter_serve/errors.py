"""The exceptions jupyter-serve raises to its users.

Every message says what went wrong, what was expected, and what to do about it. Callers that
face a person (the magics, the CLI, the widgets) print ``str(error)`` and nothing else: no
traceback wall for a mistake the user can fix.
"""

from __future__ import annotations


class JupyterServeError(Exception):
    """Base class of every error meant to be shown to the user as one clear message."""


class ModelNotFoundError(JupyterServeError):
    """A model URI, name, version, stage or alias resolves to nothing."""


class InvalidModelError(JupyterServeError):
    """A model directory or object cannot be served: no MLmodel, corrupt artifact, no predict."""


class RegistryError(JupyterServeError):
    """The registry refused an operation: bad stage name, duplicate alias, not writable, ..."""


class MissingDependencyError(JupyterServeError):
    """An optional package is needed for this model or feature; the message names it."""


class SchemaEnforcementError(JupyterServeError):
    """Model input does not match the model's signature (a missing column, an uncastable value).

    The scoring server answers it with 400 ``INVALID_PARAMETER_VALUE``, as MLflow does.
    """


class DeploymentError(JupyterServeError):
    """A deployment cannot start, swap or stop: port in use, host not bindable, ..."""
