"""A version's agreement rule: exact digests, or a tolerance in units of the last decimal plus a relative
part. The Solidity twin is `TensorCodec.within` with `ModeBase._within`; both must change together."""

import math
import re
from dataclasses import dataclass

from verinfer.models.codec import CodecError, Tensor, decode_tensors, encode_tensors, error_code_of

PPM = 1_000_000
MAX_PPM = PPM  # the registry's MAX_TOLERANCE_PPM
UINT32_MAX = 2**32 - 1

_TEXT = re.compile(r"^\s*(\d+)\s*(?:\+\s*(\d+)\s*ppm)?\s*$")


class ToleranceError(ValueError):
    """A tolerance outside what the registry accepts, or text that is not one."""


@dataclass(frozen=True)
class Tolerance:
    """|a - b| <= units + floor(ppm * max(|a|, |b|) / 1e6) for every element pair, values in units of the
    last decimal. Tolerance(0, 0) is exact agreement (equal digests only)."""

    units: int = 0
    ppm: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.units <= UINT32_MAX:
            raise ToleranceError(f"tolerance units must be 0..{UINT32_MAX}, not {self.units}")
        if not 0 <= self.ppm <= MAX_PPM:
            raise ToleranceError(f"tolerance ppm must be 0..{MAX_PPM} (100 %), not {self.ppm}")

    @property
    def exact(self) -> bool:
        return self.units == 0 and self.ppm == 0

    @classmethod
    def parse(cls, text: str) -> "Tolerance":
        """`exact`, `UNITS` or `UNITS+PPMppm` (for example `2+100ppm`)."""
        if text.strip() == "exact":
            return cls()
        match = _TEXT.match(text)
        if match is None:
            raise ToleranceError(f"tolerance must be exact, UNITS or UNITS+PPMppm (2+100ppm), not {text!r}")
        return cls(int(match[1]), int(match[2] or 0))

    @classmethod
    def covering(cls, units: int, relative: float) -> "Tolerance":
        """The smallest rule at least as wide as `units` plus `relative` (a fraction, as calibrate gives)."""
        return cls(units, math.ceil(relative * PPM - 1e-9) if relative > 0 else 0)

    def __str__(self) -> str:
        if self.exact:
            return "exact"
        return f"{self.units}+{self.ppm}ppm" if self.ppm else str(self.units)

    def describe(self) -> str:
        if self.exact:
            return "exact (equal digests)"
        relative = f" + {self.ppm / PPM:g} * max(|a|, |b|)" if self.ppm else ""
        return f"|a - b| <= {self.units}{relative} in units of the last decimal"

    def covers(self, other: "Tolerance") -> bool:
        """Whether every pair `other` accepts, this rule accepts too."""
        return self.units >= other.units and self.ppm >= other.ppm

    def close(self, a: int, b: int) -> bool:
        return abs(a - b) <= self.units + (self.ppm * max(abs(a), abs(b))) // PPM

    def tensors_within(self, a: list[Tensor], b: list[Tensor]) -> bool:
        """Same tensors (names, shapes, decimals) with every element pair within the rule."""
        if len(a) != len(b):
            return False
        for x, y in zip(a, b, strict=True):
            if (x.name, x.shape, x.decimals, len(x.data)) != (y.name, y.shape, y.decimals, len(y.data)):
                return False
            if not all(self.close(p, q) for p, q in zip(x.data, y.data, strict=True)):
                return False
        return True

    def outputs_agree(self, a: bytes, b: bytes) -> bool:
        """What a settlement decides for two encoded outputs: equal bytes agree; an error output agrees
        only with itself; bytes that are not the canonical encoding of tensors agree with nothing else.
        One difference: a tensor name that is not UTF-8 makes this say False where the contract may say
        True (the contract compares name bytes; relayers never produce such names)."""
        if a == b:
            return True
        if self.exact or error_code_of(a) is not None or error_code_of(b) is not None:
            return False
        try:
            x, y = decode_tensors(a), decode_tensors(b)
        except CodecError:
            return False
        return encode_tensors(x) == a and encode_tensors(y) == b and self.tensors_within(x, y)


EXACT = Tolerance()
