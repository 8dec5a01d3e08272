"""Turning a caller's arrays into the protocol's input bytes, checked with the relayers' own checker."""

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from verinfer.client.errors import InputMismatch
from verinfer.models.codec import CodecError, DType, IOSpec, Tensor, TensorSpec, encode_tensors
from verinfer.models.runtime import NUMPY_DTYPES, InputRejected, prepare_inputs

Inputs = Mapping[str, Any] | Any  # {name: array-like}, or one array-like for a single-input model


def encode_inputs(spec: TensorSpec, inputs: Inputs, decimals: int = 6) -> bytes:
    """abi-encoded input tensors; InputMismatch if they would not run (names, shapes, values)."""
    if isinstance(inputs, bytes):
        encoded = inputs
    else:
        named = _named(spec, inputs)
        try:
            tensors = [
                Tensor.from_array(name, _numeric(name, value), decimals) for name, value in named.items()
            ]
            encoded = encode_tensors(tensors)
        except (CodecError, ValueError, TypeError, ArithmeticError) as exc:
            raise InputMismatch(f"inputs cannot be encoded: {exc}") from None
    try:
        prepare_inputs(spec.inputs, encoded)  # the check every relayer applies before running the model
    except InputRejected as exc:
        raise InputMismatch(f"{exc}; the model expects {describe(spec.inputs)}") from None
    return encoded


def typed_outputs(spec: TensorSpec, tensors: list[Tensor]) -> dict[str, npt.NDArray[Any]]:
    """Output tensors as arrays in their declared dtype (labels stay integers, scores floats)."""
    dtypes = {s.name: NUMPY_DTYPES.get(s.dtype, np.float64) for s in spec.outputs}
    out: dict[str, npt.NDArray[Any]] = {}
    for tensor in tensors:
        dtype = dtypes.get(tensor.name, np.float64)
        values = tensor.to_array()
        out[tensor.name] = values if np.issubdtype(dtype, np.floating) else values.astype(dtype)
    return out


def _numeric(name: str, value: Any) -> npt.NDArray[Any]:
    """`value` as a numeric array; InputMismatch for strings, nulls, objects and ragged nesting."""
    try:
        array = np.asarray(value)
    except ValueError:
        raise InputMismatch(
            f"input {name!r} is not a rectangular array (rows of different lengths)"
        ) from None
    if array.dtype.kind in "biuf":
        return array
    bad = _non_numbers(value)
    found = f"found {bad[0]!r}" if bad else f"got a {array.dtype} array"
    raise InputMismatch(f"input {name!r} must hold only numbers, {found}")


def _non_numbers(value: Any) -> list[Any]:
    """The elements of nested lists that are not numbers."""
    if isinstance(value, list | tuple):
        return [bad for item in value for bad in _non_numbers(item)]
    return [] if isinstance(value, int | float | np.number) else [value]


def _named(spec: TensorSpec, inputs: Inputs) -> dict[str, Any]:
    if isinstance(inputs, Mapping):
        return dict(inputs)
    if len(spec.inputs) != 1:
        names = [s.name for s in spec.inputs]
        raise InputMismatch(f"the model has {len(names)} inputs {names}: pass a mapping of name to array")
    return {spec.inputs[0].name: inputs}


def describe(specs: tuple[IOSpec, ...]) -> str:
    """`features float[?, 30]`-style summary of inputs or outputs."""

    def dims(shape: tuple[int, ...]) -> str:
        return ", ".join("?" if d == 0 else str(d) for d in shape)

    return "; ".join(f"{s.name} {DType(s.dtype).name.lower()}[{dims(s.shape)}]" for s in specs)
