"""The core's side of the mode interface: registering mode contracts, settlement, penalties and held
fees accepted from a request's own mode contract only, outcomes the core refuses, and the `expire`
safety net. Arbitrary outcomes come from ScriptedMode on a fresh hub (mode bits are registered once
for good, so the session hub never gets extra modes)."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import ape
import pytest
from ape import project
from eth_utils.crypto import keccak
from verinfer.models.codec import output_digest

from tests.conftest import MODEL_FEE, TEST_PARAMS, committee_of, request_id_of, sample_input, sample_output

OUT = sample_output()
OP_FEE = TEST_PARAMS["operator_fee"]
PROTOCOL_FEE = TEST_PARAMS["protocol_fee"]
FEE_K3 = MODEL_FEE + 3 * OP_FEE + PROTOCOL_FEE
ZERO = ape.utils.ZERO_ADDRESS
NO_DIGEST = b"\x00" * 32
# IInferenceHub.Status and Fault
NONE, PENDING, FINALIZED, FAILED, DISPUTED, EXPIRED = range(6)
SILENT, WITHHELD, DISSENT, EQUIVOCATION = 1, 2, 3, 4
SCRIPTED = 0x08  # a bit the registry allows without a verifier
WINDOW = 10
BPS = 10_000


@contextmanager
def reverts(error: Any, **inputs: Any) -> Iterator[None]:
    """ape.reverts, and the revert really decoded to `error` (ape passes undecoded reverts silently)."""
    with ape.reverts(error, **inputs) as info:
        yield
    assert type(info.value).__name__ == error.__name__, f"expected {error.__name__}, got {info.value!r}"


def outcome(
    status: int,
    paid: tuple[Any, ...] = (),
    held: int = 0,
    penalized: tuple[Any, ...] = (),
    faults: tuple[int, ...] = (),
    bps: tuple[int, ...] = (),
    digest: bytes | None = None,
    error_code: int = 0,
) -> tuple[Any, ...]:
    """An IInferenceHub.Outcome; an accepted one (Finalized, Failed) defaults to OUT's digest."""
    if digest is None:
        digest = keccak(OUT) if status in (FINALIZED, FAILED) else NO_DIGEST
    return (status, error_code, digest, list(paid), list(penalized), list(faults), list(bps), held)


@pytest.fixture(scope="module", autouse=True)
def _session_state(model, consensus, act, by_address, make_request, fund):
    """The session's model (operators staked) and helpers exist before this module's first test, so
    ape's per-test chain snapshots never undo them."""


@pytest.fixture
def core(deployer, treasury, token, registry, staking, hub):
    """A fresh hub on the session's token, registry and staking."""
    return deployer.deploy(
        project.InferenceHub, token, registry, staking, treasury, tuple(hub.params()), deployer
    )


@pytest.fixture
def scripted(core, deployer):
    """A ScriptedMode registered on the fresh hub for SCRIPTED."""
    mode = deployer.deploy(project.ScriptedMode, core, WINDOW)
    core.registerMode(SCRIPTED, mode, sender=deployer)
    return mode


@pytest.fixture
def scripted_model(make_model):
    """A version of the session's model that allows consensus and the scripted bit."""
    return make_model("risk", modes=0x01 | SCRIPTED, max_output_bytes=1_000)


@pytest.fixture
def ask(core, scripted, scripted_model, dapp, fund) -> Callable[..., Any]:
    """Requests from the fresh hub as the dapp; returns the receipt."""

    def _ask(k: int = 3, mode: int = SCRIPTED, digest_only: bool = False) -> Any:
        fee = core.quote(*scripted_model, k)
        fund(dapp, fee, core)
        return core.requestInference(
            (*scripted_model, mode, k, 0, digest_only, fee, sample_input()), sender=dapp
        )

    return _ask


@pytest.fixture
def srid(ask):
    return request_id_of(ask())


@pytest.fixture
def grant_slasher(staking, deployer):
    def _grant(target: Any) -> None:
        staking.grantRole(staking.SLASHER_ROLE(), target, sender=deployer)

    return _grant


def credits(core: Any, accounts: list[Any]) -> list[int]:
    return [core.claimable(a) for a in accounts]


# ---------------------------------------------------------------------------------------- registration


def test_register_mode__single_bit_once_for_good__emits(core, deployer, dapp):
    first = deployer.deploy(project.ScriptedMode, core, WINDOW)
    second = deployer.deploy(project.ScriptedMode, core, WINDOW)
    assert core.modeContract(0x04) == ZERO
    receipt = core.registerMode(0x04, first, sender=deployer)
    assert receipt.events == [core.ModeRegistered(0x04, first)]
    assert core.modeContract(0x04) == first.address
    for again in (first, second):  # never swapped, not even for the same contract
        with reverts(core.InvalidMode, mode=0x04):
            core.registerMode(0x04, again, sender=deployer)
    assert core.modeContract(0x04) == first.address


@pytest.mark.parametrize("bit", [0x00, 0x03, 0x05, 0x81, 0xFF])
def test_register_mode__not_a_single_bit__invalid_mode(core, deployer, bit):
    mode = deployer.deploy(project.ScriptedMode, core, WINDOW)
    with reverts(core.InvalidMode, mode=bit):
        core.registerMode(bit, mode, sender=deployer)
    assert core.modeContract(bit) == ZERO


def test_register_mode__zero_address__invalid_mode(core, deployer):
    with reverts(core.InvalidMode, mode=0x08):
        core.registerMode(0x08, ZERO, sender=deployer)


def test_register_mode__not_admin__reverts(core, deployer, dapp):
    mode = deployer.deploy(project.ScriptedMode, core, WINDOW)
    with reverts(core.AccessControlUnauthorizedAccount):
        core.registerMode(0x04, mode, sender=dapp)
    assert core.modeContract(0x04) == ZERO


def test_register_mode__session_hub__consensus_on_its_bit_for_good(hub, consensus, deployer):
    assert consensus.MODE() == 0x01 and hub.MODE_CONSENSUS() == 0x01
    assert hub.modeContract(0x01) == consensus.address
    assert consensus.hub() == hub.address
    with reverts(hub.InvalidMode, mode=0x01):
        hub.registerMode(0x01, deployer, sender=deployer)
    assert hub.modeContract(0x02) == ZERO  # no ZK mode contract yet


def test_request__mode_bit_without_a_contract__mode_not_supported(core, scripted, ask):
    """The version allows consensus, but the fresh hub has no contract for that bit."""
    with reverts(core.ModeNotSupported, mode=0x01):
        ask(mode=0x01)


def test_request__opens_the_round_in_its_mode_contract(core, scripted, scripted_model, ask, dapp):
    receipt = ask(k=2, digest_only=True)
    rid = request_id_of(receipt)
    seed_block = receipt.block_number + 1
    assert receipt.events.filter(scripted.RoundOpened) == [
        scripted.RoundOpened(rid, 2, seed_block, 1_000, True)
    ]
    opened = scripted.opened(rid)
    assert tuple(opened)[:5] == (2, seed_block, 1_000, True, seed_block + WINDOW)
    created = receipt.decode_logs(core.RequestCreated)[0]
    assert bytes(opened.inputHash) == keccak(bytes(created.input))  # what a mode binds a re-run to
    assert (created.mode, created.seedBlock, created.deadline) == (SCRIPTED, seed_block, seed_block + WINDOW)
    r = core.getRequest(rid)
    assert (r.requester, r.status, r.mode, r.k, r.digestOnly) == (dapp.address, PENDING, SCRIPTED, 2, True)


def test_open__called_by_an_eoa__only_hub(consensus, dapp, deployer):
    for caller in (dapp, deployer):
        with reverts(consensus.OnlyHub, caller=caller.address):
            consensus.open(1, (3, 10, 1_000, False, bytes(32)), sender=caller)


# ----------------------------------------------------------------------------------- only the mode


def test_settle_penalize_held__by_an_eoa__not_request_mode(hub, make_request, by_address, dapp, deployer):
    rid = request_id_of(make_request())
    member = committee_of(hub, by_address, rid)[0]
    for caller in (dapp, deployer, member):  # the requester, the admin, a committee member
        with reverts(hub.NotRequestMode, requestId=rid, caller=caller.address):
            hub.settle(rid, outcome(FINALIZED, paid=(member,)), OUT, sender=caller)
        with reverts(hub.NotRequestMode, requestId=rid, caller=caller.address):
            hub.penalize(rid, member, DISSENT, 1_000, caller, 5_000, sender=caller)
        with reverts(hub.NotRequestMode, requestId=rid, caller=caller.address):
            hub.payHeld(rid, caller, sender=caller)
        with reverts(hub.NotRequestMode, requestId=rid, caller=caller.address):
            hub.releaseHeld(rid, sender=caller)
    assert hub.getRequest(rid).status == PENDING


def test_settle_penalize_held__by_another_contract__not_request_mode(
    core, scripted, srid, deployer, operators
):
    rogue = deployer.deploy(project.ScriptedMode, core, WINDOW)  # never registered
    other = deployer.deploy(project.ScriptedMode, core, WINDOW)
    core.registerMode(0x04, other, sender=deployer)  # registered, but for another bit
    for caller in (rogue, other):
        with reverts(core.NotRequestMode, requestId=srid, caller=caller.address):
            caller.settle(srid, outcome(FINALIZED, paid=(operators[0],)), OUT, sender=deployer)
        with reverts(core.NotRequestMode, requestId=srid, caller=caller.address):
            caller.penalize(srid, operators[0], DISSENT, 1_000, ZERO, 0, sender=deployer)
        with reverts(core.NotRequestMode, requestId=srid, caller=caller.address):
            caller.payHeld(srid, operators[0], sender=deployer)
        with reverts(core.NotRequestMode, requestId=srid, caller=caller.address):
            caller.releaseHeld(srid, sender=deployer)
    assert core.getRequest(srid).status == PENDING


def test_settle_and_penalize__unknown_request__reverts(core, scripted, deployer, operators):
    with reverts(core.UnknownRequest, requestId=999):
        scripted.settle(999, outcome(EXPIRED), b"", sender=deployer)
    with reverts(core.UnknownRequest, requestId=999):
        scripted.penalize(999, operators[0], DISSENT, 1_000, ZERO, 0, sender=deployer)
    with reverts(core.UnknownRequest, requestId=999):
        scripted.payHeld(999, operators[0], sender=deployer)
    with reverts(core.UnknownRequest, requestId=999):
        scripted.releaseHeld(999, sender=deployer)


# --------------------------------------------------------------------------------------- outcomes


def test_settle__invalid_outcome__refused_request_stays_pending(core, scripted, srid, deployer, operators):
    a, b, c, d = operators[:4]
    bad = [
        outcome(NONE),
        outcome(PENDING),
        outcome(FINALIZED, paid=(a, b, c, d)),  # more paid than k
        outcome(FINALIZED, paid=(a, b), held=2),  # paid + held above k
        outcome(FAILED, held=4),
        outcome(DISPUTED, paid=(a,)),  # only an accepted output pays
        outcome(DISPUTED, held=1),
        outcome(EXPIRED, paid=(a,)),
        outcome(EXPIRED, held=1),
        outcome(FINALIZED, paid=(a,), penalized=(b,), faults=(), bps=(1_000,)),
        outcome(FINALIZED, paid=(a,), penalized=(b,), faults=(DISSENT,), bps=()),
        outcome(DISPUTED, penalized=(), faults=(SILENT,), bps=(100,)),
        outcome(FINALIZED, paid=(a,), digest=keccak(b"other bytes")),  # output is not the digest's
        outcome(FINALIZED, paid=(a,), error_code=2),  # an error code without Failed
        outcome(FAILED, paid=(a,)),  # Failed without an error code
        outcome(EXPIRED, digest=keccak(OUT)),  # a digest without an accepted output
    ]
    for o in bad:
        with reverts(core.InvalidOutcome, requestId=srid):
            scripted.settle(srid, o, OUT, sender=deployer)
    with reverts(core.InvalidOutcome, requestId=srid):  # bytes without an accepted output
        scripted.settle(srid, outcome(DISPUTED), OUT, sender=deployer)
    assert core.getRequest(srid).status == PENDING
    # paid + held == k is the most an outcome may account for
    receipt = scripted.settle(srid, outcome(FINALIZED, paid=(a, b), held=1), OUT, sender=deployer)
    assert receipt.decode_logs(core.RequestSettled)[0].status == FINALIZED
    with reverts(core.RequestNotPending, requestId=srid):
        scripted.settle(srid, outcome(EXPIRED), b"", sender=deployer)


def test_settle__finalized__pays_as_reported_and_slashes(
    core, scripted, srid, deployer, operators, dapp, model_owner, treasury, staking, grant_slasher
):
    grant_slasher(core)
    a, b, c = operators[:3]
    stake_c = staking.operatorInfo(c).stake
    accounts = [a, b, c, model_owner, treasury, dapp]
    before = credits(core, accounts)
    digest = output_digest(OUT)
    o = outcome(FINALIZED, paid=(a, b), penalized=(c,), faults=(DISSENT,), bps=(1_000,), digest=digest)
    receipt = scripted.settle(srid, o, OUT, sender=deployer)
    deltas = [x - y for x, y in zip(credits(core, accounts), before, strict=True)]
    assert deltas == [OP_FEE, OP_FEE, 0, MODEL_FEE, PROTOCOL_FEE, OP_FEE]  # c's fee back to the requester
    assert sum(deltas) == FEE_K3
    assert receipt.events.filter(core.RequestSettled) == [
        core.RequestSettled(srid, FINALIZED, digest, 0, OUT)
    ]
    assert receipt.events.filter(core.FeesDistributed) == [
        core.FeesDistributed(srid, OP_FEE, 2, MODEL_FEE, PROTOCOL_FEE, OP_FEE)
    ]
    slashed = stake_c * 1_000 // BPS
    assert receipt.events.filter(core.MemberPenalized) == [core.MemberPenalized(srid, c, DISSENT, slashed)]
    assert staking.operatorInfo(c).stake == stake_c - slashed
    result = core.getResult(srid)
    assert (result.status, bytes(result.outputDigest), bytes(result.output)) == (FINALIZED, digest, OUT)
    assert list(result.agreeing) == [a.address, b.address]
    assert result.settledBlock == receipt.block_number
    assert core.verifyOutput(srid, OUT) and not core.verifyOutput(srid, sample_output(0.9))
    assert core.heldFees(srid) == 0


def test_settle__failed__model_owner_unpaid_and_its_fee_refunded(
    core, scripted, srid, deployer, operators, dapp, model_owner, treasury
):
    accounts = [*operators[:3], model_owner, treasury, dapp]
    before = credits(core, accounts)
    receipt = scripted.settle(srid, outcome(FAILED, paid=operators[:3], error_code=3), OUT, sender=deployer)
    deltas = [x - y for x, y in zip(credits(core, accounts), before, strict=True)]
    assert deltas == [OP_FEE, OP_FEE, OP_FEE, 0, PROTOCOL_FEE, MODEL_FEE]
    assert receipt.events.filter(core.FeesDistributed) == [
        core.FeesDistributed(srid, OP_FEE, 3, 0, PROTOCOL_FEE, MODEL_FEE)
    ]
    assert receipt.decode_logs(core.RequestSettled)[0].errorCode == 3


@pytest.mark.parametrize("status", [DISPUTED, EXPIRED])
def test_settle__nothing_accepted__full_refund_nobody_paid(
    core, scripted, srid, deployer, operators, dapp, model_owner, treasury, status
):
    accounts = [*operators[:3], model_owner, treasury, dapp]
    before = credits(core, accounts)
    receipt = scripted.settle(srid, outcome(status), b"", sender=deployer)
    deltas = [x - y for x, y in zip(credits(core, accounts), before, strict=True)]
    assert deltas == [0, 0, 0, 0, 0, FEE_K3]
    assert receipt.events.filter(core.FeesDistributed) == [core.FeesDistributed(srid, 0, 0, 0, 0, FEE_K3)]
    assert core.getResult(srid).status == status
    assert not core.verifyOutput(srid, b"")


# ------------------------------------------------------------------------------------------ held fees


def test_held_fees__pay_held_then_release__conserves_the_escrow(
    core, scripted, token, srid, deployer, operators, dapp, model_owner, treasury
):
    a, b, c = operators[:3]
    with reverts(core.NothingHeld, requestId=srid):  # pending: nothing held yet
        scripted.payHeld(srid, b, sender=deployer)
    accounts = [a, b, c, model_owner, treasury, dapp]
    before = credits(core, accounts)
    escrow = token.balanceOf(core)
    assert escrow == FEE_K3
    receipt = scripted.settle(
        srid, outcome(FINALIZED, paid=(a,), held=2, digest=output_digest(OUT)), OUT, sender=deployer
    )
    assert core.heldFees(srid) == 2
    assert receipt.events.filter(core.FeesDistributed) == [
        core.FeesDistributed(srid, OP_FEE, 1, MODEL_FEE, PROTOCOL_FEE, 0)  # nothing refunded yet
    ]
    with reverts(core.NotRequestMode, requestId=srid, caller=dapp.address):
        core.payHeld(srid, b, sender=dapp)

    receipt = scripted.payHeld(srid, b, sender=deployer)
    assert receipt.events == [core.HeldFeePaid(srid, b, OP_FEE)]
    assert core.heldFees(srid) == 1
    assert core.claimable(b) - before[1] == OP_FEE

    receipt = scripted.releaseHeld(srid, sender=deployer)
    assert receipt.events == [core.HeldFeesRefunded(srid, OP_FEE)]
    assert core.heldFees(srid) == 0
    with reverts(core.NothingHeld, requestId=srid):
        scripted.payHeld(srid, c, sender=deployer)
    with reverts(core.NothingHeld, requestId=srid):
        scripted.releaseHeld(srid, sender=deployer)

    deltas = [x - y for x, y in zip(credits(core, accounts), before, strict=True)]
    assert deltas == [OP_FEE, OP_FEE, 0, MODEL_FEE, PROTOCOL_FEE, OP_FEE]
    assert sum(deltas) == escrow
    for account in (a, b, model_owner, treasury, dapp):
        core.claim(sender=account)
    assert token.balanceOf(core) == 0


def test_held_fees__all_paid__nothing_left_to_release(core, scripted, srid, deployer, operators):
    scripted.settle(srid, outcome(FAILED, paid=operators[:2], held=1, error_code=2), OUT, sender=deployer)
    scripted.payHeld(srid, operators[2], sender=deployer)
    with reverts(core.NothingHeld, requestId=srid):
        scripted.releaseHeld(srid, sender=deployer)
    assert core.claimable(operators[2]) == OP_FEE


# ------------------------------------------------------------------------------------------ penalize


def test_penalize__pending_or_settled__slashes_with_a_reporter_reward(
    core, scripted, srid, deployer, operators, challenger, staking, token, treasury, grant_slasher
):
    op = operators[3]
    # bps zero takes nothing and never calls the staking contract
    receipt = scripted.penalize(srid, op, EQUIVOCATION, 0, challenger, 5_000, sender=deployer)
    assert receipt.return_value == 0 and receipt.events.filter(core.MemberPenalized) == []
    with ape.reverts(staking.AccessControlUnauthorizedAccount):  # the fresh hub is no slasher yet
        scripted.penalize(srid, op, EQUIVOCATION, 1_000, challenger, 5_000, sender=deployer)
    grant_slasher(core)
    for settle in (False, True):
        if settle:
            scripted.settle(srid, outcome(DISPUTED), b"", sender=deployer)
        stake = staking.operatorInfo(op).stake
        reporter_before, treasury_before = token.balanceOf(challenger), token.balanceOf(treasury)
        receipt = scripted.penalize(srid, op, EQUIVOCATION, 1_000, challenger, 5_000, sender=deployer)
        slashed = stake * 1_000 // BPS
        assert receipt.return_value == slashed
        assert receipt.events.filter(core.MemberPenalized) == [
            core.MemberPenalized(srid, op, EQUIVOCATION, slashed)
        ]
        assert staking.operatorInfo(op).stake == stake - slashed
        assert token.balanceOf(challenger) - reporter_before == slashed // 2
        assert token.balanceOf(treasury) - treasury_before == slashed - slashed // 2


# ------------------------------------------------------------------------------------------- expire


def test_expire__before_the_mode_deadline_plus_grace__too_early(hub, consensus, make_request, dapp, chain):
    rid = request_id_of(make_request())
    assert hub.EXPIRY_GRACE() == 256
    expires_after = consensus.deadlineOf(rid) + 256
    assert consensus.deadlineOf(rid) == consensus.getRound(rid).revealDeadline
    with reverts(hub.TooEarlyToExpire, requestId=rid, expiresAfter=expires_after):
        hub.expire(rid, sender=dapp)
    chain.mine(expires_after - 1 - chain.blocks.height)  # the next transaction is in block expiresAfter
    with reverts(hub.TooEarlyToExpire, requestId=rid, expiresAfter=expires_after):
        hub.expire(rid, sender=dapp)
    chain.mine(max(0, expires_after - chain.blocks.height))  # (ape may have mined the reverted one)
    receipt = hub.expire(rid, sender=dapp)
    assert receipt.block_number == expires_after + 1
    assert hub.getRequest(rid).status == EXPIRED


def test_expire__after_grace__full_refund_nobody_penalized_late_finalize_refused(
    hub, consensus, staking, token, make_request, by_address, act, challenger, dapp, treasury, chain
):
    rid = request_id_of(make_request())
    committee = committee_of(hub, by_address, rid)
    act.commit(committee[0], rid, OUT)  # committed, never revealed: would be Withheld in the mode
    stakes = [staking.operatorInfo(op).stake for op in committee]
    accounts = [*committee, treasury, dapp]
    before = credits(hub, accounts)
    chain.mine(consensus.deadlineOf(rid) + hub.EXPIRY_GRACE() - chain.blocks.height)
    receipt = hub.expire(rid, sender=challenger)  # anyone
    assert receipt.events.filter(hub.RequestSettled) == [hub.RequestSettled(rid, EXPIRED, NO_DIGEST, 0, b"")]
    assert receipt.events.filter(hub.FeesDistributed) == [hub.FeesDistributed(rid, 0, 0, 0, 0, FEE_K3)]
    assert receipt.events.filter(hub.MemberPenalized) == []
    assert receipt.events.filter(hub.CallbackExecuted) == []
    deltas = [x - y for x, y in zip(credits(hub, accounts), before, strict=True)]
    assert deltas == [0, 0, 0, 0, FEE_K3]
    assert [staking.operatorInfo(op).stake for op in committee] == stakes
    result = hub.getResult(rid)
    assert (result.status, bytes(result.outputDigest), bytes(result.output)) == (EXPIRED, NO_DIGEST, b"")
    assert list(result.agreeing) == [] and result.settledBlock == receipt.block_number
    assert not hub.verifyOutput(rid, OUT)
    with reverts(hub.RequestNotPending, requestId=rid, status=EXPIRED):
        hub.expire(rid, sender=challenger)
    # The mode never learnt of it: its own settlement now bounces off the core.
    with reverts(hub.RequestNotPending, requestId=rid, status=EXPIRED):
        consensus.finalize(rid, sender=challenger)
    assert [staking.operatorInfo(op).stake for op in committee] == stakes
    balance = token.balanceOf(dapp)
    hub.claim(sender=dapp)
    assert token.balanceOf(dapp) - balance == before[-1] + FEE_K3


def test_expire__consumer__called_back_with_expired(hub, consensus, deployer, make_request, chain, dapp):
    consumer = deployer.deploy(project.RecordingConsumer, hub)
    rid = request_id_of(make_request(consumer=consumer, callback_gas=200_000))
    chain.mine(consensus.deadlineOf(rid) + hub.EXPIRY_GRACE() - chain.blocks.height)
    receipt = hub.expire(rid, sender=dapp)
    assert receipt.events.filter(hub.CallbackExecuted) == [hub.CallbackExecuted(rid, consumer, True)]
    assert (consumer.lastRequestId(), consumer.lastStatus(), bytes(consumer.lastOutput())) == (
        rid,
        EXPIRED,
        b"",
    )
    assert hub.getResult(rid).callbackResult == 1
    assert hub.claimable(consumer) == FEE_K3


def test_expire__settled_or_unknown__reverts(core, scripted, srid, deployer, dapp, chain):
    with reverts(core.UnknownRequest, requestId=999):
        core.expire(999, sender=dapp)
    scripted.settle(srid, outcome(DISPUTED), b"", sender=deployer)
    chain.mine(WINDOW + 256 + 1)
    with reverts(core.RequestNotPending, requestId=srid, status=DISPUTED):
        core.expire(srid, sender=dapp)


def test_expire__follows_its_mode_deadline(core, scripted, ask, dapp, chain):
    receipt = ask()
    rid = request_id_of(receipt)
    expires_after = receipt.block_number + 1 + WINDOW + 256
    chain.mine(expires_after - 1 - chain.blocks.height)
    with reverts(core.TooEarlyToExpire, requestId=rid, expiresAfter=expires_after):
        core.expire(rid, sender=dapp)
    chain.mine(max(0, expires_after - chain.blocks.height))
    assert core.expire(rid, sender=dapp).events.filter(core.RequestSettled) == [
        core.RequestSettled(rid, EXPIRED, NO_DIGEST, 0, b"")
    ]
    assert core.claimable(dapp) == FEE_K3
