"""InferenceHub: each external function's happy path, every revert and access control."""

import ape
import pytest

from tests.conftest import MODEL_FEE, TEST_PARAMS, committee_of, request_id_of, sample_input, sample_output

OUT = sample_output()
OP_FEE = TEST_PARAMS["operator_fee"]
PROTOCOL_FEE = TEST_PARAMS["protocol_fee"]


@pytest.fixture
def rid(make_request):
    return request_id_of(make_request())


@pytest.fixture
def committee(hub, by_address, rid):
    return committee_of(hub, by_address, rid)


@pytest.fixture
def outsider(hub, rid, operators, by_address):
    members = {op.address for op in committee_of(hub, by_address, rid)}
    return next(op for op in operators if op.address not in members)


def test_request__escrows_fee_fixes_a_future_seed_and_emits(hub, token, model, make_request, dapp, operators):
    model_id, version = model
    before = token.balanceOf(hub)
    receipt = make_request(k=3, seed=False)
    rid = request_id_of(receipt)
    fee = MODEL_FEE + 3 * OP_FEE + PROTOCOL_FEE
    assert hub.quote(model_id, version, 3) == fee
    assert token.balanceOf(hub) - before == fee
    event = receipt.decode_logs(hub.RequestCreated)[0]
    assert event.requestId == rid and event.requester == dapp.address and event.fee == fee
    assert (event.k, event.seedBlock, event.callbackGasLimit, event.digestOnly) == (
        3,
        receipt.block_number + 1,
        0,
        False,
    )
    assert bytes(event.input) == sample_input()
    r = hub.getRequest(rid)
    assert (r.status, r.k, r.committedMask, r.revealedMask, r.drawn) == (1, 3, 0, 0, False)
    assert r.seedBlock == receipt.block_number + 1
    assert r.commitDeadline == r.seedBlock + TEST_PARAMS["commit_window"]
    assert r.revealDeadline == r.commitDeadline + TEST_PARAMS["reveal_window"]
    assert (r.slashBpsDissent, r.slashBpsSilence) == (
        TEST_PARAMS["slash_bps_dissent"],
        TEST_PARAMS["slash_bps_silence"],
    )
    # Nobody can know the committee before the seed block exists.
    assert list(hub.getCommittee(rid)) == []
    with ape.reverts(hub.SeedNotReady):
        hub.draw(rid, sender=dapp)


def test_draw__after_the_seed_block__stores_the_previewed_committee_once(
    hub, make_request, dapp, operators, by_address, chain
):
    rid = request_id_of(make_request(k=3))
    with ape.reverts(hub.SeedNotReady):  # a view sees block.number == seed block: one more block
        hub.previewCommittee(rid)
    drawn_as_relayers_do = [op.address for op in committee_of(hub, by_address, rid)]
    chain.mine(1)
    preview = list(hub.previewCommittee(rid))
    assert preview == drawn_as_relayers_do
    assert len(set(preview)) == 3 and set(preview) <= {op.address for op in operators}
    receipt = hub.draw(rid, sender=dapp)
    assert receipt.events.filter(hub.CommitteeDrawn) == [hub.CommitteeDrawn(rid, preview)]
    assert list(hub.getCommittee(rid)) == preview and hub.getRequest(rid).drawn
    assert hub.draw(rid, sender=dapp).events.filter(hub.CommitteeDrawn) == []


def test_commit__first_one_draws_the_committee(hub, rid, committee, act):
    receipt = act.commit(committee[0], rid, OUT)
    assert len(receipt.events.filter(hub.CommitteeDrawn)) == 1
    assert [a for a in hub.getCommittee(rid)] == [op.address for op in committee]
    assert act.commit(committee[1], rid, OUT).events.filter(hub.CommitteeDrawn) == []


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"k": 0}, "InvalidRedundancy"),
        ({"k": 10}, "InvalidRedundancy"),
        ({"k": 6}, "InsufficientOperators"),
        ({"input_bytes": b"\x00" * 8_193}, "InvalidInputSize"),
        ({"callback_gas": 1_000_001}, "InvalidCallbackGasLimit"),
        ({"mode": 2}, "ModeNotSupported"),
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


def test_request__deprecated_or_mode_not_allowed__reverts(
    hub, registry, model_owner, make_model, make_request
):
    deprecated = make_model("old")
    registry.deprecateVersion(*deprecated, sender=model_owner)
    with ape.reverts(hub.VersionDeprecated):
        make_request(model_ref=deprecated)
    optimistic_only = make_model("optimistic", modes=4)
    with ape.reverts(hub.ModeNotSupported):
        make_request(model_ref=optimistic_only)


def test_request__no_allowance__reverts(hub, token, model, challenger, deployer):
    token.mint(challenger, 10**20, sender=deployer)
    with ape.reverts(token.ERC20InsufficientAllowance):
        hub.requestInference((*model, 1, 1, 0, False, 10**20, sample_input()), sender=challenger)


def test_commit__records_and_emits(hub, rid, committee, act):
    receipt = act.commit(committee[0], rid, OUT)
    assert receipt.decode_logs(hub.Committed)[0].operator == committee[0].address
    assert hub.getRequest(rid).committedMask == 1 << 0


def test_commit__reverts(hub, rid, committee, outsider, act, chain):
    with ape.reverts(hub.UnknownRequest):
        hub.commit(999, b"\x01" * 32, sender=committee[0])
    with ape.reverts(hub.NotCommitteeMember):
        hub.commit(rid, b"\x01" * 32, sender=outsider)
    act.commit(committee[0], rid, OUT)
    with ape.reverts(hub.AlreadyCommitted):
        act.commit(committee[0], rid, OUT)
    chain.mine(TEST_PARAMS["commit_window"])
    with ape.reverts(hub.CommitWindowClosed):
        act.commit(committee[1], rid, OUT)


def test_reveal__reverts(hub, rid, committee, outsider, act, chain):
    act.commit(committee[0], rid, OUT)
    act.commit(committee[1], rid, OUT)
    with ape.reverts(hub.RevealNotOpen):
        act.reveal(committee[0], rid, OUT)
    chain.mine(TEST_PARAMS["commit_window"])
    with ape.reverts(hub.NotCommitteeMember):
        act.reveal(outsider, rid, OUT)
    with ape.reverts(hub.NotCommitted):
        act.reveal(committee[2], rid, OUT)
    with ape.reverts(hub.CommitmentMismatch):
        act.reveal(committee[0], rid, sample_output(0.9))
    with ape.reverts(hub.CommitmentMismatch):
        hub.reveal(rid, OUT, b"\x00" * 32, sender=committee[0])
    act.reveal(committee[0], rid, OUT)
    with ape.reverts(hub.AlreadyRevealed):
        act.reveal(committee[0], rid, OUT)
    chain.mine(TEST_PARAMS["reveal_window"])
    with ape.reverts(hub.RevealWindowClosed):
        act.reveal(committee[1], rid, OUT)


def test_finalize__too_early__reverts_and_settled__not_pending(hub, rid, committee, act, chain, dapp):
    assert not hub.canFinalize(rid)
    with ape.reverts(hub.TooEarlyToFinalize):
        hub.finalize(rid, sender=dapp)
    with ape.reverts(hub.UnknownRequest):
        hub.finalize(12345, sender=dapp)
    for op in committee:
        act.commit(op, rid, OUT)
    for op in committee:
        act.reveal(op, rid, OUT)
    with ape.reverts(hub.RequestNotPending):
        hub.finalize(rid, sender=dapp)
    with ape.reverts(hub.RequestNotPending):
        act.commit(committee[0], rid, OUT)


def test_commit_many_and_reveal_many__settle_a_batch(hub, make_request, by_address, operators):
    from verinfer.models.codec import commitment, output_digest

    rids = [request_id_of(make_request(k=5)) for _ in range(4)]
    salt = b"\x11" * 32
    for op in operators:
        commits = [commitment(r, op.address, output_digest(OUT), salt) for r in rids]
        assert len(hub.commitMany(rids, commits, sender=op).events.filter(hub.Committed)) == 4
    for op in operators:
        hub.revealMany(rids, [OUT] * 4, [salt] * 4, sender=op)
    assert [hub.getResult(r).status for r in rids] == [2, 2, 2, 2]


def test_batches__length_mismatch__reverts(hub, operators):
    with ape.reverts(hub.BatchLengthMismatch):
        hub.commitMany([1, 2], [b"\x01" * 32], sender=operators[0])
    with ape.reverts(hub.BatchLengthMismatch):
        hub.commitMany([], [], sender=operators[0])
    with ape.reverts(hub.BatchLengthMismatch):
        hub.revealMany([1], [OUT], [], sender=operators[0])


def test_views__unknown_or_pending__revert(hub, rid):
    with ape.reverts(hub.UnknownRequest):
        hub.getRequest(777)
    with ape.reverts(hub.UnknownRequest):
        hub.getCommittee(777)
    with ape.reverts(hub.UnknownRequest):
        hub.previewCommittee(777)
    with ape.reverts(hub.UnknownRequest):
        hub.getResult(777)
    with ape.reverts(hub.ResultNotReady):
        hub.getResult(rid)


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


def test_admin__set_params_and_treasury(hub, deployer, dapp):
    params = hub.params()
    new = (5, 6, 3, 500, 50, 1_000, 1_000, 100_000, 7, 8)
    with ape.reverts(hub.AccessControlUnauthorizedAccount):
        hub.setParams(new, sender=dapp)
    hub.setParams(new, sender=deployer)
    assert tuple(hub.params()) == new
    span_too_long = TEST_PARAMS["unbonding_period"] - 256 - 5
    for bad in (
        (0, *new[1:]),  # no commit window
        (256, *new[1:]),  # the seed would be unreadable before the commit deadline
        (5, span_too_long, *new[2:]),  # a request would outlive its members' unbonding
        (*new[:2], 17, *new[3:]),
        (*new[:3], 10_001, *new[4:]),
        (*new[:5], 0, *new[6:]),  # no input
        (*new[:6], 415, *new[7:]),  # an error output would not fit
    ):
        with ape.reverts(hub.InvalidParams):
            hub.setParams(bad, sender=deployer)
    hub.setParams(tuple(params), sender=deployer)
    with ape.reverts(hub.AccessControlUnauthorizedAccount):
        hub.setTreasury(dapp, sender=dapp)
    with ape.reverts(hub.InvalidParams):
        hub.setTreasury(ape.utils.ZERO_ADDRESS, sender=deployer)
    assert hub.setTreasury(dapp, sender=deployer).events == [hub.TreasuryUpdated(dapp)]


@pytest.mark.parametrize("size", [0, 1, 20_000, 26_000])
def test_reveal__output_of_any_size__stored_once_and_returned(hub, make_request, by_address, act, size):
    """Packed outputs up to the contract-code limit live in a data contract, larger ones in storage."""
    from verinfer.models.codec import output_digest

    output = (bytes(range(256)) * (size // 256 + 1))[:size]
    rids = [request_id_of(make_request(k=1)) for _ in range(2)]
    for rid in rids:
        (op,) = committee_of(hub, by_address, rid)
        act.commit(op, rid, output)
        act.reveal(op, rid, output)
        result = hub.getResult(rid)
        assert result.status == 2  # settled: only a canonical error output makes a request Failed
        assert bytes(result.output) == output
        assert bytes(result.outputDigest) == output_digest(output)
