"""scripts/deploy.py: parameter validation, records, and idempotent redeploys on one chain."""

import json

import ape
import pytest

from scripts.deploy import DEFAULT_PARAMS, ParamsError, deploy_stack, load_params, read_record, write_record
from tests.conftest import TEST_PARAMS


def test_default_parameters__load():
    params = load_params()
    assert params["commit_window"] > 0 and params["token"] is None
    assert {"epoch_blocks", "jail_period", "fault_decay", "max_output_bytes"} <= set(params)
    assert "slash_reward_bps" not in params


def test_default_parameters__unbonding_covers_a_request_life():
    params = load_params()
    life = 1 + params["commit_window"] + params["reveal_window"] + 256  # + the hub's FINALIZE_GRACE
    assert params["unbonding_period"] >= life


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"commit_window": 0}, "commit_window must be an integer"),
        ({"commit_window": 256}, r"commit_window must be an integer in \[1, 255\]"),
        ({"epoch_blocks": 7}, "epoch_blocks must be an integer"),
        ({"fault_decay": 0}, "fault_decay must be an integer"),
        ({"jail_period": -1}, "jail_period must be an integer"),
        ({"jail_period": None}, "jail_period must be an integer"),
        ({"max_output_bytes": 415}, "max_output_bytes must be an integer"),
        ({"unbonding_period": 0}, "unbonding_period must be an integer"),
        ({"slash_reward_bps": 5_000}, "unknown parameter"),
        ({"max_k": 17}, "max_k must be an integer"),
        ({"slash_bps_dissent": "10%"}, "slash_bps_dissent must be an integer"),
        ({"treasury": "alice"}, "treasury must be null or a 0x-prefixed address"),
        ({"surprise": 1}, "unknown parameter"),
    ],
)
def test_bad_parameters__one_clear_error(override, message):
    with pytest.raises(ParamsError, match=message):
        load_params(overrides=override)


def test_unreadable_parameters_file__clear_error(tmp_path):
    bad = tmp_path / "p.json"
    bad.write_text("{not json")
    with pytest.raises(ParamsError, match="cannot read parameters file"):
        load_params(bad)


def test_deploy__twice_on_one_chain__reuses_everything(deployer, tmp_path, chain):
    params = load_params(DEFAULT_PARAMS)
    path = tmp_path / "local.json"
    first = deploy_stack(deployer, params, read_record(path))
    record = write_record(path, first, params)
    assert first.reused == ()
    assert first.staking.hasRole(first.staking.SLASHER_ROLE(), first.hub)
    assert record["chain_id"] == chain.chain_id
    assert set(record["contracts"]) == {"token", "registry", "staking", "hub"}
    assert any(e.get("name") == "requestInference" for e in record["contracts"]["hub"]["abi"])
    assert record["parameters"]["commit_window"] == params["commit_window"]
    staking, hub = first.staking, first.hub
    assert staking.epochBlocks() == params["epoch_blocks"]
    assert staking.unbondingPeriod() == params["unbonding_period"]
    assert (staking.jailThreshold(), staking.jailPeriod(), staking.faultDecay()) == (
        params["jail_threshold"],
        params["jail_period"],
        params["fault_decay"],
    )
    assert staking.minStake() == params["min_stake"]
    on_chain = hub.params()
    assert on_chain.commitWindow == params["commit_window"]
    assert on_chain.maxOutputBytes == params["max_output_bytes"]
    assert on_chain.slashBpsDissent == params["slash_bps_dissent"]

    second = deploy_stack(deployer, params, read_record(path))
    assert second.reused == ("token", "registry", "staking", "hub")
    assert second.hub.address == first.hub.address
    assert second.deploy_block == first.deploy_block
    assert json.loads(path.read_text())["contracts"]["hub"]["address"] == first.hub.address


def test_deploy__test_parameters__wired_as_given(stack, treasury):
    params = load_params(overrides={**TEST_PARAMS, "treasury": treasury.address})
    assert stack.staking.epochBlocks() == params["epoch_blocks"]
    assert stack.staking.unbondingPeriod() == params["unbonding_period"]
    assert stack.hub.params().maxOutputBytes == params["max_output_bytes"]
    assert stack.staking.hasRole(stack.staking.SLASHER_ROLE(), stack.hub)


def test_deploy__record_from_another_chain__redeploys(deployer, tmp_path):
    params = load_params(DEFAULT_PARAMS)
    path = tmp_path / "stale.json"
    write_record(path, deploy_stack(deployer, params), params)
    record = read_record(path)
    record["chain_id"] = 1
    assert deploy_stack(deployer, params, record).reused == ()


def test_deploy__unbonding_shorter_than_a_request_life__reverts(deployer):
    params = load_params(DEFAULT_PARAMS, overrides={"unbonding_period": 100})
    with ape.reverts():
        deploy_stack(deployer, params)
