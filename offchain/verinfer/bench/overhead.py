"""Relayer execution overhead: the relayer's model path (decode and check the protocol input, run,
check and encode the output) against bare ONNX Runtime on the same model and inputs."""

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import onnxruntime as ort

from verinfer.bench.harness import distinct_inputs, sample
from verinfer.chain.contracts import ModelVersion
from verinfer.client.inputs import encode_inputs
from verinfer.models.artifacts import ArtifactStore
from verinfer.models.runtime import ModelRuntime, prepare_inputs, session_options
from verinfer.models.samples import SAMPLES
from verinfer.models.spec import spec_from_onnx


def _rate(fn: Callable[[int], object], n: int, rounds: int) -> float:
    """Best-of-`rounds` calls per second of `fn(i)` for i in range(n)."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for i in range(n):
            fn(i)
        best = min(best, time.perf_counter() - started)
    return n / best


def measure(name: str, n: int, rounds: int, cache: Path) -> dict[str, Any]:
    model = sample(name)
    store = ArtifactStore(cache)
    spec = spec_from_onnx(model.onnx)
    version = ModelVersion(
        b"\0" * 32, 1, store.put(model.onnx), 0, model.decimals, 1, False, 1 << 20, "", (), spec
    )
    rows = distinct_inputs(model, n)
    encoded = [encode_inputs(spec, r) for r in rows]
    feeds = [{spec.inputs[0].name: r} for r in rows]
    names = [o.name for o in spec.outputs]
    bare = ort.InferenceSession(model.onnx, session_options(), providers=["CPUExecutionProvider"])
    runtime = ModelRuntime(store)
    if runtime.run(version, encoded[0]).error_code is not None:
        raise RuntimeError(f"{name}: the relayer path failed on a valid input")
    bare_rate = _rate(lambda i: bare.run(names, feeds[i]), n, rounds)
    relayer_rate = _rate(lambda i: runtime.run(version, encoded[i]), n, rounds)
    decode_rate = _rate(lambda i: prepare_inputs(spec.inputs, encoded[i]), n, rounds)
    return {
        "model": name,
        "inferences": n,
        "bare_per_s": round(bare_rate),
        "relayer_per_s": round(relayer_rate),
        "ratio": round(relayer_rate / bare_rate, 3),
        "us_per_inference": {
            "bare_onnxruntime": round(1e6 / bare_rate, 1),
            "relayer_total": round(1e6 / relayer_rate, 1),
            "input_decode_and_check": round(1e6 / decode_rate, 1),
        },
    }


def run(*, quick: bool, models: Sequence[str] = tuple(SAMPLES)) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as cache:
        per_model = [measure(m, 200 if quick else 2000, 2 if quick else 5, Path(cache)) for m in models]
    return {"models": per_model, "worst_ratio": min(m["ratio"] for m in per_model)}
