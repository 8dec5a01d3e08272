"""Tensor specs read from ONNX graphs, so what is registered is what the model declares."""

from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from verinfer.models.codec import DType, IOSpec, TensorSpec

SUPPORTED = {int(d) for d in DType}


class SpecError(ValueError):
    """The graph declares something the tensor spec cannot express."""


def spec_from_onnx(model: Path | bytes) -> TensorSpec:
    """Inputs (initializers excluded) and outputs of the graph; symbolic dimensions become 0 (dynamic)."""
    try:
        proto = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(str(model))
    except (DecodeError, ValueError) as exc:
        raise SpecError(f"not an ONNX model ({type(exc).__name__}: {exc})") from None
    initializers = {init.name for init in proto.graph.initializer}
    inputs = tuple(_io(v) for v in proto.graph.input if v.name not in initializers)
    outputs = tuple(_io(v) for v in proto.graph.output)
    return TensorSpec(inputs, outputs)


def _io(value: onnx.ValueInfoProto) -> IOSpec:
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        raise SpecError(f"{value.name!r} is a {kind}, not a tensor (convert classifiers with zipmap=False)")
    tensor = value.type.tensor_type
    if tensor.elem_type not in SUPPORTED:
        raise SpecError(
            f"{value.name!r} has ONNX element type {tensor.elem_type}, not one of {sorted(SUPPORTED)}"
        )
    shape = tuple(d.dim_value if d.HasField("dim_value") else 0 for d in tensor.shape.dim)
    return IOSpec(value.name, tensor.elem_type, shape)
