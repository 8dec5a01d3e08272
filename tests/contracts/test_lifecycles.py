"""Whole request lifecycles: agreement, dissent, silence, disputes, expiry, failures, callbacks."""

import ape
import pytest
from eth_utils.crypto import keccak
from verinfer.chain.contracts import Status
from verinfer.models.codec import (
    ErrorCode,
    Tensor,
    decode_tensors,
    encode_tensors,
    error_output,
    output_digest,
)

from tests.conftest import MODEL_FEE, TEST_PARAMS, committee_of, request_id_of, sample_input, sample_output

OUT = sample_output(0.25)
OTHER = sample_output(0.75)
OP_FEE = TEST_PARAMS["operator_fee"]
PROTOCOL_FEE = TEST_PARAMS["protocol_fee"]
TOTAL_FEE = MODEL_FEE + 3 * OP_FEE + PROTOCOL_FEE
FINALIZED, FAILED, DISPUTED, EXPIRED = Status.FINALIZED, Status.FAILED, Status.DISPUTED, Status.EXPIRED


@pytest.fixture(scope="module", autouse=True)
def default_model(model):
    """The session's default model, set up before this module's first test (so its snapshot holds it)."""
    return model


@pytest.fixture
def run(hub, by_address, act, chain):
    """Runs one request: each member commits and reveals its output, or stays silent (None)."""

    def _run(rid, outputs):
        committee = committee_of(hub, by_address, rid)
        plan = list(zip(committee, outputs, strict=True))
        for op, out in plan:
            if out is not None:
                act.commit(op, rid, out)
        if any(out is None for _, out in plan):
            chain.mine(TEST_PARAMS["commit_window"])
        receipts = [act.reveal(op, rid, out) for op, out in plan if out is not None]
        return committee, receipts

    return _run


def test_three_of_three_agree__finalized_and_paid(
    hub, staking, make_request, run, dapp, model_owner, treasury, operators
):
    rid = request_id_of(make_request())
    owner_before, treasury_before = hub.claimable(model_owner), hub.claimable(treasury)
    committee, receipts = run(rid, [OUT, OUT, OUT])
    settled = receipts[-1].decode_logs(hub.RequestSettled)[0]
    assert (settled.status, settled.outputDigest) == (FINALIZED, output_digest(OUT))
    result = hub.getResult(rid)
    assert result.status == FINALIZED and bytes(result.output) == OUT
    assert sorted(result.agreeing) == sorted(op.address for op in committee)
    assert result.settledBlock == receipts[-1].block_number
    assert all(hub.claimable(op) == OP_FEE for op in committee)
    assert hub.claimable(model_owner) - owner_before == MODEL_FEE
    assert hub.claimable(treasury) - treasury_before == PROTOCOL_FEE
    assert hub.claimable(dapp) == 0
    assert all(staking.operatorInfo(op).faults == 0 for op in committee)
    assert decode_tensors(bytes(result.output))[0].name == "probabilities"


SILENT, WITHHELD, DISSENT = 1, 2, 3


def test_two_of_three__dissenter_slashed_to_the_treasury__majority_earns_only_its_fee(
    hub, staking, token, treasury, make_request, run, dapp, by_address
):
    rid = request_id_of(make_request())
    liar = committee_of(hub, by_address, rid)[2].address
    stake_before = staking.operatorInfo(liar).stake
    treasury_before = token.balanceOf(treasury)
    _, receipts = run(rid, [OUT, OUT, OTHER])
    penalized = receipts[-1].decode_logs(hub.MemberPenalized)
    slashed = stake_before * TEST_PARAMS["slash_bps_dissent"] // 10_000
    assert [(p.operator, p.fault, p.amount) for p in penalized] == [(liar, DISSENT, slashed)]
    assert staking.operatorInfo(liar).stake == stake_before - slashed
    assert staking.operatorInfo(liar).faults == 1
    assert token.balanceOf(treasury) - treasury_before == slashed
    result = hub.getResult(rid)
    assert result.status == FINALIZED and liar not in result.agreeing
    for honest in result.agreeing:
        assert hub.claimable(honest) == OP_FEE  # outvoting someone pays nothing extra
    assert hub.claimable(liar) == 0
    assert hub.claimable(dapp) == OP_FEE  # the liar's share goes back to the requester


def test_one_silent__penalized_and_result_still_settles(hub, staking, make_request, run, dapp, by_address):
    rid = request_id_of(make_request())
    silent = committee_of(hub, by_address, rid)[1].address
    stake_before = staking.operatorInfo(silent).stake
    _, receipts = run(rid, [OUT, None, OUT])
    assert receipts[-1].decode_logs(hub.RequestSettled)[0].status == FINALIZED
    penalty = stake_before * TEST_PARAMS["slash_bps_silence"] // 10_000
    assert [(p.operator, p.fault, p.amount) for p in receipts[-1].decode_logs(hub.MemberPenalized)] == [
        (silent, SILENT, penalty)
    ]
    assert staking.operatorInfo(silent).stake == stake_before - penalty
    assert hub.claimable(dapp) == OP_FEE


def test_no_quorum__disputed_refunded_nobody_slashed_for_disagreeing(
    hub, staking, make_request, run, dapp, operators
):
    rid = request_id_of(make_request())
    before = {op.address: staking.operatorInfo(op).stake for op in operators}
    _, receipts = run(rid, [OUT, OTHER, sample_output(0.5)])
    assert receipts[-1].decode_logs(hub.RequestSettled)[0].status == DISPUTED
    assert receipts[-1].decode_logs(hub.MemberPenalized) == []
    assert {op.address: staking.operatorInfo(op).stake for op in operators} == before
    assert hub.claimable(dapp) == TOTAL_FEE
    result = hub.getResult(rid)
    assert result.status == DISPUTED and result.agreeing == [] and bytes(result.output) == b""


def test_nobody_commits__expired_refunded_and_silence_penalized(
    hub, consensus, staking, make_request, dapp, chain, by_address
):
    rid = request_id_of(make_request())
    committee = [op.address for op in committee_of(hub, by_address, rid)]
    chain.mine(TEST_PARAMS["commit_window"] + 1)
    assert consensus.canFinalize(rid)
    receipt = consensus.finalize(rid, sender=dapp)
    assert receipt.decode_logs(hub.RequestSettled)[0].status == EXPIRED
    assert sorted(p.operator for p in receipt.decode_logs(hub.MemberPenalized)) == sorted(committee)
    assert hub.claimable(dapp) == TOTAL_FEE
    assert hub.getResult(rid).status == EXPIRED


def test_committed_but_withheld__charged_the_dissent_rate(
    hub, consensus, staking, make_request, by_address, act, chain, dapp
):
    """A member that sees it is losing gains nothing by staying quiet: withholding costs what lying does."""
    rid = request_id_of(make_request())
    committee = committee_of(hub, by_address, rid)
    for op in committee:
        act.commit(op, rid, OUT)
    act.reveal(committee[0], rid, OUT)
    act.reveal(committee[1], rid, OUT)
    with ape.reverts(consensus.TooEarlyToFinalize):
        consensus.finalize(rid, sender=dapp)
    stake_before = staking.operatorInfo(committee[2]).stake
    chain.mine(TEST_PARAMS["commit_window"] + TEST_PARAMS["reveal_window"])
    receipt = consensus.finalize(rid, sender=dapp)
    assert receipt.decode_logs(hub.RequestSettled)[0].status == FINALIZED
    expected = stake_before * TEST_PARAMS["slash_bps_dissent"] // 10_000
    assert [(p.operator, p.fault, p.amount) for p in receipt.decode_logs(hub.MemberPenalized)] == [
        (committee[2].address, WITHHELD, expected)
    ]


def test_agreed_error_output__failed_with_reason(hub, make_request, run, dapp, model_owner):
    rid = request_id_of(make_request(input_bytes=b"\x01\x02"))
    failure = error_output(ErrorCode.MALFORMED_INPUT)
    owner_before = hub.claimable(model_owner)
    committee, receipts = run(rid, [failure] * 3)
    settled = receipts[-1].decode_logs(hub.RequestSettled)[0]
    assert (settled.status, settled.errorCode) == (FAILED, ErrorCode.MALFORMED_INPUT)
    assert hub.getResult(rid).errorCode == ErrorCode.MALFORMED_INPUT
    assert all(hub.claimable(op) == OP_FEE for op in committee)
    assert hub.claimable(model_owner) == owner_before
    assert hub.claimable(dapp) == MODEL_FEE


@pytest.fixture
def consumers(project, deployer, hub):
    return {
        "recording": deployer.deploy(project.RecordingConsumer, hub),
        "reverting": deployer.deploy(project.RevertingConsumer, hub),
        "burner": deployer.deploy(project.GasBurnerConsumer, hub),
    }


def test_callback__delivers_result(hub, make_request, run, consumers):
    consumer = consumers["recording"]
    rid = request_id_of(make_request(consumer=consumer, callback_gas=800_000))
    _, receipts = run(rid, [OUT, OUT, OUT])
    assert receipts[-1].decode_logs(hub.CallbackExecuted)[0].success
    assert (consumer.lastRequestId(), consumer.lastStatus(), bytes(consumer.lastOutput())) == (
        rid,
        FINALIZED,
        OUT,
    )
    assert hub.getResult(rid).callbackResult == 1


def test_callback__disputed_is_delivered_too(hub, make_request, run, consumers):
    consumer = consumers["recording"]
    rid = request_id_of(make_request(consumer=consumer, callback_gas=800_000))
    run(rid, [OUT, OTHER, sample_output(0.5)])
    assert (consumer.lastStatus(), bytes(consumer.lastOutput())) == (DISPUTED, b"")


@pytest.mark.parametrize("kind", ["reverting", "burner"])
def test_callback__reverting_or_gas_hungry__never_blocks_settlement(hub, make_request, run, consumers, kind):
    consumer = consumers[kind]
    rid = request_id_of(make_request(consumer=consumer, callback_gas=500_000))
    committee, receipts = run(rid, [OUT, OUT, OUT])
    assert not receipts[-1].decode_logs(hub.CallbackExecuted)[0].success
    result = hub.getResult(rid)
    assert (result.status, result.callbackResult) == (FINALIZED, 2)
    assert all(hub.claimable(op) == OP_FEE for op in committee)
    assert receipts[-1].gas_used < 500_000 + 300_000  # the callback limit plus settlement


def test_callback__starved_of_gas__settlement_reverts(
    hub, consensus, make_request, by_address, act, consumers
):
    consumer = consumers["burner"]
    rid = request_id_of(make_request(consumer=consumer, callback_gas=1_000_000))
    committee = committee_of(hub, by_address, rid)
    for op in committee:
        act.commit(op, rid, OUT)
    act.reveal(committee[0], rid, OUT)
    act.reveal(committee[1], rid, OUT)
    with ape.reverts(hub.InsufficientGasForCallback):
        consensus.reveal(rid, OUT, act.salt(committee[2], rid), sender=committee[2], gas_limit=600_000)
    assert hub.getRequest(rid).status == 1


def test_callback__only_hub(consumers, dapp):
    with ape.reverts(consumers["recording"].OnlyHub):
        consumers["recording"].onInferenceResult(1, 2, b"", sender=dapp)


@pytest.fixture
def gate(project, deployer, hub, token, model):
    decimals = 6
    max_score = int(0.5 * 10**decimals)  # approve when P(default) <= 0.5
    gate = deployer.deploy(
        project.LendingGate, hub, token, *model, "probabilities", 1, max_score, 50 * 10**18
    )
    token.mint(gate, 1_000 * 10**18, sender=deployer)
    return gate


@pytest.mark.parametrize(("risk", "decision", "paid"), [(0.2, 2, True), (0.8, 3, False)])
def test_lending_gate__decides_from_the_settled_score(
    hub, token, gate, dapp, fund, by_address, act, risk, decision, paid
):
    fund(dapp, hub.quote(gate.modelId(), gate.version(), 3), gate)
    receipt = gate.applyForLoan(sample_input([5.1, 3.5, 1.4, 0.2]), sender=dapp)
    rid = receipt.decode_logs(gate.LoanRequested)[0].requestId
    ape.chain.mine(1)
    output = encode_tensors([Tensor("probabilities", (1, 2), (int((1 - risk) * 1e6), int(risk * 1e6)), 6)])
    before = token.balanceOf(dapp)
    committee = committee_of(hub, by_address, rid)
    for op in committee:
        act.commit(op, rid, output)
    receipts = [act.reveal(op, rid, output) for op in committee]
    decided = receipts[-1].decode_logs(gate.LoanDecided)[0]
    assert (decided.decision, decided.score) == (decision, int(risk * 1e6))
    assert gate.applications(rid).decision == decision
    assert token.balanceOf(dapp) - before == (50 * 10**18 if paid else 0)


def test_callback__reentering_the_hub__refused__settlement_stands(
    project, deployer, hub, make_request, run, treasury
):
    """A callback cannot enter the hub again: paying out the treasury's credit (which settlement has
    just increased) from inside it hits the reentrancy guard, and the request still settles."""
    consumer = deployer.deploy(project.ReentrantConsumer, hub, treasury)
    rid = request_id_of(make_request(consumer=consumer, callback_gas=300_000))
    credit_before = hub.claimable(treasury)
    _, receipts = run(rid, [OUT, OUT, OUT])
    assert receipts[-1].decode_logs(hub.CallbackExecuted)[0].success  # the consumer caught the refusal
    assert not consumer.reentered()
    assert bytes(consumer.answer())[:4] == keccak(b"ReentrancyGuardReentrantCall()")[:4]
    assert hub.getResult(rid).status == FINALIZED
    assert hub.claimable(treasury) > credit_before  # still credited, not paid out from the callback
