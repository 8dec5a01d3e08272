"""Calibration: how far a model's encoded outputs move between the settings and CPU classes operators
may run, per number of decimals, and how many decimals (or what tolerance) a version can safely declare.

Rows are encoded and checked the way `verinfer infer` sends them (client.inputs.encode_inputs) and fed
the way relayers decode them (runtime.prepare_inputs); outputs are rounded by the project's codec.
"""

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from verinfer.client.errors import InputMismatch
from verinfer.client.inputs import encode_inputs
from verinfer.models.agreement import Tolerance
from verinfer.models.codec import TensorSpec, to_fixed
from verinfer.models.execution import (
    PINNED,
    CpuClass,
    ExecutionClass,
    ExecutionMode,
    OptLevel,
    SessionSettings,
)
from verinfer.models.runtime import InputRejected, prepare_inputs
from verinfer.models.spec import SpecError, spec_from_onnx

DEFAULT_DECIMALS = tuple(range(2, 9))
QEMU = "qemu-x86_64"
QEMU_CPU_CLASS = CpuClass.X86_64_FMA3  # `-cpu max` under TCG: AVX2 and FMA3, no AVX-512
QEMU_TIMEOUT = 1800.0  # seconds; emulating Python and ONNX Runtime is slow
ABSOLUTE_UNITS = 1  # any raw difference, however small, can straddle a rounding boundary: one unit
RELATIVE_MARGIN = 2.0  # the inputs measured are a sample; the relative part is doubled before rounding up

Feed = dict[str, npt.NDArray[Any]]
Outputs = list[dict[str, npt.NDArray[Any]]]  # per input row: output name -> array


class CalibrationError(Exception):
    """The model or the inputs cannot be calibrated; the message is one line."""


@dataclass(frozen=True)
class Variation:
    """One way an operator might run the model other than the pinned way."""

    name: str
    settings: SessionSettings
    batched: bool = False  # all rows in one run instead of one row per run


VARIATIONS = (
    Variation("threads-2", SessionSettings(intra_op_threads=2)),
    Variation("threads-4", SessionSettings(intra_op_threads=4)),
    Variation("parallel", SessionSettings(inter_op_threads=2, execution_mode=ExecutionMode.PARALLEL)),
    Variation("opt-disabled", SessionSettings(optimization=OptLevel.DISABLED)),
    Variation("opt-extended", SessionSettings(optimization=OptLevel.EXTENDED)),
    Variation("opt-all", SessionSettings(optimization=OptLevel.ALL)),
    Variation("no-prepack", SessionSettings(prepacking=False)),
    Variation("batched", PINNED, batched=True),
)


@dataclass(frozen=True)
class Agreement:
    """How one variation's encoded outputs compare with the pinned ones at one number of decimals."""

    differing: int  # input rows with at least one differing integer
    rows: int
    worst_units: int  # largest |difference| in units of the last digit
    needed_relative: float  # smallest r with |a - b| <= ABSOLUTE_UNITS + r * max(|a|, |b|) everywhere

    @property
    def share(self) -> float:
        return self.differing / self.rows if self.rows else 0.0


@dataclass(frozen=True)
class Comparison:
    """One variation against the pinned run; `skipped` says why it could not run."""

    name: str
    execution_class: str
    batched: bool = False
    skipped: str | None = None
    max_raw_difference: float = 0.0
    by_decimals: Mapping[int, Agreement] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "execution_class": self.execution_class,
            "batched": self.batched,
            "skipped": self.skipped,
            "raw_identical": self.skipped is None and self.max_raw_difference == 0.0,
            "max_raw_difference": self.max_raw_difference,
            "by_decimals": {
                str(d): {
                    "differing_share": a.share,
                    "differing": a.differing,
                    "worst_units": a.worst_units,
                    "needed_relative": a.needed_relative,
                }
                for d, a in self.by_decimals.items()
            },
        }


@dataclass(frozen=True)
class Recommendation:
    """Exact agreement at `decimals`, or a tolerance |a - b| <= absolute_units + relative * max(|a|, |b|)
    in units of the last digit at `decimals`."""

    kind: str  # "exact" or "tolerance"
    decimals: int
    text: str
    absolute_units: int = 0
    relative: float = 0.0

    @property
    def tolerance(self) -> Tolerance:
        """The on-chain rule (`models publish --tolerance`) at least as wide as this recommendation."""
        return Tolerance.covering(self.absolute_units, self.relative)

    def covers(self, agreement: Agreement) -> bool:
        if self.kind == "exact":
            return agreement.differing == 0
        return agreement.needed_relative <= self.relative


@dataclass(frozen=True)
class Report:
    model: str
    rows: int
    execution_class: str
    decimals: tuple[int, ...]
    comparisons: tuple[Comparison, ...]
    cpu_classes: str  # which CPU classes were compared, or why not and how to
    recommendation: Recommendation

    def to_json(self) -> dict[str, Any]:
        rec = self.recommendation
        return {
            "model": self.model,
            "inputs": self.rows,
            "execution_class": self.execution_class,
            "decimals": list(self.decimals),
            "variations": [c.to_json() for c in self.comparisons],
            "cpu_classes": self.cpu_classes,
            "recommendation": {
                "kind": rec.kind,
                "decimals": rec.decimals,
                "absolute_units": rec.absolute_units,
                "relative": rec.relative,
                "tolerance": str(rec.tolerance),
                "text": rec.text,
            },
        }

    def lines(self) -> list[str]:
        columns = "  ".join(f"{f'd={d}':>12}" for d in self.decimals)
        head = f"{'VARIATION':22} {'RAW MAX |DIFF|':>14}  {columns}"
        out = [
            f"{self.model}: {self.rows} inputs; pinned run {self.execution_class}",
            "per variation and decimals: share of inputs whose encoded output differs"
            " / worst difference in units of the last digit",
            head,
        ]
        for c in self.comparisons:
            if c.skipped is not None:
                out.append(f"{c.name:22} skipped: {c.skipped}")
                continue
            cells = "  ".join(
                f"{f'{a.share:.0%}/{a.worst_units}':>12}" for a in (c.by_decimals[d] for d in self.decimals)
            )
            out.append(f"{c.name:22} {c.max_raw_difference:>14.3g}  {cells}")
        out += [f"CPU classes: {self.cpu_classes}", f"recommendation: {self.recommendation.text}"]
        return out


# ------------------------------------------------------------ inputs


def read_inputs(path: Path) -> Any:
    """An .npy array, or JSON: a list of rows (single-input models) or {input name: rows}."""
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        text = path.read_text()
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
        raise CalibrationError(f"cannot read inputs {path}: {reason}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CalibrationError(f"inputs {path} are not valid JSON ({exc})") from None
    if not isinstance(value, dict | list) or not value:
        raise CalibrationError(f"inputs {path}: expected a non-empty list of rows or {{name: rows}}")
    return value


def split_rows(spec: TensorSpec, inputs: Any, input_decimals: int) -> list[Feed]:
    """One feed per row (the leading axis), each encoded and checked as `verinfer infer` would send it."""
    names = [s.name for s in spec.inputs]
    if isinstance(inputs, Mapping):
        named = dict(inputs)
    elif len(names) == 1:
        named = {names[0]: inputs}
    else:
        raise CalibrationError(f"the model has {len(names)} inputs {names}: give {{name: rows}}")
    if set(named) != set(names):
        raise CalibrationError(f"inputs name {sorted(named)}, the model takes {names}")
    arrays = {}
    for s in spec.inputs:
        try:
            array = np.asarray(named[s.name])
        except ValueError:
            raise CalibrationError(f"input {s.name!r} is not a rectangular array") from None
        if array.ndim == len(s.shape) - 1:
            array = array[np.newaxis]  # a single row
        if array.ndim != len(s.shape) or array.shape[0] == 0:
            raise CalibrationError(
                f"input {s.name!r}: rows of shape {array.shape[1:]} do not fit the model's {s.shape}"
            )
        arrays[s.name] = array
    counts = {a.shape[0] for a in arrays.values()}
    if len(counts) != 1:
        raise CalibrationError(f"inputs have different numbers of rows: {sorted(counts)}")
    rows = []
    for i in range(counts.pop()):
        row = {name: array[i : i + 1] for name, array in arrays.items()}
        try:
            rows.append(prepare_inputs(spec.inputs, encode_inputs(spec, row, input_decimals)))
        except (InputMismatch, InputRejected) as exc:
            raise CalibrationError(f"input row {i}: {exc}") from None
    return rows


# ------------------------------------------------------------ running


def load_model(path: Path) -> tuple[bytes, TensorSpec]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CalibrationError(f"cannot read model {path}: {exc.strerror}") from None
    try:
        return data, spec_from_onnx(data)
    except SpecError as exc:
        raise CalibrationError(f"{path}: {exc}") from None


def batchable(spec: TensorSpec) -> bool:
    """True if every input's leading (batch) dimension is dynamic."""
    return all(s.shape and s.shape[0] == 0 for s in spec.inputs)


def run_rows(model: bytes, rows: Sequence[Feed], settings: SessionSettings, batched: bool = False) -> Outputs:
    """Every row's outputs under `settings`: one run per row, or all rows in one run."""
    try:
        session = ort.InferenceSession(model, settings.options(), providers=["CPUExecutionProvider"])
    except Exception as exc:
        first = str(exc).splitlines()[0][:200]
        raise CalibrationError(f"onnxruntime cannot load the model: {first}") from None
    names = [o.name for o in session.get_outputs()]

    def run(feed: Feed) -> list[npt.NDArray[Any]]:
        try:
            values = session.run(names, feed)
        except Exception as exc:
            raise CalibrationError(f"onnxruntime: {str(exc).splitlines()[0][:200]}") from None
        arrays = [np.asarray(v) for v in values]
        for name, array in zip(names, arrays, strict=True):
            if array.dtype.kind not in "fiub":
                raise CalibrationError(f"output {name!r} is not a numeric tensor (convert with zipmap=False)")
            if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
                raise CalibrationError(
                    f"output {name!r} has NaN or Inf: calibrate on inputs the model can run"
                )
        return arrays

    if not batched:
        return [dict(zip(names, run(feed), strict=True)) for feed in rows]
    together = run({name: np.concatenate([feed[name] for feed in rows]) for name in rows[0]})
    if any(a.ndim == 0 or a.shape[0] != len(rows) for a in together):
        raise CalibrationError("batched outputs do not have one entry per row")
    return [{name: a[i : i + 1] for name, a in zip(names, together, strict=True)} for i in range(len(rows))]


# ------------------------------------------------------------ comparing


def compare(pinned: Outputs, other: Outputs, decimals: Sequence[int]) -> tuple[float, dict[int, Agreement]]:
    """Largest raw difference and, per decimals, how the encoded integers differ.

    Equal floats encode to equal integers, so only the elements whose raw values differ are encoded."""
    max_raw = 0.0
    differing = dict.fromkeys(decimals, 0)
    worst = dict.fromkeys(decimals, 0)
    needed = dict.fromkeys(decimals, 0.0)
    for base, moved in zip(pinned, other, strict=True):
        changed: list[tuple[npt.NDArray[Any], npt.NDArray[Any]]] = []
        for name, a in base.items():
            b = moved[name]
            if a.shape != b.shape or a.dtype != b.dtype:
                raise CalibrationError(f"output {name!r}: {b.dtype}{b.shape} vs pinned {a.dtype}{a.shape}")
            mask = a != b
            if np.any(mask):
                changed.append((a[mask], b[mask]))
                diff = np.abs(a[mask].astype(np.float64) - b[mask].astype(np.float64))
                max_raw = max(max_raw, float(diff.max()))
        for d in decimals:
            row_differs = False
            for a, b in changed:
                for x, y in zip(to_fixed(a, d), to_fixed(b, d), strict=True):
                    gap = abs(x - y)
                    if gap:
                        row_differs = True
                        worst[d] = max(worst[d], gap)
                        if gap > ABSOLUTE_UNITS:
                            needed[d] = max(needed[d], (gap - ABSOLUTE_UNITS) / max(abs(x), abs(y)))
            differing[d] += row_differs
    rows = len(pinned)
    return max_raw, {d: Agreement(differing[d], rows, worst[d], needed[d]) for d in decimals}


def round_up(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is at least `value` (0 stays 0)."""
    if value <= 0:
        return 0.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        candidate = float(f"{step}e{exponent}")
        if candidate >= value:
            return candidate
    return float(f"1e{exponent + 2}")  # unreachable; keeps the type checker and rounding honest


def recommend(comparisons: Sequence[Comparison], decimals: Sequence[int]) -> Recommendation:
    """Exact at the most decimals where every variation agrees; else a tolerance at the most decimals."""
    measured = [c for c in comparisons if c.skipped is None]
    exact = [d for d in decimals if all(c.by_decimals[d].differing == 0 for c in measured)]
    if exact:
        n = max(exact)
        text = f"exact is safe at {n} decimals"
        raw = max((c.max_raw_difference for c in measured), default=0.0)
        if raw > 0:
            noisy = ", ".join(c.name for c in measured if c.max_raw_difference > 0)
            text += (
                f" on these inputs; raw outputs still differ by up to {raw:.3g} ({noisy}), so a value can"
                f" straddle a rounding boundary with probability about {min(raw * 10**n, 1.0):.2g}"
            )
        else:
            text += " (raw outputs were bit-identical in every variation)"
        return Recommendation("exact", n, text)
    n = max(decimals)
    relative = round_up(RELATIVE_MARGIN * max(c.by_decimals[n].needed_relative for c in measured))
    worst = max(c.by_decimals[n].worst_units for c in measured)
    checked = f"{n} decimals do not" if len(decimals) == 1 else f"no decimals in {min(decimals)}..{n}"
    rule = f"|a - b| <= {ABSOLUTE_UNITS}" + (f" + {relative:g} * max(|a|, |b|)" if relative else "")
    text = (
        f"{checked} agree exactly in every variation; at {n} decimals accept {rule}"
        f" in units of the last digit (worst measured: {worst} units): publish with"
        f" --decimals {n} --tolerance {Tolerance.covering(ABSOLUTE_UNITS, relative)}"
    )
    return Recommendation("tolerance", n, text, ABSOLUTE_UNITS, relative)


# ------------------------------------------------------------ qemu (another CPU class)


def qemu_command(qemu: str, model: Path, rows: Path, out: Path, python: str = sys.executable) -> list[str]:
    """Runs the pinned settings under an emulated AVX2+FMA3 CPU with this same interpreter."""
    worker = "verinfer.models.calibrate_worker"
    return [qemu, "-cpu", "max", python, "-m", worker, str(model), str(rows), str(out)]


def qemu_env() -> dict[str, str]:
    """This interpreter's import path, in case the emulated one does not find the venv by itself."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}


def write_rows(path: Path, rows: Sequence[Feed]) -> None:
    names = list(rows[0])
    arrays = {f"{i}.{j}": feed[name] for i, feed in enumerate(rows) for j, name in enumerate(names)}
    np.savez(path, names=np.asarray(names), **arrays)


def read_rows(path: Path) -> list[Feed]:
    with np.load(path, allow_pickle=False) as data:
        names = [str(n) for n in data["names"]]
        count = (len(data.files) - 1) // len(names)
        return [{name: data[f"{i}.{j}"] for j, name in enumerate(names)} for i in range(count)]


def write_outputs(path: Path, outputs: Outputs) -> None:
    np.savez(path, **{f"{i}/{name}": a for i, row in enumerate(outputs) for name, a in row.items()})


def read_worker_result(stdout: str, out: Path, rows: int) -> tuple[str, Outputs]:
    """The worker's runtime version (its last stdout line, JSON) and its outputs per row."""
    try:
        info = json.loads(stdout.strip().splitlines()[-1])
        version = str(info["runtime_version"])
    except (IndexError, json.JSONDecodeError, KeyError, TypeError):
        raise CalibrationError(f"the emulated run printed no result: {stdout.strip()[-200:]!r}") from None
    outputs: Outputs = [{} for _ in range(rows)]
    with np.load(out, allow_pickle=False) as data:
        for key in data.files:
            index, _, name = key.partition("/")
            outputs[int(index)][name] = data[key]
    return version, outputs


def run_under_qemu(qemu: str, model: bytes, rows: Sequence[Feed]) -> tuple[str, Outputs]:
    with tempfile.TemporaryDirectory(prefix="verinfer-calibrate-") as tmp:
        model_path, rows_path, out_path = Path(tmp, "model.onnx"), Path(tmp, "rows.npz"), Path(tmp, "out.npz")
        model_path.write_bytes(model)
        write_rows(rows_path, rows)
        try:
            done = subprocess.run(
                qemu_command(qemu, model_path, rows_path, out_path),
                capture_output=True,
                text=True,
                timeout=QEMU_TIMEOUT,
                env=qemu_env(),
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CalibrationError(f"{qemu} failed: {exc}") from None
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise CalibrationError(f"{qemu} exited {done.returncode}: {last[:200]}")
        return read_worker_result(done.stdout, out_path, len(rows))


# ------------------------------------------------------------ the whole calibration


def calibrate(
    model_path: Path,
    inputs_path: Path,
    decimals: Sequence[int] = DEFAULT_DECIMALS,
    *,
    input_decimals: int = 6,
    qemu: str | None = None,
    progress: Callable[[str], None] = lambda _name: None,
) -> Report:
    """Runs every row pinned and under each variation (and, with `qemu`, an emulated x86-64-fma3 CPU)."""
    model, spec = load_model(model_path)
    rows = split_rows(spec, read_inputs(inputs_path), input_decimals)
    here = ExecutionClass.current()
    progress("pinned")
    pinned = run_rows(model, rows, PINNED)
    comparisons = []
    for v in VARIATIONS:
        progress(v.name)
        cls = str(ExecutionClass(here.runtime, here.version, here.cpu, v.settings))
        if v.batched and not batchable(spec):
            comparisons.append(Comparison(v.name, cls, True, "the batch dimension is fixed"))
            continue
        if v.batched and len(rows) < 2:
            comparisons.append(Comparison(v.name, cls, True, "needs at least 2 inputs"))
            continue
        raw, by_decimals = compare(pinned, run_rows(model, rows, v.settings, v.batched), decimals)
        comparisons.append(Comparison(v.name, cls, v.batched, None, raw, by_decimals))
    cpu_classes, emulated = _cpu_classes(here, qemu, model, rows, pinned, decimals, progress)
    if emulated is not None:
        comparisons.append(emulated)
    return Report(
        model_path.name,
        len(rows),
        str(here),
        tuple(decimals),
        tuple(comparisons),
        cpu_classes,
        recommend(comparisons, decimals),
    )


def _cpu_classes(
    here: ExecutionClass,
    qemu: str | None,
    model: bytes,
    rows: Sequence[Feed],
    pinned: Outputs,
    decimals: Sequence[int],
    progress: Callable[[str], None],
) -> tuple[str, Comparison | None]:
    others = ", ".join(c.value for c in CpuClass if c != here.cpu)
    if qemu is None:
        return (
            f"not compared: only {here.cpu} (this machine) was measured; install qemu-x86_64"
            f" (Debian package qemu-user) to compare with {QEMU_CPU_CLASS}, or run calibrate on {others}",
            None,
        )
    if here.cpu == QEMU_CPU_CLASS:
        return f"not compared: this machine is {QEMU_CPU_CLASS} itself; run calibrate on {others}", None
    if here.cpu == CpuClass.ARM64:  # qemu-x86_64 would need an x86-64 interpreter and onnxruntime
        return f"not compared: {qemu} cannot run this arm64 interpreter; run calibrate on {others}", None
    name = f"cpu-{QEMU_CPU_CLASS}"
    cls = str(ExecutionClass(here.runtime, here.version, QEMU_CPU_CLASS, PINNED))
    progress(name)
    try:
        version, outputs = run_under_qemu(qemu, model, rows)
    except CalibrationError as exc:
        return f"{QEMU_CPU_CLASS} under {qemu} failed", Comparison(name, cls, skipped=str(exc))
    if version != here.version:
        reason = f"the emulated interpreter has onnxruntime {version}, not {here.version}"
        return f"{QEMU_CPU_CLASS} not compared", Comparison(name, cls, skipped=reason)
    raw, by_decimals = compare(pinned, outputs, decimals)
    missing = ", ".join(c.value for c in CpuClass if c not in (here.cpu, QEMU_CPU_CLASS))
    return (
        f"{here.cpu} (this machine) vs {QEMU_CPU_CLASS} ({qemu} -cpu max); {missing} not compared",
        Comparison(name, cls, False, None, raw, by_decimals),
    )


def qemu_on_path() -> str | None:
    return shutil.which(QEMU)
