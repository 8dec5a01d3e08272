"""The tensor codec shared with contracts/libraries/TensorCodec.sol: one wire format everywhere.

Tensors travel as ``abi.encode(Tensor[])`` with ``Tensor(string name, uint32[] shape,
int256[] data, uint8 decimals)``; values are fixed point (``real = data / 10**decimals``),
rounded half-to-even from the exact value of the float32 result, so every honest operator
produces the same integers.
"""

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal
from enum import IntEnum

import numpy as np
import numpy.typing as npt
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_abi.exceptions import DecodingError
from eth_utils.crypto import keccak

TENSORS_ABI = "(string,uint32[],int256[],uint8)[]"
SPEC_ABI = ("(string,uint8,uint32[])[]", "(string,uint8,uint32[])[]")
ERROR_NAME = "error"
MAX_DECIMALS = 18
INT256_MIN, INT256_MAX = -(2**255), 2**255 - 1
UINT32_MAX = 2**32 - 1

# Exact decimal arithmetic: a float32 has at most ~112 significant decimal digits once scaled.
_EXACT = Context(prec=200)


class CodecError(ValueError):
    """Bytes or values that the codec cannot represent."""


class ErrorCode(IntEnum):
    """Canonical error codes; identical to the ERR_* constants of TensorCodec.sol."""

    MALFORMED_INPUT = 1
    INPUT_NAMES = 2
    INPUT_SHAPE = 3
    INPUT_VALUE = 4
    NON_FINITE = 5
    TIMEOUT = 6
    RUNTIME = 7
    INPUT_UNAVAILABLE = 8
    OUTPUT_TOO_LARGE = 9
    OUTPUT_SPEC = 10


class DType(IntEnum):
    """ONNX TensorProto element types used in tensor specs."""

    FLOAT = 1
    UINT8 = 2
    INT8 = 3
    INT32 = 6
    INT64 = 7
    BOOL = 9
    DOUBLE = 11


@dataclass(frozen=True)
class Tensor:
    """A named fixed-point tensor in row-major order."""

    name: str
    shape: tuple[int, ...]
    data: tuple[int, ...]
    decimals: int

    def __post_init__(self) -> None:
        if any(not 0 <= d <= UINT32_MAX for d in self.shape):
            raise CodecError(f"tensor {self.name!r}: shape {self.shape} has a dimension outside uint32")
        if math.prod(self.shape) != len(self.data):
            raise CodecError(
                f"tensor {self.name!r}: shape {self.shape} holds {math.prod(self.shape)}"
                f" values, data has {len(self.data)}"
            )
        if not 0 <= self.decimals <= 255:
            raise CodecError(f"tensor {self.name!r}: decimals {self.decimals} outside uint8")
        if any(not INT256_MIN <= v <= INT256_MAX for v in self.data):
            raise CodecError(f"tensor {self.name!r}: a value does not fit int256")

    def to_array(self) -> npt.NDArray[np.float64]:
        """The real values as float64, shaped."""
        scale = 10**self.decimals
        values = [float(Decimal(v) / Decimal(scale)) for v in self.data]
        return np.asarray(values, dtype=np.float64).reshape(self.shape)

    @classmethod
    def from_array(cls, name: str, array: npt.ArrayLike, decimals: int) -> "Tensor":
        """Fixed-point tensor from real values (float32 results are rounded half-to-even)."""
        values = np.asarray(array)
        return cls(name, tuple(int(d) for d in values.shape), to_fixed(values, decimals), decimals)


def to_fixed(values: npt.ArrayLike, decimals: int) -> tuple[int, ...]:
    """Exact half-to-even rounding of ``value * 10**decimals`` for every element."""
    if not 0 <= decimals <= 255:
        raise CodecError(f"decimals {decimals} outside uint8")
    flat = np.asarray(values).reshape(-1)
    if flat.dtype.kind == "f" and not np.all(np.isfinite(flat)):
        raise CodecError("values include NaN or Inf")
    scale = Decimal(10) ** decimals
    out = []
    for v in flat.tolist():
        scaled = _EXACT.multiply(Decimal(v), scale)
        out.append(int(scaled.to_integral_value(rounding=ROUND_HALF_EVEN, context=_EXACT)))
    return tuple(out)


def encode_tensors(tensors: Sequence[Tensor]) -> bytes:
    """abi.encode(Tensor[]), written out directly (byte-identical to eth_abi's, a tenth of the time)."""
    parts = [_encode_tensor(t) for t in tensors]
    offsets, position = [], 32 * len(parts)
    for part in parts:
        offsets.append(position)
        position += len(part)
    return b"".join([_uint(32), _uint(len(parts)), *map(_uint, offsets), *parts])


def decode_tensors(encoded: bytes) -> list[Tensor]:
    """Inverse of encode_tensors; raises CodecError on malformed bytes.

    Canonical encodings (what encode_tensors writes) are read directly; anything else goes through
    eth_abi's strict decoder, so what is accepted and rejected is exactly eth_abi's rule."""
    data = bytes(encoded)
    try:
        tensors = _read_tensors(data)
        if encode_tensors(tensors) == data:
            return tensors
    except (IndexError, ValueError, UnicodeDecodeError):
        pass
    try:
        (raw,) = abi_decode([TENSORS_ABI], data, strict=True)
        return [Tensor(name, tuple(shape), tuple(values), decimals) for name, shape, values, decimals in raw]
    except (DecodingError, ValueError, TypeError, OverflowError) as exc:
        if isinstance(exc, CodecError):
            raise
        raise CodecError(f"not an abi-encoded Tensor[]: {exc}") from exc


def _uint(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _encode_tensor(t: Tensor) -> bytes:
    name = t.name.encode()
    name_part = _uint(len(name)) + name + bytes(-len(name) % 32)
    shape_part = b"".join([_uint(len(t.shape)), *map(_uint, t.shape)])
    data_part = b"".join([_uint(len(t.data)), *(v.to_bytes(32, "big", signed=True) for v in t.data)])
    head = b"".join(
        map(_uint, (128, 128 + len(name_part), 128 + len(name_part) + len(shape_part), t.decimals))
    )
    return head + name_part + shape_part + data_part


def _read_tensors(data: bytes) -> list[Tensor]:
    """Reads a Tensor[] laid out the canonical way; raises on anything it cannot read (the caller then
    checks the bytes re-encode to the input, which rules out every non-canonical layout)."""

    def word(at: int) -> int:
        if at + 32 > len(data):
            raise IndexError("past the end")
        return int.from_bytes(data[at : at + 32], "big")

    base = word(0) + 32
    count = word(base - 32)
    if count > len(data) // 32:
        raise ValueError("count larger than the data")
    tensors = []
    for i in range(count):
        at = base + word(base + 32 * i)
        name_at, shape_at, data_at = at + word(at), at + word(at + 32), at + word(at + 64)
        name_len = word(name_at)
        if name_at + 32 + name_len > len(data):
            raise IndexError("name past the end")
        name = data[name_at + 32 : name_at + 32 + name_len].decode("utf-8", errors="strict")
        shape = tuple(word(shape_at + 32 * (j + 1)) for j in range(min(word(shape_at), len(data) // 32)))
        n = word(data_at)
        if data_at + 32 * (n + 1) > len(data):
            raise IndexError("data past the end")
        values = tuple(
            int.from_bytes(data[p : p + 32], "big", signed=True)
            for p in range(data_at + 32, data_at + 32 * (n + 1), 32)
        )
        tensors.append(Tensor(name, shape, values, word(at + 96)))
    return tensors


def error_output(code: int) -> bytes:
    """The canonical error output every honest operator produces for `code`."""
    return encode_tensors([Tensor(ERROR_NAME, (1,), (int(code),), 0)])


def error_code_of(encoded: bytes) -> int | None:
    """The code if `encoded` is a canonical error output, else None."""
    try:
        tensors = decode_tensors(encoded)
    except CodecError:
        return None
    if len(tensors) != 1 or tensors[0].name != ERROR_NAME or len(tensors[0].data) != 1:
        return None
    code = tensors[0].data[0]
    return code if 0 < code <= 255 and encoded == error_output(code) else None


def output_digest(encoded: bytes) -> bytes:
    """keccak256 of the encoded output: what operators commit to."""
    return keccak(bytes(encoded))


def commitment(request_id: int, operator: str, digest: bytes, salt: bytes) -> bytes:
    """keccak256(abi.encode(requestId, operator, digest, salt)), as InferenceHub checks it."""
    return keccak(
        abi_encode(["uint256", "address", "bytes32", "bytes32"], [request_id, operator, digest, salt])
    )


@dataclass(frozen=True)
class IOSpec:
    """One model input or output: name, ONNX dtype and shape (0 = dynamic dimension)."""

    name: str
    dtype: int
    shape: tuple[int, ...]


@dataclass(frozen=True)
class TensorSpec:
    """A model version's inputs and outputs, as registered on-chain."""

    inputs: tuple[IOSpec, ...]
    outputs: tuple[IOSpec, ...]

    def encode(self) -> bytes:
        """abi.encode(IOSpec[] inputs, IOSpec[] outputs)."""
        return abi_encode(list(SPEC_ABI), [_raw_specs(self.inputs), _raw_specs(self.outputs)])

    @classmethod
    def decode(cls, encoded: bytes) -> "TensorSpec":
        """Inverse of encode; raises CodecError on malformed bytes."""
        try:
            inputs, outputs = abi_decode(list(SPEC_ABI), bytes(encoded), strict=True)
        except (DecodingError, ValueError, TypeError, OverflowError) as exc:
            raise CodecError(f"not an abi-encoded tensor spec: {exc}") from exc
        return cls(_specs(inputs), _specs(outputs))


def _raw_specs(specs: Iterable[IOSpec]) -> list[tuple[str, int, list[int]]]:
    return [(s.name, s.dtype, list(s.shape)) for s in specs]


def _specs(raw: Iterable[tuple[str, int, Sequence[int]]]) -> tuple[IOSpec, ...]:
    return tuple(IOSpec(name, dtype, tuple(shape)) for name, dtype, shape in raw)
