"""Artifact store and ONNX runtime: hashes checked, deterministic outputs, canonical error codes."""

import dataclasses
import hashlib
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from verinfer.chain.contracts import ModelVersion
from verinfer.models.artifacts import ArtifactMismatch, ArtifactStore, ArtifactUnavailable
from verinfer.models.codec import ErrorCode, Tensor, decode_tensors, encode_tensors, error_code_of
from verinfer.models.execution import PINNED, ExecutionClass, OptLevel, SessionSettings
from verinfer.models.runtime import ModelRuntime
from verinfer.models.samples import SAMPLES, SampleModel, iris_mlp
from verinfer.models.spec import spec_from_onnx

from tests.models import nan_model, slow_model


@pytest.fixture(scope="module")
def iris() -> SampleModel:
    return iris_mlp()


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "store")


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def version_of(
    onnx_bytes: bytes, uris: tuple[str, ...], decimals: int = 6, sha: bytes | None = None
) -> ModelVersion:
    return ModelVersion(
        model_id=b"\x01" * 32,
        version=1,
        artifact_sha256=sha or hashlib.sha256(onnx_bytes).digest(),
        fee=0,
        decimals=decimals,
        modes=1,
        deprecated=False,
        max_output_bytes=65_536,
        verifier="0x" + "00" * 20,
        uris=uris,
        spec=spec_from_onnx(onnx_bytes),
    )


def test_store__fetches_over_http__and_caches_by_hash(
    store: ArtifactStore, http_dir: tuple[Path, str], iris: SampleModel
) -> None:
    root, base = http_dir
    (root / "iris.onnx").write_bytes(iris.onnx)
    sha = hashlib.sha256(iris.onnx).digest()
    path = store.get(sha, [f"{base}/missing.onnx", f"{base}/iris.onnx"])
    assert path.read_bytes() == iris.onnx and path.name == f"{sha.hex()}.onnx"
    (root / "iris.onnx").unlink()
    assert store.get(sha, [f"{base}/iris.onnx"]) == path  # served from the cache


def test_store__wrong_bytes__refused_and_never_cached(
    store: ArtifactStore, tmp_path: Path, iris: SampleModel
) -> None:
    wrong = tmp_path / "wrong.onnx"
    wrong.write_bytes(iris.onnx + b"tampered")
    sha = hashlib.sha256(iris.onnx).digest()
    with pytest.raises(ArtifactMismatch, match="does not match registered"):
        store.get(sha, [wrong.as_uri()])
    assert not store.path(sha).exists()
    with pytest.raises(ArtifactUnavailable, match="unsupported scheme"):
        store.get(sha, ["ipfs://whatever"])


def test_runtime__matches_direct_onnxruntime(store: ArtifactStore, iris: SampleModel) -> None:
    digest = store.put(iris.onnx)
    runtime = ModelRuntime(store)
    version = version_of(iris.onnx, (store.path(digest).as_uri(),))
    x = iris.examples[:3]
    execution = runtime.run(version, encode_tensors([Tensor.from_array("features", x.astype(np.float64), 6)]))
    assert execution.error_code is None
    label, probabilities = decode_tensors(execution.output)
    direct = ort.InferenceSession(iris.onnx, providers=["CPUExecutionProvider"]).run(None, {"features": x})
    assert list(label.data) == [int(v) * 10**6 for v in direct[0]]
    assert probabilities.data == Tensor.from_array("probabilities", direct[1], 6).data


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\x00\x01", ErrorCode.MALFORMED_INPUT),
        (encode_tensors([Tensor.from_array("other", np.zeros((1, 4)), 0)]), ErrorCode.INPUT_NAMES),
        (encode_tensors([Tensor.from_array("features", np.zeros((1, 5)), 0)]), ErrorCode.INPUT_SHAPE),
        (encode_tensors([Tensor("features", (1, 4), (10**60, 0, 0, 0), 0)]), ErrorCode.INPUT_VALUE),
    ],
)
def test_runtime__bad_input__canonical_error_output(
    store: ArtifactStore, iris: SampleModel, payload: bytes, code: ErrorCode
) -> None:
    digest = store.put(iris.onnx)
    execution = ModelRuntime(store).run(version_of(iris.onnx, (store.path(digest).as_uri(),)), payload)
    assert execution.error_code == code
    assert error_code_of(execution.output) == code


def test_runtime__nan_output__non_finite_code(store: ArtifactStore) -> None:
    model = nan_model()
    digest = store.put(model)
    x = encode_tensors([Tensor.from_array("x", np.asarray([[0.5]]), 2)])
    execution = ModelRuntime(store).run(version_of(model, (store.path(digest).as_uri(),)), x)
    assert execution.error_code == ErrorCode.NON_FINITE


def test_runtime__timeout__terminates_the_run_with_the_timeout_code(store: ArtifactStore) -> None:
    model = slow_model(layers=200, width=1024)
    digest = store.put(model)
    runtime = ModelRuntime(store, timeout=0.05)
    execution = runtime.run(
        version_of(model, (store.path(digest).as_uri(),)),
        encode_tensors([Tensor.from_array("x", np.asarray([[0.5]]), 2)]),
    )
    assert execution.error_code == ErrorCode.TIMEOUT
    assert execution.seconds < 2.0


def test_runtime__sessions_kept_in_an_lru(store: ArtifactStore) -> None:
    runtime = ModelRuntime(store, max_sessions=2)
    versions = []
    for build in SAMPLES.values():
        sample = build()
        digest = store.put(sample.onnx)
        versions.append(version_of(sample.onnx, (store.path(digest).as_uri(),)))
    first = runtime.session(versions[0])
    assert runtime.session(versions[0]) is first
    runtime.session(versions[1])
    runtime.session(versions[2])  # evicts the least recently used: versions[0]
    assert runtime.session(versions[0]) is not first


def test_samples__build_reproducibly() -> None:
    for build in SAMPLES.values():
        assert hashlib.sha256(build().onnx).digest() == hashlib.sha256(build().onnx).digest()


def test_runtime__version_class__runs_its_settings_and_a_class_nobody_can_run_is_a_runtime_error(
    store: ArtifactStore, iris: SampleModel
) -> None:
    digest = store.put(iris.onnx)
    runtime = ModelRuntime(store)
    portable = version_of(iris.onnx, (store.path(digest).as_uri(),))
    here = ExecutionClass.current(SessionSettings(intra_op_threads=2, optimization=OptLevel.ALL))
    classed = dataclasses.replace(portable, execution_class=str(here), class_id=here.class_id)
    x = encode_tensors([Tensor.from_array("features", iris.examples[:2].astype(np.float64), 6)])
    assert runtime.run(classed, x).error_code is None
    sessions = list(runtime._sessions)  # one per (artifact, settings)
    assert [s for _, s in sessions] == [here.settings]
    runtime.run(portable, x)
    assert [s for _, s in runtime._sessions] == [here.settings, PINNED]
    garbled = dataclasses.replace(portable, execution_class=here.machine + "/t1-fast")
    execution = runtime.run(garbled, x)
    assert execution.error_code == ErrorCode.RUNTIME and error_code_of(execution.output) == ErrorCode.RUNTIME
