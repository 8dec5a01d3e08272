"""Execution classes on-chain: operators register per model and class, and a version with a class
draws its committee only from that class's pool (a portable version from the model's portable pool)."""

import ape
import pytest
from eth_abi import encode
from eth_utils import keccak
from verinfer.chain.contracts import Status

from tests.conftest import E18, committee_of, next_epoch, request_id_of, sample_input, sample_output

FMA3 = "onnxruntime==1.32.0/x86-64-fma3"
AVX512 = "onnxruntime==1.32.0/x86-64-avx512"
SETTINGS = "t1-seq-opt_basic-prepack"
FMA3_ID, AVX512_ID = keccak(FMA3.encode()), keccak(AVX512.encode())
PORTABLE = bytes(32)


@pytest.fixture(scope="module")
def classed(make_model, join, fund, staking, model):
    """One model with an x86-64-fma3 version (1), an avx512 one (2) and a portable one (3); three
    operators in the fma3 pool, two in the avx512 pool and two portable-only (after the session's default
    model, so that session fixture is not created inside this module's snapshot)."""
    ops = [ape.accounts.test_accounts.generate_test_account() for _ in range(7)]
    for op in ops:
        ape.chain.set_balance(op.address, 10 * E18)
    model_id, _ = make_model("classed", execution_class=f"{FMA3}/{SETTINGS}")
    make_model("classed", execution_class=f"{AVX512}/{SETTINGS}")
    make_model("classed")
    fma3, avx512, portable = ops[:3], ops[3:5], ops[5:]
    join(fma3, model_id, class_id=FMA3_ID)
    join(avx512, model_id, class_id=AVX512_ID)
    join(portable, model_id)
    for op in fma3:  # the fma3 machines serve the portable version too
        staking.register(model_id, PORTABLE, sender=op)
    next_epoch(staking)
    return model_id, fma3, avx512, portable


def test_register__per_class__own_pool_events_and_views(staking, classed):
    model_id, fma3, _, _ = classed
    op = fma3[0]
    pool = staking.poolOf(model_id, FMA3_ID)
    assert pool == keccak(encode(["bytes32", "bytes32"], [model_id, FMA3_ID]))
    assert staking.poolOf(model_id, PORTABLE) == model_id  # portable versions draw from the model's pool
    assert sorted(tuple(r) for r in staking.registrationsOf(op)) == sorted(
        [(model_id, FMA3_ID), (model_id, PORTABLE)]
    )
    assert staking.operatorInfo(op).modelCount == 2  # each class counts towards the limit
    assert staking.weightOf(op, pool) == 1_000 * E18 == staking.weightOf(op, model_id)
    assert staking.poolInfo(pool)[:2] == (3, 3)
    assert staking.poolInfo(staking.poolOf(model_id, AVX512_ID))[:2] == (2, 2)
    assert staking.poolInfo(model_id)[:2] == (5, 5)
    with ape.reverts(staking.AlreadyRegistered):
        staking.register(model_id, FMA3_ID, sender=op)
    with ape.reverts(staking.NotRegistered):
        staking.deregister(model_id, AVX512_ID, sender=op)
    # Leaving one class leaves the other registration alone; a change of stake moves both pools.
    receipt = staking.deregister(model_id, FMA3_ID, sender=op)
    assert receipt.events == [staking.ModelLeft(op, model_id, FMA3_ID)]
    assert staking.weightOf(op, pool) == 0 and staking.weightOf(op, model_id) == 1_000 * E18
    receipt = staking.register(model_id, FMA3_ID, sender=op)
    assert receipt.events == [staking.ModelJoined(op, model_id, FMA3_ID)]
    staking.requestUnbond(400 * E18, sender=op)
    assert staking.weightOf(op, pool) == 600 * E18 == staking.weightOf(op, model_id)


def test_register__unlisted_class__refused_and_only_the_admin_lists(staking, deployer, dapp, classed):
    """Nobody can invent a class and be its whole pool: operators register only for listed classes."""
    model_id, fma3, _, _ = classed
    made_up = "onnxruntime==1.32.0x/x86-64-fma3"
    made_up_id = keccak(made_up.encode())
    assert staking.classAllowed(FMA3_ID) and staking.classAllowed(AVX512_ID)  # deployment parameters
    with ape.reverts(staking.ClassNotAllowed, classId=made_up_id):
        staking.register(model_id, made_up_id, sender=fma3[0])
    with ape.reverts():
        staking.setClassAllowed(made_up, True, sender=dapp)
    receipt = staking.setClassAllowed(made_up, True, sender=deployer)
    assert receipt.events == [staking.ClassAllowed(made_up_id, made_up, True)]
    staking.register(model_id, made_up_id, sender=fma3[0])
    staking.setClassAllowed(made_up, False, sender=deployer)  # delisting stops new registrations only
    assert staking.weightOf(fma3[0], staking.poolOf(model_id, made_up_id)) == 1_000 * E18
    with ape.reverts(staking.ClassNotAllowed):
        staking.register(model_id, made_up_id, sender=fma3[1])


def test_request__class_version__committee_only_from_its_class(
    hub, staking, make_request, by_address, classed
):
    model_id, fma3, avx512, portable = classed
    by_class = {1: set(fma3), 2: set(avx512), 3: set(fma3) | set(portable)}
    for version, members in by_class.items():
        k = min(3, len(members))
        for _ in range(4):
            rid = request_id_of(make_request(k=k, model_ref=(model_id, version)))
            assert hub.poolOf(rid) == staking.poolOf(model_id, hub_class(hub, rid))
            committee = committee_of(hub, by_address | {o.address: o for o in fma3 + avx512 + portable}, rid)
            assert set(committee) <= members, f"version {version} drew outside its class"


def hub_class(hub, rid):
    registry = ape.project.ModelRegistry.at(hub.registry())
    r = hub.getRequest(rid)
    return registry.classOf(r.modelId, r.version)


def test_request__too_few_operators_in_the_class__refused_up_front(hub, fund, dapp, classed):
    """Two avx512 operators cannot make a committee of three, however many other operators the model has."""
    model_id = classed[0]
    fee = hub.quote(model_id, 2, 3)
    fund(dapp, fee, hub)
    with ape.reverts(hub.InsufficientOperators):
        hub.requestInference((model_id, 2, 1, 3, 0, False, fee, sample_input()), sender=dapp)
    hub.requestInference((model_id, 2, 1, 2, 0, False, fee, sample_input()), sender=dapp)  # k = 2 fits


def test_consensus__class_version__settles_and_pays_its_class(
    hub, token, act, make_request, by_address, classed
):
    model_id, fma3, avx512, portable = classed
    everyone = by_address | {o.address: o for o in fma3 + avx512 + portable}
    rid = request_id_of(make_request(k=3, model_ref=(model_id, 1)))
    committee = committee_of(hub, everyone, rid)
    assert set(committee) == set(fma3)
    out = sample_output(0.3)
    for op in committee:
        act.commit(op, rid, out)
    for op in committee:
        act.reveal(op, rid, out)
    assert hub.getRequest(rid).status == Status.FINALIZED
    assert all(hub.claimable(op) > 0 for op in fma3)
