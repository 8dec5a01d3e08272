"""AttestedMode on real anvil: EIP-712 signatures of committee members settle a request in one transaction.

Every test that settles checks token conservation: what the hub credits (claimable) adds up to exactly
what it escrowed for the request.
"""

from collections.abc import Callable, Iterable
from typing import Any

import ape
import pytest
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from verinfer.chain.attestations import (
    ATTESTATION_TYPEHASH,
    SECP256K1_N,
    Attestation,
    Domain,
    recover,
    sign,
    typed_digest,
)
from verinfer.chain.contracts import Fault, Status
from verinfer.devnet.state import dev_account
from verinfer.models.codec import ErrorCode, error_output, output_digest

from tests.conftest import MODEL_FEE, TEST_PARAMS, request_id_of, sample_output, seed_of

OUT = sample_output(0.25)
OTHER = sample_output(0.75)
OP_FEE = TEST_PARAMS["operator_fee"]
PROTOCOL_FEE = TEST_PARAMS["protocol_fee"]
DISSENT_BPS = TEST_PARAMS["slash_bps_dissent"]
REWARD_PCT = TEST_PARAMS["equivocation_reward_pct"]
WINDOW = TEST_PARAMS["attested_window"]
LATE_WINDOW = TEST_PARAMS["attested_late_window"]
MAX_OUTPUT = 1_024
ATTESTED = 8
BPS = 10_000
MIN_LATE_WINDOW = 8
MAX_REWARD_PCT = 50
SEED_HORIZON = 256
THIRD = sample_output(0.5)


def equivocation_bps(dissent_bps: int = DISSENT_BPS, pct: int = REWARD_PCT) -> int:
    """The rate an equivocator is slashed at: raised so that what it loses after the reporter's share is
    still the dissent rate."""
    return min(BPS, dissent_bps * 100 // (100 - pct))


def equivocation_cut(stake: int, dissent_bps: int = DISSENT_BPS, pct: int = REWARD_PCT) -> tuple[int, int]:
    """(slashed, reporter's reward) for an equivocator with `stake` bonded."""
    slashed = stake * equivocation_bps(dissent_bps, pct) // BPS
    return slashed, slashed * (pct * 100) // BPS


# The test accounts are the dev mnemonic's first twelve accounts.
KEYS: dict[str, LocalAccount] = {a.address: a for a in (dev_account(i) for i in range(12))}


def total_fee(k: int = 3) -> int:
    return MODEL_FEE + k * OP_FEE + PROTOCOL_FEE


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def amodel(
    make_model: Callable[..., tuple[bytes, int]], join: Callable[..., None], operators: list[Any]
) -> Any:
    """A version that allows consensus and attested mode, served by all five operators."""
    model_id, version = make_model("attested-suite", modes=1 | ATTESTED, max_output_bytes=MAX_OUTPUT)
    join(operators, model_id)
    return model_id, version


@pytest.fixture
def domain(attested: Any, chain: Any) -> Domain:
    return Domain(chain.chain_id, attested.address)


@pytest.fixture
def new_request(make_request: Callable[..., Any], amodel: Any) -> Callable[..., int]:
    """Makes an attested request on the suite's model; returns its id (the seed block is mined)."""

    def _new(**kwargs: Any) -> int:
        return request_id_of(make_request(model_ref=amodel, mode=ATTESTED, **kwargs))

    return _new


@pytest.fixture
def committee(
    attested: Any, hub: Any, staking: Any, by_address: dict[str, Any], chain: Any
) -> Callable[[int], list[Any]]:
    """The request's committee as a relayer computes it: from the seed block's hash as soon as that block
    exists (`previewCommittee` needs one block more), or as drawn."""

    def _committee(rid: int) -> list[Any]:
        rnd = attested.getRound(rid)
        if rnd.drawn:
            return [by_address[a] for a in attested.getCommittee(rid)]
        seed = seed_of(rid, bytes(chain.blocks[rnd.seedBlock].hash))
        return [by_address[a] for a in staking.drawCommittee(hub.poolOf(rid), rnd.k, seed, rnd.seedBlock)]

    return _committee


@pytest.fixture
def signed(domain: Domain) -> Callable[..., tuple[bytes, bytes]]:
    """`signed(member, rid, output)`: the (digest, signature) pair a member puts forward."""

    def _signed(member: Any, rid: int, output: bytes, on: Domain | None = None) -> tuple[bytes, bytes]:
        att = sign(KEYS[member.address], on or domain, rid, output_digest(output))
        return att.output_digest, att.signature

    return _signed


SETTLE_MANY_TYPES = ["uint256[]", "bytes[]", "(bytes32,bytes)[][]"]


def settle_many_data(rids: list[int], outputs: list[bytes], sigs: list[list[tuple[bytes, bytes]]]) -> bytes:
    """settleMany's calldata, encoded by hand: ape's argument conversion garbles Signed[][]."""
    selector = keccak(text="settleMany(uint256[],bytes[],(bytes32,bytes)[][])")[:4]
    return selector + abi_encode(SETTLE_MANY_TYPES, [rids, outputs, sigs])


def settle_many(attested: Any, sender: Any, rids: list[int], outputs: list[bytes], sigs: list[Any]) -> Any:
    """Sends settleMany; returns (receipt, how many it settled, from an eth_call just before)."""
    data = settle_many_data(rids, outputs, sigs)
    call = {"from": sender.address, "to": attested.address, "data": data}
    raw = ape.chain.provider.web3.eth.call(call, "pending")  # as in the block the transaction goes into
    (count,) = abi_decode(["uint256"], bytes(raw))
    return sender.transfer(attested, 0, data=data), count


class Ledger:
    """Claimable balances on the hub, to check that a request's escrow is credited exactly once."""

    def __init__(self, hub: Any, token: Any, accounts: Iterable[Any]) -> None:
        self.hub, self.token = hub, token
        self.accounts = list(dict.fromkeys(a.address if hasattr(a, "address") else a for a in accounts))
        self.before = self._claimable()
        self.escrow_before = token.balanceOf(hub)

    def _claimable(self) -> dict[str, int]:
        return {a: self.hub.claimable(a) for a in self.accounts}

    def deltas(self) -> dict[str, int]:
        now = self._claimable()
        return {a: now[a] - self.before[a] for a in self.accounts if now[a] != self.before[a]}

    def credited(self) -> int:
        return sum(self.deltas().values())

    def assert_conserved(self, escrowed: int) -> None:
        assert self.token.balanceOf(self.hub) - self.escrow_before == escrowed
        assert self.credited() == escrowed


@pytest.fixture
def ledger(
    hub: Any, token: Any, accounts: Any, treasury: Any, model_owner: Any, dapp: Any
) -> Callable[..., Ledger]:
    """`ledger(*extra)`: snapshot of every test account's (and `extra`'s) claimable balance."""

    def _ledger(*extra: Any) -> Ledger:
        return Ledger(hub, token, [*accounts, treasury, model_owner, dapp, *extra])

    return _ledger


def stake_of(staking: Any, account: Any) -> int:
    return int(staking.operatorInfo(account).stake)


# ------------------------------------------------------------------ happy path


def test_attestation_hash__matches_offchain_typed_digest__equal(attested: Any, domain: Domain) -> None:
    digest = output_digest(OUT)
    assert bytes(attested.attestationHash(7, digest)) == typed_digest(domain, 7, digest)
    assert bytes(attested.ATTESTATION_TYPEHASH()) == ATTESTATION_TYPEHASH


def test_preview_committee__one_block_after_the_seed__matches_the_draw(
    attested: Any, new_request: Any, committee: Any, signed: Any, chain: Any, dapp: Any
) -> None:
    rid = new_request()
    expected = [m.address for m in committee(rid)]
    assert len(set(expected)) == 3 and list(attested.getCommittee(rid)) == []
    chain.mine(1)
    assert list(attested.previewCommittee(rid)) == expected
    receipt = attested.settle(rid, OUT, [signed(by, rid, OUT) for by in committee(rid)], sender=dapp)
    assert list(receipt.decode_logs(attested.CommitteeDrawn)[0].committee) == expected
    assert list(attested.getCommittee(rid)) == list(attested.previewCommittee(rid)) == expected


def test_settle__three_of_three_sign__finalized_and_everyone_paid(
    hub: Any,
    attested: Any,
    staking: Any,
    new_request: Any,
    committee: Any,
    signed: Any,
    ledger: Any,
    dapp: Any,
    model_owner: Any,
    treasury: Any,
    challenger: Any,
) -> None:
    book = ledger()
    rid = new_request()
    members = committee(rid)
    stakes = [stake_of(staking, m) for m in members]
    receipt = attested.settle(rid, OUT, [signed(m, rid, OUT) for m in members], sender=challenger)

    settled = receipt.decode_logs(hub.RequestSettled)[0]
    assert (settled.status, bytes(settled.outputDigest), bytes(settled.output)) == (
        Status.FINALIZED,
        output_digest(OUT),
        OUT,
    )
    attested_log = receipt.decode_logs(attested.Attested)[0]
    assert (attested_log.agreeMask, attested_log.dissentMask) == (0b111, 0)
    result = hub.getResult(rid)
    assert result.status == Status.FINALIZED
    assert bytes(result.output) == OUT and bytes(result.outputDigest) == output_digest(OUT)
    assert list(result.agreeing) == [m.address for m in members]
    assert (result.settledBlock, result.errorCode) == (receipt.block_number, 0)
    assert hub.verifyOutput(rid, OUT) and not hub.verifyOutput(rid, OTHER)
    assert hub.heldFees(rid) == 0
    assert list(attested.getCommittee(rid)) == [m.address for m in members]

    deltas = book.deltas()
    assert all(deltas[m.address] == OP_FEE for m in members)
    assert deltas[model_owner.address] == MODEL_FEE
    assert deltas[treasury.address] == PROTOCOL_FEE
    assert dapp.address not in deltas
    assert [stake_of(staking, m) for m in members] == stakes
    assert receipt.decode_logs(hub.MemberPenalized) == []
    book.assert_conserved(total_fee())


def test_settle__digest_only__output_not_stored_but_in_event(
    hub: Any, attested: Any, new_request: Any, committee: Any, signed: Any, ledger: Any
) -> None:
    book = ledger()
    rid = new_request(digest_only=True)
    receipt = attested.settle(
        rid, OUT, [signed(m, rid, OUT) for m in committee(rid)], sender=committee(rid)[0]
    )
    assert bytes(receipt.decode_logs(hub.RequestSettled)[0].output) == OUT
    result = hub.getResult(rid)
    assert result.status == Status.FINALIZED
    assert bytes(result.output) == b"" and bytes(result.outputDigest) == output_digest(OUT)
    assert bytes(attested.resultOf(rid).output) == b""
    assert hub.verifyOutput(rid, OUT)
    book.assert_conserved(total_fee())


def test_settle__consumer_requester__callback_gets_status_and_output(
    project: Any,
    deployer: Any,
    hub: Any,
    attested: Any,
    new_request: Any,
    committee: Any,
    signed: Any,
    ledger: Any,
) -> None:
    consumer = deployer.deploy(project.RecordingConsumer, hub)
    book = ledger(consumer)
    rid = new_request(consumer=consumer, callback_gas=800_000)
    receipt = attested.settle(rid, OUT, [signed(m, rid, OUT) for m in committee(rid)], sender=deployer)
    assert receipt.decode_logs(hub.CallbackExecuted)[0].success
    assert (consumer.lastRequestId(), consumer.lastStatus(), bytes(consumer.lastOutput())) == (
        rid,
        Status.FINALIZED,
        OUT,
    )
    assert consumer.calls() == 1 and hub.getResult(rid).callbackResult == 1
    book.assert_conserved(total_fee())


def test_settle__quorum_signs_error_output__failed_and_owner_unpaid(
    hub: Any,
    attested: Any,
    new_request: Any,
    committee: Any,
    signed: Any,
    ledger: Any,
    model_owner: Any,
    dapp: Any,
) -> None:
    book = ledger()
    rid = new_request()
    failure = error_output(int(ErrorCode.OUTPUT_TOO_LARGE))
    attested.settle(rid, failure, [signed(m, rid, failure) for m in committee(rid)], sender=dapp)
    result = hub.getResult(rid)
    assert (result.status, result.errorCode) == (Status.FAILED, int(ErrorCode.OUTPUT_TOO_LARGE))
    deltas = book.deltas()
    assert model_owner.address not in deltas and deltas[dapp.address] == MODEL_FEE
    book.assert_conserved(total_fee())


# ------------------------------------------------------------------ dissent


def test_settle__third_signs_another_digest__slashed_for_dissent(
    hub: Any,
    attested: Any,
    staking: Any,
    token: Any,
    treasury: Any,
    new_request: Any,
    committee: Any,
    signed: Any,
    ledger: Any,
    dapp: Any,
    model_owner: Any,
) -> None:
    book = ledger()
    rid = new_request()
    a, b, liar = committee(rid)
    liar_stake = stake_of(staking, liar)
    treasury_tokens = token.balanceOf(treasury)
    sigs = [signed(a, rid, OUT), signed(b, rid, OUT), signed(liar, rid, OTHER)]

    # The lie alone, or outvoted, never settles.
    with ape.reverts(attested.NoQuorum, requestId=rid, signatures=1, needed=2):
        attested.settle(rid, OTHER, [signed(liar, rid, OTHER)], sender=liar)
    with ape.reverts(attested.NoQuorum, requestId=rid, signatures=1, needed=2):
        attested.settle(rid, OTHER, sigs, sender=liar)

    receipt = attested.settle(rid, OUT, sigs, sender=dapp)
    slashed = liar_stake * DISSENT_BPS // BPS
    penalized = receipt.decode_logs(hub.MemberPenalized)
    assert [(p.operator, p.fault, p.amount) for p in penalized] == [(liar.address, Fault.DISSENT, slashed)]
    assert receipt.decode_logs(attested.Attested)[0].dissentMask == 0b100
    assert stake_of(staking, liar) == liar_stake - slashed
    assert token.balanceOf(treasury) - treasury_tokens == slashed
    assert list(hub.getResult(rid).agreeing) == [a.address, b.address]
    assert attested.getRound(rid).penalizedMask == 0b100
    assert hub.heldFees(rid) == 0
    deltas = book.deltas()
    assert deltas[a.address] == deltas[b.address] == OP_FEE and liar.address not in deltas
    assert deltas[dapp.address] == OP_FEE  # the dissenter's fee goes back
    assert deltas[model_owner.address] == MODEL_FEE
    book.assert_conserved(total_fee())


def test_report_dissent__liar_settles_first_without_its_dissent__lie_still_slashed(
    hub: Any,
    attested: Any,
    staking: Any,
    token: Any,
    treasury: Any,
    new_request: Any,
    committee: Any,
    signed: Any,
    ledger: Any,
    dapp: Any,
) -> None:
    """The liar receives the honest majority's signatures in the exchange and settles first, leaving its own
    signed lie out; an honest member shows the lie afterwards and the liar loses exactly the dissent rate."""
    book = ledger()
    rid = new_request()
    a, b, liar = committee(rid)
    liar_stake = stake_of(staking, liar)
    honest = [signed(a, rid, OUT), signed(b, rid, OUT)]
    lie = signed(liar, rid, OTHER)
    settled = attested.settle(rid, OUT, honest, sender=liar)  # front-runs the honest submitter
    assert settled.decode_logs(hub.MemberPenalized) == []
    assert settled.decode_logs(attested.Attested)[0].dissentMask == 0
    with ape.reverts(attested.RoundClosed, requestId=rid):  # the lie can't be shown in a settlement
        attested.settle(rid, OUT, [*honest, lie], sender=dapp)

    treasury_tokens, reporter_tokens = token.balanceOf(treasury), token.balanceOf(b)
    receipt = attested.reportDissent(rid, lie, sender=b)
    slashed = liar_stake * DISSENT_BPS // BPS
    penalized = receipt.decode_logs(hub.MemberPenalized)
    assert [(p.requestId, p.operator, p.fault, p.amount) for p in penalized] == [
        (rid, liar.address, Fault.DISSENT, slashed)
    ]
    proven = receipt.decode_logs(attested.DissentProven)[0]
    assert (proven.requestId, proven.member, bytes(proven.digest)) == (
        rid,
        liar.address,
        output_digest(OTHER),
    )
    slash_log = receipt.decode_logs(staking.Slashed)[0]
    assert (slash_log.amount, slash_log.reward) == (slashed, 0)
    assert stake_of(staking, liar) == liar_stake - slashed
    assert token.balanceOf(treasury) - treasury_tokens == slashed  # all of it: no reward for dissent
    assert token.balanceOf(b) == reporter_tokens
    assert attested.getRound(rid).penalizedMask == 0b100

    # The liar's held fee is lost to it even with a signature on the accepted digest.
    with ape.reverts(attested.AlreadyCounted, requestId=rid, member=liar.address):
        attested.attestLate(rid, signed(liar, rid, OUT)[1], sender=liar)
    rnd = attested.getRound(rid)
    ape.chain.mine(rnd.deadline + rnd.lateWindow - ape.chain.blocks.height)
    attested.releaseHeld(rid, sender=dapp)
    deltas = book.deltas()
    assert liar.address not in deltas and deltas[dapp.address] == OP_FEE
    assert deltas[a.address] == deltas[b.address] == OP_FEE
    book.assert_conserved(total_fee())


def test_report_dissent__anyone_may_report__caller_gets_nothing(
    hub: Any,
    attested: Any,
    staking: Any,
    token: Any,
    treasury: Any,
    new_request: Any,
    committee: Any,
    signed: Any,
    ledger: Any,
    challenger: Any,
) -> None:
    book = ledger()
    rid = new_request()
    a, b, liar = committee(rid)
    attested.settle(rid, OUT, [signed(a, rid, OUT), signed(b, rid, OUT)], sender=a)
    stake = stake_of(staking, liar)
    caller_tokens, treasury_tokens = token.balanceOf(challenger), token.balanceOf(treasury)
    receipt = attested.reportDissent(rid, signed(liar, rid, OTHER), sender=challenger)
    slashed = stake * DISSENT_BPS // BPS
    assert receipt.decode_logs(hub.MemberPenalized)[0].amount == slashed
    assert token.balanceOf(challenger) == caller_tokens
    assert token.balanceOf(treasury) - treasury_tokens == slashed
    assert challenger.address not in book.deltas()
    # The liar's fee stays escrowed, held until the late window closes; nothing else moved.
    assert hub.heldFees(rid) == 1
    assert token.balanceOf(hub) - book.escrow_before == total_fee()
    assert book.credited() == total_fee() - OP_FEE


def test_report_dissent__honest_left_out_member__held_fee_unaffected(
    hub: Any,
    attested: Any,
    staking: Any,
    new_request: Any,
    committee: Any,
    signed: Any,
    ledger: Any,
    dapp: Any,
    challenger: Any,
    chain: Any,
) -> None:
    """k = 5: the liar settles with three honest signatures, leaving out an honest fourth member and its own
    lie. The dissent report slashes the liar only; the honest member still collects its held fee."""
    book = ledger()
    rid = new_request(k=5)
    members = committee(rid)
    a, b, c, honest, liar = members
    stakes = {m.address: stake_of(staking, m) for m in members}
    attested.settle(rid, OUT, [signed(m, rid, OUT) for m in (a, b, c)], sender=liar)
    assert hub.heldFees(rid) == 2

    attested.reportDissent(rid, signed(liar, rid, OTHER), sender=challenger)
    assert hub.heldFees(rid) == 2  # nothing taken from the held fees
    assert stake_of(staking, liar) == stakes[liar.address] - stakes[liar.address] * DISSENT_BPS // BPS
    assert all(stake_of(staking, m) == stakes[m.address] for m in (a, b, c, honest))

    late = attested.attestLate(rid, signed(honest, rid, OUT)[1], sender=honest)
    assert late.decode_logs(hub.HeldFeePaid)[0].amount == OP_FEE
    with ape.reverts(attested.AlreadyCounted, requestId=rid, member=liar.address):
        attested.attestLate(rid, signed(liar, rid, OUT)[1], sender=liar)
    rnd = attested.getRound(rid)
    chain.mine(rnd.deadline + rnd.lateWindow - chain.blocks.height)
    assert attested.releaseHeld(rid, sender=dapp).decode_logs(hub.HeldFeesRefunded)[0].amount == OP_FEE
    deltas = book.deltas()
    assert all(deltas[m.address] == OP_FEE for m in (a, b, c, honest))
    assert liar.address not in deltas and deltas[dapp.address] == OP_FEE
    assert list(hub.getResult(rid).agreeing) == [m.address for m in (a, b, c, honest)]
    book.assert_conserved(total_fee(5))


def test_report_dissent__liar_also_signed_accepted_digest_and_was_paid__still_slashed(
    hub: Any, attested: Any, staking: Any, new_request: Any, committee: Any, signed: Any, ledger: Any
) -> None:
    """Signing both digests and collecting the held fee with the agreeing one does not spare the dissent."""
    book = ledger()
    rid = new_request()
    a, b, liar = committee(rid)
    attested.settle(rid, OUT, [signed(a, rid, OUT), signed(b, rid, OUT)], sender=liar)
    attested.attestLate(rid, signed(liar, rid, OUT)[1], sender=liar)
    stake = stake_of(staking, liar)
    attested.reportDissent(rid, signed(liar, rid, OTHER), sender=a)
    assert stake_of(staking, liar) == stake - stake * DISSENT_BPS // BPS
    assert attested.getRound(rid).penalizedMask == 0b100
    assert book.deltas()[liar.address] == OP_FEE
    book.assert_conserved(total_fee())


def test_report_dissent__liar_unbonds_after_settlement__unbonding_stake_slashed(
    attested: Any, staking: Any, new_request: Any, committee: Any, signed: Any, chain: Any
) -> None:
    rid = new_request()
    a, b, liar = committee(rid)
    attested.settle(rid, OUT, [signed(a, rid, OUT), signed(b, rid, OUT)], sender=liar)
    stake = stake_of(staking, liar)
    staking.requestUnbond(stake, sender=liar)
    rnd = attested.getRound(rid)
    chain.mine(rnd.deadline + rnd.lateWindow - 1 - chain.blocks.height)  # runs in the last block
    receipt = attested.reportDissent(rid, signed(liar, rid, OTHER), sender=a)
    assert receipt.block_number == rnd.deadline + rnd.lateWindow
    info = staking.operatorInfo(liar)
    assert (info.stake, info.unbonding) == (0, stake - stake * DISSENT_BPS // BPS)


def test_report_dissent__before_settlement__nothing_accepted(
    attested: Any, new_request: Any, committee: Any, signed: Any, challenger: Any
) -> None:
    rid = new_request()
    liar = committee(rid)[2]
    with ape.reverts(attested.NothingAccepted, requestId=rid):
        attested.reportDissent(rid, signed(liar, rid, OTHER), sender=challenger)


def test_report_dissent__expired_round__nothing_accepted(
    attested: Any, new_request: Any, committee: Any, signed: Any, challenger: Any, chain: Any
) -> None:
    rid = new_request()
    liar = committee(rid)[2]
    chain.mine(attested.getRound(rid).deadline - chain.blocks.height)
    attested.expire(rid, sender=challenger)
    with ape.reverts(attested.NothingAccepted, requestId=rid):
        attested.reportDissent(rid, signed(liar, rid, OTHER), sender=challenger)


def test_report_dissent__signature_on_accepted_digest__not_dissent(
    attested: Any, new_request: Any, committee: Any, signed: Any, challenger: Any
) -> None:
    rid = new_request()
    a, b, left_out = committee(rid)
    attested.settle(rid, OUT, [signed(a, rid, OUT), signed(b, rid, OUT)], sender=a)
    for member in (a, left_out):
        with ape.reverts(attested.NotDissent, requestId=rid):
            attested.reportDissent(rid, signed(member, rid, OUT), sender=challenger)


def test_report_dissent__after_late_window__late_window_closed(
    attested: Any, staking: Any, new_request: Any, committee: Any, signed: Any, challenger: Any, chain: Any
) -> None:
    rid = new_request()
    a, b, liar = committee(rid)
    attested.settle(rid, OUT, [signed(a, rid, OUT), signed(b, rid, OUT)], sender=liar)
    rnd = attested.getRound(rid)
    until = rnd.deadline + rnd.lateWindow
    chain.mine(until - chain.blocks.height)  # the next transaction runs in until + 1
    stake = stake_of(staking, liar)
    with ape.reverts(attested.LateWindowClosed, requestId=rid, until=until):
        attested.reportDissent(rid, signed(liar, rid, OTHER), sender=challenger)
    assert stake_of(staking, liar) == stake


def test_report_dissent__dissent_included_in_settlement__already_penalized(
    attested: Any, staking: Any, new_request: Any, committee: Any, signed: Any, challenger: Any
) -> None:
    rid = new_request()
    a, b, liar = committee(rid)
    attested.settle(rid, OUT, [signed(a, rid, OUT), signed(b, rid, OUT), signed(liar, rid, OTHER)], sender=a)
    stake = stake_of(staking, liar)
    for lie in (OTHER, THIRD):  # the same lie again, or another one: one slash per round
        with ape.reverts(attested.AlreadyPenalized, requestId=rid, member=liar.address):
            attested.reportDissent(rid, signed(liar, rid, lie), sender=challenger)
    assert stake_of(staking, liar) == stake


def test_report_dissent__reported_twice__already_penalized(
    attested: Any, staking: Any, new_request: Any, committee: Any, signed: Any, challenger: Any
) -> None:
    rid = new_request()
    a, b, liar = committee(rid)
    attested.settle(rid, OUT, [signed(a, rid, OUT), signed(b, rid, OUT)], sender=a)
    attested.reportDissent(rid, signed(liar, rid, OTHER), sender=challenger)
    stake = stake_of(staking, liar)
    for lie in (OTHER, THIRD):
        with ape.reverts(attested.AlreadyPenalized, requestId=rid, member=liar.address):
            attested.reportDissent(rid, signed(liar, rid, lie), sender=a)
    # Nor can the two lies be turned into an equivocation report with its reward.
    with ape.reverts(attested.AlreadyPenalized, requestId=rid, member=liar.address):
        attested.reportEquivocation(
            rid, signed(liar, rid, OTHER), signed(liar, rid, THIRD), sender=challenger
        )
    assert stake_of(staking, liar) == stake


def test_report_dissent__equivocation_proven_first__already_penalized(
    attested: Any, staking: Any, new_request: Any, committee: Any, signed: Any, challenger: Any
) -> None:
    rid = new_request()
    a, b, liar = committee(rid)
    attested.reportEquivocation(rid, signed(liar, rid, OUT), signed(liar, rid, OTHER), sender=challenger)
    attested.settle(rid, OUT, [signed(a, rid, OUT), signed(b, rid, OUT)], sender=a)
    stake = stake_of(staking, liar)
    with ape.reverts(attested.AlreadyPenalized, requestId=rid, member=liar.address):
        attested.reportDissent(rid, signed(liar, rid, OTHER), sender=challenger)
    assert stake_of(staking, liar) == stake


def test_report_dissent__non_member_signature__not_a_member(
    attested: Any,
    new_request: Any,
    committee: Any,
    signed: Any,
    operators: list[Any],
    challenger: Any,
    domain: Domain,
) -> None:
    rid = new_request()
    a, b, liar = committee(rid)
    attested.settle(rid, OUT, [signed(a, rid, OUT), signed(b, rid, OUT)], sender=a)
    outsider = next(op for op in operators if op.address not in {a.address, b.address, liar.address})
    with ape.reverts(attested.NotCommitteeMember, requestId=rid, operator=outsider.address):
        attested.reportDissent(rid, signed(outsider, rid, OTHER), sender=challenger)
    # The liar's signature on one digest, put forward as one on another, recovers a stranger.
    _, sig = signed(liar, rid, OTHER)
    stranger = recover(domain, Attestation(rid, output_digest(THIRD), liar.address, sig))
    with ape.reverts(attested.NotCommitteeMember, requestId=rid, operator=stranger):
        attested.reportDissent(rid, (output_digest(THIRD), sig), sender=challenger)


def test_report_dissent__malformed_or_malleable_signature__bad_signature(
    attested: Any, new_request: Any, committee: Any, signed: Any, challenger: Any
) -> None:
    rid = new_request()
    a, b, liar = committee(rid)
    attested.settle(rid, OUT, [signed(a, rid, OUT), signed(b, rid, OUT)], sender=a)
    digest, sig = signed(liar, rid, OTHER)
    r, s, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
    twin = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])
    for bad in (sig[:64], twin):
        with ape.reverts(attested.BadSignature, requestId=rid):
            attested.reportDissent(rid, (digest, bad), sender=challenger)


# ------------------------------------------------------------------ omission and late attestation


def test_attest_late__left_out_member__paid_held_fee_once(
    hub: Any,
    attested: Any,
    staking: Any,
    new_request: Any,
    committee: Any,
    signed: Any,
    ledger: Any,
    dapp: Any,
    chain: Any,
) -> None:
    book = ledger()
    rid = new_request()
    a, b, left_out = committee(rid)
    left_out_stake = stake_of(staking, left_out)
    receipt = attested.settle(rid, OUT, [signed(a, rid, OUT), signed(b, rid, OUT)], sender=a)
    assert receipt.decode_logs(hub.MemberPenalized) == []
    assert stake_of(staking, left_out) == left_out_stake
    assert hub.heldFees(rid) == 1
    assert left_out.address not in book.deltas()
    assert dapp.address not in book.deltas()  # nothing refunded: the left-out member's fee is held
    assert book.credited() == total_fee() - OP_FEE

    _, late_sig = signed(left_out, rid, OUT)
    late = attested.attestLate(rid, late_sig, sender=dapp)  # anyone may show it
    paid = late.decode_logs(hub.HeldFeePaid)
    assert [(p.requestId, p.member, p.amount) for p in paid] == [(rid, left_out.address, OP_FEE)]
    assert late.decode_logs(attested.LateAttestation)[0].member == left_out.address
    assert book.deltas()[left_out.address] == OP_FEE
    assert hub.heldFees(rid) == 0
    assert list(hub.getResult(rid).agreeing) == [m.address for m in (a, b, left_out)]
    assert stake_of(staking, left_out) == left_out_stake

    with ape.reverts(attested.AlreadyCounted, requestId=rid, member=left_out.address):
        attested.attestLate(rid, late_sig, sender=left_out)
    with ape.reverts(attested.AlreadyCounted, requestId=rid, member=a.address):
        attested.attestLate(rid, signed(a, rid, OUT)[1], sender=a)
    book.assert_conserved(total_fee())


def test_attest_late__signature_on_another_digest__not_paid(
    attested: Any, new_request: Any, committee: Any, signed: Any
) -> None:
    rid = new_request()
    a, b, left_out = committee(rid)
    attested.settle(rid, OUT, [signed(a, rid, OUT), signed(b, rid, OUT)], sender=a)
    _, lie = signed(left_out, rid, OTHER)
    wrong = recover(attested_domain(attested), Attestation(rid, output_digest(OUT), left_out.address, lie))
    with ape.reverts(attested.NotCommitteeMember, requestId=rid, operator=wrong):
        attested.attestLate(rid, lie, sender=left_out)


def attested_domain(attested: Any) -> Domain:
    return Domain(ape.chain.chain_id, attested.address)


def test_attest_late__before_settlement__nothing_accepted(
    attested: Any, new_request: Any, committee: Any, signed: Any
) -> None:
    rid = new_request()
    member = committee(rid)[0]
    with ape.reverts(attested.NothingAccepted, requestId=rid):
        attested.attestLate(rid, signed(member, rid, OUT)[1], sender=member)


def test_release_held__after_late_window__refunds_requester_and_late_attestation_closed(
    hub: Any, attested: Any, new_request: Any, committee: Any, signed: Any, ledger: Any, dapp: Any, chain: Any
) -> None:
    book = ledger()
    rid = new_request()
    a, b, left_out = committee(rid)
    attested.settle(rid, OUT, [signed(a, rid, OUT), signed(b, rid, OUT)], sender=a)
    rnd = attested.getRound(rid)
    until = rnd.deadline + rnd.lateWindow
    assert rnd.lateWindow == LATE_WINDOW

    with ape.reverts(attested.LateWindowOpen, requestId=rid, until=until):
        attested.releaseHeld(rid, sender=dapp)
    chain.mine(until - chain.blocks.height)  # the next transaction runs in until + 1
    _, late_sig = signed(left_out, rid, OUT)
    with ape.reverts(attested.LateWindowClosed, requestId=rid, until=until):
        attested.attestLate(rid, late_sig, sender=left_out)

    refund = attested.releaseHeld(rid, sender=left_out)  # anyone may call; the requester gets it
    assert refund.decode_logs(hub.HeldFeesRefunded)[0].amount == OP_FEE
    assert hub.heldFees(rid) == 0
    deltas = book.deltas()
    assert deltas[dapp.address] == OP_FEE and left_out.address not in deltas
    with ape.reverts(hub.NothingHeld, requestId=rid):
        attested.releaseHeld(rid, sender=dapp)
    book.assert_conserved(total_fee())


def test_attest_late__last_block_of_late_window__still_paid(
    hub: Any, attested: Any, new_request: Any, committee: Any, signed: Any, ledger: Any, chain: Any
) -> None:
    book = ledger()
    rid = new_request()
    a, b, left_out = committee(rid)
    attested.settle(rid, OUT, [signed(a, rid, OUT), signed(b, rid, OUT)], sender=a)
    rnd = attested.getRound(rid)
    chain.mine(rnd.deadline + rnd.lateWindow - 1 - chain.blocks.height)  # runs in the last block
    receipt = attested.attestLate(rid, signed(left_out, rid, OUT)[1], sender=left_out)
    assert receipt.block_number == rnd.deadline + rnd.lateWindow
    assert book.deltas()[left_out.address] == OP_FEE
    book.assert_conserved(total_fee())


# ------------------------------------------------------------------ equivocation


def test_report_equivocation__two_digests_signed__slashed_and_reporter_rewarded(
    hub: Any,
    attested: Any,
    staking: Any,
    token: Any,
    treasury: Any,
    new_request: Any,
    committee: Any,
    signed: Any,
    challenger: Any,
) -> None:
    rid = new_request()
    cheat = committee(rid)[1]
    stake = stake_of(staking, cheat)
    reporter_tokens, treasury_tokens = token.balanceOf(challenger), token.balanceOf(treasury)
    receipt = attested.reportEquivocation(
        rid, signed(cheat, rid, OUT), signed(cheat, rid, OTHER), sender=challenger
    )
    slashed, reward = equivocation_cut(stake)
    assert equivocation_bps() == 2 * DISSENT_BPS  # at a 50% reward the rate doubles
    assert [(p.operator, p.fault, p.amount) for p in receipt.decode_logs(hub.MemberPenalized)] == [
        (cheat.address, Fault.EQUIVOCATION, slashed)
    ]
    proven = receipt.decode_logs(attested.EquivocationProven)[0]
    assert (proven.requestId, proven.member, proven.reporter) == (rid, cheat.address, challenger.address)
    slash_log = receipt.decode_logs(staking.Slashed)[0]
    assert (slash_log.amount, slash_log.reward) == (slashed, reward)
    assert stake_of(staking, cheat) == stake - slashed
    assert token.balanceOf(challenger) - reporter_tokens == reward
    assert token.balanceOf(treasury) - treasury_tokens == slashed - reward
    assert slashed - reward >= stake * DISSENT_BPS // BPS  # the equivocator's net loss
    assert attested.getRound(rid).penalizedMask == 0b010

    with ape.reverts(attested.AlreadyPenalized, requestId=rid, member=cheat.address):
        attested.reportEquivocation(
            rid, signed(cheat, rid, OTHER), signed(cheat, rid, OUT), sender=challenger
        )


def test_report_equivocation__after_settlement__still_slashed(
    hub: Any,
    attested: Any,
    staking: Any,
    new_request: Any,
    committee: Any,
    signed: Any,
    challenger: Any,
    ledger: Any,
) -> None:
    book = ledger()
    rid = new_request()
    members = committee(rid)
    attested.settle(rid, OUT, [signed(m, rid, OUT) for m in members], sender=challenger)
    cheat = members[0]
    stake = stake_of(staking, cheat)
    attested.reportEquivocation(rid, signed(cheat, rid, OUT), signed(cheat, rid, OTHER), sender=challenger)
    assert stake_of(staking, cheat) == stake - equivocation_cut(stake)[0]
    book.assert_conserved(total_fee())


def test_report_equivocation__same_digest_twice__not_equivocation(
    attested: Any, new_request: Any, committee: Any, signed: Any, challenger: Any
) -> None:
    rid = new_request()
    member = committee(rid)[0]
    sig = signed(member, rid, OUT)
    with ape.reverts(attested.NotEquivocation, requestId=rid):
        attested.reportEquivocation(rid, sig, sig, sender=challenger)


def test_report_equivocation__two_different_signers__not_equivocation(
    attested: Any, staking: Any, new_request: Any, committee: Any, signed: Any, challenger: Any
) -> None:
    rid = new_request()
    a, b, _ = committee(rid)
    with ape.reverts(attested.NotEquivocation, requestId=rid):
        attested.reportEquivocation(rid, signed(a, rid, OUT), signed(b, rid, OTHER), sender=challenger)


def test_report_equivocation__signatures_for_different_requests__not_equivocation(
    attested: Any, new_request: Any, committee: Any, signed: Any, challenger: Any
) -> None:
    """A member may sign different outputs for different requests; replaying one as this request's
    signature recovers someone else."""
    rid = new_request()
    member = committee(rid)[0]
    other_rid = new_request()
    foreign = signed(member, other_rid, OTHER)
    stranger = recover(attested_domain(attested), Attestation(rid, foreign[0], member.address, foreign[1]))
    with ape.reverts(attested.NotCommitteeMember, requestId=rid, operator=stranger):
        attested.reportEquivocation(rid, signed(member, rid, OUT), foreign, sender=challenger)


def test_settle__proven_equivocator_signature__does_not_count_toward_quorum(
    hub: Any,
    attested: Any,
    staking: Any,
    new_request: Any,
    committee: Any,
    signed: Any,
    challenger: Any,
    ledger: Any,
    dapp: Any,
) -> None:
    book = ledger()
    rid = new_request()
    cheat, a, b = committee(rid)
    attested.reportEquivocation(rid, signed(cheat, rid, OUT), signed(cheat, rid, OTHER), sender=challenger)
    stake = stake_of(staking, cheat)
    with ape.reverts(attested.NoQuorum, requestId=rid, signatures=1, needed=2):
        attested.settle(rid, OUT, [signed(cheat, rid, OUT), signed(a, rid, OUT)], sender=dapp)

    receipt = attested.settle(
        rid, OUT, [signed(cheat, rid, OTHER), signed(a, rid, OUT), signed(b, rid, OUT)], sender=dapp
    )
    assert receipt.decode_logs(hub.MemberPenalized) == []  # not slashed twice
    assert (receipt.decode_logs(attested.Attested)[0].agreeMask, hub.heldFees(rid)) == (0b110, 0)
    assert stake_of(staking, cheat) == stake
    with ape.reverts(attested.AlreadyCounted, requestId=rid, member=cheat.address):
        attested.attestLate(rid, signed(cheat, rid, OUT)[1], sender=cheat)
    deltas = book.deltas()
    assert cheat.address not in deltas and deltas[dapp.address] == OP_FEE
    book.assert_conserved(total_fee())


def test_report_equivocation__equivocator_reports_itself__costs_at_least_dissent(
    attested: Any,
    staking: Any,
    token: Any,
    new_request: Any,
    committee: Any,
    signed: Any,
    accounts: Any,
    dapp: Any,
) -> None:
    rid = new_request()
    a, b, cheat = committee(rid)
    sybil = accounts[11]  # the cheat's second address
    stake = stake_of(staking, cheat)
    sybil_tokens = token.balanceOf(sybil)
    attested.reportEquivocation(rid, signed(cheat, rid, OTHER), signed(cheat, rid, OUT), sender=sybil)
    attested.settle(
        rid, OUT, [signed(a, rid, OUT), signed(b, rid, OUT), signed(cheat, rid, OTHER)], sender=dapp
    )
    slashed, reward = equivocation_cut(stake)
    assert stake - stake_of(staking, cheat) == slashed  # its dissent in the settlement is not slashed again
    assert token.balanceOf(sybil) - sybil_tokens == reward
    net_loss = stake - stake_of(staking, cheat) - (token.balanceOf(sybil) - sybil_tokens)
    assert net_loss >= stake * DISSENT_BPS // BPS


def test_set_params__dissent_rate_the_raised_equivocation_rate_would_cap__refused(
    attested: Any, deployer: Any
) -> None:
    """The equivocation rate is slashBpsDissent * 100 / (100 - pct); were it capped at 100 %, an
    equivocator reporting itself from a second address would lose less than the dissent rate."""
    with ape.reverts(attested.InvalidParams):
        attested.setParams((WINDOW, LATE_WINDOW, 5_001, MAX_REWARD_PCT), sender=deployer)
    attested.setParams((WINDOW, LATE_WINDOW, 5_000, MAX_REWARD_PCT), sender=deployer)  # 100 %: allowed
    assert attested.params().slashBpsDissent == 5_000
    attested.setParams((WINDOW, LATE_WINDOW, DISSENT_BPS, REWARD_PCT), sender=deployer)


def test_report_equivocation__expired_round_after_seed_horizon__still_slashed(
    attested: Any, staking: Any, new_request: Any, committee: Any, signed: Any, challenger: Any, chain: Any
) -> None:
    """`expire` draws the committee while the seed is readable, so equivocation stays provable later."""
    rid = new_request()
    members = committee(rid)
    cheat = members[0]
    a, b = signed(cheat, rid, OUT), signed(cheat, rid, OTHER)
    rnd = attested.getRound(rid)
    chain.mine(rnd.deadline - chain.blocks.height)
    receipt = attested.expire(rid, sender=challenger)
    assert list(receipt.decode_logs(attested.CommitteeDrawn)[0].committee) == [m.address for m in members]
    assert attested.getRound(rid).drawn
    chain.mine(rnd.seedBlock + SEED_HORIZON + 1 - chain.blocks.height)
    assert staking.operatorInfo(cheat).stake > 0
    stake = stake_of(staking, cheat)
    attested.reportEquivocation(rid, a, b, sender=challenger)
    assert stake_of(staking, cheat) == stake - equivocation_cut(stake)[0]


def test_expire__in_the_last_block_of_the_seed_horizon__committee_drawn(
    attested: Any, new_request: Any, committee: Any, challenger: Any, chain: Any
) -> None:
    rid = new_request()
    members = [m.address for m in committee(rid)]
    rnd = attested.getRound(rid)
    chain.mine(rnd.seedBlock + SEED_HORIZON - 1 - chain.blocks.height)  # runs in seedBlock + 256
    receipt = attested.expire(rid, sender=challenger)
    assert receipt.block_number == rnd.seedBlock + SEED_HORIZON
    assert list(receipt.decode_logs(attested.CommitteeDrawn)[0].committee) == members
    assert list(attested.getCommittee(rid)) == members


def test_report_equivocation__expired_only_after_seed_horizon__seed_unavailable(
    hub: Any,
    attested: Any,
    staking: Any,
    new_request: Any,
    committee: Any,
    signed: Any,
    challenger: Any,
    chain: Any,
    ledger: Any,
    dapp: Any,
) -> None:
    """The documented remaining limit: a round nobody settled or expired while its seed was readable never
    had its committee drawn, and an equivocation in it can no longer be proven."""
    book = ledger()
    rid = new_request()
    cheat = committee(rid)[0]
    a, b = signed(cheat, rid, OUT), signed(cheat, rid, OTHER)
    rnd = attested.getRound(rid)
    chain.mine(rnd.seedBlock + SEED_HORIZON - chain.blocks.height)  # runs in seedBlock + 257
    receipt = attested.expire(rid, sender=challenger)
    assert receipt.block_number == rnd.seedBlock + SEED_HORIZON + 1
    assert receipt.decode_logs(attested.CommitteeDrawn) == []
    assert receipt.decode_logs(hub.RequestSettled)[0].status == Status.EXPIRED
    assert not attested.getRound(rid).drawn and list(attested.getCommittee(rid)) == []
    stake = stake_of(staking, cheat)
    with ape.reverts(attested.SeedUnavailable, requestId=rid, seedBlock=rnd.seedBlock):
        attested.reportEquivocation(rid, a, b, sender=challenger)
    assert stake_of(staking, cheat) == stake
    assert book.deltas() == {dapp.address: total_fee()}
    book.assert_conserved(total_fee())


# ------------------------------------------------------------------ refused signatures


def test_settle__signature_for_another_chain_id__not_a_member(
    attested: Any, new_request: Any, committee: Any, signed: Any, domain: Domain
) -> None:
    rid = new_request()
    a, b, _ = committee(rid)
    foreign = signed(a, rid, OUT, on=Domain(domain.chain_id + 1, domain.verifying_contract))
    stranger = recover(domain, Attestation(rid, foreign[0], a.address, foreign[1]))
    assert stranger != a.address
    with ape.reverts(attested.NotCommitteeMember, requestId=rid, operator=stranger):
        attested.settle(rid, OUT, [foreign, signed(b, rid, OUT)], sender=a)


def test_settle__signature_for_another_verifying_contract__not_a_member(
    attested: Any, consensus: Any, new_request: Any, committee: Any, signed: Any, domain: Domain
) -> None:
    rid = new_request()
    a, b, _ = committee(rid)
    foreign = signed(a, rid, OUT, on=Domain(domain.chain_id, consensus.address))
    stranger = recover(domain, Attestation(rid, foreign[0], a.address, foreign[1]))
    with ape.reverts(attested.NotCommitteeMember, requestId=rid, operator=stranger):
        attested.settle(rid, OUT, [foreign, signed(b, rid, OUT)], sender=a)


def test_settle__signature_replayed_from_another_request__not_agreement(
    attested: Any, new_request: Any, committee: Any, signed: Any, domain: Domain
) -> None:
    first = new_request()
    second = new_request()
    a = committee(first)[0]
    replayed = signed(a, first, OUT)
    stranger = recover(domain, Attestation(second, replayed[0], a.address, replayed[1]))
    assert stranger != a.address
    others = [m for m in committee(second) if m.address != a.address][:1]
    with ape.reverts(attested.NotCommitteeMember, requestId=second, operator=stranger):
        attested.settle(second, OUT, [replayed, *(signed(m, second, OUT) for m in others)], sender=a)


def test_settle__malleable_high_s_signature__bad_signature(
    attested: Any, new_request: Any, committee: Any, signed: Any
) -> None:
    rid = new_request()
    a, b, _ = committee(rid)
    digest, sig = signed(a, rid, OUT)
    r, s, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
    twin = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])  # 27 <-> 28
    with ape.reverts(attested.BadSignature, requestId=rid):
        attested.settle(rid, OUT, [(digest, twin), signed(b, rid, OUT)], sender=a)


def test_settle__malformed_signature__bad_signature(
    attested: Any, new_request: Any, committee: Any, signed: Any
) -> None:
    rid = new_request()
    a, b, _ = committee(rid)
    digest, sig = signed(a, rid, OUT)
    with ape.reverts(attested.BadSignature, requestId=rid):
        attested.settle(rid, OUT, [(digest, sig[:64]), signed(b, rid, OUT)], sender=a)


def test_settle__non_member_signature__not_a_member(
    attested: Any, new_request: Any, committee: Any, signed: Any, operators: list[Any], dapp: Any
) -> None:
    rid = new_request()
    members = committee(rid)
    outsider = next(op for op in operators if op.address not in {m.address for m in members})
    with ape.reverts(attested.NotCommitteeMember, requestId=rid, operator=outsider.address):
        attested.settle(rid, OUT, [signed(members[0], rid, OUT), signed(outsider, rid, OUT)], sender=dapp)
    with ape.reverts(attested.NotCommitteeMember, requestId=rid, operator=dapp.address):
        attested.settle(rid, OUT, [signed(members[0], rid, OUT), signed(dapp, rid, OUT)], sender=dapp)


def test_settle__same_signer_twice__duplicate_signer(
    attested: Any, new_request: Any, committee: Any, signed: Any
) -> None:
    rid = new_request()
    a = committee(rid)[0]
    with ape.reverts(attested.DuplicateSigner, requestId=rid, signer=a.address):
        attested.settle(rid, OUT, [signed(a, rid, OUT), signed(a, rid, OUT)], sender=a)


# ------------------------------------------------------------------ timing


def test_settle__seed_block_not_mined__seed_not_ready(
    attested: Any, new_request: Any, signed: Any, operators: list[Any]
) -> None:
    rid = new_request(seed=False)
    seed_block = attested.getRound(rid).seedBlock
    with ape.reverts(attested.SeedNotReady, requestId=rid, seedBlock=seed_block):
        attested.settle(rid, OUT, [signed(operators[0], rid, OUT)], sender=operators[0])


def test_settle__after_deadline__deadline_passed(
    attested: Any, new_request: Any, committee: Any, signed: Any, chain: Any
) -> None:
    rid = new_request()
    members = committee(rid)
    deadline = attested.getRound(rid).deadline
    assert deadline == attested.getRound(rid).seedBlock + WINDOW
    chain.mine(deadline - chain.blocks.height)
    with ape.reverts(attested.DeadlinePassed, requestId=rid, deadline=deadline):
        attested.settle(rid, OUT, [signed(m, rid, OUT) for m in members], sender=members[0])


def test_settle__in_the_deadline_block__settles(
    attested: Any, new_request: Any, committee: Any, signed: Any, chain: Any, ledger: Any
) -> None:
    book = ledger()
    rid = new_request()
    members = committee(rid)
    deadline = attested.getRound(rid).deadline
    chain.mine(deadline - 1 - chain.blocks.height)
    receipt = attested.settle(rid, OUT, [signed(m, rid, OUT) for m in members], sender=members[0])
    assert receipt.block_number == deadline
    book.assert_conserved(total_fee())


def test_expire__before_deadline__deadline_not_passed(attested: Any, new_request: Any, dapp: Any) -> None:
    rid = new_request()
    deadline = attested.getRound(rid).deadline
    with ape.reverts(attested.DeadlineNotPassed, requestId=rid, deadline=deadline):
        attested.expire(rid, sender=dapp)


def test_expire__after_deadline_without_quorum__full_refund_nobody_penalized(
    hub: Any,
    attested: Any,
    staking: Any,
    new_request: Any,
    committee: Any,
    signed: Any,
    ledger: Any,
    dapp: Any,
    chain: Any,
    challenger: Any,
) -> None:
    book = ledger()
    rid = new_request()
    members = committee(rid)
    stakes = [stake_of(staking, m) for m in members]
    with ape.reverts(attested.NoQuorum, requestId=rid, signatures=1, needed=2):
        attested.settle(rid, OUT, [signed(members[0], rid, OUT), signed(members[1], rid, OTHER)], sender=dapp)
    chain.mine(attested.getRound(rid).deadline - chain.blocks.height)
    receipt = attested.expire(rid, sender=challenger)
    assert receipt.decode_logs(hub.RequestSettled)[0].status == Status.EXPIRED
    assert receipt.decode_logs(hub.MemberPenalized) == []
    assert [stake_of(staking, m) for m in members] == stakes
    result = hub.getResult(rid)
    assert result.status == Status.EXPIRED and bytes(result.output) == b"" and list(result.agreeing) == []
    assert book.deltas() == {dapp.address: total_fee()}
    assert not hub.verifyOutput(rid, OUT)
    with ape.reverts(attested.RoundClosed, requestId=rid):
        attested.expire(rid, sender=challenger)
    with ape.reverts(attested.NothingAccepted, requestId=rid):
        attested.attestLate(rid, signed(members[0], rid, OUT)[1], sender=challenger)
    book.assert_conserved(total_fee())


def test_settle__already_settled__round_closed(
    attested: Any, new_request: Any, committee: Any, signed: Any, dapp: Any
) -> None:
    rid = new_request()
    sigs = [signed(m, rid, OUT) for m in committee(rid)]
    attested.settle(rid, OUT, sigs, sender=dapp)
    with ape.reverts(attested.RoundClosed, requestId=rid):
        attested.settle(rid, OUT, sigs, sender=dapp)


def test_settle_many__one_already_settled__skipped_and_rest_settled(
    hub: Any, attested: Any, new_request: Any, committee: Any, signed: Any, ledger: Any, dapp: Any
) -> None:
    book = ledger()
    rids = [new_request() for _ in range(3)]
    sigs = {rid: [signed(m, rid, OUT) for m in committee(rid)] for rid in rids}
    attested.settle(rids[1], OUT, sigs[rids[1]], sender=dapp)
    receipt, count = settle_many(attested, dapp, rids, [OUT] * 3, [sigs[rid] for rid in rids])
    assert count == 2
    assert [log.requestId for log in receipt.decode_logs(hub.RequestSettled)] == [rids[0], rids[2]]
    assert all(hub.getResult(rid).status == Status.FINALIZED for rid in rids)
    book.assert_conserved(3 * total_fee())


def test_settle_many__same_request_twice_in_a_batch__settled_once(
    hub: Any, attested: Any, new_request: Any, committee: Any, signed: Any, ledger: Any, dapp: Any
) -> None:
    book = ledger()
    rid = new_request()
    sigs = [signed(m, rid, OUT) for m in committee(rid)]
    receipt, count = settle_many(attested, dapp, [rid, rid], [OUT, OTHER], [sigs, []])
    assert count == 1 and len(receipt.decode_logs(hub.RequestSettled)) == 1
    book.assert_conserved(total_fee())


def test_settle_many__one_without_quorum__whole_batch_reverts(
    hub: Any, attested: Any, new_request: Any, committee: Any, signed: Any, dapp: Any
) -> None:
    good, bad = new_request(), new_request()
    sigs = [[signed(m, good, OUT) for m in committee(good)], [signed(committee(bad)[0], bad, OUT)]]
    with ape.reverts(attested.NoQuorum, requestId=bad, signatures=1, needed=2):
        dapp.transfer(attested, 0, data=settle_many_data([good, bad], [OUT, OUT], sigs))
    assert attested.getRound(good).settledBlock == 0


def test_settle_many__lengths_differ__batch_length_mismatch(
    attested: Any, new_request: Any, committee: Any, signed: Any, dapp: Any
) -> None:
    rid = new_request()
    sigs = [signed(m, rid, OUT) for m in committee(rid)]
    for rids, outputs, lists in [([rid], [OUT, OUT], [sigs]), ([rid], [OUT], [sigs, sigs]), ([], [], [])]:
        with ape.reverts(attested.BatchLengthMismatch):
            dapp.transfer(attested, 0, data=settle_many_data(rids, outputs, lists))


def test_settle__output_above_max_output_bytes__output_too_large(
    attested: Any, new_request: Any, committee: Any, signed: Any, dapp: Any
) -> None:
    rid = new_request()
    big = b"\x01" * (MAX_OUTPUT + 1)
    assert attested.getRound(rid).maxOutputBytes == MAX_OUTPUT
    with ape.reverts(attested.OutputTooLarge, requestId=rid, size=MAX_OUTPUT + 1, max=MAX_OUTPUT):
        attested.settle(rid, big, [signed(m, rid, big) for m in committee(rid)], sender=dapp)


def test_views__request_of_another_mode__unknown_request(
    attested: Any, make_request: Any, amodel: Any, dapp: Any
) -> None:
    rid = request_id_of(make_request(model_ref=amodel, mode=1))
    with ape.reverts(attested.UnknownRequest, requestId=rid):
        attested.getRound(rid)
    with ape.reverts(attested.UnknownRequest, requestId=rid):
        attested.settle(rid, OUT, [], sender=dapp)
    with ape.reverts(attested.UnknownRequest, requestId=rid):
        attested.reportDissent(rid, (output_digest(OTHER), b"\x00" * 65), sender=dapp)


# ------------------------------------------------------------------ access control and parameters


def test_open__from_an_eoa__only_hub(attested: Any, dapp: Any, chain: Any) -> None:
    with ape.reverts(attested.OnlyHub, caller=dapp.address):
        attested.open(10**9, (3, chain.blocks.height + 1, MAX_OUTPUT, False, bytes(32)), sender=dapp)


def test_set_params__non_admin__access_control(attested: Any, dapp: Any) -> None:
    with ape.reverts(
        attested.AccessControlUnauthorizedAccount, account=dapp.address, neededRole=b"\x00" * 32
    ):
        attested.setParams((WINDOW, LATE_WINDOW, DISSENT_BPS, REWARD_PCT), sender=dapp)


def test_params__deployed__test_params_and_limits(attested: Any) -> None:
    assert tuple(attested.params()) == (WINDOW, LATE_WINDOW, DISSENT_BPS, REWARD_PCT)
    assert (attested.MIN_LATE_WINDOW(), attested.MAX_REWARD_PCT()) == (MIN_LATE_WINDOW, MAX_REWARD_PCT)


@pytest.mark.parametrize(
    "params",
    [
        (0, LATE_WINDOW, DISSENT_BPS, REWARD_PCT),
        (SEED_HORIZON, LATE_WINDOW, DISSENT_BPS, REWARD_PCT),
        (WINDOW, MIN_LATE_WINDOW - 1, DISSENT_BPS, REWARD_PCT),
        (WINDOW, 0, DISSENT_BPS, REWARD_PCT),
        (WINDOW, LATE_WINDOW, BPS + 1, REWARD_PCT),
        (WINDOW, LATE_WINDOW, DISSENT_BPS, MAX_REWARD_PCT + 1),
        (WINDOW, LATE_WINDOW, DISSENT_BPS, 100),
        (100, 100, DISSENT_BPS, REWARD_PCT),  # 8 + 1 + 200 + 256 > unbonding period 400
    ],
    ids=[
        "window-zero",
        "window-256",
        "late-window-below-min",
        "late-window-zero",
        "dissent-bps",
        "reward-pct-above-max",
        "reward-pct-100",
        "unbonding-too-short",
    ],
)
def test_set_params__out_of_range__invalid_params(
    attested: Any, deployer: Any, params: tuple[int, ...]
) -> None:
    with ape.reverts(attested.InvalidParams):
        attested.setParams(params, sender=deployer)


def test_set_params__at_the_limits__accepted(attested: Any, deployer: Any) -> None:
    # The highest dissent rate with the highest reward: the raised equivocation rate is exactly 100 %.
    for params in [
        (WINDOW, MIN_LATE_WINDOW, BPS // 2, MAX_REWARD_PCT),
        (WINDOW, MIN_LATE_WINDOW, BPS, 0),
        (1, MIN_LATE_WINDOW, 0, 0),
    ]:
        attested.setParams(params, sender=deployer)
        assert tuple(attested.params()) == params


def test_set_params__admin__applies_to_new_rounds_only(
    attested: Any,
    staking: Any,
    token: Any,
    deployer: Any,
    new_request: Any,
    committee: Any,
    signed: Any,
    challenger: Any,
) -> None:
    before = new_request()
    new_params = (10, MIN_LATE_WINDOW, 2_000, 20)
    receipt = attested.setParams(new_params, sender=deployer)
    assert tuple(receipt.decode_logs(attested.ParamsUpdated)[0].params) == new_params
    after = new_request()
    old, new = attested.getRound(before), attested.getRound(after)
    assert (
        old.deadline - old.seedBlock,
        old.lateWindow,
        old.slashBpsDissent,
        old.equivocationRewardPct,
    ) == (WINDOW, LATE_WINDOW, DISSENT_BPS, REWARD_PCT)
    assert (
        new.deadline - new.seedBlock,
        new.lateWindow,
        new.slashBpsDissent,
        new.equivocationRewardPct,
    ) == new_params

    # An equivocation in the round opened before is slashed and rewarded at that round's rates.
    for rid, (dissent_bps, pct) in [(before, (DISSENT_BPS, REWARD_PCT)), (after, (2_000, 20))]:
        cheat = committee(rid)[0]
        stake, tokens = stake_of(staking, cheat), token.balanceOf(challenger)
        attested.reportEquivocation(
            rid, signed(cheat, rid, OUT), signed(cheat, rid, OTHER), sender=challenger
        )
        slashed, reward = equivocation_cut(stake, dissent_bps, pct)
        assert stake - stake_of(staking, cheat) == slashed
        assert token.balanceOf(challenger) - tokens == reward
        assert slashed - reward >= stake * dissent_bps // BPS


# ------------------------------------------------------------------ external inputs


UNAVAILABLE = error_output(ErrorCode.INPUT_UNAVAILABLE)


def test_settle__member_without_the_external_input__not_slashed__fee_held_then_refunded(
    hub: Any,
    attested: Any,
    staking: Any,
    new_request: Any,
    committee: Any,
    signed: Any,
    ledger: Any,
    dapp: Any,
) -> None:
    """The requester decides who gets an external input: INPUT_UNAVAILABLE is never dissent."""
    book = ledger()
    rid = new_request()
    a, b, c = committee(rid)
    stake = stake_of(staking, c)
    sigs = [signed(a, rid, OUT), signed(b, rid, OUT), signed(c, rid, UNAVAILABLE)]
    receipt = attested.settle(rid, OUT, sigs, sender=dapp)
    assert receipt.decode_logs(hub.MemberPenalized) == []
    assert receipt.decode_logs(attested.Attested)[0].dissentMask == 0
    assert stake_of(staking, c) == stake
    assert hub.heldFees(rid) == 1  # it never signed the accepted digest: refunded after the late window
    with ape.reverts(attested.NotDissent):
        attested.reportDissent(rid, signed(c, rid, UNAVAILABLE), sender=dapp)
    assert book.deltas()[a.address] == OP_FEE and c.address not in book.deltas()


def test_settle__quorum_could_not_get_the_input__failed__nobody_paid_or_slashed(
    hub: Any,
    attested: Any,
    staking: Any,
    new_request: Any,
    committee: Any,
    signed: Any,
    ledger: Any,
    dapp: Any,
    model_owner: Any,
) -> None:
    """A quorum on INPUT_UNAVAILABLE did no work: nobody is paid or held for (or lazy members could all
    answer it), everything but the protocol fee goes back, and nobody is slashed."""
    book = ledger()
    rid = new_request()
    a, b, c = committee(rid)
    stake = stake_of(staking, c)
    sigs = [signed(a, rid, UNAVAILABLE), signed(b, rid, UNAVAILABLE), signed(c, rid, OUT)]
    receipt = attested.settle(rid, UNAVAILABLE, sigs, sender=dapp)
    result = hub.getResult(rid)
    assert (result.status, result.errorCode) == (Status.FAILED, ErrorCode.INPUT_UNAVAILABLE)
    assert receipt.decode_logs(hub.MemberPenalized) == []
    assert stake_of(staking, c) == stake
    assert hub.heldFees(rid) == 0
    deltas = book.deltas()
    assert not any(deltas.get(m.address) for m in (a, b, c)) and model_owner.address not in deltas
    assert deltas[dapp.address] == total_fee() - PROTOCOL_FEE
    with ape.reverts(hub.NothingHeld):
        attested.attestLate(rid, signed(c, rid, UNAVAILABLE)[1], sender=dapp)
    book.assert_conserved(total_fee())
    with ape.reverts(attested.NotDissent):
        attested.reportDissent(rid, signed(c, rid, OUT), sender=dapp)
