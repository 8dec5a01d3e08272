"""scripts/deploy.py: parameter validation, records, and idempotent redeploys on one chain."""

import json

import pytest

from scripts.deploy import DEFAULT_PARAMS, ParamsError, deploy_stack, load_params, read_record, write_record


def test_default_parameters__load():
    params = load_params()
    assert params["commit_window"] > 0 and params["token"] is None


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"commit_window": 0}, "commit_window must be an integer"),
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

    second = deploy_stack(deployer, params, read_record(path))
    assert second.reused == ("token", "registry", "staking", "hub")
    assert second.hub.address == first.hub.address
    assert second.deploy_block == first.deploy_block
    assert json.loads(path.read_text())["contracts"]["hub"]["address"] == first.hub.address


def test_deploy__record_from_another_chain__redeploys(deployer, tmp_path):
    params = load_params(DEFAULT_PARAMS)
    path = tmp_path / "stale.json"
    write_record(path, deploy_stack(deployer, params), params)
    record = read_record(path)
    record["chain_id"] = 1
    assert deploy_stack(deployer, params, record).reused == ()
