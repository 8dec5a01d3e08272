"""Outputs are held to the version's declared output spec: a graph that produces anything else yields
the canonical OUTPUT_SPEC error output, never a result."""

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from verinfer.chain.contracts import ModelVersion
from verinfer.models.artifacts import ArtifactStore
from verinfer.models.codec import DType, ErrorCode, IOSpec, Tensor, encode_tensors, error_code_of
from verinfer.models.runtime import ModelRuntime
from verinfer.models.samples import iris_mlp
from verinfer.models.spec import spec_from_onnx

X = encode_tensors([Tensor.from_array("x", np.asarray([[0.5]]), 2)])


def expanding_model(declared: list[int | str], actual: tuple[int, ...] = (1, 1, 18385)) -> bytes:
    """x[1,1] -> Expand to `actual` -> y, while the graph declares y with shape `declared`."""
    shape = numpy_helper.from_array(np.asarray(actual, dtype=np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Expand", ["x", "shape"], ["y"])],
        "expanding",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, declared)],
        [shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def published(store: ArtifactStore, onnx_bytes: bytes) -> ModelVersion:
    digest = store.put(onnx_bytes)
    return ModelVersion(
        model_id=b"\x01" * 32,
        version=1,
        artifact_sha256=hashlib.sha256(onnx_bytes).digest(),
        fee=0,
        decimals=4,
        modes=1,
        deprecated=False,
        max_output_bytes=65_536,
        verifier="0x" + "00" * 20,
        uris=(store.path(digest).as_uri(),),
        spec=spec_from_onnx(onnx_bytes),
    )


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "store")


def test_error_codes__output_codes_follow_input_unavailable() -> None:
    assert (ErrorCode.OUTPUT_TOO_LARGE, ErrorCode.OUTPUT_SPEC) == (9, 10)


def test_run__output_larger_than_a_declared_scalar__output_spec_error(store: ArtifactStore) -> None:
    model = expanding_model(declared=[])
    onnx.checker.check_model(onnx.load_from_string(model))  # a valid graph; only its promise is false
    version = published(store, model)
    assert version.spec.outputs == (IOSpec("y", DType.FLOAT, ()),)

    execution = ModelRuntime(store).run(version, X)

    assert execution.error_code == ErrorCode.OUTPUT_SPEC
    assert error_code_of(execution.output) == ErrorCode.OUTPUT_SPEC


@pytest.mark.parametrize("declared", [[1, 1, 5], [1, 5], [1, 7]])
def test_run__fixed_dimension_or_rank_differs__output_spec_error(
    store: ArtifactStore, declared: list[int]
) -> None:
    execution = ModelRuntime(store).run(published(store, expanding_model(declared, (1, 1, 7))), X)
    assert execution.error_code == ErrorCode.OUTPUT_SPEC


# a symbolic ONNX dimension, and a 0, are both 0 in the tensor spec: dynamic
@pytest.mark.parametrize("declared", [[1, 1, 7], [1, 1, "n"], ["a", "b", "c"], [1, 1, 0]])
def test_run__output_fits_declared_or_dynamic_dimensions__accepted(
    store: ArtifactStore, declared: list[int | str]
) -> None:
    version = published(store, expanding_model(declared, (1, 1, 7)))
    execution = ModelRuntime(store).run(version, X)
    assert execution.error_code is None
    assert error_code_of(execution.output) is None


def test_run__spec_names_an_output_the_model_lacks__output_spec_error(store: ArtifactStore) -> None:
    iris = iris_mlp()
    version = published(store, iris.onnx)
    renamed = (dataclasses.replace(version.spec.outputs[0], name="score"), *version.spec.outputs[1:])
    version = dataclasses.replace(version, spec=dataclasses.replace(version.spec, outputs=renamed))
    features = encode_tensors([Tensor.from_array("features", iris.examples[:1].astype(np.float64), 6)])
    assert ModelRuntime(store).run(version, features).error_code == ErrorCode.OUTPUT_SPEC


def test_run__spec_declares_another_dtype__output_spec_error(store: ArtifactStore) -> None:
    version = published(store, expanding_model([1, 1, 7], (1, 1, 7)))
    as_int = (dataclasses.replace(version.spec.outputs[0], dtype=DType.INT64),)
    version = dataclasses.replace(version, spec=dataclasses.replace(version.spec, outputs=as_int))
    assert ModelRuntime(store).run(version, X).error_code == ErrorCode.OUTPUT_SPEC
