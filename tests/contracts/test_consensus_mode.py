"""ConsensusMode: the committee draw, commit/reveal, windows, finalize and the mode's parameters;
each external function's happy path, every revert and access control."""

import ape
import pytest
from verinfer.models.codec import ErrorCode, error_output

from tests.conftest import TEST_PARAMS, committee_of, request_id_of, sample_output

OUT = sample_output()
PENDING, FINALIZED = 1, 2
SILENT, WITHHELD = 1, 2


@pytest.fixture(scope="module", autouse=True)
def _session_state(model, consensus, act, by_address, make_request):
    """The session's model (operators staked) and helpers exist before this module's first test, so
    ape's per-test chain snapshots never undo them."""


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


def test_open__round_copies_windows_and_rates__committee_unknown_before_the_seed(
    hub, consensus, make_request, dapp
):
    receipt = make_request(k=3, seed=False)
    rid = request_id_of(receipt)
    r = consensus.getRound(rid)
    assert (r.k, r.committedMask, r.revealedMask, r.settledBlock, r.errorCode) == (3, 0, 0, 0, 0)
    assert (r.digestOnly, r.drawn) == (False, False)
    assert r.seedBlock == receipt.block_number + 1
    assert r.commitDeadline == r.seedBlock + TEST_PARAMS["commit_window"]
    assert r.revealDeadline == r.commitDeadline + TEST_PARAMS["reveal_window"]
    assert consensus.deadlineOf(rid) == r.revealDeadline
    assert (r.slashBpsDissent, r.slashBpsSilence) == (
        TEST_PARAMS["slash_bps_dissent"],
        TEST_PARAMS["slash_bps_silence"],
    )
    assert r.maxOutputBytes == TEST_PARAMS["max_output_bytes"]
    # Nobody can know the committee before the seed block exists.
    assert list(consensus.getCommittee(rid)) == []
    with ape.reverts(consensus.SeedNotReady):
        consensus.draw(rid, sender=dapp)
    assert not consensus.canFinalize(rid)


def test_open__params_changed_later__round_keeps_its_own(consensus, deployer, rid):
    before = consensus.getRound(rid)
    params = consensus.params()
    consensus.setParams((5, 6, 500, 50), sender=deployer)
    after = consensus.getRound(rid)
    assert tuple(after) == tuple(before)
    consensus.setParams(tuple(params), sender=deployer)


def test_open__digest_only_request__round_keeps_digests_only(consensus, make_request):
    rid = request_id_of(make_request(digest_only=True))
    assert consensus.getRound(rid).digestOnly


def test_draw__after_the_seed_block__stores_the_previewed_committee_once(
    hub, consensus, make_request, dapp, operators, by_address, chain
):
    rid = request_id_of(make_request(k=3))
    with ape.reverts(consensus.SeedNotReady):  # a view sees block.number == seed block: one more block
        consensus.previewCommittee(rid)
    drawn_as_relayers_do = [op.address for op in committee_of(hub, by_address, rid)]
    chain.mine(1)
    preview = list(consensus.previewCommittee(rid))
    assert preview == drawn_as_relayers_do
    assert len(set(preview)) == 3 and set(preview) <= {op.address for op in operators}
    receipt = consensus.draw(rid, sender=dapp)
    assert receipt.events.filter(consensus.CommitteeDrawn) == [consensus.CommitteeDrawn(rid, preview)]
    assert list(consensus.getCommittee(rid)) == preview and consensus.getRound(rid).drawn
    assert consensus.draw(rid, sender=dapp).events.filter(consensus.CommitteeDrawn) == []


def test_draw__seed_older_than_256_blocks__unavailable(consensus, rid, dapp, chain):
    chain.mine(257)
    with ape.reverts(consensus.SeedUnavailable):
        consensus.draw(rid, sender=dapp)


def test_commit__first_one_draws_the_committee(consensus, rid, committee, act):
    receipt = act.commit(committee[0], rid, OUT)
    assert len(receipt.events.filter(consensus.CommitteeDrawn)) == 1
    assert list(consensus.getCommittee(rid)) == [op.address for op in committee]
    assert act.commit(committee[1], rid, OUT).events.filter(consensus.CommitteeDrawn) == []


def test_commit__records_and_emits(consensus, rid, committee, act):
    receipt = act.commit(committee[0], rid, OUT)
    assert receipt.decode_logs(consensus.Committed)[0].operator == committee[0].address
    assert consensus.getRound(rid).committedMask == 1 << 0


def test_commit__reverts(consensus, rid, committee, outsider, act, chain):
    with ape.reverts(consensus.UnknownRequest):
        consensus.commit(999, b"\x01" * 32, sender=committee[0])
    with ape.reverts(consensus.NotCommitteeMember):
        consensus.commit(rid, b"\x01" * 32, sender=outsider)
    act.commit(committee[0], rid, OUT)
    with ape.reverts(consensus.AlreadyCommitted):
        act.commit(committee[0], rid, OUT)
    chain.mine(TEST_PARAMS["commit_window"])
    with ape.reverts(consensus.CommitWindowClosed):
        act.commit(committee[1], rid, OUT)


def test_reveal__records_and_emits(consensus, rid, committee, act, chain):
    from verinfer.models.codec import output_digest

    act.commit(committee[0], rid, OUT)
    act.commit(committee[1], rid, OUT)
    chain.mine(TEST_PARAMS["commit_window"])
    receipt = act.reveal(committee[0], rid, OUT)
    assert receipt.events.filter(consensus.Revealed) == [
        consensus.Revealed(rid, committee[0].address, output_digest(OUT))
    ]
    assert consensus.getRound(rid).revealedMask == 1 << 0


def test_reveal__reverts(consensus, rid, committee, outsider, act, chain):
    act.commit(committee[0], rid, OUT)
    act.commit(committee[1], rid, OUT)
    with ape.reverts(consensus.RevealNotOpen):
        act.reveal(committee[0], rid, OUT)
    chain.mine(TEST_PARAMS["commit_window"])
    with ape.reverts(consensus.NotCommitteeMember):
        act.reveal(outsider, rid, OUT)
    with ape.reverts(consensus.NotCommitted):
        act.reveal(committee[2], rid, OUT)
    with ape.reverts(consensus.CommitmentMismatch):
        act.reveal(committee[0], rid, sample_output(0.9))
    with ape.reverts(consensus.CommitmentMismatch):
        consensus.reveal(rid, OUT, b"\x00" * 32, sender=committee[0])
    act.reveal(committee[0], rid, OUT)
    with ape.reverts(consensus.AlreadyRevealed):
        act.reveal(committee[0], rid, OUT)
    chain.mine(TEST_PARAMS["reveal_window"])
    with ape.reverts(consensus.RevealWindowClosed):
        act.reveal(committee[1], rid, OUT)


def test_reveal__output_over_the_version_cap__too_large(
    consensus, make_model, make_request, by_address, hub, act
):
    small = make_model("risk", max_output_bytes=1_000)
    rid = request_id_of(make_request(k=1, model_ref=small))
    (op,) = committee_of(hub, by_address, rid)
    big = b"\x01" * 1_001
    act.commit(op, rid, big)
    with ape.reverts(consensus.OutputTooLarge):
        act.reveal(op, rid, big)


def test_finalize__too_early__reverts_and_settled__round_closed(hub, consensus, rid, committee, act, dapp):
    assert not consensus.canFinalize(rid)
    with ape.reverts(consensus.TooEarlyToFinalize):
        consensus.finalize(rid, sender=dapp)
    with ape.reverts(consensus.UnknownRequest):
        consensus.finalize(12345, sender=dapp)
    for op in committee:
        act.commit(op, rid, OUT)
    for op in committee:
        act.reveal(op, rid, OUT)
    assert hub.getRequest(rid).status == FINALIZED
    assert consensus.getRound(rid).settledBlock != 0 and not consensus.canFinalize(rid)
    with ape.reverts(consensus.RoundClosed):
        consensus.finalize(rid, sender=dapp)
    with ape.reverts(consensus.RoundClosed):
        consensus.finalizeWithOutput(rid, OUT, sender=dapp)
    with ape.reverts(consensus.RoundClosed):
        act.commit(committee[0], rid, OUT)
    with ape.reverts(consensus.RoundClosed):
        act.reveal(committee[0], rid, OUT)
    with ape.reverts(consensus.RoundClosed):
        consensus.draw(rid, sender=dapp)


def test_reveal__all_who_committed_revealed_after_the_commit_window__settles_at_once(
    hub, consensus, rid, committee, act, chain
):
    for op in committee[:2]:
        act.commit(op, rid, OUT)
    chain.mine(TEST_PARAMS["commit_window"])
    act.reveal(committee[0], rid, OUT)
    assert hub.getRequest(rid).status == PENDING
    receipt = act.reveal(committee[1], rid, OUT)
    assert hub.getRequest(rid).status == FINALIZED
    assert consensus.getRound(rid).settledBlock == receipt.block_number
    assert list(consensus.resultOf(rid)[2]) == [op.address for op in committee[:2]]
    assert [(e.operator, e.fault) for e in receipt.decode_logs(hub.MemberPenalized)] == [
        (committee[2].address, SILENT)
    ]


def test_finalize__after_the_reveal_window__anyone_settles_what_was_revealed(
    hub, consensus, rid, committee, act, chain, dapp
):
    for op in committee:
        act.commit(op, rid, OUT)
    for op in committee[:2]:
        act.reveal(op, rid, OUT)
    assert not consensus.canFinalize(rid)
    with ape.reverts(consensus.TooEarlyToFinalize):
        consensus.finalize(rid, sender=dapp)
    chain.mine(consensus.getRound(rid).revealDeadline - chain.blocks.height + 1)  # views see the head
    assert consensus.canFinalize(rid)
    receipt = consensus.finalize(rid, sender=dapp)
    assert hub.getRequest(rid).status == FINALIZED
    assert [(e.operator, e.fault) for e in receipt.decode_logs(hub.MemberPenalized)] == [
        (committee[2].address, WITHHELD)
    ]


def test_finalize_with_output__digest_only__needs_the_accepted_bytes(
    hub, consensus, make_request, by_address, act, chain, dapp
):
    from verinfer.models.codec import output_digest

    rid = request_id_of(make_request(k=3, digest_only=True))
    committee = committee_of(hub, by_address, rid)
    other = sample_output(0.9)
    for op, output in zip(committee, (OUT, OUT, other), strict=True):
        act.commit(op, rid, output)
    act.reveal(committee[0], rid, OUT)
    act.reveal(committee[1], rid, OUT)
    act.reveal(committee[2], rid, other)  # the last revealer dissents: the accepted bytes are not at hand
    assert hub.getRequest(rid).status == 1 and consensus.canFinalize(rid)
    with ape.reverts(consensus.OutputRequired):
        consensus.finalize(rid, sender=dapp)
    with ape.reverts(consensus.OutputMismatch):
        consensus.finalizeWithOutput(rid, other, sender=dapp)
    receipt = consensus.finalizeWithOutput(rid, OUT, sender=dapp)
    settled = receipt.decode_logs(hub.RequestSettled)[0]
    assert (settled.status, bytes(settled.outputDigest), bytes(settled.output)) == (
        FINALIZED,
        output_digest(OUT),
        OUT,
    )
    result = hub.getResult(rid)
    assert bytes(result.output) == b"" and bytes(result.outputDigest) == output_digest(OUT)
    assert hub.verifyOutput(rid, OUT)


def test_commit_many_and_reveal_many__settle_a_batch(hub, consensus, make_request, by_address, operators):
    from verinfer.models.codec import commitment, output_digest

    rids = [request_id_of(make_request(k=5)) for _ in range(4)]
    salt = b"\x11" * 32
    for op in operators:
        commits = [commitment(r, op.address, output_digest(OUT), salt) for r in rids]
        assert len(consensus.commitMany(rids, commits, sender=op).events.filter(consensus.Committed)) == 4
    for op in operators:
        consensus.revealMany(rids, [OUT] * 4, [salt] * 4, sender=op)
    assert [hub.getResult(r).status for r in rids] == [FINALIZED] * 4


def test_batches__length_mismatch__reverts(consensus, operators):
    with ape.reverts(consensus.BatchLengthMismatch):
        consensus.commitMany([1, 2], [b"\x01" * 32], sender=operators[0])
    with ape.reverts(consensus.BatchLengthMismatch):
        consensus.commitMany([], [], sender=operators[0])
    with ape.reverts(consensus.BatchLengthMismatch):
        consensus.revealMany([1], [OUT], [], sender=operators[0])
    with ape.reverts(consensus.BatchLengthMismatch):
        consensus.revealMany([], [], [], sender=operators[0])


def test_views__unknown__revert(consensus, rid):
    for view in (consensus.getRound, consensus.getCommittee, consensus.previewCommittee, consensus.resultOf):
        with ape.reverts(consensus.UnknownRequest):
            view(777)
    assert consensus.deadlineOf(777) == 0
    assert not consensus.canFinalize(777)


def test_admin__set_params(consensus, deployer, dapp):
    params = consensus.params()
    assert tuple(params) == (
        TEST_PARAMS["commit_window"],
        TEST_PARAMS["reveal_window"],
        TEST_PARAMS["slash_bps_dissent"],
        TEST_PARAMS["slash_bps_silence"],
    )
    new = (5, 6, 500, 50)
    with ape.reverts(consensus.AccessControlUnauthorizedAccount):
        consensus.setParams(new, sender=dapp)
    receipt = consensus.setParams(new, sender=deployer)
    assert tuple(consensus.params()) == new
    assert tuple(receipt.decode_logs(consensus.ParamsUpdated)[0].params) == new
    span_too_long = TEST_PARAMS["unbonding_period"] - 256 - 5
    for bad in (
        (0, *new[1:]),  # no commit window
        (256, *new[1:]),  # the seed would be unreadable before the commit deadline
        (5, 0, *new[2:]),  # no reveal window
        (5, span_too_long, *new[2:]),  # a request would outlive its members' unbonding
        (*new[:2], 10_001, new[3]),
        (*new[:3], 10_001),
    ):
        with ape.reverts(consensus.InvalidParams):
            consensus.setParams(bad, sender=deployer)
    consensus.setParams(tuple(params), sender=deployer)


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
        assert result.status == FINALIZED  # settled: only a canonical error output makes a request Failed
        assert bytes(result.output) == output
        assert bytes(result.outputDigest) == output_digest(output)


UNAVAILABLE = error_output(ErrorCode.INPUT_UNAVAILABLE)


def test_reveal__member_without_the_external_input__neither_slashed_nor_paid(
    hub, consensus, staking, rid, committee, act
):
    """The requester decides who gets an external input: a member answering INPUT_UNAVAILABLE is
    outvoted but never slashed (and not paid)."""
    a, b, c = committee
    stake = int(staking.operatorInfo(c).stake)
    for op, out in ((a, OUT), (b, OUT), (c, UNAVAILABLE)):
        act.commit(op, rid, out)
    for op, out in ((a, OUT), (b, OUT), (c, UNAVAILABLE)):
        receipt = act.reveal(op, rid, out)
    assert hub.getRequest(rid).status == FINALIZED
    assert receipt.decode_logs(hub.MemberPenalized) == []
    assert int(staking.operatorInfo(c).stake) == stake
    assert list(consensus.resultOf(rid)[2]) == [a.address, b.address]
    assert hub.claimable(c) == 0


def test_reveal__majority_could_not_get_the_input__failed__nobody_paid_or_slashed(
    hub, consensus, staking, rid, committee, act, dapp
):
    """Members that could not get the input did no work: a quorum on INPUT_UNAVAILABLE is not paid (or
    lazy members could all answer it), and the member with an output is not slashed."""
    a, b, c = committee
    stake = int(staking.operatorInfo(c).stake)
    credits = {op.address: hub.claimable(op) for op in (a, b, c, dapp)}
    for op, out in ((a, UNAVAILABLE), (b, UNAVAILABLE), (c, OUT)):
        act.commit(op, rid, out)
    for op, out in ((a, UNAVAILABLE), (b, UNAVAILABLE), (c, OUT)):
        receipt = act.reveal(op, rid, out)
    result = hub.getResult(rid)
    assert (result.status, result.errorCode) == (3, ErrorCode.INPUT_UNAVAILABLE)  # Failed
    assert receipt.decode_logs(hub.MemberPenalized) == []
    assert int(staking.operatorInfo(c).stake) == stake
    assert all(hub.claimable(op) == credits[op.address] for op in (a, b, c))
    r = hub.getRequest(rid)
    refund = hub.claimable(dapp) - credits[dapp.address]
    assert refund == r.modelFee + 3 * r.operatorFee  # all but the protocol fee
