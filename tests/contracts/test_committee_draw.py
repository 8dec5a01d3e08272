"""The stake-weighted committee draw over 100 operators: distinct, eligible, weighted, sublinear, and
fixed by the pool as it stood at the end of the epoch before the seed block's."""

from collections import Counter

import pytest
from eth_abi import encode
from eth_account import Account
from eth_utils import keccak
from verinfer.chain.attestations import Domain, sign
from verinfer.models.codec import output_digest

from tests.conftest import E18, TEST_PARAMS, next_epoch, request_id_of, sample_output

N_OPERATORS = 100
SEEDS = range(20)


def crowd_weight(i: int) -> int:
    return (300 if i % 2 else 100) * E18


def model_draw(weights: list[int], k: int, seed: int) -> list[int]:
    """The draw computed afresh from slot weights (slot order): k distinct slots, each picked with
    probability proportional to its weight among those not picked yet, from keccak(seed, j)."""
    chosen: list[int] = []
    remaining = sum(weights)
    for j in range(k):
        target = int.from_bytes(keccak(encode(["uint256", "uint256"], [seed, j])), "big") % remaining
        for slot, weight in enumerate(weights):
            if slot in chosen:
                continue
            if target < weight:
                break
            target -= weight
        chosen.append(slot)
        remaining -= weights[slot]
    return chosen


def draws(staking, model_id, seed_block, k=5):
    return {seed: list(staking.drawCommittee(model_id, k, seed, seed_block)) for seed in SEEDS}


def expected_draws(ops, weights, k=5):
    return {seed: [ops[s].address for s in model_draw(weights, k, seed)] for seed in SEEDS}


def same_epoch(staking, a: int, b: int) -> bool:
    return staking.epochOf(a) == staking.epochOf(b)


@pytest.fixture(scope="module")
def new_operator(accounts, chain, token, staking, deployer):
    """Makes a fresh, funded operator that has approved the staking contract (two blocks)."""

    def _new(amount: int):
        op = accounts.generate_test_account()
        chain.set_balance(op, 10 * E18)
        token.mint(op, amount, sender=deployer)
        token.approve(staking, amount, sender=op)
        return op

    return _new


@pytest.fixture(scope="module")
def crowd(staking, make_model, new_operator):
    """100 fresh operators in one pool, drawable: even ones stake 100, odd ones 300 tokens."""
    model_id = make_model("crowded")[0]
    ops = []
    for i in range(N_OPERATORS):
        op = new_operator(crowd_weight(i))
        staking.stake(crowd_weight(i), sender=op)
        staking.register(model_id, bytes(32), sender=op)
        ops.append(op)
    next_epoch(staking)
    return model_id, ops


@pytest.fixture
def slasher(staking, deployer, accounts):
    """A second slasher so tests can jail directly (the challenger account; `accounts` is already set
    up by the module's fixtures, so asking for it does not make ape rebase the crowd)."""
    staking.grantRole(staking.SLASHER_ROLE(), accounts[3], sender=deployer)
    return accounts[3]


def test_draw__100_operators__distinct_and_registered(staking, crowd, chain):
    model_id, ops = crowd
    assert staking.poolInfo(model_id) == (N_OPERATORS, N_OPERATORS, 50 * 100 * E18 + 50 * 300 * E18)
    seed_block = chain.blocks.height
    assert staking.eligibleAt(model_id, seed_block) == N_OPERATORS
    members = {op.address for op in ops}
    for seed in range(30):
        committee = staking.drawCommittee(model_id, 9, seed, seed_block)
        assert len(set(committee)) == 9
        assert set(committee) <= members


def test_draw__matches_a_fresh_computation_from_the_weights(staking, crowd, chain):
    model_id, ops = crowd
    weights = [crowd_weight(i) for i in range(N_OPERATORS)]
    assert draws(staking, model_id, chain.blocks.height, k=9) == expected_draws(ops, weights, k=9)


def test_draw__weighted_by_stake(staking, crowd, chain):
    model_id, ops = crowd
    heavy = {op.address for i, op in enumerate(ops) if i % 2}
    seed_block = chain.blocks.height
    picks = Counter(staking.drawCommittee(model_id, 1, seed, seed_block)[0] in heavy for seed in range(400))
    share = picks[True] / 400
    assert 0.68 <= share <= 0.82, share  # expected 0.75 = 300 / (100 + 300)


def test_draw__largest_committee__distinct(staking, crowd, chain):
    model_id, _ = crowd
    committee = staking.drawCommittee(model_id, 16, 7, chain.blocks.height)
    assert len(set(committee)) == 16


def test_draw__ineligible_never_drawn_from_the_next_epoch(staking, crowd, chain):
    model_id, ops = crowd
    for op in ops[:40]:
        staking.deregister(model_id, bytes(32), sender=op)
    for op in ops[40:50]:
        staking.requestUnbond(staking.operatorInfo(op).stake, sender=op)
    assert staking.poolInfo(model_id)[1] == 50
    next_epoch(staking)
    seed_block = chain.blocks.height
    assert staking.eligibleAt(model_id, seed_block) == 50
    excluded = {op.address for op in ops[:50]}
    for seed in range(40):
        assert not set(staking.drawCommittee(model_id, 5, seed, seed_block)) & excluded


def test_draw__operator_joining_in_the_seed_epoch__never_drawn_for_it(staking, crowd, chain, new_operator):
    model_id, ops = crowd
    # Staked in an earlier epoch, registers only in the seed's epoch.
    late_registrant = new_operator(50_000 * E18)
    staking.stake(50_000 * E18, sender=late_registrant)
    next_epoch(staking)
    seed_block = chain.blocks.height
    before = draws(staking, model_id, seed_block)
    # Stakes and registers in the seed's epoch, with far more stake than the whole pool.
    newcomer = new_operator(1_000_000 * E18)
    staking.stake(1_000_000 * E18, sender=newcomer)
    staking.register(model_id, bytes(32), sender=newcomer)
    staking.register(model_id, bytes(32), sender=late_registrant)
    assert same_epoch(staking, seed_block, chain.blocks.height)
    assert staking.poolInfo(model_id)[1] == N_OPERATORS + 2
    assert staking.eligibleAt(model_id, seed_block) == N_OPERATORS
    assert staking.eligibleAt(model_id, chain.blocks.height + 1) == N_OPERATORS
    assert draws(staking, model_id, seed_block) == before
    assert draws(staking, model_id, chain.blocks.height + 1) == before  # a later seed in the same epoch

    next_epoch(staking)
    assert draws(staking, model_id, seed_block) == before
    new_seed_block = chain.blocks.height
    assert staking.eligibleAt(model_id, new_seed_block) == N_OPERATORS + 2
    weights = [crowd_weight(i) for i in range(N_OPERATORS)] + [1_000_000 * E18, 50_000 * E18]
    after = draws(staking, model_id, new_seed_block)
    assert after == expected_draws([*ops, newcomer, late_registrant], weights)
    assert all(newcomer.address in committee for committee in after.values())


def test_draw__pool_changes_in_the_seed_epoch_or_later__leave_the_draw_unchanged(
    staking, crowd, chain, token, deployer, slasher
):
    model_id, ops = crowd
    seed_block = chain.blocks.height
    before = draws(staking, model_id, seed_block, k=9)
    drawn = {address for committee in before.values() for address in committee}
    grower, leaver, unbonder, jailbird = ops[1], ops[3], ops[5], ops[7]
    assert {grower.address, leaver.address, unbonder.address, jailbird.address} <= drawn

    token.mint(grower, 10_000 * E18, sender=deployer)
    token.approve(staking, 10_000 * E18, sender=grower)
    staking.stake(10_000 * E18, sender=grower)
    staking.deregister(model_id, bytes(32), sender=leaver)
    staking.requestUnbond(staking.operatorInfo(unbonder).stake, sender=unbonder)
    for _ in range(TEST_PARAMS["jail_threshold"]):
        staking.slash(jailbird, 100, slasher, 0, sender=slasher)
    assert staking.operatorInfo(jailbird).jailed
    assert draws(staking, model_id, seed_block, k=9) == before

    next_epoch(staking)
    staking.requestUnbond(staking.operatorInfo(grower).stake, sender=grower)
    staking.register(model_id, bytes(32), sender=leaver)
    next_epoch(staking)
    assert draws(staking, model_id, seed_block, k=9) == before
    # Seeds from now on see the changes: the unbonded and jailed are out.
    gone = {unbonder.address, jailbird.address, grower.address}
    for committee in draws(staking, model_id, chain.blocks.height, k=9).values():
        assert not set(committee) & gone


def test_draw__history__each_seed_epoch_reads_the_pool_of_the_epoch_before(
    staking, crowd, chain, token, deployer
):
    model_id, ops = crowd
    weights = [crowd_weight(i) for i in range(N_OPERATORS)]
    recorded = []
    for step in range(4):
        # The first block of an epoch: its draws read the pool as it is now, at the previous epoch's end.
        seed_block = chain.blocks.height
        assert seed_block % staking.epochBlocks() == 0
        expected = expected_draws(ops, weights)
        snapshot = draws(staking, model_id, seed_block)
        assert snapshot == expected
        recorded.append((seed_block, snapshot, sum(w > 0 for w in weights)))

        # Change weights in this epoch: one operator grows every epoch, others shrink or leave.
        grower, shrinker, leaver = ops[1], ops[21 + 2 * step], ops[10 + step]
        token.mint(grower, 5_000 * E18, sender=deployer)
        token.approve(staking, 5_000 * E18, sender=grower)
        staking.stake(5_000 * E18, sender=grower)
        weights[1] += 5_000 * E18
        staking.requestUnbond(100 * E18, sender=shrinker)
        weights[21 + 2 * step] -= 100 * E18
        staking.deregister(model_id, bytes(32), sender=leaver)
        weights[10 + step] = 0
        # Later seeds of this epoch still read the previous epoch's end.
        assert same_epoch(staking, seed_block, chain.blocks.height)
        assert draws(staking, model_id, chain.blocks.height) == snapshot
        next_epoch(staking)

    assert draws(staking, model_id, chain.blocks.height) == expected_draws(ops, weights)
    next_epoch(staking)
    for seed_block, snapshot, eligible in recorded:
        assert draws(staking, model_id, seed_block) == snapshot
        assert draws(staking, model_id, seed_block + staking.epochBlocks() - 1) == snapshot
        assert staking.eligibleAt(model_id, seed_block) == eligible


def test_draw__gas_grows_sublinearly(staking, crowd, chain, make_model, new_operator):
    model_id, _ = crowd
    small = make_model("small-pool")[0]
    for _ in range(10):
        op = new_operator(100 * E18)
        staking.stake(100 * E18, sender=op)
        staking.register(small, bytes(32), sender=op)
    next_epoch(staking)
    seed_block = chain.blocks.height
    gas_10 = staking.drawCommittee.estimate_gas_cost(small, 5, 1, seed_block)
    gas_100 = staking.drawCommittee.estimate_gas_cost(model_id, 5, 1, seed_block)
    # Ten times the operators; a linear scan would cost ~10x, the tree about log(100)/log(10).
    assert gas_100 < 2.5 * gas_10, (gas_10, gas_100)


def test_draw_slots__same_committee_as_the_draw__slots_read_back_to_it(staking, crowd, chain):
    model_id, _ = crowd
    seed_block = chain.blocks.height
    for seed in range(5):
        committee, slots = staking.drawCommitteeSlots(model_id, 16, seed, seed_block)
        assert list(committee) == list(staking.drawCommittee(model_id, 16, seed, seed_block))
        assert list(staking.membersAt(model_id, list(slots))) == list(committee)
        assert all(1 <= s <= N_OPERATORS for s in slots)
    zero = "0x" + "00" * 20
    assert list(staking.membersAt(model_id, [0, N_OPERATORS + 1])) == [zero, zero]  # never handed out


def test_attested__committee_of_nine__kept_as_slots_over_two_words__settles_and_reads_back(
    staking, crowd, chain, make_model, make_request, attested, hub, dapp
):
    model_id, ops = crowd
    _, version = make_model("crowded", modes=1 | 8)
    k = TEST_PARAMS["max_k"]
    assert k > 8  # the ninth member's slot goes to a second word
    rid = request_id_of(make_request(k=k, model_ref=(model_id, version), mode=8))
    chain.mine(1)
    committee = list(attested.previewCommittee(rid))
    keys = {op.address: Account.from_key(op.private_key) for op in ops}
    output = sample_output()
    domain = Domain(chain.chain_id, attested.address)
    signatures = []
    for member in committee[1:]:  # the first member is left out: its fee is held, its slot still kept
        att = sign(keys[member], domain, rid, output_digest(output))
        signatures.append((att.output_digest, att.signature))

    attested.settle(rid, output, signatures, sender=dapp)

    assert list(attested.getCommittee(rid)) == committee
    assert list(hub.getResult(rid).agreeing) == committee[1:]
    late = sign(keys[committee[0]], domain, rid, output_digest(output))
    receipt = attested.attestLate(rid, late.signature, sender=dapp)  # found again from its kept slot
    assert receipt.decode_logs(attested.LateAttestation)[0].member == committee[0]
    assert list(hub.getResult(rid).agreeing) == committee


def test_attested__committee_of_sixteen__members_leave_rejoin_and_newcomers_join__read_back_unchanged(
    staking, crowd, chain, make_model, make_request, attested, hub, dapp, deployer, new_operator
):
    """A slot never changes hands: after settlement the top lane of each word (members 7 and 15) still
    names the drawn operator when they leave the pool, unbond, rejoin and newcomers take new slots."""
    p = hub.params()
    hub.setParams(
        (16, p.maxInputBytes, p.maxOutputBytes, p.maxCallbackGas, p.operatorFee, p.protocolFee),
        sender=deployer,
    )
    model_id, ops = crowd
    _, version = make_model("crowded", modes=1 | 8)
    rid = request_id_of(make_request(k=16, model_ref=(model_id, version), mode=8))
    chain.mine(1)
    committee = list(attested.previewCommittee(rid))
    keys = {op.address: Account.from_key(op.private_key) for op in ops}
    by_address = {op.address: op for op in ops}
    output, other = sample_output(), sample_output(0.75)
    domain = Domain(chain.chain_id, attested.address)

    def signed(member: str, out: bytes) -> tuple[bytes, bytes]:
        att = sign(keys[member], domain, rid, output_digest(out))
        return att.output_digest, att.signature

    attested.settle(
        rid, output, [signed(m, output) for i, m in enumerate(committee) if i not in (7, 15)], sender=dapp
    )
    left7, left15 = by_address[committee[7]], by_address[committee[15]]
    staking.deregister(model_id, bytes(32), sender=left7)
    staking.deregister(model_id, bytes(32), sender=left15)
    staking.requestUnbond(staking.operatorInfo(left15).stake, sender=left15)
    for _ in range(3):
        newcomer = new_operator(200 * E18)
        staking.stake(200 * E18, sender=newcomer)
        staking.register(model_id, bytes(32), sender=newcomer)
    staking.register(model_id, bytes(32), sender=left15)  # rejoins on its old slot
    assert list(attested.getCommittee(rid)) == committee

    receipt = attested.attestLate(rid, signed(committee[15], output)[1], sender=dapp)
    assert receipt.decode_logs(attested.LateAttestation)[0].member == committee[15]
    receipt = attested.reportDissent(rid, signed(committee[7], other), sender=dapp)
    assert receipt.decode_logs(attested.DissentProven)[0].member == committee[7]
    assert list(hub.getResult(rid).agreeing) == [m for i, m in enumerate(committee) if i != 7]
