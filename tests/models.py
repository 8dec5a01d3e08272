"""Test-only ONNX graphs built with onnx.helper."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def slow_model(layers: int = 150, width: int = 384) -> bytes:
    """x[1,1] -> expand to [width,width] -> `layers` x tanh(A @ W) -> y[1,1]: seconds of CPU on purpose."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(
        (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32), "W"
    )
    shape = numpy_helper.from_array(np.asarray([width, width], dtype=np.int64), "shape")
    nodes = [helper.make_node("Expand", ["x", "shape"], ["a0"])]
    for i in range(layers):
        nodes.append(helper.make_node("MatMul", [f"a{i}", "W"], [f"m{i}"]))
        nodes.append(helper.make_node("Tanh", [f"m{i}"], [f"a{i + 1}"]))
    nodes.append(helper.make_node("ReduceMean", [f"a{layers}"], ["y"], keepdims=1))
    graph = helper.make_graph(
        nodes,
        "slow",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
        [weight, shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def nan_model() -> bytes:
    """x[1,1] -> log(x - 1): NaN for inputs below 1."""
    one = numpy_helper.from_array(np.asarray([[1.0]], dtype=np.float32), "one")
    nodes = [helper.make_node("Sub", ["x", "one"], ["d"]), helper.make_node("Log", ["d"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "nan",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
        [one],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())
