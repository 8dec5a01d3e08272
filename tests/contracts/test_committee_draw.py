"""The stake-weighted committee draw over 100 operators: distinct, eligible, weighted, sublinear."""

from collections import Counter

import pytest

from tests.conftest import E18

N_OPERATORS = 100


@pytest.fixture(scope="module")
def crowd(accounts, chain, staking, token, deployer, make_model):
    """100 fresh operators in one pool: even ones stake 100, odd ones 300 tokens."""
    model_id = make_model("crowded")[0]
    ops = []
    for i in range(N_OPERATORS):
        op = accounts.generate_test_account()
        chain.set_balance(op, 10 * E18)
        amount = (300 if i % 2 else 100) * E18
        token.mint(op, amount, sender=deployer)
        token.approve(staking, amount, sender=op)
        staking.stake(amount, sender=op)
        staking.register(model_id, sender=op)
        ops.append(op)
    return model_id, ops


def test_draw__100_operators__distinct_and_registered(staking, crowd):
    model_id, ops = crowd
    assert staking.poolInfo(model_id) == (N_OPERATORS, N_OPERATORS, 50 * 100 * E18 + 50 * 300 * E18)
    members = {op.address for op in ops}
    for seed in range(30):
        committee = staking.drawCommittee(model_id, 9, seed)
        assert len(set(committee)) == 9
        assert set(committee) <= members


def test_draw__weighted_by_stake(staking, crowd):
    model_id, ops = crowd
    heavy = {op.address for i, op in enumerate(ops) if i % 2}
    picks = Counter(staking.drawCommittee(model_id, 1, seed)[0] in heavy for seed in range(400))
    share = picks[True] / 400
    assert 0.68 <= share <= 0.82, share  # expected 0.75 = 300 / (100 + 300)


def test_draw__largest_committee__distinct(staking, crowd):
    model_id, _ = crowd
    committee = staking.drawCommittee(model_id, 16, 7)
    assert len(set(committee)) == 16


def test_draw__ineligible_never_drawn(staking, crowd, chain):
    model_id, ops = crowd
    left = ops[:40]
    for op in left:
        staking.deregister(model_id, sender=op)
    for op in ops[40:50]:
        staking.requestUnbond(staking.operatorInfo(op).stake, sender=op)
    assert staking.poolInfo(model_id)[1] == 50
    excluded = {op.address for op in ops[:50]}
    for seed in range(40):
        assert not set(staking.drawCommittee(model_id, 5, seed)) & excluded


def test_draw__gas_grows_sublinearly(staking, crowd, accounts, chain, token, deployer, make_model):
    model_id, _ = crowd
    small = make_model("small-pool")[0]
    for _ in range(10):
        op = accounts.generate_test_account()
        chain.set_balance(op, E18)
        token.mint(op, 100 * E18, sender=deployer)
        token.approve(staking, 100 * E18, sender=op)
        staking.stake(100 * E18, sender=op)
        staking.register(small, sender=op)
    gas_10 = staking.drawCommittee.estimate_gas_cost(small, 5, 1)
    gas_100 = staking.drawCommittee.estimate_gas_cost(model_id, 5, 1)
    # Ten times the operators; a linear scan would cost ~10x, the tree about log(100)/log(10).
    assert gas_100 < 2.5 * gas_10, (gas_10, gas_100)
