"""InferenceHub (the core): requests, escrow, quotes, claims, admin and views; every revert and access
control. The consensus round itself is tested in test_consensus_mode.py, the core's mode interface
(registration, settlement by modes only, expiry) in test_core_modes.py."""

import ape
import pytest

from tests.conftest import MODEL_FEE, TEST_PARAMS, committee_of, request_id_of, sample_input, sample_output

OUT = sample_output()
OP_FEE = TEST_PARAMS["operator_fee"]
PROTOCOL_FEE = TEST_PARAMS["protocol_fee"]
PENDING, FINALIZED = 1, 2


@pytest.fixture(scope="module", autouse=True)
def _session_state(model, consensus, act, by_address, make_request, make_model, token, challenger, deployer):
    """The session's model (operators staked) and helpers exist before this module's first test, so
    ape's per-test chain snapshots never undo them."""


@pytest.fixture
def rid(make_request):
    return request_id_of(make_request())


@pytest.fixture
def committee(hub, by_address, rid):
    return committee_of(hub, by_address, rid)


def test_request__escrows_fee_fixes_a_future_seed_and_emits(
    hub, consensus, token, model, make_request, dapp, operators
):
    model_id, version = model
    before = token.balanceOf(hub)
    receipt = make_request(k=3, seed=False)
    rid = request_id_of(receipt)
    fee = MODEL_FEE + 3 * OP_FEE + PROTOCOL_FEE
    assert hub.quote(model_id, version, 3) == fee
    assert token.balanceOf(hub) - before == fee
    event = receipt.decode_logs(hub.RequestCreated)[0]
    assert event.requestId == rid and event.requester == dapp.address and event.fee == fee
    assert (event.modelId, event.version, event.mode) == (model_id, version, consensus.MODE())
    assert (event.k, event.seedBlock, event.callbackGasLimit, event.digestOnly) == (
        3,
        receipt.block_number + 1,
        0,
        False,
    )
    assert bytes(event.input) == sample_input()
    # The deadline the core announces is the one its mode contract set for the round.
    round_ = consensus.getRound(rid)
    assert round_.seedBlock == event.seedBlock
    assert event.deadline == round_.revealDeadline == consensus.deadlineOf(rid)
    r = hub.getRequest(rid)
    assert (r.requester, r.status, r.mode, r.k, r.digestOnly, r.callbackGasLimit) == (
        dapp.address,
        PENDING,
        1,
        3,
        False,
        0,
    )
    assert (r.version, r.callbackResult, r.modelId) == (version, 0, model_id)
    assert (r.modelFee, r.operatorFee, r.protocolFee) == (MODEL_FEE, OP_FEE, PROTOCOL_FEE)
    assert hub.modelOf(rid) == model_id
    assert hub.heldFees(rid) == 0


def test_request__fees_and_caps_fixed_when_made__later_params_change_nothing(
    hub, consensus, deployer, make_request, model
):
    rid = request_id_of(make_request(k=3))
    params = hub.params()
    hub.setParams((params.maxK, params.maxInputBytes, 1_000, params.maxCallbackGas, 7, 8), sender=deployer)
    assert hub.quote(*model, 3) == MODEL_FEE + 3 * 7 + 8
    r = hub.getRequest(rid)
    assert (r.operatorFee, r.protocolFee) == (OP_FEE, PROTOCOL_FEE)
    assert consensus.getRound(rid).maxOutputBytes == TEST_PARAMS["max_output_bytes"]
    hub.setParams(tuple(params), sender=deployer)


def test_request__output_cap__the_smaller_of_the_version_and_the_core(
    hub, consensus, make_model, make_request, model
):
    small = make_model("risk", max_output_bytes=1_000)
    rid = request_id_of(make_request(model_ref=small))
    assert consensus.getRound(rid).maxOutputBytes == 1_000
    large = make_model("risk", max_output_bytes=10**6)
    rid = request_id_of(make_request(model_ref=large))
    assert consensus.getRound(rid).maxOutputBytes == TEST_PARAMS["max_output_bytes"]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"k": 0}, "InvalidRedundancy"),
        ({"k": 10}, "InvalidRedundancy"),
        ({"k": 6}, "InsufficientOperators"),
        ({"input_bytes": b"\x00" * 8_193}, "InvalidInputSize"),
        ({"callback_gas": 1_000_001}, "InvalidCallbackGasLimit"),
        ({"mode": 2}, "ModeNotSupported"),  # no contract registered for the bit
        ({"mode": 0}, "ModeNotSupported"),
        ({"mode": 3}, "ModeNotSupported"),  # two bits: never a registered mode
        ({"max_fee": MODEL_FEE + 3 * OP_FEE + PROTOCOL_FEE - 1}, "FeeExceedsMax"),
    ],
)
def test_request__invalid__reverts(hub, make_request, kwargs, error):
    with ape.reverts(getattr(hub, error)):
        make_request(**kwargs)


def test_request__empty_input__reverts(hub, model, dapp, fund):
    fund(dapp, 10**20, hub)
    with ape.reverts(hub.InvalidInputSize):
        hub.requestInference((*model, 1, 1, 0, False, 10**20, b""), sender=dapp)


def test_request__unknown_model_or_version__reverts(hub, model, make_request):
    with ape.reverts(hub.UnknownModel):
        make_request(model_ref=(b"\x04" * 32, 1), max_fee=10**20)
    with ape.reverts(hub.UnknownVersion):
        make_request(model_ref=(model[0], 99), max_fee=10**20)
    with ape.reverts(hub.UnknownVersion):  # above the uint24 a request stores
        make_request(model_ref=(model[0], 2**24), max_fee=10**20)


def test_request__deprecated_or_mode_not_allowed__reverts(
    hub, registry, model_owner, make_model, make_request
):
    deprecated = make_model("old")
    registry.deprecateVersion(*deprecated, sender=model_owner)
    with ape.reverts(hub.VersionDeprecated):
        make_request(model_ref=deprecated)
    consensus_only = make_model("consensus-only", modes=1)
    with ape.reverts(hub.ModeNotSupported, mode=8):
        make_request(model_ref=consensus_only, mode=8)


def test_request__no_allowance__reverts(hub, token, model, challenger, deployer):
    token.mint(challenger, 10**20, sender=deployer)
    with ape.reverts(token.ERC20InsufficientAllowance):
        hub.requestInference((*model, 1, 1, 0, False, 10**20, sample_input()), sender=challenger)


def test_deposit__credits_the_account_from_the_payer(hub, token, dapp, challenger, fund):
    fund(dapp, 5 * OP_FEE, hub)
    before = (token.balanceOf(dapp), token.balanceOf(hub), hub.claimable(challenger))
    receipt = hub.deposit(challenger, 5 * OP_FEE, sender=dapp)
    assert receipt.events.filter(hub.Deposited) == [hub.Deposited(challenger, dapp, 5 * OP_FEE)]
    assert token.balanceOf(dapp) == before[0] - 5 * OP_FEE
    assert token.balanceOf(hub) == before[1] + 5 * OP_FEE
    assert hub.claimable(challenger) == before[2] + 5 * OP_FEE
    # The credit is the account's own: it may withdraw it; the payer has no claim on it.
    with ape.reverts(hub.NothingToClaim):
        hub.claim(sender=dapp)
    hub.claim(sender=challenger)
    assert hub.claimable(challenger) == 0


@pytest.mark.parametrize("who,amount", [("zero", 1), ("hub", 1), ("dapp", 0)])
def test_deposit__nothing_or_for_nobody_or_the_hub__reverts(hub, token, dapp, fund, who, amount):
    """A credit of the hub itself could never leave it (claimFor(hub) pays the hub)."""
    fund(dapp, 10, hub)
    account = {"zero": "0x" + "00" * 20, "hub": hub.address, "dapp": dapp.address}[who]
    with ape.reverts(hub.InvalidDeposit):
        hub.deposit(account, amount, sender=dapp)
    assert token.balanceOf(dapp) == 10


def test_deposit__without_allowance__reverts(hub, token, challenger, deployer):
    token.mint(challenger, 10, sender=deployer)
    with ape.reverts(token.ERC20InsufficientAllowance):
        hub.deposit(challenger, 10, sender=challenger)


def test_request__paid_from_credit_when_it_covers_the_whole_fee(hub, token, model, make_request, dapp, fund):
    fee = hub.quote(*model, 3)
    fund(dapp, fee + 1, hub)
    hub.deposit(dapp, fee + 1, sender=dapp)
    token.approve(hub, 0, sender=dapp)  # no allowance: the credit alone must pay
    wallet, escrow = token.balanceOf(dapp), token.balanceOf(hub)
    req = (*model, 1, 3, 0, False, fee, sample_input())
    receipt = hub.requestInference(req, sender=dapp)
    assert receipt.events.filter(token.Transfer) == []
    assert hub.claimable(dapp) == 1
    assert (token.balanceOf(dapp), token.balanceOf(hub)) == (wallet, escrow)
    # One unit short of the next fee: the whole fee is pulled by transfer, the credit is left alone.
    with ape.reverts(token.ERC20InsufficientAllowance):
        hub.requestInference(req, sender=dapp)
    fund(dapp, fee)
    token.approve(hub, fee, sender=dapp)
    hub.requestInference(req, sender=dapp)
    assert hub.claimable(dapp) == 1
    assert token.balanceOf(dapp) == wallet
    assert token.balanceOf(hub) == escrow + fee


def test_consumer__with_credit__requests_without_approving_or_spending_tokens(
    hub, token, project, deployer, model, dapp, fund
):
    consumer = deployer.deploy(project.RecordingConsumer, hub)
    fee = hub.quote(*model, 3)
    fund(dapp, 2 * fee, hub)
    hub.deposit(consumer, 2 * fee, sender=dapp)  # anyone may fund a consumer's credit
    req = (*model, 1, 3, 100_000, False, fee, sample_input())
    receipt = consumer.request(token, req, sender=dapp)
    assert receipt.events.filter(token.Approval) == [] and receipt.events.filter(token.Transfer) == []
    assert hub.claimable(consumer) == fee and token.balanceOf(consumer) == 0
    # Without enough credit it falls back to its token balance (none here): the hub's pull fails.
    consumer.request(token, req, sender=dapp)
    with ape.reverts():
        consumer.request(token, req, sender=dapp)


def test_views__unknown_or_pending__revert(hub, rid):
    with ape.reverts(hub.UnknownRequest):
        hub.getRequest(777)
    with ape.reverts(hub.UnknownRequest):
        hub.modelOf(777)
    with ape.reverts(hub.UnknownRequest):
        hub.getResult(777)
    with ape.reverts(hub.UnknownRequest):
        hub.verifyOutput(777, OUT)
    with ape.reverts(hub.ResultNotReady):
        hub.getResult(rid)
    assert not hub.verifyOutput(rid, OUT)


def test_views__settled__result_and_output_check(hub, rid, committee, act):
    for op in committee:
        act.commit(op, rid, OUT)
    for op in committee:
        act.reveal(op, rid, OUT)
    result = hub.getResult(rid)
    assert result.status == FINALIZED and bytes(result.output) == OUT
    assert sorted(result.agreeing) == sorted(op.address for op in committee)
    assert hub.verifyOutput(rid, OUT)
    assert not hub.verifyOutput(rid, sample_output(0.9))


def test_claim__pays_out_and_nothing_left__reverts(hub, token, rid, committee, act):
    for op in committee:
        act.commit(op, rid, OUT)
    for op in committee:
        act.reveal(op, rid, OUT)
    op = committee[0]
    owed = hub.claimable(op)
    assert owed == OP_FEE
    before = token.balanceOf(op)
    receipt = hub.claim(sender=op)
    assert receipt.events.filter(hub.Claimed) == [hub.Claimed(op, owed)]
    assert token.balanceOf(op) - before == owed
    with ape.reverts(hub.NothingToClaim):
        hub.claim(sender=op)


def test_claim_for__pays_the_account_not_the_caller(hub, token, rid, committee, act, dapp):
    for op in committee:
        act.commit(op, rid, OUT)
    for op in committee:
        act.reveal(op, rid, OUT)
    op = committee[1]
    before_op, before_caller = token.balanceOf(op), token.balanceOf(dapp)
    receipt = hub.claimFor(op, sender=dapp)
    assert receipt.events.filter(hub.Claimed) == [hub.Claimed(op, OP_FEE)]
    assert token.balanceOf(op) - before_op == OP_FEE
    assert token.balanceOf(dapp) == before_caller
    with ape.reverts(hub.NothingToClaim):
        hub.claimFor(op, sender=dapp)


def test_admin__set_params_and_treasury(hub, deployer, dapp):
    params = hub.params()
    new = (3, 1_000, 1_000, 100_000, 7, 8)
    with ape.reverts(hub.AccessControlUnauthorizedAccount):
        hub.setParams(new, sender=dapp)
    receipt = hub.setParams(new, sender=deployer)
    assert tuple(hub.params()) == new
    assert tuple(receipt.decode_logs(hub.ParamsUpdated)[0].params) == new
    for bad in (
        (0, *new[1:]),  # no committee
        (17, *new[1:]),  # members are kept in 16-bit masks
        (*new[:1], 0, *new[2:]),  # no input
        (*new[:2], 415, *new[3:]),  # an error output would not fit
    ):
        with ape.reverts(hub.InvalidParams):
            hub.setParams(bad, sender=deployer)
    hub.setParams(tuple(params), sender=deployer)
    with ape.reverts(hub.AccessControlUnauthorizedAccount):
        hub.setTreasury(dapp, sender=dapp)
    with ape.reverts(hub.InvalidParams):
        hub.setTreasury(ape.utils.ZERO_ADDRESS, sender=deployer)
    assert hub.setTreasury(dapp, sender=deployer).events == [hub.TreasuryUpdated(dapp)]
