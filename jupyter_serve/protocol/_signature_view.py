"""What the protocol needs from a model's signature, worked out once per signature.

MLflow's scoring server casts parsed JSON/CSV to the input schema *before* calling the model
(``cast_df_types_according_to_schema``), and a failure there is a 400 ``BAD_REQUEST``, not the
``INVALID_PARAMETER_VALUE`` of the model's own schema enforcement. To give the same answers we
repeat that step here, reading the signature through its attributes only (``inputs.inputs``,
each spec's ``name``/``type``; ``params.params``, each spec's ``name``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# The MLflow scalar types and the dtype pandas/numpy casts use for each (MLflow's to_pandas()
# and to_numpy()). Text and bytes stay Python objects in pandas.
_PANDAS_DTYPES: dict[str, Any] = {
    "boolean": np.dtype("bool"),
    "integer": np.dtype("int32"),
    "long": np.dtype("int64"),
    "float": np.dtype("float32"),
    "double": np.dtype("float64"),
    "string": np.dtype("object"),
    "binary": np.dtype("object"),
    "datetime": np.dtype("datetime64[ns]"),
}
NUMPY_DTYPES: dict[str, Any] = {
    **_PANDAS_DTYPES,
    "string": np.dtype("str"),
    "binary": np.dtype("bytes"),
}


@dataclass(frozen=True)
class InputSpec:
    """One input of the schema: its name (None when unnamed), kind and dtypes.

    ``kind`` is an MLflow scalar type name (``"double"``, ``"string"``, ...), ``"tensor"``, or
    ``"nested"`` for array/object/map/any columns, which the protocol passes on unchecked.
    """

    name: Any
    kind: str
    pandas_dtype: Any
    numpy_dtype: Any
    required: bool = True
    is_array: bool = False


@dataclass(frozen=True)
class SignatureView:
    """The input and params schema facts the parsers use; immutable, so thread-safe."""

    has_schema: bool
    specs: tuple[InputSpec, ...]
    named: bool
    is_tensor: bool
    param_names: frozenset[str]
    has_params_schema: bool

    def by_name(self) -> dict[Any, InputSpec]:
        """Specs keyed by name (empty when the schema has no names)."""
        return {spec.name: spec for spec in self.specs} if self.named else {}


_NO_SIGNATURE = SignatureView(False, (), False, False, frozenset(), False)
_CACHE_LIMIT = 256
_cache: dict[int, tuple[object, SignatureView]] = {}


def signature_view(model: Any) -> SignatureView:
    """The view of ``model.signature``; computed once per signature object, then cached.

    Thread-safe: a race computes the same immutable value twice.
    """
    signature = getattr(model, "signature", None)
    if signature is None:
        return _NO_SIGNATURE
    cached = _cache.get(id(signature))
    if cached is not None and cached[0] is signature:
        return cached[1]
    view = _build_view(signature)
    if len(_cache) >= _CACHE_LIMIT:
        _cache.clear()  # models swapped many times in one kernel: drop the old signatures
    _cache[id(signature)] = (signature, view)
    return view


def _input_spec(spec: Any) -> InputSpec:
    name = getattr(spec, "name", None)
    spec_type = getattr(spec, "type", None)
    required = bool(getattr(spec, "required", True))
    if isinstance(spec_type, np.dtype):
        return InputSpec(name, "tensor", spec_type, spec_type, required)
    type_name = getattr(spec_type, "value", spec_type)
    if isinstance(type_name, str) and type_name in _PANDAS_DTYPES:
        return InputSpec(
            name, type_name, _PANDAS_DTYPES[type_name], NUMPY_DTYPES[type_name], required
        )
    is_array = getattr(spec_type, "name", None) == "array"
    return InputSpec(name, "nested", None, None, required, is_array)


def _build_view(signature: Any) -> SignatureView:
    inputs = getattr(signature, "inputs", None)
    specs = tuple(_input_spec(spec) for spec in getattr(inputs, "inputs", None) or ())
    params = getattr(signature, "params", None)
    param_specs = getattr(params, "params", None)
    return SignatureView(
        has_schema=inputs is not None,
        specs=specs,
        named=bool(specs) and specs[0].name is not None,
        is_tensor=bool(specs) and specs[0].kind == "tensor",
        param_names=frozenset(str(spec.name) for spec in param_specs or ()),
        has_params_schema=param_specs is not None,
    )
