"""OperatorStaking: stake, unbonding queue, pools, slashing (also of unbonding stake), jailing."""

import ape
import pytest

from tests.conftest import E18, TEST_PARAMS

MIN = TEST_PARAMS["min_stake"]


@pytest.fixture
def op(accounts, chain):
    """A fresh operator, untouched by the session-wide pool of other test modules."""
    fresh = accounts.generate_test_account()
    chain.set_balance(fresh, 10 * E18)
    return fresh


@pytest.fixture
def model_id(make_model):
    return make_model("staking-model")[0]


@pytest.fixture
def slasher(staking, deployer, challenger):
    """The challenger account as a second slasher, so tests can slash directly."""
    staking.grantRole(staking.SLASHER_ROLE(), challenger, sender=deployer)
    return challenger


@pytest.fixture
def staked(op, staking, token, fund, model_id):
    held_before = token.balanceOf(staking)
    fund(op, 1_000 * E18, staking)
    staking.stake(1_000 * E18, sender=op)
    staking.register(model_id, sender=op)
    assert token.balanceOf(staking) - held_before == 1_000 * E18
    return op


def test_stake__records_and_weights(staked, staking, model_id):
    info = staking.operatorInfo(staked)
    assert (info.stake, info.unbonding, info.faults, info.jailed, info.modelCount) == (
        1_000 * E18,
        0,
        0,
        False,
        1,
    )
    assert staking.weightOf(staked, model_id) == 1_000 * E18
    assert staking.poolInfo(model_id) == (1, 1, 1_000 * E18)


def test_stake__emits(staking, op, fund):
    fund(op, 5 * E18, staking)
    receipt = staking.stake(5 * E18, sender=op)
    assert receipt.events.filter(staking.Staked) == [staking.Staked(op, 5 * E18, 5 * E18)]


def test_stake__zero__reverts(staking, op):
    with ape.reverts(staking.InvalidAmount):
        staking.stake(0, sender=op)


def test_stake__no_allowance__reverts(staking, token, op, deployer):
    token.mint(op, E18, sender=deployer)
    with ape.reverts(token.ERC20InsufficientAllowance):
        staking.stake(E18, sender=op)


def test_below_min_stake__not_eligible(staking, op, fund, model_id):
    fund(op, MIN - 1, staking)
    staking.stake(MIN - 1, sender=op)
    staking.register(model_id, sender=op)
    assert staking.weightOf(op, model_id) == 0
    assert staking.poolInfo(model_id)[1] == 0


def test_unbond_and_withdraw__after_period(staked, staking, token, chain):
    receipt = staking.requestUnbond(400 * E18, sender=staked)
    release = receipt.events.filter(staking.UnbondingRequested)[0].releaseAt
    assert staking.operatorInfo(staked).stake == 600 * E18
    assert staking.operatorInfo(staked).unbonding == 400 * E18
    with ape.reverts(staking.NothingToWithdraw):
        staking.withdraw(sender=staked)
    chain.pending_timestamp = release
    before = token.balanceOf(staked)
    staking.withdraw(sender=staked)
    assert token.balanceOf(staked) - before == 400 * E18
    assert staking.operatorInfo(staked).unbonding == 0
    assert staking.unbondingsOf(staked) == []


def test_unbond__below_min__drops_weight(staked, staking, model_id):
    staking.requestUnbond(901 * E18, sender=staked)
    assert staking.weightOf(staked, model_id) == 0


@pytest.mark.parametrize("amount", [0, 1_001 * E18])
def test_unbond__bad_amount__reverts(staked, staking, amount):
    error = staking.InvalidAmount if amount == 0 else staking.InsufficientStake
    with ape.reverts(error):
        staking.requestUnbond(amount, sender=staked)


def test_unbond__queue_full__reverts(staked, staking):
    for _ in range(staking.MAX_UNBONDINGS()):
        staking.requestUnbond(E18, sender=staked)
    with ape.reverts(staking.TooManyUnbondings):
        staking.requestUnbond(E18, sender=staked)


def test_register__errors(staking, op, model_id, make_model):
    with ape.reverts(staking.UnknownModel):
        staking.register(b"\x05" * 32, sender=op)
    staking.register(model_id, sender=op)
    with ape.reverts(staking.AlreadyRegistered):
        staking.register(model_id, sender=op)
    for i in range(staking.MAX_MODELS_PER_OPERATOR() - 1):
        staking.register(make_model(f"extra-{i}")[0], sender=op)
    with ape.reverts(staking.TooManyModels):
        staking.register(make_model("one-too-many")[0], sender=op)


def test_deregister__zeroes_weight_and_rejoin_restores(staked, staking, model_id):
    receipt = staking.deregister(model_id, sender=staked)
    assert receipt.events == [staking.ModelLeft(staked, model_id)]
    assert staking.weightOf(staked, model_id) == 0
    assert staking.modelsOf(staked) == []
    with ape.reverts(staking.NotRegistered):
        staking.deregister(model_id, sender=staked)
    staking.register(model_id, sender=staked)
    assert staking.weightOf(staked, model_id) == 1_000 * E18
    assert staking.poolInfo(model_id)[0] == 1  # the slot is reused


def test_slash__takes_from_stake_and_unbonding(staked, staking, token, slasher, treasury, chain):
    staking.requestUnbond(200 * E18, sender=staked)
    treasury_before = token.balanceOf(treasury)
    receipt = staking.slash(staked, 1_000, slasher, 5_000, sender=slasher)
    slashed = 100 * E18  # 10% of 800 active + 200 unbonding
    assert receipt.return_value == slashed
    info = staking.operatorInfo(staked)
    assert (info.stake, info.unbonding, info.faults) == (720 * E18, 180 * E18, 1)
    assert token.balanceOf(slasher) == slashed // 2
    assert token.balanceOf(treasury) - treasury_before == slashed // 2
    assert staking.unbondingsOf(staked)[0].amount == 180 * E18
    # A slashed unbonding entry withdraws what is left of it.
    chain.pending_timestamp += TEST_PARAMS["unbonding_period"] + 1
    staking.withdraw(sender=staked)
    assert staking.operatorInfo(staked).unbonding == 0


def test_slash__repeated_faults__jail_then_unjail(staked, staking, slasher, model_id, fund):
    staking.slash(staked, 100, slasher, 0, sender=slasher)
    assert not staking.operatorInfo(staked).jailed
    receipt = staking.slash(staked, 100, slasher, 0, sender=slasher)
    assert receipt.events.filter(staking.Jailed) == [staking.Jailed(staked, 2)]
    assert staking.operatorInfo(staked).jailed
    assert staking.weightOf(staked, model_id) == 0
    staking.unjail(sender=staked)
    info = staking.operatorInfo(staked)
    assert (info.jailed, info.faults) == (False, 0)
    assert staking.weightOf(staked, model_id) == info.stake


def test_unjail__needs_min_stake_and_jail(staked, staking, slasher):
    with ape.reverts(staking.NotJailed):
        staking.unjail(sender=staked)
    staking.slash(staked, 9_500, slasher, 0, sender=slasher)
    staking.slash(staked, 0, slasher, 0, sender=slasher)
    with ape.reverts(staking.InsufficientStake):
        staking.unjail(sender=staked)


def test_slash__access_control_and_bps(staked, staking, dapp, slasher):
    with ape.reverts(staking.AccessControlUnauthorizedAccount):
        staking.slash(staked, 100, dapp, 0, sender=dapp)
    with ape.reverts(staking.InvalidBps):
        staking.slash(staked, 10_001, slasher, 0, sender=slasher)
    with ape.reverts(staking.InvalidBps):
        staking.slash(staked, 100, slasher, 10_001, sender=slasher)


def test_admin_setters__access_and_validation(staking, deployer, dapp, treasury):
    for call, arg in (
        (staking.setUnbondingPeriod, 5),
        (staking.setJailThreshold, 3),
        (staking.setTreasury, dapp),
    ):
        with ape.reverts(staking.AccessControlUnauthorizedAccount):
            call(arg, sender=dapp)
    assert staking.setUnbondingPeriod(5, sender=deployer).events == [staking.UnbondingPeriodUpdated(5)]
    assert staking.setJailThreshold(3, sender=deployer).events == [staking.JailThresholdUpdated(3)]
    assert staking.setTreasury(dapp, sender=deployer).events == [staking.TreasuryUpdated(dapp)]
    with ape.reverts(staking.InvalidParameter):
        staking.setJailThreshold(0, sender=deployer)
    with ape.reverts(staking.InvalidParameter):
        staking.setTreasury(ape.utils.ZERO_ADDRESS, sender=deployer)


def test_draw__errors(staking, model_id):
    with ape.reverts(staking.InvalidCommitteeSize):
        staking.drawCommittee(model_id, 0, 1)
    with ape.reverts(staking.InvalidCommitteeSize):
        staking.drawCommittee(model_id, 17, 1)
    with ape.reverts(staking.InsufficientOperators):
        staking.drawCommittee(model_id, 1, 1)
