"""Execution classes: CPU class detection from /proc/cpuinfo, canonical strings, compatibility reasons."""

import onnxruntime as ort
import pytest
from verinfer.models.execution import (
    PINNED,
    CpuClass,
    ExecutionClass,
    ExecutionClassError,
    ExecutionMode,
    OptLevel,
    SessionSettings,
    UnsupportedCpu,
    parse_cpu_class,
)
from verinfer.models.runtime import session_options


def cpuinfo(flags: str) -> str:
    return (
        "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Some CPU\n"
        f"flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 {flags}\nbugs\t\t: spectre_v1\n\n"
        f"processor\t: 1\nflags\t\t: fpu {flags}\n"
    )


def test_parse_cpu_class__avx2_fma__x86_64_fma3() -> None:
    assert parse_cpu_class("x86_64", cpuinfo("fma avx avx2 bmi2")) == CpuClass.X86_64_FMA3


def test_parse_cpu_class__avx512f__x86_64_avx512() -> None:
    flags = "fma avx avx2 avx512f avx512dq avx512bw avx512vl"
    assert parse_cpu_class("x86_64", cpuinfo(flags)) == CpuClass.X86_64_AVX512
    assert parse_cpu_class("AMD64", cpuinfo(flags)) == CpuClass.X86_64_AVX512


@pytest.mark.parametrize("machine", ["aarch64", "arm64"])
def test_parse_cpu_class__arm__arm64_without_cpuinfo(machine: str) -> None:
    assert parse_cpu_class(machine, "") == CpuClass.ARM64


@pytest.mark.parametrize(
    ("flags", "missing"),
    [("avx avx2", "no FMA3"), ("avx fma", "no AVX2"), ("avx", "no AVX2 and FMA3"), ("avx512f", "no AVX2")],
)
def test_parse_cpu_class__x86_without_fma3_or_avx2__refused_in_one_line(flags: str, missing: str) -> None:
    with pytest.raises(UnsupportedCpu) as info:
        parse_cpu_class("x86_64", cpuinfo(flags))
    message = str(info.value)
    assert missing in message and "\n" not in message


def test_parse_cpu_class__flag_substrings__not_mistaken() -> None:
    # `avx512fp16`-like flags or `fma4` must not count as avx512f or fma
    with pytest.raises(UnsupportedCpu, match="no FMA3"):
        parse_cpu_class("x86_64", cpuinfo("avx2 fma4"))
    assert parse_cpu_class("x86_64", cpuinfo("avx2 fma avx512fp16")) == CpuClass.X86_64_FMA3


def test_parse_cpu_class__other_arch_or_no_flags__refused() -> None:
    with pytest.raises(UnsupportedCpu, match="riscv64"):
        parse_cpu_class("riscv64", "")
    with pytest.raises(UnsupportedCpu, match="no flags line"):
        parse_cpu_class("x86_64", "processor\t: 0\n")


def test_current__this_machine__a_class_with_the_installed_runtime() -> None:
    current = ExecutionClass.current()
    assert current.runtime == "onnxruntime" and current.version == ort.__version__
    assert current.settings == PINNED


def test_canonical_string__pinned__documented_form() -> None:
    value = ExecutionClass("onnxruntime", "1.32.0", CpuClass.X86_64_FMA3)
    assert str(value) == "onnxruntime==1.32.0/x86-64-fma3/t1-seq-opt_basic-prepack"


@pytest.mark.parametrize(
    "settings",
    [
        PINNED,
        SessionSettings(intra_op_threads=4),
        SessionSettings(inter_op_threads=2, execution_mode=ExecutionMode.PARALLEL),
        *(SessionSettings(optimization=level) for level in OptLevel),
        SessionSettings(prepacking=False),
    ],
)
@pytest.mark.parametrize("cpu", list(CpuClass))
def test_canonical_string__round_trip(settings: SessionSettings, cpu: CpuClass) -> None:
    value = ExecutionClass("onnxruntime", "1.32.0", cpu, settings)
    assert ExecutionClass.parse(str(value)) == value


@pytest.mark.parametrize(
    "text",
    [
        "onnxruntime/x86-64-fma3/t1-seq-opt_basic-prepack",
        "onnxruntime==1.32.0/x86-64-sse/t1-seq-opt_basic-prepack",
        "onnxruntime==1.32.0/arm64",
        "onnxruntime==1.32.0/arm64/t1-seq-opt_basic",
        "onnxruntime==1.32.0/arm64/t1-i1-seq-opt_basic-prepack",  # not canonical: i1 is implied
        "onnxruntime==1.32.0/arm64/t0-seq-opt_basic-prepack",
        "onnxruntime==1.32.0/arm64/t1-seq-opt_fast-prepack",
        "onnxruntime==1.32.0/arm64/seq-t1-opt_basic-prepack",
    ],
)
def test_parse__not_canonical__execution_class_error(text: str) -> None:
    with pytest.raises(ExecutionClassError):
        ExecutionClass.parse(text)


@pytest.mark.parametrize(
    "tag", ["t9-seq-opt_basic-prepack", "t1-i9-seq-opt_basic-prepack", "t0-seq-opt_basic-prepack"]
)
def test_parse_tag__thread_counts_outside_1_to_8__refused(tag: str) -> None:
    with pytest.raises(ExecutionClassError, match="thread counts must be 1 to 8"):
        SessionSettings.parse_tag(tag)


def test_session_options__runtime__the_pinned_settings() -> None:
    options = session_options()
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert options.log_severity_level == 3
    with pytest.raises(RuntimeError):  # no entry at all, exactly as before execution classes existed
        options.get_session_config_entry("session.disable_prepacking")


def test_session_settings__no_prepacking__config_entry_set() -> None:
    options = SessionSettings(prepacking=False).options()
    assert options.get_session_config_entry("session.disable_prepacking") == "1"
