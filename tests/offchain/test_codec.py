"""Python tensor codec units: fixed-point rounding, validation, error outputs, commitments."""

import numpy as np
import pytest
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from hypothesis import given
from hypothesis import strategies as st
from verinfer.models.codec import (
    TENSORS_ABI,
    CodecError,
    DType,
    ErrorCode,
    IOSpec,
    Tensor,
    TensorSpec,
    commitment,
    decode_tensors,
    encode_tensors,
    error_code_of,
    error_output,
    output_digest,
    to_fixed,
)


def test_to_fixed__rounds_half_to_even_from_exact_float32():
    values = np.array([0.5, 1.5, 2.5, -0.5, -1.5], dtype=np.float32)
    assert to_fixed(values, 0) == (0, 2, 2, 0, -2)
    # 0.1f is 0.100000001490116..., so six decimals give 100000 and nine give 100000001.
    assert to_fixed(np.array([0.1], dtype=np.float32), 6) == (100000,)
    assert to_fixed(np.array([0.1], dtype=np.float32), 9) == (100000001,)


def test_to_fixed__non_finite__rejected():
    with pytest.raises(CodecError, match="NaN or Inf"):
        to_fixed(np.array([1.0, np.nan], dtype=np.float32), 6)


@given(st.lists(st.floats(-1e6, 1e6, width=32), min_size=1, max_size=8), st.integers(0, 12))
def test_from_array__round_trips_within_half_ulp_of_the_scale(values, decimals):
    array = np.asarray(values, dtype=np.float32)
    tensor = Tensor.from_array("t", array, decimals)
    assert np.all(np.abs(tensor.to_array() - array.astype(np.float64)) <= 0.5 * 10**-decimals + 1e-9)
    assert decode_tensors(encode_tensors([tensor])) == [tensor]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"shape": (2, 2), "data": (1, 2, 3)}, "holds 4 values"),
        ({"shape": (1,), "data": (2**255,)}, "does not fit int256"),
        ({"shape": (1,), "data": (1,), "decimals": 256}, "outside uint8"),
        ({"shape": (-1,), "data": ()}, "outside uint32"),
    ],
)
def test_tensor__invalid__one_clear_error(kwargs, message):
    with pytest.raises(CodecError, match=message):
        Tensor(kwargs.get("name", "x"), kwargs["shape"], kwargs["data"], kwargs.get("decimals", 0))


@pytest.mark.parametrize("garbage", [b"", b"\x01\x02", b"\x00" * 31, b"\xff" * 64])
def test_decode__malformed__codec_error(garbage):
    with pytest.raises(CodecError):
        decode_tensors(garbage)


def test_error_output__recognised_and_distinct_from_data():
    out = error_output(ErrorCode.INPUT_SHAPE)
    assert error_code_of(out) == ErrorCode.INPUT_SHAPE
    assert error_code_of(encode_tensors([Tensor("error", (1,), (3,), 2)])) is None
    assert error_code_of(encode_tensors([Tensor("probabilities", (1,), (3,), 0)])) is None
    assert error_code_of(b"junk") is None


def test_commitment__binds_request_operator_digest_and_salt():
    digest = output_digest(b"out")
    base = commitment(1, "0x" + "11" * 20, digest, b"\x01" * 32)
    assert base != commitment(2, "0x" + "11" * 20, digest, b"\x01" * 32)
    assert base != commitment(1, "0x" + "22" * 20, digest, b"\x01" * 32)
    assert base != commitment(1, "0x" + "11" * 20, output_digest(b"other"), b"\x01" * 32)
    assert base != commitment(1, "0x" + "11" * 20, digest, b"\x02" * 32)


def test_tensor_spec__round_trip_and_malformed():
    spec = TensorSpec((IOSpec("x", DType.FLOAT, (0, 30)),), (IOSpec("label", DType.INT64, (0,)),))
    assert TensorSpec.decode(spec.encode()) == spec
    with pytest.raises(CodecError, match="tensor spec"):
        TensorSpec.decode(b"\x00\x01")


tensors_strategy = st.lists(
    st.builds(
        lambda name, shape, decimals, seed: Tensor(
            name,
            shape,
            tuple((seed * (i + 7) ** 5) % 2**255 - 2**254 for i in range(int(np.prod(shape)))),
            decimals,
        ),
        st.text(max_size=40),
        st.lists(st.integers(0, 4), min_size=0, max_size=3).map(tuple),
        st.integers(0, 255),
        st.integers(-(2**64), 2**64),
    ),
    max_size=4,
)


def reference_decode(data: bytes):
    """eth_abi's strict decoder: the rule decode_tensors must follow."""
    try:
        (raw,) = abi_decode([TENSORS_ABI], data, strict=True)
        return [Tensor(n, tuple(s), tuple(d), dec) for n, s, d, dec in raw]
    except Exception:
        return None


@given(tensors_strategy)
def test_encode__byte_identical_to_eth_abi_and_round_trips(tensors):
    encoded = encode_tensors(tensors)
    assert encoded == abi_encode(
        [TENSORS_ABI], [[(t.name, list(t.shape), list(t.data), t.decimals) for t in tensors]]
    )
    assert decode_tensors(encoded) == tensors


@given(tensors_strategy, st.data())
def test_decode__mutated_bytes__accepts_and_rejects_exactly_like_eth_abi(tensors, data):
    encoded = bytearray(encode_tensors(tensors))
    if encoded:
        for _ in range(data.draw(st.integers(1, 3))):
            # Any byte of the last words (data values, where large and negative numbers live), but only
            # the two low bytes of the head words (offsets and lengths): a mutated length of 2**200
            # sends eth_abi's reference decoder, not ours, into a loop of that many elements.
            word = data.draw(st.integers(0, len(encoded) // 32 - 1))
            low = 0 if word >= len(encoded) // 32 - 2 else 30
            at = 32 * word + data.draw(st.integers(low, 31))
            encoded[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(encoded)))
    mutated = bytes(encoded[:cut] if data.draw(st.booleans()) else encoded)
    expected = reference_decode(mutated)
    if expected is None:
        with pytest.raises(CodecError):
            decode_tensors(mutated)
    else:
        assert decode_tensors(mutated) == expected
