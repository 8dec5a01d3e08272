"""What an attacker tries against the consensus guarantee: choosing committees, feeding consumers,
starving callbacks, stranding refunds, outputs too large to reveal, and escaping penalties."""

import ape
import pytest
from eth_utils import keccak
from hexbytes import HexBytes
from verinfer.chain.contracts import Status
from verinfer.models.codec import ErrorCode, Tensor, encode_tensors, error_output
from web3.exceptions import ContractCustomError

from tests.conftest import (
    E18,
    TEST_PARAMS,
    committee_of,
    next_epoch,
    request_id_of,
    sample_input,
    sample_output,
)

OUT = sample_output(0.25)
OTHER = sample_output(0.75)
DISSENT = 3


@pytest.fixture(scope="module")
def fresh_ops(fund, staking, model):
    """Five operators with equal stake that no other test slashes (after the session's default model,
    so that session fixture is not created inside this module's snapshot)."""
    ops = [ape.accounts.test_accounts.generate_test_account() for _ in range(5)]
    for op in ops:
        ape.chain.set_balance(op.address, 10 * E18)
    return ops


@pytest.fixture(scope="module")
def fair_model(make_model, join, fresh_ops):
    model_ref = make_model("trust-draw")
    join(fresh_ops, model_ref[0])
    return model_ref


@pytest.fixture(scope="module")
def gambler(project, deployer, hub, consensus, token):
    contract = deployer.deploy(project.CommitteeGambler, hub, consensus)
    token.mint(contract, 1_000 * E18, sender=deployer)
    return contract


def request_tuple(hub, model_ref, k=3, callback_gas=0, digest_only=False, input_bytes=None):
    fee = hub.quote(*model_ref, k)
    return (*model_ref, 1, k, callback_gas, digest_only, fee, input_bytes or sample_input())


def test_requester__cannot_see_its_committee_in_the_request_transaction(
    hub, token, gambler, fair_model, fresh_ops
):
    """A contract that requests only when its colluders would hold the majority never gets to request:
    inside the transaction that makes the request, the committee does not exist yet."""
    colluders = [op.address for op in fresh_ops[:2]]
    for _ in range(3):
        with ape.reverts(gambler.CommitteeUnknown):
            gambler.gamble(token, request_tuple(hub, fair_model), colluders, sender=fresh_ops[0])


def test_requester__blind_requests_get_colluding_majorities_at_chance(
    hub, dapp, fund, by_address, fair_model, fresh_ops
):
    """Two colluders of five equal operators hold the majority of a 3-member committee with probability
    3/10. Without a way to condition, 40 requests see about 12 such committees (3 sigma: 4 to 20)."""
    colluders = {op.address for op in fresh_ops[:2]}
    fund(dapp, 100 * hub.quote(*fair_model, 3), hub)
    favourable = 0
    for _ in range(40):
        rid = request_id_of(hub.requestInference(request_tuple(hub, fair_model), sender=dapp))
        ape.chain.mine(1)
        committee = {op.address for op in committee_of(hub, {op.address: op for op in fresh_ops}, rid)}
        favourable += len(committee & colluders) >= 2
    assert 4 <= favourable <= 20, favourable


def test_operator_joining_after_the_seed__is_never_drawn_for_it(
    hub, consensus, staking, fund, make_request, fair_model, fresh_ops, dapp
):
    """A whale that stakes and joins once a request's seed exists (even an epoch later, before the draw)
    does not change that request's committee."""
    rids = [request_id_of(make_request(model_ref=fair_model)) for _ in range(3)]
    by_address = {op.address: op for op in fresh_ops}
    before = {rid: [op.address for op in committee_of(hub, by_address, rid)] for rid in rids}
    whale = ape.accounts.test_accounts.generate_test_account()
    ape.chain.set_balance(whale.address, 10 * E18)
    fund(whale, 100_000 * E18, staking)
    staking.stake(100_000 * E18, sender=whale)
    staking.register(fair_model[0], bytes(32), sender=whale)
    next_epoch(staking)
    for rid in rids:
        drawn = list(consensus.draw(rid, sender=dapp).events.filter(consensus.CommitteeDrawn)[0].committee)
        assert drawn == before[rid] and whale.address not in drawn
    # Requests made from now on do draw from the whale's weight (99% of the pool's stake).
    later = [request_id_of(make_request(model_ref=fair_model)) for _ in range(3)]
    ape.chain.mine(1)
    assert all(whale.address in consensus.previewCommittee(rid) for rid in later)


def test_consumer__refuses_results_it_did_not_ask_for(
    hub, project, deployer, make_request, by_address, act, dapp
):
    """Anyone can request and reveal anything for a k=1 request of its own model, but the result only
    ever goes back to whoever requested: a victim consumer never hears of it."""
    victim = deployer.deploy(project.RecordingConsumer, hub)
    with ape.reverts(victim.OnlyHub):
        victim.onInferenceResult(1, 2, OUT, sender=dapp)
    rid = request_id_of(make_request(k=1, callback_gas=200_000))  # made by the dapp, not the victim
    (op,) = committee_of(hub, by_address, rid)
    act.commit(op, rid, OTHER)
    receipt = act.reveal(op, rid, OTHER)
    assert receipt.events.filter(hub.CallbackExecuted) == [hub.CallbackExecuted(rid, dapp, True)]
    assert victim.calls() == 0


def test_callback__gets_its_whole_limit_with_a_large_output_under_the_least_gas(
    hub, consensus, staking, model, project, deployer, make_model, operators, make_request, by_address, act
):
    """The 63/64 check runs after the call data is built: a 60 KB output under the smallest gas limit
    that settles still leaves the callback its full limit."""
    model_ref = make_model("large-output", max_output_bytes=60_000)
    for op in operators:
        staking.register(model_ref[0], bytes(32), sender=op)
    next_epoch(staking)
    probe = deployer.deploy(project.GasProbeConsumer, hub)
    limit = 1_000_000
    rid = request_id_of(
        make_request(k=1, model_ref=model_ref, consumer=probe, callback_gas=limit, digest_only=True)
    )
    (op,) = committee_of(hub, by_address, rid)
    output = bytes(range(256)) * 234  # 59,904 bytes
    act.commit(op, rid, output)
    salt = act.salt(op, rid)
    least = consensus.reveal.estimate_gas_cost(rid, output, salt, sender=op)
    # Just under it the hub refuses to settle. Replayed as a plain eth_call with that gas (ape's own
    # call drops the limit, and a reverted transaction makes ape render the call trace of the 60 KB
    # output in reveal, settle and callback, which takes minutes).
    starve = {
        "from": op.address,
        "to": consensus.address,
        "data": consensus.reveal.encode_input(rid, output, salt),
        "gas": least - 20_000,
    }
    with pytest.raises(ContractCustomError) as starved:
        ape.chain.provider.web3.eth.call(starve)
    assert HexBytes(starved.value.data)[:4] == keccak(b"InsufficientGasForCallback(uint256,uint256)")[:4]
    receipt = consensus.reveal(rid, output, salt, sender=op, gas_limit=least)
    assert receipt.events.filter(hub.CallbackExecuted)[0].success
    assert probe.lastGas() >= limit - 10_000, probe.lastGas()


def test_consumer__recovers_refunds_of_requests_that_expired(
    hub, consensus, token, project, deployer, make_request, dapp
):
    consumer = deployer.deploy(project.RecordingConsumer, hub)
    rid = request_id_of(make_request(consumer=consumer, callback_gas=200_000))
    ape.chain.mine(TEST_PARAMS["commit_window"] + 1)
    consensus.finalize(rid, sender=dapp)
    assert (consumer.lastRequestId(), consumer.lastStatus()) == (rid, Status.EXPIRED)
    owed = hub.claimable(consumer)
    assert owed > 0
    before = token.balanceOf(consumer)
    consumer.claimRefunds(sender=dapp)  # anyone may trigger it; the tokens go to the consumer
    assert token.balanceOf(consumer) - before == owed and hub.claimable(consumer) == 0
    assert consumer.claimRefunds(sender=dapp).return_value == 0


def test_lending_gate__expired_application_refunds_the_applicant(
    hub, consensus, token, project, deployer, fund, model, dapp
):
    gate = deployer.deploy(project.LendingGate, hub, token, *model, "probabilities", 1, 500_000, 50 * E18)
    fee = hub.quote(*model, 3)
    fund(dapp, fee, gate)
    rid = gate.applyForLoan(sample_input(), sender=dapp).decode_logs(gate.LoanRequested)[0].requestId
    ape.chain.mine(TEST_PARAMS["commit_window"] + 2)
    consensus.finalize(rid, sender=dapp)
    before = token.balanceOf(dapp)
    gate.refundFee(rid, sender=dapp)
    assert token.balanceOf(dapp) - before == fee
    with ape.reverts(gate.NothingRefundable):
        gate.refundFee(rid, sender=dapp)


def test_output__larger_than_allowed__cannot_be_revealed__the_error_settles_failed_without_penalty(
    hub, consensus, staking, model, make_model, operators, make_request, by_address, act
):
    model_ref = make_model("small-output", max_output_bytes=416)
    for op in operators:
        staking.register(model_ref[0], bytes(32), sender=op)
    next_epoch(staking)
    rid = request_id_of(make_request(model_ref=model_ref))
    committee = committee_of(hub, by_address, rid)
    too_large = error_output(ErrorCode.OUTPUT_TOO_LARGE)
    big = sample_output(0.25) + b"\x00" * 416
    act.commit(committee[0], rid, big)
    for op in committee[1:]:
        act.commit(op, rid, too_large)
    ape.chain.mine(TEST_PARAMS["commit_window"])
    with ape.reverts(consensus.OutputTooLarge):
        act.reveal(committee[0], rid, big)
    stakes = [staking.operatorInfo(op).stake for op in committee[1:]]
    act.reveal(committee[1], rid, too_large)
    act.reveal(committee[2], rid, too_large)
    ape.chain.mine(TEST_PARAMS["reveal_window"])
    receipt = consensus.finalize(rid, sender=committee[1])
    settled = receipt.events.filter(hub.RequestSettled)[0]
    assert (settled.status, settled.errorCode) == (Status.FAILED, ErrorCode.OUTPUT_TOO_LARGE)
    assert [staking.operatorInfo(op).stake for op in committee[1:]] == stakes
    penalized = receipt.events.filter(hub.MemberPenalized)
    assert [p.operator for p in penalized] == [committee[0].address]  # it withheld: nobody else pays


def test_rates__changed_mid_request__do_not_reach_it(
    hub, consensus, staking, deployer, make_request, by_address, act
):
    rid = request_id_of(make_request())
    params = consensus.params()
    assert params.slashBpsDissent == TEST_PARAMS["slash_bps_dissent"]
    consensus.setParams(
        (params.commitWindow, params.revealWindow, 9_000, params.slashBpsSilence), sender=deployer
    )
    try:
        assert consensus.params().slashBpsDissent == 9_000
        committee = committee_of(hub, by_address, rid)
        liar = committee[2]
        stake = staking.operatorInfo(liar).stake
        for op, out in zip(committee, (OUT, OUT, OTHER), strict=True):
            act.commit(op, rid, out)
        for op, out in zip(committee, (OUT, OUT, OTHER), strict=True):
            receipt = act.reveal(op, rid, out)
        (penalty,) = receipt.events.filter(hub.MemberPenalized)
        assert penalty.amount == stake * TEST_PARAMS["slash_bps_dissent"] // 10_000
    finally:
        consensus.setParams(params, sender=deployer)


def test_drawn_operator__cannot_withdraw_before_its_request_settles(
    hub, staking, make_request, by_address, act
):
    rid = request_id_of(make_request())
    committee = committee_of(hub, by_address, rid)
    liar = committee[2]
    for op, out in zip(committee, (OUT, OUT, OTHER), strict=True):
        act.commit(op, rid, out)
    info = staking.operatorInfo(liar)
    staking.requestUnbond(info.stake, sender=liar)
    with ape.reverts(staking.NothingToWithdraw):
        staking.withdraw(sender=liar)
    for op, out in zip(committee, (OUT, OUT, OTHER), strict=True):
        receipt = act.reveal(op, rid, out)
    (penalty,) = receipt.events.filter(hub.MemberPenalized)
    assert (
        penalty.fault == DISSENT and penalty.amount == info.stake * TEST_PARAMS["slash_bps_dissent"] // 10_000
    )
    assert staking.operatorInfo(liar).unbonding == info.unbonding + info.stake - penalty.amount
    # Put the stake back so later tests keep five eligible operators.
    ape.chain.mine(TEST_PARAMS["unbonding_period"])
    amount = staking.withdraw(sender=liar).return_value
    ape.project.DevToken.at(hub.token()).approve(staking, amount, sender=liar)
    staking.stake(amount, sender=liar)
    next_epoch(staking)


def test_fee_on_transfer_token__refused_at_escrow(project, deployer, registry, model, dapp, treasury):
    fot = deployer.deploy(project.FeeOnTransferToken)
    settings = (100 * E18, 8, 400, 2, 20, 100)
    staking = deployer.deploy(project.OperatorStaking, fot, registry, settings, treasury, deployer)
    params = (9, 8_192, 65_536, 1_000_000, E18, E18 // 10)
    hub = deployer.deploy(project.InferenceHub, fot, registry, staking, treasury, params, deployer)
    mode = deployer.deploy(project.ConsensusMode, hub, staking, (25, 25, 1_000, 100), deployer)
    hub.registerMode(mode.MODE(), mode, sender=deployer)
    staking.grantRole(staking.SLASHER_ROLE(), hub, sender=deployer)
    fot.setFeeOn(False, sender=deployer)
    op = ape.accounts.test_accounts.generate_test_account()
    ape.chain.set_balance(op.address, 10 * E18)
    fot.mint(op, 1_000 * E18, sender=deployer)
    fot.approve(staking, 2**256 - 1, sender=op)
    staking.stake(1_000 * E18, sender=op)
    staking.register(model[0], bytes(32), sender=op)
    next_epoch(staking)
    fot.setFeeOn(True, sender=deployer)
    fot.mint(dapp, 100 * E18, sender=deployer)
    fot.approve(hub, 2**256 - 1, sender=dapp)
    with ape.reverts(hub.TransferAmountMismatch):
        hub.requestInference((*model, 1, 1, 0, False, 100 * E18, sample_input()), sender=dapp)
    # A deposit is held to the same exact-amount check.
    with ape.reverts(hub.TransferAmountMismatch):
        hub.deposit(dapp, 10 * E18, sender=dapp)


def test_lending_gate__refund_owed__never_lent_out_even_after_the_hub_spent_it_on_a_new_fee(
    hub, consensus, token, project, deployer, fund, model, dapp, by_address, act
):
    """An expired application's refund lands in the gate's hub credit, which then pays the next
    application's fee, leaving that applicant's tokens in the gate: they are still owed back."""
    loan = 50 * E18
    gate = deployer.deploy(project.LendingGate, hub, token, *model, "probabilities", 1, 500_000, loan)
    fee = hub.quote(*model, 3)
    token.mint(gate, loan - fee, sender=deployer)  # one fee short of a loan
    fund(dapp, 2 * fee, gate)
    first = gate.applyForLoan(sample_input(), sender=dapp).decode_logs(gate.LoanRequested)[0].requestId
    ape.chain.mine(TEST_PARAMS["commit_window"] + 2)
    consensus.finalize(first, sender=dapp)  # expired: the fee is owed back
    assert gate.owedRefunds() == fee and hub.claimable(gate) == fee
    second = gate.applyForLoan(sample_input(), sender=dapp).decode_logs(gate.LoanRequested)[0].requestId
    assert hub.claimable(gate) == 0 and token.balanceOf(gate) == loan  # the credit paid the new fee
    ape.chain.mine(1)
    approving = encode_tensors([Tensor("probabilities", (1, 2), (900_000, 100_000), 6)])
    for op in committee_of(hub, by_address, second):
        act.commit(op, second, approving)
    receipts = [act.reveal(op, second, approving) for op in committee_of(hub, by_address, second)]
    decided = receipts[-1].decode_logs(gate.LoanDecided)[0]
    assert decided.decision == 3  # Rejected: lending would spend the first applicant's refund
    before = token.balanceOf(dapp)
    gate.refundFee(first, sender=dapp)
    assert token.balanceOf(dapp) - before == fee and gate.owedRefunds() == 0
