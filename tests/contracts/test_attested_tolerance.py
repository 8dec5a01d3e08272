"""Tolerance agreement in attested mode: a signature on another digest is judged by its output when it is
shown (within the version's rule: agreement, paid; outside: dissent, slashed) and counts for nothing
when it is not (the member's fee is held and it can show its output later)."""

from collections.abc import Callable
from typing import Any

import ape
import pytest
from verinfer.chain.attestations import Domain, sign
from verinfer.chain.contracts import Status
from verinfer.models.codec import Tensor, encode_tensors, output_digest

from tests.conftest import TEST_PARAMS, request_id_of, seed_of
from tests.contracts.test_attested_mode import KEYS

ATTESTED = 8
OP_FEE = TEST_PARAMS["operator_fee"]
LATE_WINDOW = TEST_PARAMS["attested_late_window"]
WINDOW = TEST_PARAMS["attested_window"]


def out(a: int = 750_000, b: int = 250_000) -> bytes:
    return encode_tensors([Tensor("probabilities", (1, 2), (a, b), 6)])


A, NEAR, FAR = out(), out(750_050, 250_010), out(760_000, 240_000)  # rule 2 + 100 ppm: 77 / 27 units


@pytest.fixture(scope="module", autouse=True)
def versions(model, make_model, attested, by_address, make_request):
    """Tolerance and exact versions of the session's model allowing attested mode (its five operators),
    made before this module's first test so the per-test snapshots never undo them."""
    model_id, _ = model
    _, tolerant = make_model("risk", modes=1 | ATTESTED, tolerance=(2, 100))
    _, exact = make_model("risk", modes=1 | ATTESTED)
    return {"tolerant": (model_id, tolerant), "exact": (model_id, exact)}


@pytest.fixture
def open_round(make_request, versions, attested, hub, staking, by_address, chain) -> Callable[..., tuple]:
    """`open_round(version)`: an attested k = 3 request; returns (request id, its committee)."""

    def _open(version: str = "tolerant") -> tuple[int, list[Any]]:
        rid = request_id_of(make_request(model_ref=versions[version], mode=ATTESTED))
        rnd = attested.getRound(rid)
        seed = seed_of(rid, bytes(chain.blocks[rnd.seedBlock].hash))
        drawn = staking.drawCommittee(hub.poolOf(rid), rnd.k, seed, rnd.seedBlock)
        return rid, [by_address[a] for a in drawn]

    return _open


@pytest.fixture
def signed(attested, chain) -> Callable[[Any, int, bytes], tuple[bytes, bytes]]:
    domain = Domain(chain.chain_id, attested.address)

    def _signed(member: Any, rid: int, output: bytes) -> tuple[bytes, bytes]:
        att = sign(KEYS[member.address], domain, rid, output_digest(output))
        return att.output_digest, att.signature

    return _signed


def stakes(staking, members) -> list[int]:
    return [int(staking.operatorInfo(m).stake) for m in members]


def test_other_class_member_shown_within__paid__nobody_slashed(hub, attested, staking, open_round, signed):
    rid, (a, b, c) = open_round()
    before, credits = stakes(staking, (a, b, c)), [hub.claimable(m) for m in (a, b, c)]
    sigs = [signed(a, rid, A), signed(b, rid, A), signed(c, rid, NEAR)]
    receipt = attested.settleWithOutputs(rid, A, sigs, [NEAR], sender=a)
    event = receipt.decode_logs(attested.Attested)[0]
    assert (event.agreeMask, event.dissentMask) == (0b111, 0)
    assert hub.getRequest(rid).status == Status.FINALIZED
    assert stakes(staking, (a, b, c)) == before
    assert [hub.claimable(m) - x for m, x in zip((a, b, c), credits, strict=True)] == [OP_FEE] * 3
    assert len(hub.getResult(rid).agreeing) == 3


def test_other_class_member_left_out__never_slashed__shows_its_output_late__paid(
    hub, attested, staking, open_round, signed, challenger
):
    """A plain `settle` with the other-class signature but not its bytes: it counts for nothing, not as
    dissent; the member (or anyone) shows its output in the late window and it is paid."""
    rid, (a, b, c) = open_round()
    before = stakes(staking, (a, b, c))
    near = signed(c, rid, NEAR)
    receipt = attested.settle(rid, A, [signed(a, rid, A), signed(b, rid, A), near], sender=a)
    assert receipt.decode_logs(attested.Attested)[0].dissentMask == 0
    assert hub.heldFees(rid) == 1
    with ape.reverts(attested.OutputNeeded):  # without its bytes nobody can tell it from a lie
        attested.reportDissent(rid, near, sender=challenger)
    with ape.reverts(attested.NotDissent):
        attested.reportDissentWithOutput(rid, near, NEAR, [], sender=challenger)
    with ape.reverts(attested.OutputMismatch):
        attested.attestLateWithOutput(rid, near, A, sender=challenger)
    credit = hub.claimable(c)
    receipt = attested.attestLateWithOutput(rid, near, NEAR, sender=challenger)
    assert receipt.decode_logs(attested.LateAttestation)[0].member == c.address
    assert hub.claimable(c) - credit == OP_FEE and hub.heldFees(rid) == 0
    assert stakes(staking, (a, b, c)) == before
    # Late agreement does not grow the list a later dissent report must show (it could be grown to make
    # reports cost a block, or to front-run them: found by a review).
    assert list(attested.agreedOutputs(rid)) == []
    with ape.reverts(attested.AlreadyCounted):
        attested.attestLateWithOutput(rid, near, NEAR, sender=challenger)


def test_liar_outside_tolerance__slashed_in_the_settlement_or_shown_later(
    hub, attested, staking, open_round, signed, challenger
):
    rid, (a, b, liar) = open_round()
    stake = int(staking.operatorInfo(liar).stake)
    lie = signed(liar, rid, FAR)
    receipt = attested.settleWithOutputs(rid, A, [signed(a, rid, A), signed(b, rid, A), lie], [FAR], sender=a)
    assert receipt.decode_logs(attested.Attested)[0].dissentMask == 0b100
    assert int(staking.operatorInfo(liar).stake) < stake

    rid, (a, b, liar) = open_round()
    lie = signed(liar, rid, FAR)
    attested.settle(rid, A, [signed(a, rid, A), signed(b, rid, A)], sender=a)  # the lie left out
    with ape.reverts(attested.NotWithinTolerance):
        attested.attestLateWithOutput(rid, lie, FAR, sender=liar)
    stake = int(staking.operatorInfo(liar).stake)
    receipt = attested.reportDissentWithOutput(rid, lie, FAR, [], sender=challenger)
    assert receipt.decode_logs(attested.DissentProven)[0].member == liar.address
    assert int(staking.operatorInfo(liar).stake) < stake


def test_no_exact_quorum__submitted_output_within_tolerance_of_a_majority__settles(
    hub, attested, staking, open_round, signed
):
    rid, (a, b, c) = open_round()
    before = stakes(staking, (a, b, c))
    sigs = [signed(a, rid, A), signed(b, rid, NEAR), signed(c, rid, FAR)]
    with ape.reverts(attested.NoQuorum):  # A alone: the others' outputs not shown
        attested.settle(rid, A, sigs, sender=a)
    with ape.reverts(attested.NoQuorum):  # FAR is within the rule of nobody else
        attested.settleWithOutputs(rid, FAR, sigs, [A, NEAR], sender=c)
    receipt = attested.settleWithOutputs(rid, A, sigs, [NEAR, FAR], sender=a)
    event = receipt.decode_logs(attested.Attested)[0]
    assert (event.agreeMask, event.dissentMask) == (0b011, 0b100)
    assert hub.getResult(rid).outputDigest == output_digest(A)
    after = stakes(staking, (a, b, c))
    assert after[:2] == before[:2] and after[2] < before[2]


def test_malformed_output_shown__dissent(attested, staking, open_round, signed):
    rid, (a, b, liar) = open_round()
    garbage = b"\x00" * 31 + b"\x20" + b"\xff" * 64
    stake = int(staking.operatorInfo(liar).stake)
    sigs = [signed(a, rid, A), signed(b, rid, NEAR), signed(liar, rid, garbage)]
    receipt = attested.settleWithOutputs(rid, A, sigs, [garbage, NEAR], sender=a)
    assert receipt.decode_logs(attested.Attested)[0].dissentMask == 0b100
    assert int(staking.operatorInfo(liar).stake) < stake


def test_exact_version__shown_outputs_ignored__other_digest_is_dissent(attested, staking, open_round, signed):
    rid, (a, b, c) = open_round("exact")
    stake = int(staking.operatorInfo(c).stake)
    sigs = [signed(a, rid, A), signed(b, rid, A), signed(c, rid, NEAR)]
    receipt = attested.settleWithOutputs(rid, A, sigs, [NEAR], sender=a)
    assert receipt.decode_logs(attested.Attested)[0].dissentMask == 0b100
    assert int(staking.operatorInfo(c).stake) < stake


def test_minority_submitter_picks_the_output__honest_member_outside_it_spared(
    hub, attested, staking, open_round, signed, challenger
):
    """A colluding submitter settles with its own output X (750070): the honest A (750000) is within the
    rule of it, the honest B (749930) is not, but B is within the rule of A, an agreeing output. B is
    spared in the settlement and cannot be slashed later without being outside A's rule too."""
    x, a_out, b_out = out(750_070), out(750_000), out(749_930)
    rid, (colluder, a, b) = open_round()
    before = stakes(staking, (colluder, a, b))
    sigs = [signed(colluder, rid, x), signed(a, rid, a_out), signed(b, rid, b_out)]
    receipt = attested.settleWithOutputs(rid, x, sigs, [a_out, b_out], sender=colluder)
    event = receipt.decode_logs(attested.Attested)[0]
    assert (event.agreeMask, event.dissentMask) == (0b011, 0)
    assert list(attested.agreedOutputs(rid)) == [output_digest(a_out)]
    b_sig = signed(b, rid, b_out)
    with ape.reverts(attested.AgreedOutputsNeeded):
        attested.reportDissentWithOutput(rid, b_sig, b_out, [], sender=challenger)
    with ape.reverts(attested.NotDissent):
        attested.reportDissentWithOutput(rid, b_sig, b_out, [a_out], sender=challenger)
    with ape.reverts(attested.NotWithinTolerance):  # spared, not paid: outside the accepted output's rule
        attested.attestLateWithOutput(rid, b_sig, b_out, sender=b)
    assert stakes(staking, (colluder, a, b)) == before


def test_output_reverts__before_settlement__wrong_agreed_bytes__exact_version(
    attested, open_round, signed, challenger
):
    """The reverts of the output-carrying calls no other test reaches."""
    x, a_out, b_out = out(750_070), out(750_000), out(749_930)
    rid, (colluder, a, b) = open_round()
    b_sig = signed(b, rid, b_out)
    with ape.reverts(attested.NothingAccepted):  # nothing settled yet
        attested.attestLateWithOutput(rid, b_sig, b_out, sender=b)
    sigs = [signed(colluder, rid, x), signed(a, rid, a_out), b_sig]
    attested.settleWithOutputs(rid, x, sigs, [a_out, b_out], sender=colluder)
    with ape.reverts(attested.OutputMismatch):  # bytes that are not the agreed output listed
        attested.reportDissentWithOutput(rid, b_sig, b_out, [x], sender=challenger)

    rid, (a, b, c) = open_round("exact")
    attested.settle(rid, A, [signed(a, rid, A), signed(b, rid, A)], sender=a)
    with ape.reverts(attested.NotWithinTolerance):  # an exact version pays only the accepted digest
        attested.attestLateWithOutput(rid, signed(c, rid, NEAR), NEAR, sender=c)
