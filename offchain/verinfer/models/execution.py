"""Execution classes: the runtime, CPU class and session settings under which outputs are bit-identical.

ONNX Runtime gives the same bits for the same model and input only within one class: kernels differ
between AVX2+FMA3 and AVX-512 (a Softmax over more than 16 values sums in another order), between
ARM64 and x86, and with every session setting below. A model version declares its class; an operator
that cannot honour it must not serve it.
"""

import platform
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import onnxruntime as ort
from eth_utils.crypto import keccak

RUNTIME = "onnxruntime"
CPUINFO = Path("/proc/cpuinfo")


class UnsupportedCpu(Exception):
    """This machine belongs to no execution class verinfer supports."""


class ExecutionClassError(ValueError):
    """Text that is not a canonical execution class."""


class CpuClass(StrEnum):
    """CPU families whose ONNX Runtime kernels produce the same bits within the family."""

    X86_64_FMA3 = "x86-64-fma3"  # AVX2 and FMA3, no AVX-512F
    X86_64_AVX512 = "x86-64-avx512"  # AVX-512F present
    ARM64 = "arm64"


_X86 = {"x86_64", "amd64"}
_ARM = {"aarch64", "arm64"}


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The feature flags of the first `flags` line of /proc/cpuinfo text (empty if there is none)."""
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def parse_cpu_class(machine: str, cpuinfo: str) -> CpuClass:
    """The class of a CPU from `platform.machine()` and /proc/cpuinfo text; UnsupportedCpu if none fits."""
    flags = cpu_flags(cpuinfo)
    if machine.lower() in _X86 and not flags:
        raise UnsupportedCpu("cannot tell the x86-64 CPU class: /proc/cpuinfo has no flags line")
    return classify_cpu(machine, flags)


def classify_cpu(machine: str, flags: frozenset[str]) -> CpuClass:
    """The class of a CPU from its architecture and x86 feature flags (/proc/cpuinfo names).

    x86 without FMA3 or AVX2 is refused: ONNX Runtime falls back to kernels no committee is pinned to,
    so an operator there would be outvoted on every float output."""
    arch = machine.lower()
    if arch in _ARM:
        return CpuClass.ARM64
    if arch not in _X86:
        raise UnsupportedCpu(f"unsupported CPU architecture {machine!r}: verinfer runs on x86-64 and arm64")
    missing = [f for f in ("avx2", "fma") if f not in flags]
    if missing:
        names = " and ".join("FMA3" if f == "fma" else f.upper() for f in missing)
        raise UnsupportedCpu(
            f"unsupported x86-64 CPU: no {names}; ONNX Runtime would use kernels that give other bits "
            "than every execution class (x86-64-fma3, x86-64-avx512)"
        )
    return CpuClass.X86_64_AVX512 if "avx512f" in flags else CpuClass.X86_64_FMA3


_CPUID_FLAGS = {"AVX2": "avx2", "FMA3": "fma", "AVX512F": "avx512f"}


def cpuid_flags() -> frozenset[str] | None:
    """The x86 features the CPU itself reports (CPUID, as numpy's dispatcher reads it at import), in
    /proc/cpuinfo's names; None when numpy does not expose them. Unlike /proc/cpuinfo this is what the
    process really runs on: under an emulator (qemu-user) it is the emulated CPU, not the host's."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features  # type: ignore[attr-defined]
    except ImportError:
        return None
    return frozenset(name for key, name in _CPUID_FLAGS.items() if features.get(key))


def detect_cpu_class() -> CpuClass:
    """This machine's CPU class (UnsupportedCpu if it has none), from CPUID where numpy can read it."""
    machine = platform.machine()
    cpuinfo = ""
    if machine.lower() in _X86:
        flags = cpuid_flags()
        if flags is not None:
            return classify_cpu(machine, flags)
        try:
            cpuinfo = CPUINFO.read_text()
        except OSError as exc:
            raise UnsupportedCpu(f"cannot read {CPUINFO} to tell the CPU class: {exc.strerror}") from None
    return parse_cpu_class(machine, cpuinfo)


class ExecutionMode(StrEnum):
    SEQUENTIAL = "seq"
    PARALLEL = "par"


class OptLevel(StrEnum):
    DISABLED = "disabled"
    BASIC = "basic"
    EXTENDED = "extended"
    LAYOUT = "layout"
    ALL = "all"


_ORT_MODES = {
    ExecutionMode.SEQUENTIAL: ort.ExecutionMode.ORT_SEQUENTIAL,
    ExecutionMode.PARALLEL: ort.ExecutionMode.ORT_PARALLEL,
}
_ORT_LEVELS = {
    OptLevel.DISABLED: ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    OptLevel.BASIC: ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    OptLevel.EXTENDED: ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    OptLevel.LAYOUT: ort.GraphOptimizationLevel.ORT_ENABLE_LAYOUT,
    OptLevel.ALL: ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


MAX_THREADS = 8  # per session, intra-op and inter-op each
MAX_CLASS_BYTES = 128  # the registry's MAX_CLASS_LENGTH


@dataclass(frozen=True)
class SessionSettings:
    """The ONNX Runtime session settings that can change output bits; the defaults are the pinned ones."""

    intra_op_threads: int = 1
    inter_op_threads: int = 1
    execution_mode: ExecutionMode = ExecutionMode.SEQUENTIAL
    optimization: OptLevel = OptLevel.BASIC  # only semantics-preserving rewrites
    prepacking: bool = True

    def __post_init__(self) -> None:
        # A version's settings bind every operator of its class: a thread count a small machine cannot
        # honour would time out there and not elsewhere, and the minority would be outvoted.
        for threads in (self.intra_op_threads, self.inter_op_threads):
            if not 1 <= threads <= MAX_THREADS:
                raise ExecutionClassError(f"thread counts must be 1 to {MAX_THREADS}, not {threads}")

    def options(self) -> ort.SessionOptions:
        """SessionOptions with exactly these settings (and quiet logging)."""
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = self.inter_op_threads
        options.execution_mode = _ORT_MODES[self.execution_mode]
        options.graph_optimization_level = _ORT_LEVELS[self.optimization]
        if not self.prepacking:
            options.add_session_config_entry("session.disable_prepacking", "1")
        options.log_severity_level = 3
        return options

    def tag(self) -> str:
        """`t1-seq-opt_basic-prepack`; inter-op threads appear (`i2`) only when not 1."""
        parts = [f"t{self.intra_op_threads}"]
        if self.inter_op_threads != 1:
            parts.append(f"i{self.inter_op_threads}")
        parts += [self.execution_mode.value, f"opt_{self.optimization.value}"]
        parts.append("prepack" if self.prepacking else "noprepack")
        return "-".join(parts)

    @classmethod
    def parse_tag(cls, tag: str) -> "SessionSettings":
        """Inverse of tag(); ExecutionClassError unless `tag` is canonical."""
        intra, inter = 1, 1
        mode, level, prepacking = ExecutionMode.SEQUENTIAL, OptLevel.BASIC, True
        try:
            for part in tag.split("-"):
                if part[:1] in ("t", "i") and part[1:].isdigit():
                    intra, inter = (int(part[1:]), inter) if part[0] == "t" else (intra, int(part[1:]))
                elif part in ("seq", "par"):
                    mode = ExecutionMode(part)
                elif part.startswith("opt_"):
                    level = OptLevel(part[4:])
                elif part in ("prepack", "noprepack"):
                    prepacking = part == "prepack"
                else:
                    raise ValueError(part)
            settings = cls(intra, inter, mode, level, prepacking)
        except ExecutionClassError:
            raise
        except ValueError:
            settings = None
        if settings is None or settings.tag() != tag:
            raise ExecutionClassError(
                f"{tag!r} is not a canonical settings tag like {PINNED.tag()!r} "
                "(t<threads>[-i<inter-op threads>]-seq|par-opt_<level>-prepack|noprepack)"
            )
        return settings


PINNED = SessionSettings()
PORTABLE = ""  # a version's execution class when its outputs agree on every class: pinned settings
NO_CLASS = bytes(32)  # the on-chain class id of portable versions


@dataclass(frozen=True)
class ExecutionClass:
    """Runtime, exact version, CPU class and bit-changing settings: `onnxruntime==1.32.0/arm64/t1-...`."""

    runtime: str
    version: str
    cpu: CpuClass
    settings: SessionSettings = field(default=PINNED)

    def __str__(self) -> str:
        return f"{self.machine}/{self.settings.tag()}"

    @property
    def machine(self) -> str:
        """What operators register for: `runtime==version/cpu-class` (settings are applied per version)."""
        return f"{self.runtime}=={self.version}/{self.cpu.value}"

    @property
    def class_id(self) -> bytes:
        """The on-chain id of the machine part: keccak256 of its bytes (the registry derives the same)."""
        return keccak(self.machine.encode())

    @classmethod
    def parse(cls, text: str) -> "ExecutionClass":
        """Inverse of str(); ExecutionClassError for anything else."""
        parts = text.split("/")
        runtime, sep, version = parts[0].partition("==")
        if len(parts) != 3 or not sep or not runtime or not version:
            raise ExecutionClassError(
                f"{text!r} is not an execution class like 'onnxruntime==1.32.0/x86-64-fma3/{PINNED.tag()}'"
            )
        try:
            cpu = CpuClass(parts[1])
        except ValueError:
            known = ", ".join(c.value for c in CpuClass)
            raise ExecutionClassError(f"{parts[1]!r} is not a CPU class ({known})") from None
        return cls(runtime, version, cpu, SessionSettings.parse_tag(parts[2]))

    @classmethod
    def current(cls, settings: SessionSettings = PINNED) -> "ExecutionClass":
        """This machine's class under `settings` (UnsupportedCpu if the CPU has none)."""
        return cls(RUNTIME, ort.__version__, detect_cpu_class(), settings)


def version_settings(execution_class: str) -> SessionSettings:
    """The session settings a version's class prescribes (the pinned ones for a portable version)."""
    return PINNED if execution_class == PORTABLE else ExecutionClass.parse(execution_class).settings
