"""The agreement rule's Python side: parsing what owners type, what calibrate recommends, and the
comparison itself (the contract's twin is checked against it in tests/contracts/test_tolerance.py)."""

import pytest
from verinfer.models.agreement import EXACT, Tolerance, ToleranceError
from verinfer.models.codec import ErrorCode, Tensor, encode_tensors, error_output

INT256_MIN, INT256_MAX = -(2**255), 2**255 - 1


def out(*values: int, name: str = "y", decimals: int = 6) -> bytes:
    return encode_tensors([Tensor(name, (len(values),), values, decimals)])


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("exact", EXACT),
        ("0", EXACT),
        ("3", Tolerance(3, 0)),
        ("1+100ppm", Tolerance(1, 100)),
        (" 2 + 5ppm ", Tolerance(2, 5)),
    ],
)
def test_parse__forms__and_back_to_text(text: str, rule: Tolerance) -> None:
    assert Tolerance.parse(text) == rule
    assert Tolerance.parse(str(rule)) == rule


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("1%", "tolerance must be exact, UNITS or UNITS+PPMppm"),
        ("-1", "tolerance must be exact"),
        ("1+2000000ppm", "tolerance ppm must be 0..1000000"),
        (str(2**32), "tolerance units must be 0.."),
    ],
)
def test_parse__outside_what_the_registry_takes__one_line_error(text: str, says: str) -> None:
    with pytest.raises(ToleranceError, match=says.replace("+", r"\+").replace(".", r"\.")):
        Tolerance.parse(text)


def test_covering__relative_fraction_rounds_up_to_whole_ppm() -> None:
    assert Tolerance.covering(1, 1e-4) == Tolerance(1, 100)
    assert Tolerance.covering(1, 2.5e-7) == Tolerance(1, 1)  # never narrower than measured
    assert Tolerance.covering(1, 0.0) == Tolerance(1, 0)
    assert Tolerance(2, 100).covers(Tolerance(1, 100)) and not Tolerance(2, 50).covers(Tolerance(1, 100))


def test_close__absolute_plus_relative_of_the_larger_rounded_down() -> None:
    rule = Tolerance(2, 100)
    assert rule.close(750_000, 750_077) and not rule.close(750_000, 750_078)  # 2 + floor(75.0077)
    assert rule.close(-750_000, -750_077) and not rule.close(-1, 2)
    assert Tolerance(0, 10**6).close(INT256_MIN, 0) and not Tolerance(0, 10**6 - 1).close(INT256_MIN, 0)
    assert not rule.close(INT256_MIN, INT256_MAX)


def test_outputs_agree__structure_errors_and_malformed_bytes() -> None:
    rule = Tolerance(5, 0)
    assert rule.outputs_agree(out(10, 20), out(14, 16))
    assert not rule.outputs_agree(out(10, 20), out(16, 20))
    assert not rule.outputs_agree(out(10, 20), out(10, 20, name="z"))
    assert not rule.outputs_agree(out(10, 20), out(10, 20, decimals=5))
    assert not rule.outputs_agree(out(10, 20), out(10, 20, 30))
    runtime, timeout = error_output(ErrorCode.RUNTIME), error_output(ErrorCode.TIMEOUT)
    assert not Tolerance(1_000, 0).outputs_agree(runtime, timeout)
    assert rule.outputs_agree(runtime, runtime)
    assert not rule.outputs_agree(b"\x00" * 31 + b"\x20" + b"\xff" * 64, out(10, 20))
    assert not EXACT.outputs_agree(out(10, 20), out(10, 21)) and EXACT.outputs_agree(out(1), out(1))
