"""`verinfer requests wait` and `verinfer requests finalize`, as a user runs them.

On a devnet of its own (one relayer stopped, so requests have a silent member; the devnet's block
keeper closes the windows, nothing is mined by hand), and on the session's anvil with members
played by the test, for a digest-only request whose settlement needs the accepted bytes.
"""

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ape
import pytest
from eth_account import Account
from verinfer.chain.contracts import Status
from verinfer.chain.keys import write_keystore
from verinfer.client import Client
from verinfer.devnet.processes import stop

from tests.conftest import committee_of, request_id_of, sample_input, sample_output, wait_for
from tests.e2e.conftest import Devnet, devnet_at, verinfer_cli

IRIS = "[[5.1, 3.5, 1.4, 0.2]]"


@pytest.fixture(scope="module")
def quiet_devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    """A devnet of this module's own whose third relayer is stopped: operator-3 never answers."""
    with devnet_at(tmp_path_factory.mktemp("quiet-devnet")) as net:
        (third,) = [p for p in net.state.processes if p.name == "relayer-3"]
        stop(third)
        yield net


def run(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return verinfer_cli(*args, env=env, timeout=timeout)


def ok_json(env: dict[str, str], *args: str) -> Any:
    done = run(env, *args, "--json")
    assert done.returncode == 0, (done.stdout, done.stderr)
    return json.loads(done.stdout)


def fails(env: dict[str, str], code: int, *args: str) -> tuple[str, str]:
    """Runs a command that must exit `code` with one `error:` line; returns (that line, stdout)."""
    done = run(env, *args)
    assert done.returncode == code, (done.stdout, done.stderr)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    return errors[0], done.stdout


def client_of(devnet: Devnet) -> Client:
    return Client.connect("devnet", deployment=devnet.state.deployment)


def request(devnet: Devnet, k: int) -> dict[str, Any]:
    sent = ok_json(devnet.env, "infer", "--model", "iris-mlp", "--input", IRIS, "--k", str(k), "--no-wait")
    return dict(sent)


def silent_k1_request(devnet: Devnet) -> dict[str, Any]:
    """A k = 1 request drawn to operator-3, whose relayer is stopped (others settle and are skipped)."""
    client = client_of(devnet)
    silent = devnet.state.account("operator-3").address
    for _ in range(20):
        sent = request(devnet, 1)
        rid = int(sent["request_id"])
        committee = wait_for(lambda rid=rid: client.committee(rid), 30, "the seed block")
        if committee == (silent,):
            return sent
    raise AssertionError("no k = 1 request was drawn to operator-3 in 20 tries")


def test_requests_finalize__digest_only__accepted_bytes_from_the_reveals(
    hub: Any,
    consensus: Any,
    model: tuple[bytes, int],
    by_address: dict[str, Any],
    act: Any,
    make_request: Callable[..., Any],
    deployment_file: Path,
    rpc_url: str,
    tmp_path: Path,
) -> None:
    """The last reveal is a dissenter's, so the hub cannot settle the digest-only request itself; the
    CLI finds the agreeing members' bytes in their reveal transactions and settles it."""
    rid = request_id_of(make_request(k=3, digest_only=True, input_bytes=sample_input([0.9, 0.1, 0.2, 0.3])))
    members = committee_of(hub, by_address, rid)
    accepted, other = sample_output(0.3), sample_output(0.7)
    for member, output in zip(members, (accepted, accepted, other), strict=True):
        act.commit(member, rid, output)
    for member, output in zip(members, (accepted, accepted, other), strict=True):
        act.reveal(member, rid, output)
    assert hub.getRequest(rid).status == Status.PENDING and consensus.canFinalize(rid)

    signer = Account.create()
    write_keystore(tmp_path / "key.json", bytes(signer.key), "pw", iterations=2**10)
    ape.accounts.test_accounts[0].transfer(signer.address, 10**18)
    env = {**os.environ, "KEY_PASSWORD": "pw"}
    chain = ("--deployment", str(deployment_file), "--rpc-url", rpc_url)
    keys = ("--keystore", str(tmp_path / "key.json"), "--password-env", "KEY_PASSWORD")

    finalized = ok_json(env, "requests", "finalize", str(rid), *chain, *keys)

    assert finalized["settlement"]["status"] == "FINALIZED"
    assert finalized["settlement"]["agreeing"] == [m.address for m in members[:2]]
    assert finalized["outputs"]["probabilities"] == [[0.7, 0.3]]
    assert hub.verifyOutput(rid, accepted)


def test_requests_wait__silent_member__settles_without_blocks_mined_by_hand(quiet_devnet: Devnet) -> None:
    env = quiet_devnet.env
    silent = quiet_devnet.state.account("operator-3").address
    sent = request(quiet_devnet, 3)  # 3 operators: every committee of 3 holds the silent one
    rid = str(sent["request_id"])

    line, _ = fails(env, 1, "requests", "finalize", rid)
    assert f"request {rid} is still in its windows: finalizable from block" in line
    line, _ = fails(env, 5, "requests", "wait", rid, "--timeout", "0.5")
    assert f"request {rid} still pending" in line

    result = ok_json(env, "requests", "wait", rid, "--timeout", "150")

    settlement = result["settlement"]
    assert settlement["status"] == "FINALIZED" and len(result["outputs"]["probabilities"][0]) == 3
    assert silent in settlement["committee"] and silent not in settlement["agreeing"]
    assert len(settlement["agreeing"]) == 2 and settlement["settle_tx"]
    # the two answering members could reveal only once the commit window had closed
    assert settlement["settled_block"] > sent["commit_deadline"]
    line, _ = fails(env, 1, "requests", "finalize", rid)
    assert f"request {rid} is already FINALIZED (settled in block {settlement['settled_block']})" in line
    human = run(env, "requests", "wait", rid)
    assert human.returncode == 0 and "FINALIZED" in human.stdout and "probabilities" in human.stdout


def test_requests_finalize__nobody_committed__expires_from_the_block_it_names(quiet_devnet: Devnet) -> None:
    env = quiet_devnet.env
    sent = silent_k1_request(quiet_devnet)
    rid = str(sent["request_id"])
    line, _ = fails(env, 1, "requests", "finalize", rid)
    assert f"finalizable from block {sent['commit_deadline'] + 1}" in line

    client = client_of(quiet_devnet)
    wait_for(lambda: client.contracts.view("consensus", "canFinalize", int(rid)), 90, "the commit deadline")
    finalized = ok_json(env, "requests", "finalize", rid)

    assert finalized["settlement"]["status"] == "EXPIRED" and finalized["outputs"] is None
    assert finalized["finalize_tx"] == finalized["settlement"]["settle_tx"]
    assert finalized["settlement"]["committee"] == [quiet_devnet.state.account("operator-3").address]


def test_requests_wait__nobody_committed__wait_finalizes_it_itself(quiet_devnet: Devnet) -> None:
    env = quiet_devnet.env
    dapp = quiet_devnet.state.account("dapp").address
    sent = silent_k1_request(quiet_devnet)
    rid = str(sent["request_id"])

    done = run(env, "requests", "wait", rid, "--json", "--timeout", "150")

    assert done.returncode == 1, done.stderr
    assert f"error: request {rid} expired" in done.stderr
    settlement = json.loads(done.stdout)["settlement"]
    assert settlement["status"] == "EXPIRED" and settlement["settle_tx"]
    receipt = client_of(quiet_devnet).rpc.call(
        lambda w3: w3.eth.get_transaction(settlement["settle_tx"]), "getTransaction"
    )
    assert receipt["from"] == dapp  # the CLI's own finalize, signed as the devnet's dapp


def test_requests__unknown_id_and_bad_timeout(quiet_devnet: Devnet) -> None:
    env = quiet_devnet.env
    assert "request 999999 does not exist" in fails(env, 1, "requests", "finalize", "999999")[0]
    assert "does not exist" in fails(env, 1, "requests", "wait", "999999", "--timeout", "5")[0]
    assert "--timeout" in fails(env, 2, "requests", "wait", "1", "--timeout", "0")[0]
