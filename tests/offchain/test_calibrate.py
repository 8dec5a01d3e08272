"""`verinfer models calibrate`: variations measured, recommendations that match the measurements, one-line
errors; the qemu path through its command and its result parsing, and with the real qemu-user (installed
by `make install`) on the iris and long-softmax samples."""

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from verinfer.cli.main import cli
from verinfer.models.calibrate import (
    ABSOLUTE_UNITS,
    DEFAULT_DECIMALS,
    VARIATIONS,
    Agreement,
    CalibrationError,
    Comparison,
    Report,
    calibrate,
    compare,
    qemu_command,
    read_worker_result,
    recommend,
    round_up,
    run_rows,
    run_under_qemu,
    split_rows,
    write_rows,
)
from verinfer.models.calibrate_worker import main as worker_main
from verinfer.models.codec import to_fixed
from verinfer.models.execution import PINNED, CpuClass, ExecutionClass
from verinfer.models.samples import SampleModel, digits_attention, iris_mlp
from verinfer.models.spec import spec_from_onnx


@pytest.fixture(scope="module")
def iris() -> SampleModel:
    return iris_mlp()


@pytest.fixture
def iris_files(tmp_path: Path, iris: SampleModel) -> tuple[Path, Path]:
    model, inputs = tmp_path / "iris.onnx", tmp_path / "rows.json"
    model.write_bytes(iris.onnx)
    inputs.write_text(json.dumps(iris.examples.tolist()))
    return model, inputs


def softmax_model(classes: int = 1000, features: int = 64) -> bytes:
    """x[n, 64] @ W[64, 1000] -> Softmax: a reduction long enough for kernels to sum in other orders."""
    rng = np.random.default_rng(1)
    weight = numpy_helper.from_array(rng.standard_normal((features, classes)).astype(np.float32), "W")
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["z"]),
        helper.make_node("Softmax", ["z"], ["y"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "softmax",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", classes])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def report_is_consistent(report: Report) -> None:
    measured = [c for c in report.comparisons if c.skipped is None]
    rec = report.recommendation
    assert rec.decimals in report.decimals
    if rec.kind == "exact":
        # the largest decimals at which nothing differs
        exact = [d for d in report.decimals if all(c.by_decimals[d].differing == 0 for c in measured)]
        assert rec.decimals == max(exact)
        assert all(c.by_decimals[rec.decimals].differing == 0 for c in measured)
    else:
        assert rec.kind == "tolerance" and rec.absolute_units == ABSOLUTE_UNITS
        assert not any(all(c.by_decimals[d].differing == 0 for c in measured) for d in report.decimals)
        for c in measured:
            agreement = c.by_decimals[rec.decimals]
            assert rec.covers(agreement) and rec.relative >= agreement.needed_relative


QEMU = shutil.which("qemu-x86_64") or "qemu-x86_64"
EMULATED = "cpu-x86-64-fma3"  # the comparison with qemu's AVX2+FMA3 CPU


def test_calibrate__iris__exact_is_safe_at_the_samples_decimals(
    iris: SampleModel, iris_files: tuple[Path, Path]
) -> None:
    assert ExecutionClass.current().cpu == CpuClass.X86_64_AVX512, "qemu emulates the other x86 class"
    report = calibrate(*iris_files, (iris.decimals,), qemu=QEMU)
    assert report.rows == len(iris.examples)
    assert {c.name for c in report.comparisons} == {v.name for v in VARIATIONS} | {EMULATED}
    assert all(c.skipped is None for c in report.comparisons)
    assert report.recommendation.kind == "exact" and report.recommendation.decimals == iris.decimals
    assert f"exact is safe at {iris.decimals} decimals" in report.recommendation.text
    report_is_consistent(report)


def test_calibrate__long_softmax_sample_on_another_cpu_class__differs_and_recommends_a_tolerance(
    tmp_path: Path,
) -> None:
    """digits-attention's softmax over 1,437 memory entries sums in another order on AVX2+FMA3 kernels
    than on AVX-512 ones: exact digests at its decimals and above would outvote honest operators."""
    assert ExecutionClass.current().cpu == CpuClass.X86_64_AVX512, "qemu emulates the other x86 class"
    model, inputs = tmp_path / "attention.onnx", tmp_path / "rows.npy"
    model.write_bytes(digits_attention().onnx)
    np.save(inputs, load_digits().data[-64:].astype(np.float32))
    report = calibrate(model, inputs, (4, 6, 8), qemu=QEMU)
    emulated = next(c for c in report.comparisons if c.name == EMULATED)
    assert emulated.skipped is None and emulated.by_decimals[8].differing > 0
    rec = report.recommendation
    assert rec.kind == "tolerance" or rec.decimals < 8, rec.text
    report_is_consistent(report)


@pytest.mark.parametrize("decimals", [DEFAULT_DECIMALS, (8,)])
def test_calibrate__softmax_over_1000__well_formed_and_recommendation_matches_measurements(
    tmp_path: Path, decimals: tuple[int, ...]
) -> None:
    model, inputs = tmp_path / "softmax.onnx", tmp_path / "rows.npy"
    model.write_bytes(softmax_model())
    np.save(inputs, (np.random.default_rng(2).standard_normal((6, 64)) * 0.3).astype(np.float32))
    report = calibrate(model, inputs, decimals)
    assert report.decimals == decimals and report.rows == 6
    for c in report.comparisons:
        assert c.skipped is None, c
        assert set(c.by_decimals) == set(decimals)
        for agreement in c.by_decimals.values():
            assert 0 <= agreement.differing <= agreement.rows == 6
            assert (agreement.worst_units == 0) == (agreement.differing == 0)
        if c.max_raw_difference == 0:
            assert all(a.differing == 0 for a in c.by_decimals.values())
    report_is_consistent(report)
    data = json.loads(json.dumps(report.to_json()))
    assert data["recommendation"]["kind"] in ("exact", "tolerance")
    rec = report.recommendation
    if rec.kind == "tolerance":
        # checked against the integers themselves, independently of the report's own arithmetic
        rows = split_rows(spec_from_onnx(model.read_bytes()), np.load(inputs), 6)
        pinned = run_rows(model.read_bytes(), rows, PINNED)
        for v in VARIATIONS:
            moved = run_rows(model.read_bytes(), rows, v.settings, v.batched)
            for base, other in zip(pinned, moved, strict=True):
                d = rec.decimals
                for x, y in zip(to_fixed(base["y"], d), to_fixed(other["y"], d), strict=True):
                    assert abs(x - y) <= rec.absolute_units + rec.relative * max(abs(x), abs(y))


def test_calibrate__fixed_batch_dimension__batched_variation_skipped(tmp_path: Path) -> None:
    proto = onnx.load_from_string(softmax_model(classes=20, features=4))
    proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    proto.graph.output[0].type.tensor_type.shape.dim[0].dim_value = 1
    model, inputs = tmp_path / "fixed.onnx", tmp_path / "rows.json"
    model.write_bytes(proto.SerializeToString())
    inputs.write_text(json.dumps([[0.1, 0.2, 0.3, 0.4], [0.5, -0.1, 0.0, 0.2]]))
    report = calibrate(model, inputs, (4,))
    batched = next(c for c in report.comparisons if c.name == "batched")
    assert batched.skipped == "the batch dimension is fixed"
    report_is_consistent(report)


def test_compare__differences__counted_in_last_digit_units() -> None:
    pinned = [{"y": np.asarray([0.5, 0.25], dtype=np.float32)}, {"y": np.asarray([1.0], dtype=np.float32)}]
    moved = [{"y": np.asarray([0.5001, 0.25], dtype=np.float32)}, {"y": np.asarray([1.0], dtype=np.float32)}]
    raw, by_decimals = compare(pinned, moved, (2, 4, 6))
    assert raw == pytest.approx(1e-4, rel=1e-3)
    assert by_decimals[2] == Agreement(0, 2, 0, 0.0)  # 50 both
    assert by_decimals[4].differing == 1 and by_decimals[4].worst_units == 1  # 5000 vs 5001
    assert by_decimals[6].worst_units == 100 and by_decimals[6].share == 0.5
    assert by_decimals[6].needed_relative == pytest.approx((100 - 1) / 500100, rel=1e-3)


def test_recommend__no_exact_decimals__tolerance_covers_the_worst_with_margin() -> None:
    agreement = Agreement(differing=3, rows=4, worst_units=40, needed_relative=3.2e-5)
    comparisons = [Comparison("x", "c", by_decimals={6: agreement, 7: agreement})]
    rec = recommend(comparisons, (6, 7))
    assert rec.kind == "tolerance" and rec.decimals == 7 and rec.relative == 1e-4 and rec.covers(agreement)


def test_recommend__skipped_variations__ignored() -> None:
    comparisons = [
        Comparison("ok", "c", by_decimals={6: Agreement(0, 4, 0, 0.0)}),
        Comparison("gone", "c", skipped="no qemu"),
    ]
    rec = recommend(comparisons, (6,))
    assert rec.kind == "exact" and "bit-identical" in rec.text


@pytest.mark.parametrize(("value", "rounded"), [(0.0, 0.0), (3.2e-5, 5e-5), (1e-4, 1e-4), (1.1e-4, 2e-4)])
def test_round_up__one_two_five_steps(value: float, rounded: float) -> None:
    assert round_up(value) == pytest.approx(rounded) and round_up(value) >= value


def test_split_rows__wrong_width__one_line_error(iris: SampleModel) -> None:
    with pytest.raises(CalibrationError, match="input row 0") as info:
        split_rows(spec_from_onnx(iris.onnx), [[1.0, 2.0]], 6)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------ qemu: command and result parsing only


def test_qemu_command__emulated_max_cpu_with_this_interpreter(tmp_path: Path) -> None:
    command = qemu_command(
        "/usr/bin/qemu-x86_64", tmp_path / "m.onnx", tmp_path / "r.npz", tmp_path / "o.npz", "/py"
    )
    assert command[:4] == ["/usr/bin/qemu-x86_64", "-cpu", "max", "/py"]
    assert command[4:6] == ["-m", "verinfer.models.calibrate_worker"]
    assert command[6:] == [str(tmp_path / "m.onnx"), str(tmp_path / "r.npz"), str(tmp_path / "o.npz")]


def test_worker__in_process__result_parses_to_the_pinned_outputs(
    tmp_path: Path, iris: SampleModel, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = split_rows(spec_from_onnx(iris.onnx), iris.examples[:3].tolist(), 6)
    model, rows_path, out = tmp_path / "m.onnx", tmp_path / "rows.npz", tmp_path / "out.npz"
    model.write_bytes(iris.onnx)
    write_rows(rows_path, rows)
    assert worker_main([str(model), str(rows_path), str(out)]) == 0
    version, outputs = read_worker_result("some qemu noise\n" + capsys.readouterr().out, out, len(rows))
    import onnxruntime as ort

    assert version == ort.__version__
    raw, by_decimals = compare(run_rows(iris.onnx, rows, PINNED), outputs, (6,))
    assert raw == 0.0 and by_decimals[6].differing == 0


def test_run_under_qemu__stand_in_that_runs_the_command_natively__outputs_compared(
    tmp_path: Path, iris: SampleModel
) -> None:
    # not qemu: a script that drops `-cpu max` and runs the rest, so the subprocess path runs for real
    fake = tmp_path / "qemu-x86_64"
    fake.write_text('#!/bin/sh\n[ "$1" = -cpu ] && [ "$2" = max ] || exit 9\nshift 2\nexec "$@"\n')
    fake.chmod(0o755)
    rows = split_rows(spec_from_onnx(iris.onnx), iris.examples[:2].tolist(), 6)
    version, outputs = run_under_qemu(str(fake), iris.onnx, rows)
    import onnxruntime as ort

    assert version == ort.__version__
    assert compare(run_rows(iris.onnx, rows, PINNED), outputs, (6,))[0] == 0.0


def test_calibrate__with_an_emulator__cpu_class_variation_reported(
    tmp_path: Path, iris: SampleModel, iris_files: tuple[Path, Path]
) -> None:
    fake = tmp_path / "qemu-x86_64"
    fake.write_text('#!/bin/sh\nshift 2\nexec "$@"\n')  # stands in for qemu: runs natively
    fake.chmod(0o755)
    report = calibrate(*iris_files, (iris.decimals,), qemu=str(fake))
    emulated = [c for c in report.comparisons if c.name == "cpu-x86-64-fma3"]
    if ExecutionClass.current().cpu == CpuClass.X86_64_AVX512:
        assert len(emulated) == 1 and emulated[0].skipped is None
        assert emulated[0].execution_class.endswith("/x86-64-fma3/t1-seq-opt_basic-prepack")
        assert report.cpu_classes.startswith("x86-64-avx512 (this machine) vs x86-64-fma3")
    else:
        assert emulated == [] and report.cpu_classes.startswith("not compared")
    report_is_consistent(report)


def test_run_under_qemu__failing_emulator__one_line_error(tmp_path: Path, iris: SampleModel) -> None:
    fake = tmp_path / "qemu-x86_64"
    fake.write_text("#!/bin/sh\necho 'qemu: unknown cpu' >&2\nexit 1\n")
    fake.chmod(0o755)
    rows = split_rows(spec_from_onnx(iris.onnx), iris.examples[:1].tolist(), 6)
    with pytest.raises(CalibrationError, match="exited 1: qemu: unknown cpu"):
        run_under_qemu(str(fake), iris.onnx, rows)


def test_read_worker_result__no_json_line__calibration_error(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="printed no result"):
        read_worker_result("Illegal instruction\n", tmp_path / "missing.npz", 1)


# ------------------------------------------------------------ CLI


@pytest.fixture(autouse=True)
def no_qemu(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI tests stay seconds long even on a machine with qemu installed."""
    monkeypatch.setattr("verinfer.cli.models.qemu_on_path", lambda: None)


def run_cli(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner(mix_stderr=False).invoke(cli, args)
    return result.exit_code, result.stdout, result.stderr


def test_cli__iris__json_report(iris_files: tuple[Path, Path]) -> None:
    model, inputs = iris_files
    code, out, _ = run_cli(
        ["models", "calibrate", str(model), "--inputs", str(inputs), "--decimals", "6", "--json"]
    )
    assert code == 0
    data = json.loads(out)
    assert data["recommendation"]["kind"] == "exact" and data["recommendation"]["decimals"] == 6
    assert data["execution_class"].startswith("onnxruntime==")
    assert data["cpu_classes"].startswith("not compared") and "qemu-user" in data["cpu_classes"]


def assert_one_error_line(tmp_path: Path, args: list[str]) -> str:
    before = sorted(tmp_path.rglob("*"))
    code, out, err = run_cli(["models", "calibrate", *args])
    assert code != 0 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert sorted(tmp_path.rglob("*")) == before  # nothing written
    return lines[0]


def test_cli__missing_model__one_line(tmp_path: Path, iris_files: tuple[Path, Path]) -> None:
    line = assert_one_error_line(tmp_path, [str(tmp_path / "nope.onnx"), "--inputs", str(iris_files[1])])
    assert "nope.onnx" in line


def test_cli__not_an_onnx_model__one_line(tmp_path: Path, iris_files: tuple[Path, Path]) -> None:
    line = assert_one_error_line(tmp_path, [str(iris_files[1]), "--inputs", str(iris_files[1])])
    assert "not an ONNX model" in line


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("[[5.1, 3.5, 1.4", "not valid JSON"),
        ('"rows"', "expected"),
        ("[[1, 2]]", "input row 0"),
        ('[["a", 1, 2, 3]]', "numbers"),
    ],
)
def test_cli__malformed_inputs__one_line(
    tmp_path: Path, iris_files: tuple[Path, Path], content: str, says: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    line = assert_one_error_line(tmp_path, [str(iris_files[0]), "--inputs", str(bad)])
    assert says in line
