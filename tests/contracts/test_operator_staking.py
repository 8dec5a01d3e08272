"""OperatorStaking: stake, unbonding queue (in blocks), pools, slashing (also of unbonding stake),
jailing with a jail period, fault decay, and refusing fee-on-transfer tokens."""

import ape
import pytest

from tests.conftest import E18, TEST_PARAMS, next_epoch

MIN = TEST_PARAMS["min_stake"]
UNBONDING = TEST_PARAMS["unbonding_period"]
JAIL_PERIOD = TEST_PARAMS["jail_period"]
DECAY = TEST_PARAMS["fault_decay"]


def mine_until(block: int) -> None:
    """Mines so that the next transaction lands in `block`."""
    ape.chain.mine(block - ape.chain.blocks.height - 1)


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
    staking.register(model_id, bytes(32), sender=op)
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
    staking.register(model_id, bytes(32), sender=op)
    assert staking.weightOf(op, model_id) == 0
    assert staking.poolInfo(model_id)[1] == 0


def test_unbond_and_withdraw__after_period_in_blocks(staked, staking, token):
    receipt = staking.requestUnbond(400 * E18, sender=staked)
    release = receipt.events.filter(staking.UnbondingRequested)[0].releaseAt
    assert release == receipt.block_number + UNBONDING
    assert staking.unbondingsOf(staked) == [(400 * E18, release)]
    assert staking.operatorInfo(staked).stake == 600 * E18
    assert staking.operatorInfo(staked).unbonding == 400 * E18
    with ape.reverts(staking.NothingToWithdraw):
        staking.withdraw(sender=staked)
    mine_until(release - 1)
    with ape.reverts(staking.NothingToWithdraw):
        staking.withdraw(sender=staked)
    mine_until(release)
    before = token.balanceOf(staked)
    receipt = staking.withdraw(sender=staked)
    assert receipt.block_number == release
    assert receipt.events.filter(staking.Withdrawn) == [staking.Withdrawn(staked, 400 * E18)]
    assert token.balanceOf(staked) - before == 400 * E18
    assert staking.operatorInfo(staked).unbonding == 0
    assert staking.unbondingsOf(staked) == []


def test_withdraw__takes_only_matured_entries(staked, staking, token):
    first = staking.requestUnbond(100 * E18, sender=staked).events[0].releaseAt
    ape.chain.mine(10)
    second = staking.requestUnbond(50 * E18, sender=staked).events[0].releaseAt
    mine_until(first)
    before = token.balanceOf(staked)
    staking.withdraw(sender=staked)
    assert token.balanceOf(staked) - before == 100 * E18
    assert staking.unbondingsOf(staked) == [(50 * E18, second)]
    mine_until(second)
    staking.withdraw(sender=staked)
    assert token.balanceOf(staked) - before == 150 * E18


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


def test_set_unbonding_period__lengthens_for_future_requests_only(staked, staking, deployer):
    earlier = staking.requestUnbond(E18, sender=staked).events[0].releaseAt
    receipt = staking.setUnbondingPeriod(UNBONDING + 100, sender=deployer)
    assert receipt.events == [staking.UnbondingPeriodUpdated(UNBONDING + 100)]
    assert staking.unbondingPeriod() == UNBONDING + 100
    later = staking.requestUnbond(E18, sender=staked)
    assert later.events[0].releaseAt == later.block_number + UNBONDING + 100
    assert staking.unbondingsOf(staked)[0].releaseAt == earlier


def test_set_unbonding_period__same_period__accepted(staking, deployer):
    staking.setUnbondingPeriod(UNBONDING, sender=deployer)
    assert staking.unbondingPeriod() == UNBONDING


def test_set_unbonding_period__shorter__reverts(staking, deployer):
    with ape.reverts(staking.UnbondingPeriodTooShort, period=UNBONDING - 1, current=UNBONDING):
        staking.setUnbondingPeriod(UNBONDING - 1, sender=deployer)
    assert staking.unbondingPeriod() == UNBONDING


def test_register__errors(staking, op, model_id, make_model):
    with ape.reverts(staking.UnknownModel):
        staking.register(b"\x05" * 32, bytes(32), sender=op)
    staking.register(model_id, bytes(32), sender=op)
    with ape.reverts(staking.AlreadyRegistered):
        staking.register(model_id, bytes(32), sender=op)
    for i in range(staking.MAX_MODELS_PER_OPERATOR() - 1):
        staking.register(make_model(f"extra-{i}")[0], bytes(32), sender=op)
    with ape.reverts(staking.TooManyModels):
        staking.register(make_model("one-too-many")[0], bytes(32), sender=op)


def test_deregister__zeroes_weight_and_rejoin_restores(staked, staking, model_id):
    receipt = staking.deregister(model_id, bytes(32), sender=staked)
    assert receipt.events == [staking.ModelLeft(staked, model_id, bytes(32))]
    assert staking.weightOf(staked, model_id) == 0
    assert staking.registrationsOf(staked) == []
    with ape.reverts(staking.NotRegistered):
        staking.deregister(model_id, bytes(32), sender=staked)
    staking.register(model_id, bytes(32), sender=staked)
    assert staking.weightOf(staked, model_id) == 1_000 * E18
    assert staking.poolInfo(model_id)[0] == 1  # the slot is reused


def test_slash__takes_from_stake_and_unbonding(staked, staking, token, slasher, treasury):
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
    ape.chain.mine(UNBONDING)
    staking.withdraw(sender=staked)
    assert staking.operatorInfo(staked).unbonding == 0


def test_slash__no_reward_recipient__all_to_treasury(staked, staking, token, slasher, treasury):
    before = token.balanceOf(treasury)
    receipt = staking.slash(staked, 1_000, ape.utils.ZERO_ADDRESS, 5_000, sender=slasher)
    assert receipt.events.filter(staking.Slashed) == [
        staking.Slashed(staked, 100 * E18, 0, ape.utils.ZERO_ADDRESS, 1)
    ]
    assert token.balanceOf(treasury) - before == 100 * E18


def test_slash__repeated_faults__jail_for_the_jail_period(staked, staking, slasher, model_id):
    staking.slash(staked, 100, slasher, 0, sender=slasher)
    assert not staking.operatorInfo(staked).jailed
    receipt = staking.slash(staked, 100, slasher, 0, sender=slasher)
    until = receipt.block_number + JAIL_PERIOD
    assert receipt.events.filter(staking.Jailed) == [staking.Jailed(staked, 2, until)]
    info = staking.operatorInfo(staked)
    assert (info.jailed, info.jailedUntil, info.faults) == (True, until, 2)
    assert staking.weightOf(staked, model_id) == 0
    with ape.reverts(staking.JailPeriodNotOver, operator=staked.address, until=until):
        staking.unjail(sender=staked)
    mine_until(until - 1)
    with ape.reverts(staking.JailPeriodNotOver):
        staking.unjail(sender=staked)
    mine_until(until)
    receipt = staking.unjail(sender=staked)
    assert receipt.events == [staking.Unjailed(staked)]
    info = staking.operatorInfo(staked)
    assert not info.jailed
    assert staking.weightOf(staked, model_id) == info.stake


def test_slash__while_jailed__does_not_extend_the_jail(staked, staking, slasher):
    staking.slash(staked, 100, slasher, 0, sender=slasher)
    until = staking.slash(staked, 100, slasher, 0, sender=slasher).block_number + JAIL_PERIOD
    receipt = staking.slash(staked, 100, slasher, 0, sender=slasher)
    assert receipt.events.filter(staking.Jailed) == []
    info = staking.operatorInfo(staked)
    assert (info.jailed, info.jailedUntil, info.faults) == (True, until, 3)


def test_unjail__keeps_faults__next_fault_jails_again(staked, staking, slasher):
    staking.slash(staked, 100, slasher, 0, sender=slasher)
    staking.slash(staked, 100, slasher, 0, sender=slasher)
    ape.chain.mine(JAIL_PERIOD)
    staking.unjail(sender=staked)
    assert staking.operatorInfo(staked).faults == 2  # not wiped: they only decay
    receipt = staking.slash(staked, 100, slasher, 0, sender=slasher)
    assert receipt.events.filter(staking.Jailed) == [
        staking.Jailed(staked, 3, receipt.block_number + JAIL_PERIOD)
    ]
    assert staking.operatorInfo(staked).jailed


def test_faults__decay_one_per_decay_period_since_the_last_fault(staked, staking, slasher, deployer):
    first = staking.slash(staked, 100, slasher, 0, sender=slasher)
    staking.setJailRules(3, JAIL_PERIOD, DECAY, sender=deployer)
    last = staking.slash(staked, 100, slasher, 0, sender=slasher).block_number
    assert last > first.block_number
    assert staking.operatorInfo(staked).faults == 2
    # Views run on the latest block: a fault is forgiven once DECAY blocks have passed.
    ape.chain.mine(last + DECAY - 1 - ape.chain.blocks.height)
    assert staking.operatorInfo(staked).faults == 2
    ape.chain.mine(1)
    assert staking.operatorInfo(staked).faults == 1
    ape.chain.mine(DECAY)
    assert staking.operatorInfo(staked).faults == 0
    ape.chain.mine(5 * DECAY)
    assert staking.operatorInfo(staked).faults == 0


def test_faults__spread_wider_than_the_decay__never_jail(staked, staking, slasher):
    for _ in range(4):
        receipt = staking.slash(staked, 100, slasher, 0, sender=slasher)
        assert receipt.events.filter(staking.Slashed)[0].faults == 1
        ape.chain.mine(DECAY)
    assert not staking.operatorInfo(staked).jailed


def test_faults__decayed_below_threshold__next_fault_does_not_jail(staked, staking, slasher):
    staking.slash(staked, 100, slasher, 0, sender=slasher)
    staking.slash(staked, 100, slasher, 0, sender=slasher)
    ape.chain.mine(JAIL_PERIOD)
    staking.unjail(sender=staked)
    ape.chain.mine(2 * DECAY)
    assert staking.operatorInfo(staked).faults == 0
    receipt = staking.slash(staked, 100, slasher, 0, sender=slasher)
    assert receipt.events.filter(staking.Jailed) == []
    assert staking.operatorInfo(staked).faults == 1


def test_unjail__needs_min_stake_and_jail(staked, staking, slasher):
    with ape.reverts(staking.NotJailed):
        staking.unjail(sender=staked)
    staking.slash(staked, 9_500, slasher, 0, sender=slasher)
    staking.slash(staked, 0, slasher, 0, sender=slasher)
    ape.chain.mine(JAIL_PERIOD)
    with ape.reverts(staking.InsufficientStake):
        staking.unjail(sender=staked)


def test_slash__access_control_and_bps(staked, staking, dapp, slasher):
    with ape.reverts(staking.AccessControlUnauthorizedAccount):
        staking.slash(staked, 100, dapp, 0, sender=dapp)
    with ape.reverts(staking.InvalidBps):
        staking.slash(staked, 10_001, slasher, 0, sender=slasher)
    with ape.reverts(staking.InvalidBps):
        staking.slash(staked, 100, slasher, 10_001, sender=slasher)


def test_admin_setters__access_and_validation(staking, deployer, dapp):
    with ape.reverts(staking.AccessControlUnauthorizedAccount):
        staking.setUnbondingPeriod(UNBONDING + 1, sender=dapp)
    with ape.reverts(staking.AccessControlUnauthorizedAccount):
        staking.setJailRules(3, 10, 10, sender=dapp)
    with ape.reverts(staking.AccessControlUnauthorizedAccount):
        staking.setTreasury(dapp, sender=dapp)
    assert staking.setJailRules(3, 0, 50, sender=deployer).events == [staking.JailRulesUpdated(3, 0, 50)]
    assert (staking.jailThreshold(), staking.jailPeriod(), staking.faultDecay()) == (3, 0, 50)
    assert staking.setTreasury(dapp, sender=deployer).events == [staking.TreasuryUpdated(dapp)]
    with ape.reverts(staking.InvalidParameter):
        staking.setJailRules(0, 10, 10, sender=deployer)
    with ape.reverts(staking.InvalidParameter):
        staking.setJailRules(2, 10, 0, sender=deployer)
    with ape.reverts(staking.InvalidParameter):
        staking.setTreasury(ape.utils.ZERO_ADDRESS, sender=deployer)


def test_set_jail_rules__zero_period__unjail_at_once(staked, staking, slasher, deployer):
    staking.setJailRules(1, 0, DECAY, sender=deployer)
    receipt = staking.slash(staked, 100, slasher, 0, sender=slasher)
    assert receipt.events.filter(staking.Jailed) == [staking.Jailed(staked, 1, receipt.block_number)]
    staking.unjail(sender=staked)
    assert not staking.operatorInfo(staked).jailed


def test_epochs__count_from_one_in_epoch_blocks(staking):
    blocks = TEST_PARAMS["epoch_blocks"]
    assert staking.epochBlocks() == blocks
    assert [staking.epochOf(b) for b in (0, blocks - 1, blocks, 2 * blocks - 1, 2 * blocks)] == [
        1,
        1,
        2,
        2,
        3,
    ]


def test_eligible_at__counts_a_new_operator_from_the_next_epoch(staking, op, fund, model_id):
    next_epoch(staking)
    fund(op, MIN, staking)
    staking.stake(MIN, sender=op)
    joined = staking.register(model_id, bytes(32), sender=op).block_number
    epoch_end = (joined // staking.epochBlocks() + 1) * staking.epochBlocks()  # first block of the next
    assert staking.poolInfo(model_id)[1] == 1
    assert staking.eligibleAt(model_id, epoch_end - 1) == 0
    assert staking.eligibleAt(model_id, epoch_end) == 1


def test_draw__errors(staking, model_id):
    seed_block = ape.chain.blocks.height
    with ape.reverts(staking.InvalidCommitteeSize):
        staking.drawCommittee(model_id, 0, 1, seed_block)
    with ape.reverts(staking.InvalidCommitteeSize):
        staking.drawCommittee(model_id, 17, 1, seed_block)
    with ape.reverts(staking.InsufficientOperators):
        staking.drawCommittee(model_id, 1, 1, seed_block)


def test_constructor__bad_settings__reverts(deployer, token, registry, treasury):
    good = (MIN, TEST_PARAMS["epoch_blocks"], UNBONDING, 2, JAIL_PERIOD, DECAY)
    for index, value in ((0, 0), (1, 7), (2, 0), (3, 0), (5, 0)):
        settings = list(good)
        settings[index] = value
        with ape.reverts():
            deployer.deploy(ape.project.OperatorStaking, token, registry, tuple(settings), treasury, deployer)


@pytest.fixture
def fee_token_staking(deployer, registry, treasury):
    """A separate OperatorStaking over a token that burns 1% of every transfer."""
    fot = deployer.deploy(ape.project.FeeOnTransferToken)
    settings = (MIN, TEST_PARAMS["epoch_blocks"], UNBONDING, 2, JAIL_PERIOD, DECAY)
    staking = deployer.deploy(ape.project.OperatorStaking, fot, registry, settings, treasury, deployer)
    return fot, staking


def test_stake__fee_on_transfer_token__reverts(fee_token_staking, op):
    fot, staking = fee_token_staking
    fot.mint(op, 1_000 * E18, sender=op)
    fot.approve(staking, 2**256 - 1, sender=op)
    with ape.reverts(staking.TransferAmountMismatch, expected=1_000 * E18, received=990 * E18):
        staking.stake(1_000 * E18, sender=op)
    assert fot.balanceOf(staking) == 0
    assert staking.operatorInfo(op).stake == 0


def test_set_endpoint__published_replaced_and_withdrawn(staked, staking, op):
    tx = staking.setEndpoint("https://relayer.example:8443/peers", sender=op)
    assert [(e.operator, e.url) for e in tx.events] == [(op.address, "https://relayer.example:8443/peers")]
    assert staking.endpointOf(op) == "https://relayer.example:8443/peers"
    staking.setEndpoint("http://10.0.0.7:9100", sender=op)
    assert staking.endpointOf(op) == "http://10.0.0.7:9100"
    staking.setEndpoint("", sender=op)
    assert staking.endpointOf(op) == ""


@pytest.mark.parametrize(
    "url",
    [
        "ftp://relayer.example",
        "https://",
        "http://",
        "relayer.example:9100",
        "https://relayer example",
        "https://relayer.example/\n",
        "https://" + "a" * 249,  # 257 bytes
    ],
)
def test_set_endpoint__not_an_http_url_of_at_most_256_bytes__reverts(staked, staking, op, url):
    with ape.reverts(staking.InvalidEndpoint):
        staking.setEndpoint(url, sender=op)
    assert staking.endpointOf(op) == ""


def test_set_endpoint__longest_allowed__accepted(staked, staking, op):
    url = "https://" + "a" * 248  # 256 bytes
    staking.setEndpoint(url, sender=op)
    assert staking.endpointOf(op) == url


def test_set_endpoint__without_stake__reverts(staking, op):
    with ape.reverts(staking.NotStaked):
        staking.setEndpoint("https://relayer.example", sender=op)
