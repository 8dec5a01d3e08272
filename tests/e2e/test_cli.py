"""Every `verinfer` command as a user runs it, against the devnet: outputs, JSON, errors and exit codes."""

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from verinfer.chain.keys import write_keystore
from verinfer.chain.rpc import Rpc
from verinfer.devnet.network import RPC_PROBE, project_root, tool_env
from verinfer.devnet.processes import free_port, spawn, stop, wait_http
from verinfer.models.execution import ExecutionClass
from verinfer.models.samples import SAMPLES, breast_cancer, iris_mlp

from tests.conftest import wait_for
from tests.e2e.conftest import Devnet, verinfer_cli


def run(devnet: Devnet, *args: str) -> subprocess.CompletedProcess[str]:
    return verinfer_cli(*args, env=devnet.env)


def ok_json(devnet: Devnet, *args: str) -> Any:
    done = run(devnet, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def fails(devnet: Devnet, code: int, *args: str) -> str:
    """Runs a command that must fail with `code` and one `error:` line; returns that line."""
    done = run(devnet, *args)
    assert done.returncode == code, (done.stdout, done.stderr)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    return errors[0]


def test_devnet_status__everything_up_and_healthy(devnet: Devnet) -> None:
    report = ok_json(devnet, "devnet", "status")
    assert report["running"] and report["chain_id"] == 31337
    names = {p["name"]: p for p in report["processes"]}
    assert set(names) == {"anvil", "store", "blocks", "relayer-1", "relayer-2", "relayer-3"}
    assert all(names[f"relayer-{n}"]["healthy"] for n in (1, 2, 3))
    assert set(report["models"]) == set(SAMPLES)


def test_devnet_up__while_running__refused(devnet: Devnet) -> None:
    assert "already running" in fails(devnet, 1, "devnet", "up", "--port", "0")


def test_models_list_and_show(devnet: Devnet) -> None:
    listed = {m["name"]: m for m in ok_json(devnet, "models", "list")}
    assert listed["breast-cancer-risk"]["latest"]["inputs"] == [
        {"name": "features", "dtype": 1, "shape": [0, 30]}
    ]
    shown = ok_json(devnet, "models", "show", "iris-mlp@1")
    assert shown["version"] == 1 and [o["name"] for o in shown["outputs"]] == ["label", "probabilities"]
    human = run(devnet, "models", "list").stdout
    assert "iris-mlp" in human and "features float[?, 4]" in human
    assert "no model named 'nope'" in fails(devnet, 2, "models", "show", "nope")


def test_models_publish__calibrate_inputs__recommends__warns_only_past_exact_agreement(
    devnet: Devnet, tmp_path: Path
) -> None:
    sample = iris_mlp()
    artifact, rows = tmp_path / "iris.onnx", tmp_path / "rows.json"
    artifact.write_bytes(sample.onnx)
    rows.write_text(json.dumps([[float(v) for v in row] for row in sample.examples[:8]]))
    calibrate = ("--calibrate-inputs", str(rows))

    safe = run(
        devnet, "models", "publish", str(artifact), "--name", "iris-cal", "--decimals", "4", *calibrate
    )
    assert safe.returncode == 0, safe.stderr
    assert "calibration: exact is safe at 4 decimals" in safe.stderr and "warning:" not in safe.stderr

    # Prepacking off moves the MLP's outputs in the 7th decimal (measured by `models calibrate`).
    risky = run(
        devnet,
        "models",
        "publish",
        str(artifact),
        "--name",
        "iris-cal-8",
        "--decimals",
        "8",
        *calibrate,
        "--json",
    )
    assert risky.returncode == 0, risky.stderr
    (warning,) = [line for line in risky.stderr.splitlines() if line.startswith("warning: ")]
    assert "at 8 decimals honest operators may disagree" in warning
    published = json.loads(risky.stdout)
    assert published["decimals"] == 8 and published["calibration"].startswith("exact is safe at ")


def test_models_publish__stores_serves_and_registers(devnet: Devnet, tmp_path: Path) -> None:
    artifact = tmp_path / "iris.onnx"
    artifact.write_bytes(iris_mlp().onnx)

    published = ok_json(devnet, "models", "publish", str(artifact), "--name", "iris-cli", "--decimals", "5")

    assert published["version"] == 1 and published["decimals"] == 5
    assert published["max_output_bytes"] == 65_536
    sha = published["artifact_sha256"]
    assert (devnet.state.store_dir / f"{sha}.onnx").read_bytes() == artifact.read_bytes()
    http_uri = published["uris"][0]
    assert http_uri == f"{devnet.state.store_url}/{sha}.onnx"
    assert urllib.request.urlopen(http_uri, timeout=5).read() == artifact.read_bytes()
    assert ok_json(devnet, "models", "show", "iris-cli")["artifact_sha256"] == sha
    # the same artifact again is not a new version; a file that is not ONNX never reaches the chain
    assert "DuplicateArtifact" in fails(
        devnet, 1, "models", "publish", str(artifact), "--name", "iris-cli", "--decimals", "5"
    )
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"definitely not protobuf")
    assert "not an ONNX model" in fails(
        devnet, 2, "models", "publish", str(junk), "--name", "junk", "--decimals", "2"
    )
    assert "model name 'Iris CLI' is not valid" in fails(
        devnet, 2, "models", "publish", str(artifact), "--name", "Iris CLI", "--decimals", "5"
    )
    small = ok_json(
        devnet,
        "models",
        "publish",
        str(artifact),
        "--name",
        "iris-small",
        "--decimals",
        "5",
        "--max-output-bytes",
        "416",
    )
    assert small["max_output_bytes"] == 416
    assert "--max-output-bytes" in fails(
        devnet,
        2,
        "models",
        "publish",
        str(artifact),
        "--name",
        "x",
        "--decimals",
        "5",
        "--max-output-bytes",
        "100",
    )
    assert "junk" not in {m["name"] for m in ok_json(devnet, "models", "list")}


def test_models_publish__tolerance__registered_and_shown__refused_where_it_cannot_settle(
    devnet: Devnet, tmp_path: Path
) -> None:
    artifact = tmp_path / "iris.onnx"
    artifact.write_bytes(iris_mlp().onnx)
    publish = ("models", "publish", str(artifact), "--decimals", "8")
    tolerant = ok_json(devnet, *publish, "--name", "iris-tol", "--tolerance", "1+100ppm")
    assert tolerant["tolerance"] == "1+100ppm"
    shown = run(devnet, "models", "show", "iris-tol").stdout
    assert "agreement  |a - b| <= 1 + 0.0001 * max(|a|, |b|) in units of the last decimal" in shown
    assert ok_json(devnet, "models", "show", "iris-tol@1")["tolerance"] == "1+100ppm"
    assert "tolerance must be exact, UNITS or UNITS+PPMppm" in fails(
        devnet, 2, *publish, "--name", "iris-pct", "--tolerance", "1%"
    )
    assert "tolerance ppm must be 0..1000000" in fails(
        devnet, 2, *publish, "--name", "iris-big", "--tolerance", "1+2000000ppm"
    )
    both = ("--mode", "consensus", "--mode", "optimistic")
    assert "allows consensus and attested modes only" in fails(
        devnet, 2, *publish, "--name", "iris-att", "--tolerance", "2", *both
    )
    assert "optimistic mode needs consensus mode too" in fails(
        devnet, 2, *publish, "--name", "iris-opt", "--mode", "optimistic"
    )
    assert {"iris-pct", "iris-big", "iris-att", "iris-opt"}.isdisjoint(
        m["name"] for m in ok_json(devnet, "models", "list")
    )


def test_store__serves_only_artifacts(devnet: Devnet) -> None:
    listing = json.loads(urllib.request.urlopen(devnet.state.store_url + "/", timeout=5).read())
    assert len(listing) >= 3 and all(len(entry["sha256"]) == 64 for entry in listing)
    for path in ("/state.json", "/../state.json", "/" + "0" * 64 + ".onnx"):
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(devnet.state.store_url + path, timeout=5)
        assert caught.value.code == 404


def test_operators_list_and_show(devnet: Devnet) -> None:
    listed = {o["address"]: o for o in ok_json(devnet, "operators", "list")}
    first = devnet.state.account("operator-1").address
    onchain = devnet.client(None).operator(first)
    assert int(listed[first]["stake"]) == onchain.stake > 0 and listed[first]["faults"] == onchain.faults
    assert "iris-mlp" in listed[first]["models"]
    assert ok_json(devnet, "operators", "show", first)["address"] == first
    assert "not an address" in fails(devnet, 2, "operators", "show", "0x1234")


def test_operator_stake_unstake_register_unjail(devnet: Devnet) -> None:
    who = ("--dev-account", "operator-3")
    before = ok_json(devnet, "operators", "show", devnet.state.account("operator-3").address)

    staked = ok_json(devnet, "operator", "stake", "5", *who)
    assert int(staked["stake"]) == int(before["stake"]) + 5 * 10**18
    unbonding = ok_json(devnet, "operator", "unstake", "2", *who)
    assert int(unbonding["unbonding"]) == int(before["unbonding"]) + 2 * 10**18
    assert int(unbonding["stake"]) == int(staked["stake"]) - 2 * 10**18
    ok_json(
        devnet, "models", "publish", str(_artifact(devnet)), "--name", "for-operator-3", "--decimals", "4"
    )
    # Published in this machine's class (the default): the operator joins that pool only.
    register = ("operator", "register", "for-operator-3", "--class", "here", *who)
    joined = ok_json(devnet, *register)
    assert {"model": "for-operator-3", "class": ExecutionClass.current().machine} in joined["registrations"]
    assert "already registered" in fails(devnet, 2, *register)

    assert "NotJailed" in fails(devnet, 1, "operator", "unjail", *who)
    assert "no model named 'nope'" in fails(devnet, 2, "operator", "register", "nope", *who)
    assert "holds" in fails(devnet, 4, "operator", "stake", "1000000", *who)
    assert "not a number" in fails(devnet, 2, "operator", "stake", "lots", *who)


def test_operator_endpoint__published_shown_refused_and_withdrawn(devnet: Devnet) -> None:
    who = ("--dev-account", "operator-2")
    address = devnet.state.account("operator-2").address
    published = ok_json(devnet, "operator", "endpoint", "https://operator-2.example:9100", *who)
    assert published["endpoint"] == "https://operator-2.example:9100"
    assert ok_json(devnet, "operators", "show", address)["endpoint"] == "https://operator-2.example:9100"
    shown = run(devnet, "operators", "show", address)
    assert "https://operator-2.example:9100" in shown.stdout

    for bad in ("ftp://operator-2.example", "https://", "https://a b"):
        fails(devnet, 2, "operator", "endpoint", bad, *who)
    assert "give either URL or --clear" in run(devnet, "operator", "endpoint", *who).stderr
    assert ok_json(devnet, "operators", "show", address)["endpoint"] == "https://operator-2.example:9100"

    assert ok_json(devnet, "operator", "endpoint", "--clear", *who)["endpoint"] == ""


def _artifact(devnet: Devnet) -> Path:
    path = devnet.home / "breast.onnx"
    path.write_bytes(breast_cancer().onnx)
    return path


def test_infer__json_input__settles_and_shows(devnet: Devnet, tmp_path: Path) -> None:
    features = {"features": iris_mlp().examples[:1].tolist()}
    (tmp_path / "input.json").write_text(json.dumps(features))

    result = ok_json(devnet, "infer", "--model", "iris-mlp", "--input", f"@{tmp_path / 'input.json'}")

    assert result["settlement"]["status"] == "FINALIZED" and len(result["settlement"]["agreeing"]) == 3
    assert isinstance(result["outputs"]["label"][0], int)
    shown = ok_json(devnet, "requests", "show", str(result["settlement"]["request_id"]))
    assert shown == result


def test_infer__mode_attested__settles_in_one_transaction_and_shows(devnet: Devnet) -> None:
    args = ("infer", "--model", "iris-mlp", "--input", "[[6.3, 2.9, 5.6, 1.8]]", "--mode", "attested")
    result = ok_json(devnet, *args)

    settlement = result["settlement"]
    assert settlement["status"] == "FINALIZED" and len(settlement["agreeing"]) >= 2
    assert settlement["commit_txs"] == [] and settlement["reveal_txs"] == []
    consensus = ok_json(devnet, "infer", "--model", "iris-mlp", "--input", "[[6.3, 2.9, 5.6, 1.8]]")
    assert result["outputs"] == consensus["outputs"]  # both modes agree on the model's answer
    pending = ok_json(devnet, *args, "--no-wait")
    assert pending["mode"] == "attested"


def test_infer__no_wait__then_requests_show(devnet: Devnet) -> None:
    pending = ok_json(
        devnet, "infer", "--model", "iris-mlp", "--input", "[[5.1, 3.5, 1.4, 0.2]]", "--no-wait"
    )
    assert pending["seed_block"] == pending["block"] + 1 and "committee" not in pending

    def settled() -> Any:
        shown = ok_json(devnet, "requests", "show", str(pending["request_id"]))
        return shown if shown["settlement"]["status"] == "FINALIZED" else None

    shown = wait_for(settled, 60, "settlement")
    assert shown["outputs"]["label"] == [0] and len(shown["settlement"]["committee"]) == 3
    human = run(devnet, "requests", "show", str(pending["request_id"])).stdout
    assert "FINALIZED" in human and "label" in human


def test_infer__digest_only__same_outputs(devnet: Devnet) -> None:
    args = ("infer", "--model", "iris-mlp", "--input", "[[5.1, 3.5, 1.4, 0.2]]")
    digest_only = ok_json(devnet, *args, "--digest-only")
    stored = ok_json(devnet, *args)
    assert digest_only["outputs"] == stored["outputs"]
    assert digest_only["settlement"]["output_digest"] == stored["settlement"]["output_digest"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--model", "nope", "--input", "[[1]]"), 2, "no model named 'nope'"),
        (("--model", "iris-mlp", "--input", "[[1, 2"), 2, "not valid JSON"),
        (("--model", "iris-mlp", "--input", "@/no/such/file.json"), 2, "cannot read /no/such/file.json"),
        (("--model", "iris-mlp", "--input", "[[1, 2, 3]]"), 2, "shape (1, 3)"),
        (("--model", "iris-mlp", "--input", "[[1, 2, 3, 4]]", "--k", "5"), 1, "InsufficientOperators"),
        (
            ("--model", "iris-mlp", "--input", "[[1, 2, 3, 4]]", "--rpc-url", "http://127.0.0.1:9"),
            3,
            "unreachable",
        ),
    ],
)
def test_infer__errors__one_line_and_exit_code(
    devnet: Devnet, args: tuple[str, ...], code: int, message: str
) -> None:
    assert message in fails(devnet, code, "infer", *args)


def test_infer__keystore_account_without_tokens__insufficient_balance(devnet: Devnet, tmp_path: Path) -> None:
    fresh = Account.create()
    write_keystore(tmp_path / "key.json", bytes(fresh.key), "pw", iterations=2**10)
    env = {**devnet.env, "KEY_PASSWORD": "pw"}
    args = ("--keystore", str(tmp_path / "key.json"), "--password-env", "KEY_PASSWORD")
    done = verinfer_cli("infer", "--model", "iris-mlp", "--input", "[[1, 2, 3, 4]]", *args, env=env)
    assert done.returncode == 4 and f"{fresh.address} holds 0" in done.stderr
    wrong = verinfer_cli(
        "infer", "--model", "iris-mlp", "--input", "[[1, 2, 3, 4]]", *args, env={**env, "KEY_PASSWORD": "no"}
    )
    assert wrong.returncode == 2 and "wrong password" in wrong.stderr


def test_requests_show__unknown_request__error(devnet: Devnet) -> None:
    assert "does not exist" in fails(devnet, 1, "requests", "show", "999999")


def test_devnet__on_an_existing_chain__leaves_that_chain_running(tmp_path: Path) -> None:
    env = tool_env(project_root())
    port = free_port()
    anvil_bin = shutil.which("anvil", path=env["PATH"])
    assert anvil_bin is not None
    anvil = spawn(
        "external-anvil", [anvil_bin, "--port", str(port), "--silent"], tmp_path / "anvil.log", env, tmp_path
    )
    try:
        wait_http(f"http://127.0.0.1:{port}", anvil, 30, body=RPC_PROBE)
        env = {
            **os.environ,
            "VERINFER_DEVNET_HOME": str(tmp_path / "home"),
            "VERINFER_DEPLOYMENTS": str(tmp_path),
        }
        up = verinfer_cli(
            "devnet", "up", "--rpc-url", f"http://127.0.0.1:{port}", "--relayers", "1", "--json", env=env
        )
        assert up.returncode == 0, up.stderr
        report = json.loads(up.stdout)
        assert {p["name"] for p in report["processes"]} == {"store", "blocks", "relayer-1"}
        assert json.loads((tmp_path / "devnet.json").read_text())["rpc_url"] == f"http://127.0.0.1:{port}"

        down = verinfer_cli("devnet", "down", "--json", env=env)
        assert down.returncode == 0
        assert json.loads(down.stdout)["stopped"] == ["relayer-1", "blocks", "store"]
        assert anvil.alive
        status = verinfer_cli("devnet", "status", env=env)
        assert status.returncode == 1 and "no devnet" in status.stdout
    finally:
        stop(anvil)


def test_credit__deposit_pays_the_requests_of_an_account_without_tokens__claim_withdraws(
    devnet: Devnet, tmp_path: Path
) -> None:
    fresh = Account.create()
    Rpc(devnet.state.rpc_url).raw("anvil_setBalance", fresh.address, hex(10**18))  # gas, no tokens
    write_keystore(tmp_path / "key.json", bytes(fresh.key), "pw", iterations=2**10)
    env = {**devnet.env, "KEY_PASSWORD": "pw"}
    signer = ("--keystore", str(tmp_path / "key.json"), "--password-env", "KEY_PASSWORD")

    def as_fresh(*args: str) -> Any:
        done = verinfer_cli(*args, *signer, "--json", env=env)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    funded = ok_json(devnet, "credit", "deposit", "20", "--for", fresh.address)  # the dapp pays
    assert funded == {"account": fresh.address, "credit": str(20 * 10**18)}
    result = as_fresh("infer", "--model", "iris-mlp", "--input", "[[5.9, 3.0, 5.1, 1.8]]")
    assert result["settlement"]["status"] == "FINALIZED"
    left = int(ok_json(devnet, "credit", "show", fresh.address)["credit"])
    assert 0 < left < 20 * 10**18  # the fee came out of the credit: the account holds no tokens
    assert as_fresh("credit", "claim") == {"account": fresh.address, "credit": "0"}
    assert as_fresh("credit", "claim") == {"account": fresh.address, "credit": "0"}  # nothing left: no-op

    assert "is not an address" in fails(devnet, 2, "credit", "show", "0x123")
    assert "above zero" in fails(devnet, 2, "credit", "deposit", "0")
