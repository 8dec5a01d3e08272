"""OptimisticMode on real anvil: one drawn poster posts with a bond; an unchallenged post finalizes after the
window; a challenge pays for a consensus escalation whose accepted output decides who loses a bond.

Every test that moves money checks the books: what each party gains or loses, to the token, and that
no token appears or disappears (tokens only move between accounts, the hub's credit, staking and the
mode, and what the mode holds beyond open bonds goes to the treasury with `sweep`).
"""

from collections.abc import Callable, Iterable
from typing import Any

import ape
import pytest
from ape import project
from verinfer.chain.contracts import Fault, Status
from verinfer.models.codec import ErrorCode, error_output, output_digest

from tests.conftest import E18, MODEL_FEE, TEST_PARAMS, request_id_of, sample_input, sample_output, seed_of

OPTIMISTIC, CONSENSUS = 4, 1
TRUE_OUT = sample_output(0.25)
WRONG_OUT = sample_output(0.75)
OP_FEE = TEST_PARAMS["operator_fee"]
PROTOCOL_FEE = TEST_PARAMS["protocol_fee"]
BPS = 10_000
EXPIRY_GRACE = 256
MAX_OUTPUT = 1_024


class Phase:
    NONE, OPEN, POSTED, CHALLENGED, UPHELD, OVERTURNED, UNDECIDED, UNPOSTED = range(8)


class Books:
    """Where the tests' tokens can be: accounts (balance plus credit in the hub), the hub's escrow (its
    balance less the credit it owes), staking and the mode (balance plus credit). `delta(x)` is what one
    of them gained since the snapshot; `assert_conserved()` that the gains add up to zero."""

    def __init__(self, token: Any, hub: Any, staking: Any, mode: Any, accounts: Iterable[Any]) -> None:
        self.token, self.hub, self.staking, self.mode = token, hub, staking, mode
        addresses = [a.address if hasattr(a, "address") else a for a in accounts]
        self.accounts = list(dict.fromkeys([*addresses, mode.address]))
        self.before = self._snapshot()

    def _worth(self, account: str) -> int:
        return int(self.token.balanceOf(account)) + int(self.hub.claimable(account))

    def _snapshot(self) -> dict[str, int]:
        worth = {a: self._worth(a) for a in self.accounts}
        credit = sum(int(self.hub.claimable(a)) for a in self.accounts)
        worth["escrow"] = int(self.token.balanceOf(self.hub)) - credit
        worth["staking"] = int(self.token.balanceOf(self.staking))
        return worth

    def delta(self, account: Any) -> int:
        key = account.address if hasattr(account, "address") else account
        return self._snapshot()[key] - self.before[key]

    def assert_conserved(self) -> None:
        now = self._snapshot()
        assert sum(now.values()) == sum(self.before.values())


@pytest.fixture(scope="module")
def omodel(
    make_model: Callable[..., tuple[bytes, int]], join: Callable[..., None], operators: list[Any]
) -> tuple[bytes, int]:
    """A version allowing optimistic and consensus mode (escalations), served by all five operators."""
    model_id, version = make_model(
        "optimistic-suite", modes=CONSENSUS | OPTIMISTIC, max_output_bytes=MAX_OUTPUT
    )
    join(operators, model_id)
    return model_id, version


@pytest.fixture(scope="module", autouse=True)
def funded(
    fund: Callable[..., None], operators: list[Any], challenger: Any, optimistic: Any, hub: Any
) -> None:
    """Operators and the challenger hold tokens for bonds and fees and approve the mode once, so a test's
    books see only what the protocol moves."""
    for account in [*operators, challenger]:
        fund(account, 1_000 * E18, optimistic, hub)


@pytest.fixture
def params(optimistic: Any) -> Any:
    return optimistic.params()


@pytest.fixture
def new_request(make_request: Callable[..., Any], omodel: Any) -> Callable[..., int]:
    """An optimistic request on the suite's model (k = 1); its id, the seed block mined."""

    def _new(**kwargs: Any) -> int:
        return request_id_of(make_request(model_ref=omodel, mode=OPTIMISTIC, k=1, **kwargs))

    return _new


@pytest.fixture
def poster_of(
    hub: Any, staking: Any, optimistic: Any, by_address: dict[str, Any], chain: Any
) -> Callable[[int], Any]:
    """The request's drawn poster, as a relayer computes it from the seed block's hash."""

    def _poster(rid: int) -> Any:
        seed_block = optimistic.getRound(rid).seedBlock
        seed = seed_of(rid, bytes(chain.blocks[seed_block].hash))
        [address] = staking.drawCommittee(hub.poolOf(rid), 1, seed, seed_block)
        return by_address[address]

    return _poster


@pytest.fixture
def post(optimistic: Any, fund: Callable[..., None], params: Any, poster_of: Any) -> Callable[..., Any]:
    """`post(rid, output)`: the drawn poster funds its bond and posts; returns the poster."""

    def _post(rid: int, output: bytes = TRUE_OUT) -> Any:
        poster = poster_of(rid)
        optimistic.post(rid, output, sender=poster)
        return poster

    return _post


@pytest.fixture
def challenge(
    optimistic: Any, hub: Any, omodel: Any, fund: Callable[..., None], params: Any, challenger: Any
) -> Callable[..., int]:
    """`challenge(rid)`: the challenger funds bond and escalation fee and challenges; the escalation id."""

    def _challenge(rid: int, who: Any = None, input_bytes: bytes | None = None) -> int:
        who = who or challenger
        fee = hub.quote(*omodel, params.escalationK)
        receipt = optimistic.challenge(rid, input_bytes or sample_input(), fee, sender=who)
        return int(receipt.return_value)

    return _challenge


@pytest.fixture
def escalate(
    hub: Any, consensus: Any, act: Any, by_address: dict[str, Any], chain: Any
) -> Callable[..., None]:
    """`escalate(eid, outputs)`: the escalation's committee commits and reveals `outputs` in member order
    (the last reveal settles it)."""

    def _escalate(eid: int, outputs: list[bytes]) -> None:
        chain.mine(2)  # the seed block, and one more for previewCommittee
        members = [by_address[a] for a in consensus.previewCommittee(eid)]
        for member, output in zip(members, outputs, strict=True):
            act.commit(member, eid, output)
        for member, output in zip(members, outputs, strict=True):
            act.reveal(member, eid, output)

    return _escalate


@pytest.fixture
def books(
    token: Any, hub: Any, staking: Any, optimistic: Any, accounts: Any, treasury: Any, model_owner: Any
) -> Callable[..., Books]:
    def _books(*extra: Any) -> Books:
        return Books(token, hub, staking, optimistic, [*accounts, treasury, model_owner, *extra])

    return _books


def stake_of(staking: Any, account: Any) -> int:
    return int(staking.operatorInfo(account).stake)


def request_fee() -> int:
    return MODEL_FEE + OP_FEE + PROTOCOL_FEE


# ------------------------------------------------------------------ requests and posts


def test_request__k_other_than_one__one_poster(optimistic: Any, make_request: Any, omodel: Any) -> None:
    with ape.reverts(optimistic.OnePoster, k=3):
        make_request(model_ref=omodel, mode=OPTIMISTIC, k=3)


def test_publish__optimistic_without_consensus__invalid_modes(
    registry: Any, make_model: Any, model_owner: Any
) -> None:
    with ape.reverts(registry.InvalidModes, modes=OPTIMISTIC):
        make_model("optimistic-alone", modes=OPTIMISTIC)


def test_open__the_round_binds_the_input_and_the_window(
    optimistic: Any, hub: Any, new_request: Any, params: Any, chain: Any
) -> None:
    rid = new_request()
    r = optimistic.getRound(rid)
    assert r.phase == Phase.OPEN and r.postDeadline == r.seedBlock + params.postWindow
    assert optimistic.deadlineOf(rid) == r.postDeadline
    assert tuple(optimistic.provisional(rid)) == (False, bytes(32), b"", 0, False)
    assert hub.getRequest(rid).status == Status.PENDING


def test_post__unchallenged__provisional_then_final__poster_paid_bond_back(
    optimistic: Any,
    hub: Any,
    new_request: Any,
    post: Any,
    params: Any,
    books: Any,
    chain: Any,
    dapp: Any,
    model_owner: Any,
    treasury: Any,
) -> None:
    rid = new_request()
    ledger = books()
    poster = post(rid, TRUE_OUT)
    r = optimistic.getRound(rid)
    assert r.phase == Phase.POSTED and r.poster == poster.address
    assert r.challengeDeadline == chain.blocks.height + params.challengeWindow
    posted, digest, output, deadline, challenged = optimistic.provisional(rid)
    assert (posted, bytes(output), deadline, challenged) == (True, TRUE_OUT, r.challengeDeadline, False)
    assert bytes(digest) == output_digest(TRUE_OUT)
    assert hub.getRequest(rid).status == Status.PENDING  # not a result yet
    with ape.reverts(hub.ResultNotReady, requestId=rid):
        hub.getResult(rid)
    assert optimistic.locked() == params.postBond
    with ape.reverts(optimistic.ChallengeWindowOpen, requestId=rid, challengeDeadline=r.challengeDeadline):
        optimistic.finalize(rid, TRUE_OUT, sender=dapp)

    chain.mine(params.challengeWindow)
    with ape.reverts(optimistic.OutputMismatch, requestId=rid):
        optimistic.finalize(rid, WRONG_OUT, sender=dapp)
    optimistic.finalize(rid, TRUE_OUT, sender=dapp)

    result = hub.getResult(rid)
    assert (result.status, bytes(result.output), list(result.agreeing)) == (
        Status.FINALIZED,
        TRUE_OUT,
        [poster.address],
    )
    assert optimistic.getRound(rid).phase == Phase.UPHELD and optimistic.locked() == 0
    assert optimistic.provisional(rid).posted is False
    assert ledger.delta(poster) == OP_FEE  # the bond came back
    assert ledger.delta(model_owner) == MODEL_FEE and ledger.delta(treasury) == PROTOCOL_FEE
    assert ledger.delta("escrow") == -request_fee()  # all of it paid out
    ledger.assert_conserved()


def test_post__reverts__not_poster_twice_too_large_too_late(
    optimistic: Any,
    new_request: Any,
    post: Any,
    poster_of: Any,
    operators: Any,
    fund: Any,
    params: Any,
    chain: Any,
) -> None:
    rid = new_request()
    poster = poster_of(rid)
    other = next(op for op in operators if op != poster)
    fund(other, params.postBond, optimistic)
    with ape.reverts(optimistic.NotCommitteeMember, requestId=rid, operator=other.address):
        optimistic.post(rid, TRUE_OUT, sender=other)
    fund(poster, params.postBond, optimistic)
    with ape.reverts(optimistic.OutputTooLarge, requestId=rid, size=MAX_OUTPUT + 1, max=MAX_OUTPUT):
        optimistic.post(rid, b"\x00" * (MAX_OUTPUT + 1), sender=poster)
    post(rid)
    with ape.reverts(optimistic.WrongPhase, requestId=rid, phase=Phase.POSTED):
        optimistic.post(rid, TRUE_OUT, sender=poster)

    late = new_request()
    chain.mine(params.postWindow)
    deadline = optimistic.getRound(late).postDeadline
    with ape.reverts(optimistic.PostWindowClosed, requestId=late, postDeadline=deadline):
        optimistic.post(late, TRUE_OUT, sender=poster_of(late))


def test_post__without_the_bond_approved__reverts_and_changes_nothing(
    optimistic: Any, token: Any, new_request: Any, poster_of: Any, params: Any
) -> None:
    rid = new_request()
    poster = poster_of(rid)
    token.approve(optimistic, 0, sender=poster)
    try:
        with ape.reverts():
            optimistic.post(rid, TRUE_OUT, sender=poster)
        assert optimistic.getRound(rid).phase == Phase.OPEN and optimistic.locked() == 0
    finally:
        token.approve(optimistic, 2**256 - 1, sender=poster)


def test_silent_poster__expire_after_the_window__refund__poster_slashed_for_silence(
    optimistic: Any,
    hub: Any,
    staking: Any,
    new_request: Any,
    poster_of: Any,
    params: Any,
    books: Any,
    chain: Any,
    dapp: Any,
) -> None:
    rid = new_request()
    poster = poster_of(rid)
    deadline = optimistic.getRound(rid).postDeadline
    with ape.reverts(optimistic.PostWindowOpen, requestId=rid, postDeadline=deadline):
        optimistic.expire(rid, sender=dapp)
    chain.mine(params.postWindow)
    stake = stake_of(staking, poster)
    ledger = books()
    receipt = optimistic.expire(rid, sender=dapp)

    assert hub.getResult(rid).status == Status.EXPIRED
    assert optimistic.getRound(rid).phase == Phase.UNPOSTED
    slashed = stake * params.slashBpsSilence // BPS
    assert stake_of(staking, poster) == stake - slashed
    [penalized] = receipt.decode_logs(hub.MemberPenalized)
    assert (penalized.operator, penalized.fault, penalized.amount) == (poster.address, Fault.SILENT, slashed)
    assert ledger.delta(dapp) == request_fee()  # a full refund
    ledger.assert_conserved()
    with ape.reverts(optimistic.WrongPhase, requestId=rid, phase=Phase.UNPOSTED):
        optimistic.expire(rid, sender=dapp)


# ------------------------------------------------------------------ challenges


def test_challenge__wrong_post__escalation_overturns__poster_slashed__challenger_paid(
    optimistic: Any,
    hub: Any,
    consensus: Any,
    staking: Any,
    new_request: Any,
    post: Any,
    challenge: Any,
    escalate: Any,
    params: Any,
    books: Any,
    challenger: Any,
    treasury: Any,
    dapp: Any,
    omodel: Any,
) -> None:
    rid = new_request()
    poster = post(rid, WRONG_OUT)
    stake = stake_of(staking, poster)
    fee = hub.quote(*omodel, params.escalationK)
    ledger = books()
    eid = challenge(rid)

    esc = hub.getRequest(eid)
    assert (esc.mode, esc.k, esc.requester) == (CONSENSUS, params.escalationK, optimistic.address)
    r = optimistic.getRound(rid)
    assert (r.phase, r.challenger, r.escalationId) == (Phase.CHALLENGED, challenger.address, eid)
    assert optimistic.provisional(rid).challenged is True
    assert optimistic.deadlineOf(rid) == consensus.deadlineOf(eid) + EXPIRY_GRACE
    with ape.reverts(optimistic.EscalationPending, escalationId=eid):
        optimistic.resolve(rid, sender=dapp)
    with ape.reverts(optimistic.WrongPhase, requestId=rid, phase=Phase.CHALLENGED):
        optimistic.finalize(rid, WRONG_OUT, sender=dapp)

    escalate(eid, [TRUE_OUT] * params.escalationK)
    receipt = optimistic.resolve(rid, sender=dapp)

    result = hub.getResult(rid)
    assert (result.status, bytes(result.output), list(result.agreeing)) == (Status.FINALIZED, TRUE_OUT, [])
    assert optimistic.getRound(rid).phase == Phase.OVERTURNED
    slashed = stake * params.slashBpsWrong // BPS
    reward = slashed * params.rewardBps // BPS
    assert stake_of(staking, poster) == stake - slashed
    [penalized] = receipt.decode_logs(hub.MemberPenalized)
    assert (penalized.operator, penalized.fault, penalized.amount) == (poster.address, Fault.DISSENT, slashed)
    winner_share = params.postBond * params.winnerShareBps // BPS
    assert ledger.delta(challenger) == winner_share + reward - fee  # its bond back, the escalation paid for
    assert ledger.delta(dapp) == OP_FEE  # the wrong poster's fee goes back to the requester
    assert optimistic.locked() == 0
    swept = optimistic.sweep(sender=dapp).return_value
    assert swept == params.postBond - winner_share
    assert int(ape.project.DevToken.at(hub.token()).balanceOf(optimistic)) + hub.claimable(optimistic) == 0
    ledger.assert_conserved()


def test_challenge__correct_post__frivolous__challenger_loses_its_bond(
    optimistic: Any,
    hub: Any,
    consensus: Any,
    new_request: Any,
    post: Any,
    challenge: Any,
    escalate: Any,
    params: Any,
    books: Any,
    challenger: Any,
    dapp: Any,
    omodel: Any,
    staking: Any,
) -> None:
    rid = new_request()
    poster = post(rid, TRUE_OUT)
    stake = stake_of(staking, poster)
    fee = hub.quote(*omodel, params.escalationK)
    ledger = books()
    eid = challenge(rid)
    escalate(eid, [TRUE_OUT] * params.escalationK)
    optimistic.resolve(rid, sender=dapp)
    in_escalation = poster.address in consensus.getCommittee(eid)  # then it earned that fee too

    result = hub.getResult(rid)
    assert (result.status, bytes(result.output), list(result.agreeing)) == (
        Status.FINALIZED,
        TRUE_OUT,
        [poster.address],
    )
    assert optimistic.getRound(rid).phase == Phase.UPHELD
    winner_share = params.challengeBond * params.winnerShareBps // BPS
    assert ledger.delta(challenger) == -(params.challengeBond + fee)
    assert ledger.delta(poster) == OP_FEE * (1 + in_escalation) + params.postBond + winner_share
    assert stake_of(staking, poster) == stake
    assert optimistic.sweep(sender=dapp).return_value == params.challengeBond - winner_share
    ledger.assert_conserved()


def test_challenge__reverts__window_closed_second_challenger_wrong_input_fee_cap(
    optimistic: Any,
    hub: Any,
    new_request: Any,
    post: Any,
    challenge: Any,
    params: Any,
    chain: Any,
    accounts: Any,
    fund: Any,
    omodel: Any,
    challenger: Any,
) -> None:
    rid = new_request()
    post(rid)
    fee = hub.quote(*omodel, params.escalationK)
    fund(challenger, params.challengeBond + fee, optimistic)
    with ape.reverts(optimistic.InputMismatch, requestId=rid):
        optimistic.challenge(rid, sample_input([9.0, 9.0, 9.0, 9.0]), fee, sender=challenger)
    with ape.reverts(optimistic.FeeAboveMax, fee=fee, maxFee=fee - 1):
        optimistic.challenge(rid, sample_input(), fee - 1, sender=challenger)
    challenge(rid)
    second = accounts[11]
    fund(second, params.challengeBond + fee, optimistic)
    with ape.reverts(optimistic.WrongPhase, requestId=rid, phase=Phase.CHALLENGED):
        optimistic.challenge(rid, sample_input(), fee, sender=second)

    late = new_request()
    post(late)
    chain.mine(params.challengeWindow + 1)
    deadline = optimistic.getRound(late).challengeDeadline
    with ape.reverts(optimistic.ChallengeWindowClosed, requestId=late, challengeDeadline=deadline):
        optimistic.challenge(late, sample_input(), fee, sender=challenger)


def test_challenge__escalation_without_majority__undecided__bonds_back__disputed(
    optimistic: Any,
    hub: Any,
    new_request: Any,
    post: Any,
    challenge: Any,
    escalate: Any,
    params: Any,
    books: Any,
    challenger: Any,
    dapp: Any,
) -> None:
    rid = new_request()
    poster = post(rid, TRUE_OUT)
    ledger = books()
    eid = challenge(rid)
    escalate(eid, [TRUE_OUT, WRONG_OUT, sample_output(0.5)])  # three outputs: no majority
    assert hub.getResult(eid).status == Status.DISPUTED
    optimistic.sweep(sender=dapp)  # the refunded fee is the challenger's: a sweep now cannot take it
    optimistic.resolve(rid, sender=dapp)

    assert hub.getResult(rid).status == Status.DISPUTED
    assert optimistic.getRound(rid).phase == Phase.UNDECIDED
    assert ledger.delta(challenger) == 0  # bond and escalation fee back
    assert ledger.delta(poster) == params.postBond  # its bond back, nothing else
    assert ledger.delta(dapp) == request_fee()
    assert optimistic.locked() == 0
    ledger.assert_conserved()


def test_challenge__version_deprecated_after_the_post__undecided_at_once(
    optimistic: Any,
    hub: Any,
    registry: Any,
    model_owner: Any,
    new_request: Any,
    post: Any,
    challenge: Any,
    books: Any,
    challenger: Any,
    dapp: Any,
    make_model: Any,
    join: Any,
    operators: Any,
    make_request: Any,
) -> None:
    model = make_model("optimistic-deprecated", modes=CONSENSUS | OPTIMISTIC, max_output_bytes=MAX_OUTPUT)
    join(operators, model[0])
    rid = request_id_of(make_request(model_ref=model, mode=OPTIMISTIC, k=1))
    poster = post(rid)
    registry.deprecateVersion(*model, sender=model_owner)
    ledger = books()
    eid = challenge(rid)  # nothing can check the post: it is not accepted

    assert eid == 0
    assert optimistic.getRound(rid).phase == Phase.UNDECIDED
    assert hub.getResult(rid).status == Status.DISPUTED
    assert ledger.delta(challenger) == 0 and ledger.delta(poster) == optimistic.params().postBond
    assert ledger.delta(dapp) == request_fee()
    ledger.assert_conserved()


def test_core_expired_a_posted_round__finalize_returns_only_the_bond(
    optimistic: Any, hub: Any, new_request: Any, post: Any, params: Any, chain: Any, dapp: Any, books: Any
) -> None:
    rid = new_request()
    poster = post(rid)
    chain.mine(params.challengeWindow + EXPIRY_GRACE + 1)
    hub.expire(rid, sender=dapp)
    ledger = books()
    optimistic.finalize(rid, TRUE_OUT, sender=dapp)
    assert hub.getResult(rid).status == Status.EXPIRED
    assert ledger.delta(poster) == params.postBond and optimistic.locked() == 0
    ledger.assert_conserved()


def test_callback__only_at_finality__with_the_final_output(
    optimistic: Any,
    hub: Any,
    deployer: Any,
    omodel: Any,
    make_request: Any,
    post: Any,
    params: Any,
    chain: Any,
    dapp: Any,
) -> None:
    consumer = deployer.deploy(project.RecordingConsumer, hub)
    rid = request_id_of(
        make_request(model_ref=omodel, mode=OPTIMISTIC, k=1, consumer=consumer, callback_gas=800_000)
    )
    post(rid, TRUE_OUT)
    chain.mine(params.challengeWindow)
    assert consumer.calls() == 0  # posted is not final
    optimistic.finalize(rid, TRUE_OUT, sender=dapp)
    assert hub.getResult(rid).callbackResult == 1
    assert (consumer.calls(), consumer.lastRequestId(), bytes(consumer.lastOutput())) == (1, rid, TRUE_OUT)


# ------------------------------------------------------------------ parameters


def test_set_params__admin_only__validated__open_rounds_keep_theirs(
    optimistic: Any, new_request: Any, deployer: Any, dapp: Any, params: Any
) -> None:
    rid = new_request()
    changed = (params.postWindow + 1, *tuple(params)[1:])
    with ape.reverts():
        optimistic.setParams(changed, sender=dapp)
    for bad in (
        (0, *tuple(params)[1:]),  # no post window
        (256, *tuple(params)[1:]),  # past the seed horizon
        (*tuple(params)[:3], 2, *tuple(params)[4:]),  # even escalation committee
        (*tuple(params)[:6], BPS // 2 + 1, *tuple(params)[7:]),  # reward above half
    ):
        with ape.reverts(optimistic.InvalidParams):
            optimistic.setParams(bad, sender=deployer)
    optimistic.setParams(changed, sender=deployer)
    try:
        assert optimistic.getRound(rid).postDeadline == optimistic.getRound(rid).seedBlock + params.postWindow
        later = new_request()
        assert (
            optimistic.getRound(later).postDeadline
            == optimistic.getRound(later).seedBlock + params.postWindow + 1
        )
    finally:
        optimistic.setParams(tuple(params), sender=deployer)


def test_escalation_nobody_settles__resolve_expires_it__undecided__bonds_and_fee_back(
    optimistic: Any,
    hub: Any,
    consensus: Any,
    new_request: Any,
    post: Any,
    challenge: Any,
    books: Any,
    challenger: Any,
    dapp: Any,
    params: Any,
    chain: Any,
) -> None:
    rid = new_request()
    poster = post(rid, TRUE_OUT)
    ledger = books()
    eid = challenge(rid)  # and then nobody commits or reveals in the escalation
    expirable = consensus.deadlineOf(eid) + EXPIRY_GRACE
    chain.mine(expirable - 1 - chain.blocks.height)  # the next block is the escalation's last of grace
    with ape.reverts(optimistic.EscalationPending, escalationId=eid):
        optimistic.resolve(rid, sender=dapp)
    chain.mine(1)
    optimistic.resolve(rid, sender=dapp)  # expires the escalation itself, then resolves

    assert hub.getRequest(eid).status == Status.EXPIRED
    assert optimistic.getRound(rid).phase == Phase.UNDECIDED
    assert hub.getRequest(rid).status == Status.DISPUTED
    assert ledger.delta(challenger) == 0 and ledger.delta(poster) == params.postBond
    assert optimistic.locked() == 0
    ledger.assert_conserved()


def test_escalation__its_committee_never_holds_the_poster(
    optimistic: Any,
    consensus: Any,
    new_request: Any,
    post: Any,
    challenge: Any,
    escalate: Any,
    operators: list[Any],
    params: Any,
    chain: Any,
) -> None:
    """The escalation is drawn as escalationK + 1 with the poster taken out: with five operators, three
    of the four others, whoever the seeds pick."""
    for n in range(4):
        rid = new_request()
        poster = post(rid, WRONG_OUT)
        receipt_before = chain.blocks.height
        eid = challenge(rid)
        assert consensus.excludedFrom(eid) == poster.address
        (excluded,) = consensus.ExcludedFromDraw.range(receipt_before, chain.blocks.height + 1)
        assert (excluded.requestId, excluded.operator) == (eid, poster.address)
        if n == 0:
            escalate(eid, [TRUE_OUT] * params.escalationK)  # the draw at the first commit = the preview
            committee = list(consensus.getCommittee(eid))
        else:
            chain.mine(2)
            committee = list(consensus.previewCommittee(eid))
        assert len(set(committee)) == params.escalationK and poster.address not in committee
        assert set(committee) <= {o.address for o in operators}


def test_exclude_from_draw__only_the_requesting_mode__before_the_seed__never_zero(
    consensus: Any,
    optimistic: Any,
    hub: Any,
    omodel: Any,
    make_request: Any,
    fund: Callable[..., None],
    dapp: Any,
    operators: list[Any],
) -> None:
    rid = request_id_of(make_request(model_ref=omodel, mode=CONSENSUS, k=3, seed=False))
    with ape.reverts(consensus.ExclusionRefused, requestId=rid, caller=dapp.address):
        consensus.excludeFromDraw(rid, operators[0], sender=dapp)  # its requester, but not a mode
    with ape.reverts(consensus.ExclusionRefused, requestId=rid, caller=operators[1].address):
        consensus.excludeFromDraw(rid, operators[0], sender=operators[1])
    with ape.reverts(consensus.UnknownRequest, requestId=10**9):
        consensus.excludeFromDraw(10**9, operators[0], sender=dapp)
    # The optimistic mode itself (impersonated), on a request it made: refused once the seed block is in.
    mode = ape.accounts[optimistic.address]
    ape.chain.set_balance(optimistic.address, E18)
    fee = hub.quote(*omodel, 3)
    fund(optimistic.address, fee)
    escalation = (omodel[0], omodel[1], CONSENSUS, 3, 0, False, fee, sample_input())
    own = request_id_of(hub.requestInference(escalation, sender=mode))
    with ape.reverts(consensus.ExclusionRefused, requestId=own, caller=optimistic.address):
        consensus.excludeFromDraw(own, operators[0], sender=mode)  # mined in the seed block: too late
    assert consensus.excludedFrom(own) == ape.utils.ZERO_ADDRESS


def test_core_expired_a_challenged_round__resolve_still_pays_bonds_and_slashes(
    optimistic: Any,
    hub: Any,
    consensus: Any,
    staking: Any,
    new_request: Any,
    post: Any,
    challenge: Any,
    escalate: Any,
    books: Any,
    challenger: Any,
    dapp: Any,
    params: Any,
    chain: Any,
    omodel: Any,
) -> None:
    rid = new_request()
    poster = post(rid, WRONG_OUT)
    stake = stake_of(staking, poster)
    fee = hub.quote(*omodel, params.escalationK)
    ledger = books()
    eid = challenge(rid)
    escalate(eid, [TRUE_OUT] * params.escalationK)
    chain.mine(optimistic.deadlineOf(rid) + EXPIRY_GRACE + 1 - chain.blocks.height)
    hub.expire(rid, sender=dapp)  # nobody resolved in time: the requester is refunded
    optimistic.resolve(rid, sender=dapp)

    assert hub.getRequest(rid).status == Status.EXPIRED
    assert optimistic.getRound(rid).phase == Phase.OVERTURNED
    slashed = stake * params.slashBpsWrong // BPS
    assert stake_of(staking, poster) == stake - slashed
    winner_share = params.postBond * params.winnerShareBps // BPS
    reward = slashed * params.rewardBps // BPS
    assert ledger.delta(challenger) == winner_share + reward - fee
    assert ledger.delta(dapp) == request_fee()
    ledger.assert_conserved()


def test_error_output_posted__unchallenged__request_failed_with_its_code(
    optimistic: Any, hub: Any, new_request: Any, post: Any, params: Any, chain: Any, dapp: Any
) -> None:
    rid = new_request()
    failed = error_output(ErrorCode.MALFORMED_INPUT)
    post(rid, failed)
    chain.mine(params.challengeWindow)
    optimistic.finalize(rid, failed, sender=dapp)
    result = hub.getResult(rid)
    assert (result.status, result.errorCode) == (Status.FAILED, ErrorCode.MALFORMED_INPUT)


def test_resolve_and_views__wrong_phase_or_another_modes_request(
    optimistic: Any, new_request: Any, post: Any, make_request: Any, dapp: Any
) -> None:
    rid = new_request()
    with ape.reverts(optimistic.WrongPhase, requestId=rid, phase=Phase.OPEN):
        optimistic.resolve(rid, sender=dapp)
    post(rid)
    with ape.reverts(optimistic.WrongPhase, requestId=rid, phase=Phase.POSTED):
        optimistic.resolve(rid, sender=dapp)
    consensus_rid = request_id_of(make_request())
    with ape.reverts(optimistic.UnknownRequest, requestId=consensus_rid):
        optimistic.getRound(consensus_rid)
    assert optimistic.deadlineOf(consensus_rid) == 0
