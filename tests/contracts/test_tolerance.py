"""Tolerance agreement in consensus mode: a version's rule decides who agrees when revealed digests differ.
Members within tolerance of the accepted output are paid and never slashed; a liar outside it is; the
accepted output is one no minority can pick; malformed bytes and starved gas change nothing."""

import ape
import pytest
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st
from verinfer.chain.contracts import Status
from verinfer.models.agreement import Tolerance
from verinfer.models.codec import ErrorCode, Tensor, encode_tensors, error_output, output_digest
from web3.exceptions import ContractLogicError, Web3RPCError

from tests.conftest import committee_of, request_id_of

RULE = Tolerance(2, 100)  # 2 units + 100 ppm: 77 units on 750000, 27 on 250000
DISSENT = 3


def out(a: int = 750_000, b: int = 250_000) -> bytes:
    return encode_tensors([Tensor("probabilities", (1, 2), (a, b), 6)])


@pytest.fixture(scope="module", autouse=True)
def versions(model, make_model, join, accounts, consensus, act, by_address, make_request):
    """Tolerance versions of the session's model (its operators and two more, so k = 7 can be drawn),
    made before this module's first test so the per-test chain snapshots never undo them."""
    model_id, exact = model
    _, tolerant = make_model("risk", tolerance=(RULE.units, RULE.ppm))
    _, wide = make_model("risk", tolerance=(1_000, 0))
    join([accounts[10], accounts[11]], model_id)
    return {"exact": (model_id, exact), "tolerant": (model_id, tolerant), "wide": (model_id, wide)}


@pytest.fixture
def play(hub, consensus, staking, act, make_request, by_address, versions):
    """`play(version, outputs)`: a request with k = len(outputs) where committee member i reveals
    outputs[i]; returns (request id, committee, stakes before, credits before, settle receipt)."""

    def _play(version: str, outputs: list[bytes], digest_only: bool = False):
        ref = versions[version]
        rid = request_id_of(make_request(k=len(outputs), model_ref=ref, digest_only=digest_only))
        committee = committee_of(hub, by_address, rid)
        stakes = [int(staking.operatorInfo(op).stake) for op in committee]
        credits = [hub.claimable(op) for op in committee]
        for op, output in zip(committee, outputs, strict=True):
            act.commit(op, rid, output)
        receipt = None
        for op, output in zip(committee, outputs, strict=True):
            receipt = act.reveal(op, rid, output)
        return rid, committee, stakes, credits, receipt

    return _play


def fee(hub) -> int:
    return hub.params().operatorFee


def slashed(staking, committee, stakes) -> list[bool]:
    return [int(staking.operatorInfo(op).stake) < s for op, s in zip(committee, stakes, strict=True)]


def paid(hub, committee, credits) -> list[bool]:
    return [hub.claimable(op) - c == fee(hub) for op, c in zip(committee, credits, strict=True)]


def test_registry__tolerance_stored_in_terms_and_event(registry, versions, model_owner, make_model):
    model_id, version = versions["tolerant"]
    assert registry.toleranceOf(model_id, version) == (RULE.units, RULE.ppm)
    terms = registry.terms(model_id, version)
    assert (terms.toleranceUnits, terms.tolerancePpm) == (RULE.units, RULE.ppm)
    assert registry.toleranceOf(*versions["exact"]) == (0, 0)
    v = registry.getVersion(model_id, version)
    assert (v.toleranceUnits, v.tolerancePpm) == (RULE.units, RULE.ppm)


@pytest.mark.parametrize(
    ("modes", "units", "ppm"),
    [(0x05, 1, 0), (0x0D, 0, 5), (0x01, 0, 1_000_001)],  # optimistic cannot compare; ppm over 100 %
)
def test_registry__tolerance_outside_what_settles__refused(registry, make_model, modes, units, ppm):
    with ape.reverts(registry.InvalidTolerance):
        make_model("risk", modes=modes, tolerance=(units, ppm))


def test_hub__tolerance_version__mode_keeps_outputs_even_digest_only(hub, consensus, make_request, versions):
    rid = request_id_of(make_request(model_ref=versions["tolerant"], digest_only=True))
    assert not consensus.getRound(rid).digestOnly  # every revealed output is kept for the comparison
    assert hub.getRequest(rid).digestOnly  # what the requester gets back stays digest-only
    assert hub.toleranceOf(rid) == (RULE.units, RULE.ppm)
    exact = request_id_of(make_request(model_ref=versions["exact"], digest_only=True))
    assert consensus.getRound(exact).digestOnly and hub.toleranceOf(exact) == (0, 0)


def test_minority_within_tolerance__all_paid__nobody_slashed(hub, consensus, staking, play):
    """An honest member on another CPU class: its bytes differ, its values are within the rule."""
    outputs = [out(), out(), out(750_030, 249_990)]
    rid, committee, stakes, credits, receipt = play("tolerant", outputs)
    assert hub.getRequest(rid).status == Status.FINALIZED
    assert receipt.decode_logs(hub.RequestSettled)[0].outputDigest == output_digest(outputs[0])
    assert slashed(staking, committee, stakes) == [False] * 3
    assert paid(hub, committee, credits) == [True] * 3
    result = hub.getResult(rid)
    assert bytes(result.output) == outputs[0]
    assert sorted(result.agreeing) == sorted(op.address for op in committee)


def test_exact_version__same_disagreement__detected_and_minority_slashed(hub, staking, play):
    """The same bytes under an exact version: the CPU-class minority is a dissenter (why classes exist)."""
    rid, committee, stakes, credits, receipt = play("exact", [out(), out(), out(750_030, 249_990)])
    assert hub.getRequest(rid).status == Status.FINALIZED
    assert slashed(staking, committee, stakes) == [False, False, True]
    assert paid(hub, committee, credits) == [True, True, False]
    assert [e.fault for e in receipt.decode_logs(hub.MemberPenalized)] == [DISSENT]


def test_liar_outside_tolerance__slashed__honest_minority_within__paid(hub, staking, play):
    outputs = [out(), out(750_050, 250_000), out(), out(760_000, 240_000), out(749_990, 250_010)]
    rid, committee, stakes, credits, _ = play("tolerant", outputs)
    assert hub.getRequest(rid).status == Status.FINALIZED
    assert hub.getResult(rid).outputDigest == output_digest(outputs[0])  # the exact quorum's output
    assert slashed(staking, committee, stakes) == [False, False, False, True, False]
    assert paid(hub, committee, credits) == [True, True, True, False, True]


def test_liar_within_tolerance__not_slashed__honest_by_the_versions_definition(hub, staking, play):
    """A lie of 70 units on 750000 is inside 2 + 100 ppm (77 units): the version accepted that spread."""
    rid, committee, stakes, credits, _ = play("tolerant", [out(), out(750_070, 250_000), out()])
    assert slashed(staking, committee, stakes) == [False] * 3
    assert paid(hub, committee, credits) == [True] * 3
    assert hub.getResult(rid).outputDigest == output_digest(out())


def test_no_exact_quorum__output_most_members_are_within_tolerance_of(hub, staking, play):
    """A chain a ~ b ~ c with a and c too far apart: b is within tolerance of everyone, so b is accepted
    and nobody is slashed, whichever member holds it."""
    a, b, c = out(750_000), out(750_060), out(750_120)
    for order in ([a, b, c], [c, a, b]):
        rid, committee, stakes, credits, _ = play("tolerant", order)
        assert hub.getRequest(rid).status == Status.FINALIZED
        assert hub.getResult(rid).outputDigest == output_digest(b)
        assert slashed(staking, committee, stakes) == [False] * 3
        assert paid(hub, committee, credits) == [True] * 3


def test_no_exact_quorum__ties__more_exact_support_then_lowest_member(hub, staking, play):
    # Everyone within tolerance of everyone, all different: the lowest member index wins the tie.
    outputs = [out(750_040), out(750_000), out(750_020)]
    rid, *_ = play("tolerant", outputs)
    assert hub.getResult(rid).outputDigest == output_digest(outputs[0])
    # Two candidates within reach of three members each: the one two members revealed exactly wins, though
    # a lower member holds the other. The two far-off members are outside both and slashed.
    x, y = out(750_000), out(750_040)
    rid, committee, stakes, credits, _ = play("tolerant", [y, x, x, out(751_000), out(752_000)])
    assert hub.getResult(rid).outputDigest == output_digest(x)
    assert slashed(staking, committee, stakes) == [False, False, False, True, True]
    assert paid(hub, committee, credits) == [True, True, True, False, False]


def test_colluding_minority__cannot_get_an_honest_member_slashed(hub, staking, play):
    """Rule 1000 units, k = 7. Four honest members on two CPU classes (750000 three times, 750500), pairwise
    within the rule; three colluders, who can compute both classes' outputs, place 748000 twice and
    749000 so that 749000 is within the rule of six members. The output three members revealed exactly
    wins; the honest 750500 member is within it (paid); the colluders at 748000 are within the rule of a
    colluder in the group, so they are spared, not paid (found by a review: scoring by reach alone
    accepted 749000 and slashed the honest 750500 member)."""
    h, h2, low, centre = out(750_000), out(750_500), out(748_000), out(749_000)
    rid, committee, stakes, credits, _ = play("wide", [h, h, h, h2, low, low, centre])
    assert hub.getResult(rid).outputDigest == output_digest(h)
    assert slashed(staking, committee, stakes) == [False] * 7
    assert paid(hub, committee, credits) == [True, True, True, True, False, False, True]


def test_colluders_on_the_lowest_members__honest_member_spared_not_slashed(hub, staking, play):
    """k = 5, rule 1000, every output different: honest 750000, 750500, 751000 (three classes, pairwise
    within the rule) and colluders 748500, 749500 on members 0 and 1. Three candidates reach four members
    and tie; the lowest member's, a colluder's 749500, is accepted. The honest 751000 member is outside it
    but within the rule of the honest 750000 in the group: spared, never slashed."""
    outputs = [out(748_500), out(749_500), out(750_000), out(750_500), out(751_000)]
    rid, committee, stakes, credits, _ = play("wide", outputs)
    assert hub.getResult(rid).outputDigest == output_digest(outputs[1])
    assert slashed(staking, committee, stakes) == [False] * 5
    assert paid(hub, committee, credits) == [True, True, True, True, False]


def bomb(heads: int, n: int) -> bytes:
    """`heads` tensor offsets all pointing at one tensor of `n` values: Solidity's decoder accepts it and
    copies the tensor once per head (quadratic memory from linear bytes). Found by a review."""
    word = lambda v: v.to_bytes(32, "big")  # noqa: E731
    name = b"probabilities"
    tensor = (
        word(128) + word(192) + word(288) + word(6)
        + word(len(name)) + name.ljust(32, b"\0")
        + word(2) + word(1) + word(2)
        + word(n) + b"".join(word(1) for _ in range(n))
    )  # fmt: skip
    return word(32) + word(heads) + b"".join(word(heads * 32) for _ in range(heads)) + tensor


def test_non_canonical_bytes__refused_in_linear_gas__liar_slashed(hub, consensus, staking, play):
    """A bomb that would take more gas to decode than a block holds agrees with nothing, cheaply, so the
    round settles and its revealer is slashed; bytes with junk after the canonical encoding are never
    accepted either (their digest is no output a relayer computes)."""
    big = bomb(256, 256)
    call = {"to": consensus.address, "data": consensus.outputsWithin.encode_input(out(), big, 5, 0)}
    assert ape.chain.provider.web3.eth.estimate_gas(call) < 500_000  # mostly calldata; decoding it: 14.1M
    assert not consensus.outputsWithin(big, big, 0, 0)
    rid, committee, stakes, _, receipt = play("tolerant", [out(), big, out()])
    assert hub.getRequest(rid).status == Status.FINALIZED and receipt.gas_used < 1_500_000
    assert slashed(staking, committee, stakes) == [False, True, False]
    junk = out(750_060) + b"\xee" * 64
    rid, committee, stakes, _, _ = play("tolerant", [out(750_000), junk, out(750_120)])
    assert hub.getRequest(rid).status == Status.DISPUTED  # 750000 and 750120 are 120 apart, over 77
    assert not consensus.outputsWithin(junk, out(750_060), 1_000, 0)


def test_shape_product_differs_from_data_length__agrees_with_nothing(consensus):
    """Canonical bytes of a tensor whose shape says 2 values while its data holds 3."""
    x = encode_tensors([Tensor("y", (3,), (1, 2, 3), 6)])
    word = lambda v: v.to_bytes(32, "big")  # noqa: E731
    forged = x.replace(word(1) + word(3) + word(3), word(1) + word(2) + word(3), 1)
    assert forged != x and len(forged) == len(x)
    assert not consensus.outputsWithin(x, forged, 1_000, 0)
    assert not Tolerance(1_000, 0).outputs_agree(x, forged)


def test_no_output_within_tolerance_of_a_majority__disputed__nobody_slashed(hub, staking, play):
    rid, committee, stakes, credits, _ = play("tolerant", [out(), out(751_000), out(752_000)])
    assert hub.getRequest(rid).status == Status.DISPUTED
    assert slashed(staking, committee, stakes) == [False] * 3
    assert paid(hub, committee, credits) == [False] * 3


def test_malformed_bytes__agree_with_nothing__settlement_not_blocked(hub, staking, play):
    garbage = b"\x00" * 31 + b"\x20" + b"\xff" * 64  # an offset, then a length no decoder accepts
    rid, committee, stakes, credits, _ = play("tolerant", [out(), garbage, out(750_030)])
    assert hub.getRequest(rid).status == Status.FINALIZED
    assert slashed(staking, committee, stakes) == [False, True, False]
    assert paid(hub, committee, credits) == [True, False, True]


def test_error_outputs__agree_only_with_themselves(hub, staking, play):
    """Under a 1000-unit tolerance, RUNTIME (7) and TIMEOUT (6) are still different answers."""
    runtime, timeout = error_output(ErrorCode.RUNTIME), error_output(ErrorCode.TIMEOUT)
    rid, committee, stakes, _, _ = play("wide", [runtime, timeout, runtime])
    assert hub.getRequest(rid).status == Status.FAILED
    assert slashed(staking, committee, stakes) == [False, True, False]
    rid, committee, stakes, _, _ = play("wide", [out(), runtime, out(750_900)])
    assert hub.getRequest(rid).status == Status.FINALIZED
    assert slashed(staking, committee, stakes) == [False, True, False]


def test_digest_only_request__tolerance_judged__requester_gets_the_digest(hub, staking, play):
    outputs = [out(750_030), out(), out()]
    rid, committee, stakes, _, _ = play("tolerant", outputs, digest_only=True)
    result = hub.getResult(rid)
    assert result.status == Status.FINALIZED and result.outputDigest == output_digest(out())
    assert bytes(result.output) == b"" and len(result.agreeing) == 3
    assert slashed(staking, committee, stakes) == [False] * 3


def test_starved_comparison__reverts__never_taken_as_disagreement(deployer):
    """Whatever gas a settlement gets, a comparison that ran out of it is never taken as a disagreement
    (which would slash an honest member): the call reverts ComparisonOutOfGas or answers correctly."""
    harness = deployer.deploy(ape.project.ComparisonHarness)
    a = encode_tensors([Tensor("y", (300,), tuple(range(300)), 6)])
    b = encode_tensors([Tensor("y", (300,), tuple(v + 1 for v in range(300)), 6)])
    assert harness.within(a, b, 1, 0) and not harness.within(a, b, 0, 0)
    w3 = ape.chain.provider.web3
    data = harness.within.encode_input(a, b, 1, 0)
    full = w3.eth.estimate_gas({"to": harness.address, "data": data})
    starved = keccak(b"ComparisonOutOfGas()")[:4]
    seen = set()
    for gas in range(full // 8, full + 10_000, max(full // 60, 500)):
        try:
            answer = w3.eth.call({"to": harness.address, "data": data, "gas": gas})
        except ContractLogicError as e:
            seen.add("comparison out of gas" if bytes.fromhex(str(e.data)[2:10]) == starved else str(e))
        except Web3RPCError as e:  # the whole call out of gas, before or after the comparison
            seen.add("out of gas" if "gas" in str(e).lower() else str(e))
        else:
            assert answer[-1] == 1, f"with {gas} gas an agreeing pair was reported as disagreeing"
            seen.add("answered")
    assert {"comparison out of gas", "answered"} <= seen, seen


TENSOR_VALUES = st.integers(min_value=-(2**255), max_value=2**255 - 1)
SMALL = st.integers(min_value=-(10**12), max_value=10**12)


@settings(max_examples=60, deadline=None)
@given(
    a=st.lists(st.one_of(SMALL, TENSOR_VALUES), min_size=1, max_size=6),
    deltas=st.lists(st.integers(min_value=-(10**6), max_value=10**6), min_size=6, max_size=6),
    units=st.integers(min_value=0, max_value=2**32 - 1),
    ppm=st.integers(min_value=0, max_value=10**6),
)
def test_outputs_within__contract_and_python_twin_agree(consensus, a, deltas, units, ppm):
    b = [max(-(2**255), min(2**255 - 1, x + d)) for x, d in zip(a, deltas, strict=False)]
    rule = Tolerance(units, ppm)
    x = [Tensor("y", (len(a),), tuple(a), 6)]
    y = [Tensor("y", (len(b),), tuple(b), 6)]
    onchain = consensus.outputsWithin(encode_tensors(x), encode_tensors(y), units, ppm)
    assert onchain == rule.tensors_within(x, y)
    renamed = [Tensor("z", (len(b),), tuple(b), 6)]
    assert not consensus.outputsWithin(encode_tensors(x), encode_tensors(renamed), units, ppm)
    assert not rule.tensors_within(x, renamed)
