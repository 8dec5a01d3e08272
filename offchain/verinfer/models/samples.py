"""Sample models built reproducibly from scikit-learn's bundled datasets and converted with skl2onnx."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class SampleModel:
    """An ONNX artifact with the inputs it was shown and how to publish it."""

    name: str
    description: str
    onnx: bytes
    decimals: int
    input_name: str
    examples: npt.NDArray[np.float32]  # a few rows from the held-out data


def _split(x: Any, y: Any) -> tuple[Any, Any, Any, Any]:
    from sklearn.model_selection import train_test_split

    return train_test_split(x, y, test_size=0.2, random_state=7)  # type: ignore[no-any-return]


def _convert(model: Any, features: int, classifier: bool) -> bytes:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    options = {id(model): {"zipmap": False}} if classifier else None
    onx = to_onnx(
        model,
        initial_types=[("features", FloatTensorType([None, features]))],
        options=options,
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    return bytes(onx.SerializeToString())


def breast_cancer() -> SampleModel:
    """Logistic regression on the Wisconsin breast-cancer data: label and class probabilities."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer()
    x_train, x_test, y_train, _ = _split(data.data.astype(np.float32), data.target)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, random_state=0)).fit(
        x_train, y_train
    )
    return SampleModel(
        "breast-cancer-risk",
        "benign (1) vs malignant (0) from 30 cell features",
        _convert(model, 30, True),
        6,
        "features",
        x_test[:8],
    )


def diabetes() -> SampleModel:
    """Ridge regression of disease progression one year out from 10 baseline measurements."""
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    data = load_diabetes()
    x_train, x_test, y_train, _ = _split(data.data.astype(np.float32), data.target)
    model = Ridge(alpha=0.5).fit(x_train, y_train)
    return SampleModel(
        "diabetes-progression",
        "disease progression score from 10 measurements",
        _convert(model, 10, False),
        4,
        "features",
        x_test[:8],
    )


def iris_mlp() -> SampleModel:
    """A small neural network (one hidden layer of 16) classifying iris flowers."""
    from sklearn.datasets import load_iris
    from sklearn.neural_network import MLPClassifier

    data = load_iris()
    x_train, x_test, y_train, _ = _split(data.data.astype(np.float32), data.target)
    model = MLPClassifier(hidden_layer_sizes=(16,), max_iter=2000, random_state=0).fit(x_train, y_train)
    return SampleModel(
        "iris-mlp",
        "iris species (0, 1, 2) from 4 measurements",
        _convert(model, 4, True),
        6,
        "features",
        x_test[:8],
    )


def _digits() -> tuple[Any, Any, Any, Any]:
    """scikit-learn's 1,797 handwritten 8x8 digits, pixels 0..16, split like the other samples."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return _split(data.data.astype(np.float32), data.target)


def _finish(graph: Any) -> bytes:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="verinfer")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def digits_attention() -> SampleModel:
    """Soft nearest neighbours over a memory of 1,437 labelled digits: the input attends to every memory
    entry (cosine similarity, then a softmax over all 1,437), and the class probabilities are the
    attention mass on each label. The long softmax is what attention and large classifiers do, and what
    sums in another order on AVX2 and AVX-512 kernels."""
    from onnx import TensorProto, helper, numpy_helper

    x_train, x_test, y_train, _ = _digits()
    memory = x_train / np.linalg.norm(x_train, axis=1, keepdims=True)
    labels = np.eye(10, dtype=np.float32)[y_train]
    temperature = np.float32(0.02)  # sharp enough for 98% held-out accuracy with every entry weighing in
    init = [
        numpy_helper.from_array(memory.T.astype(np.float32), "memory"),
        numpy_helper.from_array(labels, "labels"),
        numpy_helper.from_array(np.asarray([1.0 / temperature], np.float32), "inverse_temperature"),
        numpy_helper.from_array(np.asarray([1e-6], np.float32), "epsilon"),
    ]
    nodes = [
        helper.make_node("ReduceL2", ["features"], ["norm"], keepdims=1, axes=[1]),
        helper.make_node("Add", ["norm", "epsilon"], ["safe_norm"]),
        helper.make_node("Div", ["features", "safe_norm"], ["unit"]),
        helper.make_node("MatMul", ["unit", "memory"], ["similarity"]),
        helper.make_node("Mul", ["similarity", "inverse_temperature"], ["scores"]),
        helper.make_node("Softmax", ["scores"], ["attention"], axis=-1),
        helper.make_node("MatMul", ["attention", "labels"], ["probabilities"]),
        helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "digits_attention",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 64])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 10]),
        ],
        init,
    )
    return SampleModel(
        "digits-attention",
        "handwritten digit (0-9) from 64 pixels, by attention over 1,437 labelled examples",
        _finish(graph),
        4,
        "features",
        x_test[:8],
    )


def digits_cnn() -> SampleModel:
    """A convolutional network on the 8x8 digits: two 3x3 convolution layers with ReLU and max pooling
    (fixed random filters, seeded), then a softmax layer trained on their features by logistic
    regression. Convolutions are where kernels differ most between CPU classes and session settings."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    from sklearn.linear_model import LogisticRegression

    x_train, x_test, y_train, _ = _digits()
    rng = np.random.default_rng(11)
    conv1 = (rng.standard_normal((8, 1, 3, 3)) / 3).astype(np.float32)
    conv2 = (rng.standard_normal((16, 8, 3, 3)) / np.sqrt(72)).astype(np.float32)
    init = [
        numpy_helper.from_array(np.asarray([-1, 1, 8, 8], np.int64), "image_shape"),
        numpy_helper.from_array(np.asarray([1.0 / 16], np.float32), "scale"),
        numpy_helper.from_array(conv1, "conv1"),
        numpy_helper.from_array(np.zeros(8, np.float32), "bias1"),
        numpy_helper.from_array(conv2, "conv2"),
        numpy_helper.from_array(np.zeros(16, np.float32), "bias2"),
    ]
    body = [
        helper.make_node("Mul", ["features", "scale"], ["pixels"]),
        helper.make_node("Reshape", ["pixels", "image_shape"], ["image"]),
        helper.make_node("Conv", ["image", "conv1", "bias1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "conv2", "bias2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Flatten", ["r2"], ["conv_features"], axis=1),
    ]
    inputs = [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 64])]

    def graph(nodes: list[Any], outputs: list[Any], extra: list[Any]) -> Any:
        return helper.make_graph(nodes, "digits_cnn", inputs, outputs, init + extra)

    width = 16 * 4 * 4
    stem = graph(body, [helper.make_tensor_value_info("conv_features", TensorProto.FLOAT, [None, width])], [])
    session = ort.InferenceSession(_finish(stem), providers=["CPUExecutionProvider"])
    head = LogisticRegression(max_iter=2000, C=0.5, random_state=0)
    head.fit(session.run(None, {"features": x_train})[0], y_train)
    full = graph(
        [
            *body,
            helper.make_node("Gemm", ["conv_features", "head_w", "head_b"], ["logits"], transB=1),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
            helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
        ],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 10]),
        ],
        [
            numpy_helper.from_array(head.coef_.astype(np.float32), "head_w"),
            numpy_helper.from_array(head.intercept_.astype(np.float32), "head_b"),
        ],
    )
    return SampleModel(
        "digits-cnn",
        "handwritten digit (0-9) from 64 pixels, by a two-layer convolutional network",
        _finish(full),
        4,
        "features",
        x_test[:8],
    )


SAMPLES: dict[str, Callable[[], SampleModel]] = {
    "breast-cancer-risk": breast_cancer,
    "diabetes-progression": diabetes,
    "digits-attention": digits_attention,
    "digits-cnn": digits_cnn,
    "iris-mlp": iris_mlp,
}
