"""scripts/deploy.py: parameter validation, records, and idempotent redeploys on one chain."""

import json

import ape
import pytest
from verinfer.chain.deployment import CONTRACTS

from scripts.deploy import DEFAULT_PARAMS, ParamsError, deploy_stack, load_params, read_record, write_record
from tests.conftest import TEST_PARAMS


def test_default_parameters__load():
    params = load_params()
    assert params["commit_window"] > 0 and params["token"] is None
    assert {"epoch_blocks", "jail_period", "fault_decay", "max_output_bytes"} <= set(params)
    assert "slash_reward_bps" not in params


def test_default_parameters__unbonding_covers_a_request_life():
    params = load_params()
    # epoch end + the consensus round + the core's EXPIRY_GRACE before `expire`
    life = params["epoch_blocks"] + 1 + params["commit_window"] + params["reveal_window"] + 256
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
        ({"optimistic_escalation_k": 2}, "optimistic_escalation_k must be an integer in \\[3, 15\\]"),
        ({"optimistic_escalation_blocks": 40}, "optimistic_escalation_blocks must cover a consensus round"),
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
    assert set(record["contracts"]) == set(CONTRACTS) >= {"token", "registry", "staking", "hub", "consensus"}
    assert any(e.get("name") == "requestInference" for e in record["contracts"]["hub"]["abi"])
    assert any(e.get("name") == "commit" for e in record["contracts"]["consensus"]["abi"])
    assert record["contracts"]["consensus"]["contract"] == "ConsensusMode"
    assert record["parameters"]["commit_window"] == params["commit_window"]
    staking, hub, consensus = first.staking, first.hub, first.consensus
    assert staking.epochBlocks() == params["epoch_blocks"]
    assert staking.unbondingPeriod() == params["unbonding_period"]
    assert (staking.jailThreshold(), staking.jailPeriod(), staking.faultDecay()) == (
        params["jail_threshold"],
        params["jail_period"],
        params["fault_decay"],
    )
    assert staking.minStake() == params["min_stake"]
    on_chain = hub.params()
    assert on_chain.maxK == params["max_k"]
    assert on_chain.maxOutputBytes == params["max_output_bytes"]
    assert (on_chain.operatorFee, on_chain.protocolFee) == (params["operator_fee"], params["protocol_fee"])
    round_params = consensus.params()
    assert (round_params.commitWindow, round_params.revealWindow) == (
        params["commit_window"],
        params["reveal_window"],
    )
    assert (round_params.slashBpsDissent, round_params.slashBpsSilence) == (
        params["slash_bps_dissent"],
        params["slash_bps_silence"],
    )
    assert hub.modeContract(consensus.MODE()) == consensus.address
    assert consensus.hub() == hub.address and consensus.staking() == staking.address

    second = deploy_stack(deployer, params, read_record(path))
    assert second.reused == CONTRACTS
    assert second.hub.address == first.hub.address
    assert second.consensus.address == first.consensus.address
    assert second.deploy_block == first.deploy_block
    assert json.loads(path.read_text())["contracts"]["hub"]["address"] == first.hub.address


def test_deploy__test_parameters__wired_as_given(stack, treasury):
    params = load_params(overrides={**TEST_PARAMS, "treasury": treasury.address})
    assert stack.staking.epochBlocks() == params["epoch_blocks"]
    assert stack.staking.unbondingPeriod() == params["unbonding_period"]
    assert stack.hub.params().maxOutputBytes == params["max_output_bytes"]
    assert stack.hub.params().maxK == params["max_k"]
    assert stack.consensus.params().commitWindow == params["commit_window"]
    assert stack.consensus.params().slashBpsSilence == params["slash_bps_silence"]
    assert stack.hub.modeContract(1) == stack.consensus.address
    assert stack.hub.modeContract(4) == stack.optimistic.address
    assert stack.optimistic.params().escalationBlocks == params["optimistic_escalation_blocks"]
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
