"""What a new user tripped on, against the devnet: each mistake gets its own one-line error and exit
code, and nothing is sent or changed."""

import json
import os
from pathlib import Path

from verinfer.chain.keys import write_keystore
from verinfer.devnet import network
from verinfer.devnet.state import DevnetState
from verinfer.models.names import NAME_RULE
from verinfer.models.samples import iris_mlp

from tests.e2e.conftest import Devnet, verinfer_cli
from tests.e2e.test_cli import fails, ok_json, run

INFER = ("infer", "--model", "iris-mlp", "--input", "[[5.1, 3.5, 1.4, 0.2]]")


def request_count(devnet: Devnet) -> int:
    return int(devnet.client(None).contracts.view("hub", "requestCount"))


def test_infer__non_numeric_input__one_line_exit_2_nothing_sent(devnet: Devnet) -> None:
    before = request_count(devnet)
    line = fails(devnet, 2, "infer", "--model", "iris-mlp", "--input", '[[5.1,"a",1.4,0.2]]')
    assert "must hold only numbers, found 'a'" in line
    assert request_count(devnet) == before


def test_infer__timeout_not_positive__refused_before_paying(devnet: Devnet) -> None:
    balance = devnet.client("dapp").token_balance()
    assert "'--timeout'" in fails(devnet, 2, *INFER, "--timeout", "-1")
    assert devnet.client("dapp").token_balance() == balance


def test_chain_commands__rpc_url_not_a_url__one_line_exit_2(devnet: Devnet) -> None:
    for args in (("models", "list"), ("operators", "list"), INFER, ("operator", "unjail")):
        assert "is not a node URL" in fails(devnet, 2, *args, "--rpc-url", "notaurl")


def test_signing__keystore_mistakes__each_its_own_message(devnet: Devnet, tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    assert fails(devnet, 2, *INFER, "--keystore", str(missing)) == f"error: --keystore {missing} not found"
    not_keystore = tmp_path / "config.json"
    not_keystore.write_text(json.dumps({"rpc_url": "http://127.0.0.1:8545"}))
    line = fails(devnet, 2, *INFER, "--keystore", str(not_keystore), "--password-env", "PW")
    assert line.startswith(f"error: --keystore {not_keystore} is not a keystore")
    line = fails(devnet, 2, *INFER, "--account", "nobody")
    assert line.startswith("error: --account 'nobody': no such ape account") and "operator." not in line
    keystore = tmp_path / "key.json"
    write_keystore(keystore, os.urandom(32), "pw", iterations=2**10)
    line = fails(devnet, 2, *INFER, "--keystore", str(keystore))
    assert line == "error: the keystore needs a password: pass --password-env VAR or --password-file FILE"


def test_models__invalid_names__refused_before_any_transaction(devnet: Devnet, tmp_path: Path) -> None:
    artifact = tmp_path / "iris.onnx"
    artifact.write_bytes(iris_mlp().onnx)
    owner = devnet.client("owner")
    nonce = owner.rpc.w3.eth.get_transaction_count(owner.address)
    for name in ("vad@2", "Bad Name!!", "x" * 65):
        line = fails(devnet, 2, "models", "publish", str(artifact), "--name", name, "--decimals", "4")
        assert NAME_RULE in line
    assert owner.rpc.w3.eth.get_transaction_count(owner.address) == nonce
    assert NAME_RULE in fails(devnet, 2, "models", "show", "Bad Name!!")
    assert NAME_RULE in fails(devnet, 2, *INFER[:1], "--model", "Iris-MLP", "--input", "[[1, 2, 3, 4]]")


def test_operators_show__address_that_never_staked__not_an_operator(devnet: Devnet) -> None:
    line = fails(devnet, 2, "operators", "show", "0x000000000000000000000000000000000000dEaD")
    assert "is not an operator: it never staked" in line
    staked = run(devnet, "operators", "show", devnet.state.account("operator-1").address).stdout
    assert "active" in staked and " VDEV" in staked


def test_amounts__tokens_with_the_symbol_in_lines_and_errors(devnet: Devnet) -> None:
    listed = run(devnet, "models", "list").stdout
    assert "0.1 VDEV" in listed
    line = fails(devnet, 4, "operator", "stake", "1000000", "--dev-account", "operator-2")
    assert "costs 1000000 VDEV but" in line and "holds 9" in line and "VDEV" in line.split("holds")[1]
    line = fails(devnet, 2, "operator", "unstake", "99999", "--dev-account", "operator-2")
    assert "at most" in line and "not 99999 VDEV" in line


def test_infer__mode_the_model_does_not_allow__exit_2(devnet: Devnet) -> None:
    assert "does not allow mode 'zk'" in fails(devnet, 2, *INFER, "--mode", "zk")


def test_devnet_up__second_home_on_the_same_record__refused_and_record_kept(
    devnet: Devnet, tmp_path: Path
) -> None:
    record = devnet.state.deployment
    before = record.read_bytes()
    assert json.loads(before)["devnet_home"] == str(devnet.home.resolve())
    env = {**devnet.env, "VERINFER_DEVNET_HOME": str(tmp_path / "second")}

    up = verinfer_cli("devnet", "up", "--port", "0", env=env)

    assert up.returncode == 1 and "Traceback" not in up.stderr
    assert f"belongs to the devnet running from {devnet.home.resolve()}" in up.stderr
    assert record.read_bytes() == before and not (tmp_path / "second").exists()
    down = verinfer_cli("devnet", "down", env=env)
    assert down.returncode == 0 and "no devnet was running" in down.stdout
    assert record.read_bytes() == before
    assert ok_json(devnet, "devnet", "status")["running"]


def test_devnet_down__removes_only_the_record_it_wrote(tmp_path: Path) -> None:
    record = tmp_path / "devnet.json"
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"

    def state(home: Path) -> DevnetState:
        return DevnetState(home, "http://127.0.0.1:9", 31337, True, record, home / "store")

    record.write_text(json.dumps({network.RECORD_OWNER: str(theirs.resolve())}))
    network.down(ours, state(ours))
    assert record.exists()
    record.write_text(json.dumps({network.RECORD_OWNER: str(ours.resolve())}))
    network.down(ours, state(ours))
    assert not record.exists()
