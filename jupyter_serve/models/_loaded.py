"""A model ready to predict: the object, its signature, and the input checks built from it."""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jupyter_serve.errors import InvalidModelError, SchemaEnforcementError
from jupyter_serve.models._enforcement import InputEnforcer
from jupyter_serve.models._params import ParamsEnforcer
from jupyter_serve.models._schema import ModelSignature


def is_scikit_learn_estimator(model: Any) -> bool:
    """Whether ``model`` is an instance of a scikit-learn class or of a subclass of one."""
    return any(cls.__module__.split(".", 1)[0] == "sklearn" for cls in type(model).__mro__)


def _prediction_context(target: Any) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """What each predict call runs in: for a scikit-learn estimator, scikit-learn's own
    parameter checks skipped (thread-locally, for the call only).

    Those check the arguments of the library's inner calls (``normalize(X, norm=self.norm)``
    in a TF-IDF transform...), all coming from the fitted model: ~0.08 ms of a ~1 ms one-row
    pipeline predict. The checks of the caller's data (``check_array``) still run.
    """
    if not is_scikit_learn_estimator(target):
        return contextlib.nullcontext
    import sklearn

    return functools.partial(sklearn.config_context, skip_parameter_validation=True)


def _accepts_params(function: Any) -> bool:
    try:
        parameter = inspect.signature(function).parameters.get("params")
    except (TypeError, ValueError):
        return False
    return parameter is not None and parameter.kind != inspect.Parameter.VAR_KEYWORD


class LoadedModel:
    """A model that predicts the way MLflow's ``pyfunc`` model would for the same directory.

    ``prepare_input``, ``predict_prepared``, ``predict`` and ``predict_proba`` are thread-safe as
    far as the underlying model's own predict functions are (scikit-learn's are): this class keeps
    no per-call state.
    """

    def __init__(
        self,
        raw_model: Any,
        *,
        predict_fn_name: str = "predict",
        signature: ModelSignature | None = None,
        path: Path | None = None,
        model_uuid: str | None = None,
        flavors: dict[str, Any] | None = None,
        input_example: Any = None,
        serving_input_example: dict[str, Any] | None = None,
        pyfunc_implementation: Any = None,
    ) -> None:
        self.raw_model = raw_model
        self.predict_fn_name = predict_fn_name
        self.signature = signature
        self.path = path
        self.model_uuid = model_uuid
        self.flavors: dict[str, Any] = flavors or {}
        self.input_example = input_example
        self.serving_input_example = serving_input_example
        # Seconds `load_model` took to load it from its directory; None for a live object.
        self.load_seconds: float | None = None
        target = raw_model if pyfunc_implementation is None else pyfunc_implementation
        predict_function = getattr(target, predict_fn_name, None)
        if not callable(predict_function):
            raise InvalidModelError(
                f"the model ({type(target).__name__}) has no callable {predict_fn_name!r}; "
                "expected an object with that method. Save it with a pyfunc_predict_fn it has."
            )
        self._predict_function = predict_function
        self._prediction_context = _prediction_context(target)
        # Models loaded through MLflow's own loader get params as MLflow passes them; an
        # sklearn model never does (MLflow's sklearn wrapper drops them).
        self._passes_params = pyfunc_implementation is not None and _accepts_params(
            predict_function
        )
        inputs = signature.inputs if signature is not None else None
        self._input_enforcer = InputEnforcer(inputs) if inputs is not None else None
        self._params_enforcer = ParamsEnforcer(signature.params if signature else None)

    def __repr__(self) -> str:
        where = f" from {self.path}" if self.path is not None else ""
        return f"<LoadedModel {type(self.raw_model).__name__}.{self.predict_fn_name}{where}>"

    def prepare_input(
        self, data: Any, params: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any] | None]:
        """Apply the signature to one request's input and params, as MLflow's pyfunc does.

        Raises SchemaEnforcementError (the server answers 400 INVALID_PARAMETER_VALUE) for a
        missing column, an uncastable value, a wrong tensor shape or a badly typed param.
        Thread-safe.
        """
        if self._input_enforcer is not None:
            try:
                data = self._input_enforcer.enforce(data)
            except Exception as error:
                # MLflow turns every failure inside enforcement into a schema error (400).
                raise SchemaEnforcementError(
                    f"Failed to enforce schema of data '{data}' with schema "
                    f"'{self._schema_text()}'. Error: {error}"
                ) from error
        return data, self._params_enforcer.enforce(params)

    def predict_prepared(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """Call the model's predict function on input that ``prepare_input`` returned.

        Lets the server merge prepared requests into one batch. Exceptions from the model
        propagate unchanged. Thread-safe.
        """
        with self._prediction_context():
            if self._passes_params:
                return self._predict_function(data, params=params)
            return self._predict_function(data)

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """``prepare_input`` then ``predict_prepared``: MLflow's ``PyFuncModel.predict``."""
        prepared, checked_params = self.prepare_input(data, params)
        return self.predict_prepared(prepared, checked_params)

    def predict_proba(self, data: Any) -> Any | None:
        """Class probabilities for ``data`` after schema enforcement; None without predict_proba."""
        function = getattr(self.raw_model, "predict_proba", None)
        if not callable(function):
            return None
        prepared, _ = self.prepare_input(data)
        with self._prediction_context():
            return function(prepared)

    def _schema_text(self) -> str:
        inputs = self.signature.inputs if self.signature else None
        return repr(inputs) if inputs is not None else "none"


def from_object(
    model: Any, *, signature: ModelSignature | None = None, input_example: Any = None
) -> LoadedModel:
    """Wrap an in-memory model (anything with ``predict``) without writing to disk.

    Without a signature, one is inferred from ``input_example`` and the model's prediction on
    it, as ``save_model`` would. Raises InvalidModelError when the object has no ``predict``.
    """
    from jupyter_serve.models._mlmodel import example_payloads, split_example
    from jupyter_serve.models._signing import signature_for

    require_predict(model)
    serving = example_payloads(input_example)[2] if input_example is not None else None
    return LoadedModel(
        model,
        signature=signature_for(model, signature, input_example),
        input_example=split_example(input_example)[0],
        serving_input_example=serving,
    )


def require_predict(model: Any) -> None:
    """Raise InvalidModelError unless ``model`` has a callable ``predict``."""
    if not callable(getattr(model, "predict", None)):
        raise InvalidModelError(
            f"a {type(model).__name__} cannot be served: it has no predict method; expected a "
            "fitted scikit-learn estimator or pipeline, or any object with predict(data)."
        )
