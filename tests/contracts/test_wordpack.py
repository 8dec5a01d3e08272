"""WordPack: the hub's packing of stored outputs is lossless for any bytes, and shrinks ABI words."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import sample_output


@pytest.fixture(scope="module")
def harness(project, deployer):
    return project.WordPackHarness.deploy(sender=deployer)


def word(value: int) -> bytes:
    return value.to_bytes(32, "big", signed=True)


abi_like = st.lists(
    st.one_of(
        st.just(word(0)),
        st.integers(0, 2**64).map(word),
        st.integers(-(2**64), -1).map(word),
        st.integers(-(2**255), 2**255 - 1).map(word),
        st.binary(min_size=32, max_size=32),
        st.just(b"\xff" * 32),
    ),
    max_size=200,
).map(b"".join)


@settings(max_examples=60)
@given(st.one_of(abi_like, st.binary(max_size=1200)), st.integers(0, 31))
def test_round_trip__any_bytes_any_length(harness, data, cut):
    data = data[: max(len(data) - cut, 0)]
    assert bytes(harness.roundTrip(data)) == data
    assert len(harness.pack(data)) <= 4 + 33 * ((len(data) + 31) // 32)


def test_pack__tensor_output__a_sixth_of_the_size_or_less(harness):
    output = sample_output(0.3125)
    packed = bytes(harness.pack(output))
    assert len(packed) * 6 <= len(output)
    assert packed[:4] == len(output).to_bytes(4, "big")


def test_pack__zero_runs_and_negative_words(harness):
    data = word(0) * 300 + word(-2) + word(-1) + word(5)
    packed = bytes(harness.pack(data))
    # 300 zero words in three runs (128 + 128 + 44), then -2 as 0xa0+1 and one byte, -1 as 0xa0, then 5.
    assert packed[4:] == bytes([127, 127, 43, 0xA1, 0xFE, 0xA0, 0x80, 0x05])
    assert bytes(harness.roundTrip(data)) == data
