"""Determinism: for each sample model, how far its encoded outputs move between the ways an operator
might run it (threads, parallel mode, optimization levels, prepacking, batching) and, where qemu-user
is installed, on an emulated AVX2+FMA3 CPU; measured with `verinfer models calibrate`'s engine at the
model's own decimals."""

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from verinfer.bench.harness import distinct_inputs, sample
from verinfer.models.calibrate import calibrate, qemu_on_path
from verinfer.models.samples import SAMPLES


def measure(name: str, rows: int, work: Path, qemu: str | None) -> dict[str, Any]:
    model = sample(name)
    onnx, inputs = work / f"{name}.onnx", work / f"{name}.json"
    onnx.write_bytes(model.onnx)
    # One row per input, as `verinfer infer` sends it (each sample row is a [1, features] array).
    inputs.write_text(json.dumps(np.concatenate(distinct_inputs(model, rows, seed=5)).tolist()))
    report = calibrate(onnx, inputs, (model.decimals,), qemu=qemu)
    variations = []
    for c in report.comparisons:
        agreement = c.by_decimals.get(model.decimals)
        variations.append(
            {
                "name": c.name,
                "skipped": c.skipped,
                "differing_share": None if agreement is None else round(agreement.share, 4),
                "worst_units": None if agreement is None else agreement.worst_units,
            }
        )
    measured = [v for v in variations if v["skipped"] is None]
    return {
        "model": name,
        "decimals": model.decimals,
        "inputs": report.rows,
        "execution_class": report.execution_class,
        "cpu_classes": report.cpu_classes,
        "variations": variations,
        "worst_share": max((v["differing_share"] or 0.0 for v in measured), default=0.0),
        "worst_units": max((v["worst_units"] or 0 for v in measured), default=0),
        "recommendation": report.recommendation.text,
    }


QUICK_MODELS = ("digits-attention", "iris-mlp")


def run(*, quick: bool) -> dict[str, Any]:
    qemu = qemu_on_path()
    with tempfile.TemporaryDirectory() as tmp:
        # The quick run (the test suite's) checks the harness on two models: a small one and the long softmax.
        names = QUICK_MODELS if quick else sorted(SAMPLES)
        models = [measure(name, 8 if quick else 64, Path(tmp), qemu) for name in names]
    return {"qemu": qemu, "models": models}
