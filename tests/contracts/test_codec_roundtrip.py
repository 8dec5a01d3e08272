"""The tensor codec across languages: Python encodes, Solidity decodes and re-encodes, Python decodes."""

import pytest
from eth_utils import keccak
from hypothesis import given
from hypothesis import strategies as st
from verinfer.models.codec import (
    INT256_MAX,
    INT256_MIN,
    Tensor,
    decode_tensors,
    encode_tensors,
    error_code_of,
    error_output,
)


@pytest.fixture(scope="module")
def harness(project, deployer):
    return deployer.deploy(project.CodecHarness)


@st.composite
def tensors(draw):
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=0, max_size=3)))
    size = 1
    for d in shape:
        size *= d
    data = tuple(draw(st.lists(st.integers(INT256_MIN, INT256_MAX), min_size=size, max_size=size)))
    return Tensor(draw(st.text(max_size=12)), shape, data, draw(st.integers(0, 255)))


@given(st.lists(tensors(), max_size=3))
def test_codec__python_solidity_python_round_trip(harness, values):
    encoded = encode_tensors(values)
    assert bytes(harness.roundTrip(encoded)) == encoded
    decoded = harness.decode(encoded)
    assert [(t.name, tuple(t.shape), tuple(t.data), t.decimals) for t in decoded] == [
        (t.name, t.shape, t.data, t.decimals) for t in values
    ]
    assert decode_tensors(bytes(harness.roundTrip(encoded))) == values


@given(st.integers(1, 255))
def test_error_output__same_bytes_and_code_in_both(harness, code):
    assert bytes(harness.errorOutput(code)) == error_output(code)
    assert harness.errorCodeOf(error_output(code)) == code == error_code_of(error_output(code))


@given(st.lists(tensors(), min_size=1, max_size=2))
def test_error_code__ordinary_outputs_are_not_errors(harness, values):
    encoded = encode_tensors(values)
    expected = error_code_of(encoded) or 0
    assert harness.errorCodeOf(encoded) == expected


def test_value_at__finds_by_name_and_index(harness):
    encoded = encode_tensors([Tensor("a", (2,), (1, 2), 0), Tensor("probabilities", (1, 2), (700, 300), 3)])
    assert harness.valueAt(encoded, "probabilities", 1) == 300
    # Library errors are not in the harness ABI: match their selectors.
    with pytest.raises(Exception, match=selector("TensorNotFound(string)")):
        harness.valueAt(encoded, "missing", 0)
    with pytest.raises(Exception, match=selector("TensorIndexOutOfRange(uint256,uint256)")):
        harness.valueAt(encoded, "a", 2)


def selector(signature):
    return "0x" + keccak(text=signature)[:4].hex()
