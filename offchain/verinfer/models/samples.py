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


SAMPLES: dict[str, Callable[[], SampleModel]] = {
    "breast-cancer-risk": breast_cancer,
    "diabetes-progression": diabetes,
    "iris-mlp": iris_mlp,
}
