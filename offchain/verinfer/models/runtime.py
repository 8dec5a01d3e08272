"""ONNX Runtime execution with deterministic settings, spec checks, timeouts and canonical error outputs."""

import itertools
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from verinfer.chain.contracts import ModelVersion
from verinfer.models.artifacts import ArtifactStore
from verinfer.models.codec import (
    CodecError,
    DType,
    ErrorCode,
    IOSpec,
    Tensor,
    decode_tensors,
    encode_tensors,
    error_output,
)
from verinfer.models.execution import PINNED, ExecutionClassError, SessionSettings, version_settings
from verinfer.models.inputs import InputResolver, is_reference

log = logging.getLogger(__name__)

NUMPY_DTYPES: dict[int, Any] = {
    DType.FLOAT: np.float32,
    DType.DOUBLE: np.float64,
    DType.UINT8: np.uint8,
    DType.INT8: np.int8,
    DType.INT32: np.int32,
    DType.INT64: np.int64,
    DType.BOOL: np.bool_,
}


@dataclass(frozen=True)
class Execution:
    """One inference: the encoded output (a canonical error output when it could not run)."""

    output: bytes
    error_code: int | None
    seconds: float


class InputRejected(Exception):
    """The input does not fit the tensor spec; carries the canonical error code."""

    def __init__(self, code: ErrorCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def session_options() -> ort.SessionOptions:
    """The pinned settings (one thread, sequential, only semantics-preserving rewrites): same bits within
    an execution class; see verinfer.models.execution."""
    return PINNED.options()


def shape_matches(spec: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    """True if `shape` fits `spec`, where 0 in the spec is a dynamic dimension."""
    return len(spec) == len(shape) and all(s in (0, d) for s, d in zip(spec, shape, strict=True))


def to_input_array(spec: IOSpec, tensor: Tensor) -> npt.NDArray[Any]:
    """The numpy array ONNX Runtime gets for a fixed-point input tensor."""
    dtype = NUMPY_DTYPES.get(spec.dtype)
    if dtype is None:
        raise InputRejected(ErrorCode.INPUT_VALUE, f"input {spec.name!r}: unsupported dtype {spec.dtype}")
    if np.issubdtype(dtype, np.floating):
        # int / int is correctly rounded in Python: the nearest double to data / 10**decimals, exactly.
        scale = 10**tensor.decimals
        try:
            reals = [v / scale for v in tensor.data]
        except OverflowError:
            raise InputRejected(
                ErrorCode.INPUT_VALUE, f"input {spec.name!r}: value out of range for its dtype"
            ) from None
        with np.errstate(over="ignore"):
            array = np.asarray(reals, dtype=dtype)
        if not np.all(np.isfinite(array)):
            raise InputRejected(
                ErrorCode.INPUT_VALUE, f"input {spec.name!r}: value out of range for its dtype"
            )
        return array.reshape(tensor.shape)
    values = []
    for v in tensor.data:
        whole, rest = divmod(v, 10**tensor.decimals)
        if rest:
            raise InputRejected(
                ErrorCode.INPUT_VALUE, f"input {spec.name!r}: fractional value for integer dtype"
            )
        values.append(whole)
    if dtype is np.bool_:
        if any(v not in (0, 1) for v in values):
            raise InputRejected(ErrorCode.INPUT_VALUE, f"input {spec.name!r}: bool values must be 0 or 1")
        return np.asarray(values, dtype=np.bool_).reshape(tensor.shape)
    info = np.iinfo(dtype)
    if any(not info.min <= v <= info.max for v in values):
        raise InputRejected(ErrorCode.INPUT_VALUE, f"input {spec.name!r}: value out of range for its dtype")
    return np.asarray(values, dtype=dtype).reshape(tensor.shape)


def check_output(spec: IOSpec, array: npt.NDArray[Any]) -> None:
    """OUTPUT_SPEC unless the model's output has the declared dtype and shape (0 is a dynamic dimension).

    ONNX Runtime does not hold a model to its declared output shapes, so a graph can produce more (or
    other) than its version promises consumers; that is an error output, never a result."""
    dtype = NUMPY_DTYPES.get(spec.dtype)
    if dtype is None or array.dtype != dtype:
        raise InputRejected(
            ErrorCode.OUTPUT_SPEC, f"output {spec.name!r}: dtype {array.dtype} vs declared {spec.dtype}"
        )
    if not shape_matches(spec.shape, array.shape):
        raise InputRejected(
            ErrorCode.OUTPUT_SPEC, f"output {spec.name!r}: shape {array.shape} vs declared {spec.shape}"
        )


def prepare_inputs(specs: tuple[IOSpec, ...], encoded: bytes) -> dict[str, npt.NDArray[Any]]:
    """Decodes and checks an input against the spec; raises InputRejected with the canonical code."""
    try:
        tensors = decode_tensors(encoded)
    except CodecError as exc:
        raise InputRejected(ErrorCode.MALFORMED_INPUT, str(exc)) from None
    names = [t.name for t in tensors]
    if len(set(names)) != len(names) or set(names) != {s.name for s in specs}:
        raise InputRejected(ErrorCode.INPUT_NAMES, f"inputs {names} do not match {[s.name for s in specs]}")
    by_name = {t.name: t for t in tensors}
    feed = {}
    for spec in specs:
        tensor = by_name[spec.name]
        if not shape_matches(spec.shape, tensor.shape):
            raise InputRejected(
                ErrorCode.INPUT_SHAPE, f"input {spec.name!r}: shape {tensor.shape} vs {spec.shape}"
            )
        feed[spec.name] = to_input_array(spec, tensor)
    return feed


class Watchdog:
    """Terminates ONNX Runtime runs that pass their deadline: one thread for all of them, started on
    first use, instead of a timer thread per run (which costs more than a small model's inference)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._runs: dict[int, tuple[float, ort.RunOptions]] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, options: ort.RunOptions, timeout: float) -> int:
        with self._cond:
            token = next(self._ids)
            self._runs[token] = (time.monotonic() + timeout, options)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ort-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()
        return token

    def release(self, token: int) -> None:
        with self._cond:
            self._runs.pop(token, None)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for token, (deadline, options) in list(self._runs.items()):
                    if deadline <= now:
                        options.terminate = True
                        del self._runs[token]
                soonest = min((d for d, _ in self._runs.values()), default=now + 60.0)
                self._cond.wait(max(soonest - now, 0.001))


class ModelRuntime:
    """Runs registered model versions under their execution class's settings; sessions are kept in an LRU
    keyed by artifact hash and settings."""

    def __init__(
        self,
        store: ArtifactStore,
        *,
        timeout: float = 30.0,
        max_sessions: int = 8,
        inputs: InputResolver | None = None,
    ) -> None:
        self.store = store
        self.timeout = timeout
        self.max_sessions = max_sessions
        # Fetches external inputs (a request's input that is a reference); None answers every reference
        # with INPUT_UNAVAILABLE.
        self.inputs = inputs
        self._sessions: OrderedDict[tuple[bytes, SessionSettings], ort.InferenceSession] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[tuple[bytes, SessionSettings], threading.Lock] = {}
        self._watchdog = Watchdog()

    def session(self, version: ModelVersion, settings: SessionSettings = PINNED) -> ort.InferenceSession:
        """The loaded session for `version` under `settings`; fetches and verifies the artifact first
        (ArtifactError)."""
        key = (version.artifact_sha256, settings)
        with self._lock:
            if key in self._sessions:
                self._sessions.move_to_end(key)
                return self._sessions[key]
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # one load per artifact even when many requests arrive at once
            with self._lock:
                if key in self._sessions:
                    return self._sessions[key]
            path = self.store.get(version.artifact_sha256, version.uris)
            session = ort.InferenceSession(str(path), settings.options(), providers=["CPUExecutionProvider"])
            with self._lock:
                self._sessions[key] = session
                while len(self._sessions) > self.max_sessions:
                    self._sessions.popitem(last=False)
                self._loading.pop(key, None)
            return session

    def run(self, version: ModelVersion, encoded_input: bytes) -> Execution:
        """The encoded output for `encoded_input`; input and runtime faults become canonical error outputs.

        Artifact problems (ArtifactError) propagate: without the right model there is nothing to commit.
        """
        started = time.perf_counter()
        try:
            settings = version_settings(version.execution_class)
        except ExecutionClassError as exc:  # every member of the class reads the same text: all agree
            log.warning("version %s has an execution class nobody can run: %s", version.version, exc)
            return Execution(error_output(ErrorCode.RUNTIME), int(ErrorCode.RUNTIME), 0.0)
        session = self.session(version, settings)
        try:
            feed = prepare_inputs(version.spec.inputs, self._inline(encoded_input))
            output = self._execute(session, version, feed)
            code = None
        except InputRejected as exc:
            output, code = error_output(exc.code), int(exc.code)
        return Execution(output, code, time.perf_counter() - started)

    def _inline(self, encoded_input: bytes) -> bytes:
        """The input's tensor bytes: itself, or what its reference names (INPUT_UNAVAILABLE if that
        cannot be had with the right hash)."""
        if not is_reference(encoded_input):
            return encoded_input
        if self.inputs is None:
            raise InputRejected(ErrorCode.INPUT_UNAVAILABLE, "external input, and no input store configured")
        try:
            return self.inputs.resolve(encoded_input)
        except Exception as exc:  # whatever a requester's server did, the answer is INPUT_UNAVAILABLE
            raise InputRejected(ErrorCode.INPUT_UNAVAILABLE, str(exc) or type(exc).__name__) from None

    def _execute(self, session: ort.InferenceSession, version: ModelVersion, feed: dict[str, Any]) -> bytes:
        names = [o.name for o in version.spec.outputs]
        graph_names = {o.name for o in session.get_outputs()}
        if len(set(names)) != len(names) or set(names) != graph_names:
            raise InputRejected(
                ErrorCode.OUTPUT_SPEC, f"spec outputs {names} differ from the model's {sorted(graph_names)}"
            )
        options = ort.RunOptions()
        token = self._watchdog.watch(options, self.timeout)
        try:
            results = session.run(names, feed, options)
        except Exception as exc:
            if options.terminate:
                raise InputRejected(ErrorCode.TIMEOUT, f"inference exceeded {self.timeout}s") from None
            raise InputRejected(ErrorCode.RUNTIME, f"onnxruntime: {str(exc).splitlines()[0][:200]}") from None
        finally:
            self._watchdog.release(token)
        tensors = []
        for spec, value in zip(version.spec.outputs, results, strict=True):
            array = np.asarray(value)
            check_output(spec, array)
            if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
                raise InputRejected(ErrorCode.NON_FINITE, f"output {spec.name!r} has NaN or Inf")
            if array.dtype.kind not in "fiub":
                raise InputRejected(ErrorCode.RUNTIME, f"output {spec.name!r} is not a numeric tensor")
            tensors.append(Tensor.from_array(spec.name, array, version.decimals))
        return encode_tensors(tensors)
