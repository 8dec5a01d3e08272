"""Optimistic mode end to end: relayer processes post with a bond and finalize after the challenge
window; a watcher relayer re-executes, challenges a wrong post, and the escalation round (settled by
relayers) decides; a silent poster is expired by the watcher; a challenger that never resolves is
resolved for by the poster; a watcher killed with -9 after challenging resumes and resolves."""

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ape
import pytest
from ape import project
from eth_account import Account
from verinfer.chain.contracts import MODE_OPTIMISTIC, Fault, Status
from verinfer.chain.keys import write_keystore
from verinfer.client import Client

from tests.conftest import E18, TEST_PARAMS, request_id_of, wait_for
from tests.e2e.conftest import (
    direct_output,
    exact_features,
    features_input,
    hub_events,
    journal_row,
    read_journal,
    settled,
    stake_of,
    verinfer_cli,
)

STAKE = 1_000 * E18
MODES = 0x01 | MODE_OPTIMISTIC
BPS = 10_000
OP_FEE = TEST_PARAMS["operator_fee"]  # per member


class Phase:
    OPEN, POSTED, CHALLENGED, UPHELD, OVERTURNED, UNDECIDED, UNPOSTED = range(1, 8)


@pytest.fixture(autouse=True)
def quick_blocks(keeper: Any) -> None:
    """Blocks every 0.3 s while idle: the challenge window (20 blocks) passes in seconds."""
    keeper.idle_interval = 0.3


@pytest.fixture
def bonded(fund: Callable[..., None], optimistic: Any) -> Callable[[list[Any]], None]:
    """Gives operators liquid tokens for bonds (their 1,000 are all staked)."""

    def _bonded(operators: list[Any]) -> None:
        for op in operators:
            fund(op.account, 50 * E18)

    return _bonded


def optimistic_request(make_request: Any, model: tuple[bytes, int], x: Any, consumer: Any = None) -> int:
    receipt = make_request(
        k=1,
        model_ref=model,
        input_bytes=features_input(x),
        mode=MODE_OPTIMISTIC,
        seed=False,
        consumer=consumer,
        callback_gas=0 if consumer is None else 800_000,
    )
    return request_id_of(receipt)


def poster_of(optimistic: Any, operators: list[Any], request_id: int) -> Any:
    """The operator the request's seed draws as its poster (waits for the seed block)."""

    def drawn() -> Any:
        try:
            (address,) = optimistic.previewCommittee(request_id)
        except Exception:  # the seed block is not there yet
            return None
        return next(op for op in operators if op.account.address == address)

    return wait_for(drawn, 30, "the poster drawn")


def escalation_committee(hub: Any, escalation_id: int) -> list[str]:
    """The escalation's committee (a consensus request)."""
    return list(project.ConsensusMode.at(hub.modeContract(0x01)).getCommittee(escalation_id))


def phase(optimistic: Any, request_id: int) -> int:
    return int(optimistic.getRound(request_id).phase)


def worth(token: Any, hub: Any, account: str) -> int:
    return int(token.balanceOf(account)) + int(hub.claimable(account))


def test_honest_poster__no_challenge__final_after_the_window__poster_paid__bond_back(
    hub: Any,
    optimistic: Any,
    token: Any,
    sample: Any,
    publish: Any,
    crew: Any,
    bonded: Any,
    relayers: Any,
    make_request: Any,
) -> None:
    model = publish(sample, modes=MODES)
    operators = crew(model[0], 3)
    bonded(operators)
    procs = {op.account.address: relayers(op) for op in operators}
    x = sample.examples[:1]
    before = {a: worth(token, hub, a) for a in procs}

    request_id = optimistic_request(make_request, model, x)
    poster = poster_of(optimistic, operators, request_id)

    wait_for(lambda: phase(optimistic, request_id) == Phase.POSTED, 30, "the post")
    provisional = optimistic.provisional(request_id)
    assert provisional.posted and not provisional.challenged
    assert int(hub.getRequest(request_id).status) == Status.PENDING  # posted is not final
    wait_for(lambda: settled(hub, request_id), 60, "finality after the challenge window")
    result = hub.getResult(request_id)
    assert int(result.status) == Status.FINALIZED
    assert bytes(result.output) == direct_output(sample.onnx, sample.decimals, exact_features(x))
    assert int(result.settledBlock) > int(provisional.challengeDeadline)
    assert list(result.agreeing) == [poster.account.address]
    for address in procs:  # the poster earned the operator fee, its bond is back; nobody else moved
        gained = worth(token, hub, address) - before[address]
        assert gained == (OP_FEE if address == poster.account.address else 0)
    wait_for(lambda: procs[poster.account.address].state(request_id) == "settled", 30, "the poster's journal")
    for address, proc in procs.items():
        if address != poster.account.address:
            assert proc.state(request_id) == "not_member"
    assert int(optimistic.locked()) == 0


def test_lying_poster__watcher_challenges__escalation_settles_the_truth__poster_slashed__consumer_sees_truth(
    keeper: Any,
    hub: Any,
    optimistic: Any,
    staking: Any,
    token: Any,
    treasury: Any,
    deployer: Any,
    sample: Any,
    publish: Any,
    crew: Any,
    bonded: Any,
    relayers: Any,
    make_request: Any,
) -> None:
    """The poster is known once the seed is mined; its relayer is started lying, and one honest
    relayer watching. The escalation cannot settle until the other honest relayers run: the watcher is
    killed with -9 once its challenge stands, the others start, and the watcher, restarted, resumes."""
    keeper.idle_interval = 1.0  # the escalation's commit window (25 blocks) must outlast the restarts
    model = publish(sample, modes=MODES)
    operators = crew(model[0], 5)
    bonded(operators)
    consumer = deployer.deploy(project.RecordingConsumer, hub)
    x = sample.examples[3:4]
    truth = direct_output(sample.onnx, sample.decimals, exact_features(x))
    params = optimistic.params()

    request_id = optimistic_request(make_request, model, x, consumer)
    liar = poster_of(optimistic, operators, request_id)
    honest = [op for op in operators if op is not liar]
    watcher_op = honest[0]
    watcher_before = worth(token, hub, watcher_op.account.address)
    treasury_before = worth(token, hub, treasury.address)
    relayers(liar, lie=True)
    watcher = relayers(watcher_op, watch={})

    (posted,) = wait_for(lambda: hub_events(optimistic, "Posted", request_id, hub), 30, "the post")
    assert bytes(posted.output) != truth
    wait_for(lambda: watcher.state(request_id) == "challenged", 30, "the challenge")
    assert phase(optimistic, request_id) == Phase.CHALLENGED
    watcher.kill()
    for op in honest[1:]:
        relayers(op)
    watcher.start().wait_ready()

    wait_for(lambda: settled(hub, request_id), 120, "the escalation and resolve")
    (challenged,) = hub_events(optimistic, "Challenged", request_id, hub)
    assert challenged.challenger == watcher_op.account.address
    (resolved,) = hub_events(optimistic, "Resolved", request_id, hub)
    assert int(resolved.phase) == Phase.OVERTURNED
    escalation = hub.getResult(int(challenged.escalationId))
    assert int(escalation.status) == Status.FINALIZED and bytes(escalation.output) == truth
    result = hub.getResult(request_id)
    assert int(result.status) == Status.FINALIZED and bytes(result.output) == truth
    # The consumer was called once, at finality, with the truth, never with the posted output.
    assert (consumer.calls(), consumer.lastRequestId(), bytes(consumer.lastOutput())) == (
        1,
        request_id,
        truth,
    )
    # The liar: slashed for the wrong post; it was not on the escalation's committee.
    (penalty,) = hub_events(hub, "MemberPenalized", request_id)
    assert (penalty.operator, Fault(penalty.fault)) == (liar.account.address, Fault.DISSENT)
    assert liar.account.address not in escalation_committee(hub, int(challenged.escalationId))
    assert stake_of(staking, liar) == STAKE - STAKE * int(params.slashBpsWrong) // BPS
    # The watcher: its challenge bond back, the poster's bond share and the reward, less the escalation.
    reward = int(penalty.amount) * int(params.rewardBps) // BPS
    share = int(params.postBond) * int(params.winnerShareBps) // BPS
    gained = worth(token, hub, watcher_op.account.address) - watcher_before
    fee = hub.quote(model[0], model[1], 3)
    in_escalation = watcher_op.account.address in escalation.agreeing  # then it earned a fee there too
    assert gained == share + reward - fee + OP_FEE * in_escalation
    optimistic.sweep(sender=deployer)
    assert worth(token, hub, treasury.address) > treasury_before
    assert int(optimistic.locked()) == 0
    # The watcher's journal: challenged (after its restart too), then settled.
    states = [
        str(r["state"])
        for r in read_journal(
            watcher.journal, "SELECT state FROM transitions WHERE request_id = ? ORDER BY id", (request_id,)
        )
    ]
    assert "challenged" in states and states[-1] == "settled"
    log = watcher.log_text()
    assert "wrong post: challenging" in log


def test_frivolous_challenge_by_the_sdk__challenger_never_resolves__the_poster_does__bond_lost(
    hub: Any,
    optimistic: Any,
    token: Any,
    treasury: Any,
    deployer: Any,
    sample: Any,
    publish: Any,
    crew: Any,
    bonded: Any,
    relayers: Any,
    make_request: Any,
    deployment_file: Any,
    rpc_url: str,
    fund: Callable[..., None],
) -> None:
    model = publish(sample, modes=MODES)
    operators = crew(model[0], 4)
    bonded(operators)
    for op in operators:
        relayers(op)
    x = sample.examples[5:6]
    params = optimistic.params()
    challenger = ape.accounts.test_accounts.generate_test_account()
    ape.chain.set_balance(challenger.address, 10 * E18)
    fund(challenger, 50 * E18)
    key = Account.from_key(challenger.private_key)
    client = Client.connect(deployment=deployment_file, rpc_url=rpc_url, account=key)

    request_id = optimistic_request(make_request, model, x)
    poster = poster_of(optimistic, operators, request_id)
    wait_for(lambda: phase(optimistic, request_id) == Phase.POSTED, 30, "the post")
    before = {a: worth(token, hub, a) for a in (challenger.address, poster.account.address)}
    escalation_id = client.challenge(request_id)  # the post is right: a frivolous challenge
    assert escalation_id > 0
    wait_for(lambda: settled(hub, request_id), 120, "the poster resolves")
    (resolved,) = hub_events(optimistic, "Resolved", request_id, hub)
    assert int(resolved.phase) == Phase.UPHELD
    resolve_tx = ape.chain.provider.web3.eth.get_transaction(resolved.transaction_hash)
    assert resolve_tx["from"] == poster.account.address  # the challenger never resolved
    result = hub.getResult(request_id)
    assert bytes(result.output) == direct_output(sample.onnx, sample.decimals, exact_features(x))
    fee = hub.quote(model[0], model[1], 3)
    lost = worth(token, hub, challenger.address) - before[challenger.address]
    assert lost == -int(params.challengeBond) - fee
    share = int(params.challengeBond) * int(params.winnerShareBps) // BPS
    assert poster.account.address not in escalation_committee(hub, escalation_id)
    gained = worth(token, hub, poster.account.address) - before[poster.account.address]
    assert gained == int(params.postBond) + share + OP_FEE  # its bond back, paid for the post
    assert int(optimistic.locked()) == 0


def test_silent_poster__a_watcher_expires_it__poster_slashed_for_silence__requester_refunded(
    hub: Any,
    optimistic: Any,
    staking: Any,
    token: Any,
    dapp: Any,
    sample: Any,
    publish: Any,
    crew: Any,
    bonded: Any,
    relayers: Any,
    make_request: Any,
) -> None:
    model = publish(sample, modes=MODES)
    operators = crew(model[0], 3)
    bonded(operators)
    x = sample.examples[7:8]
    fee = hub.quote(model[0], model[1], 1)
    dapp_before = worth(token, hub, dapp.address)

    request_id = optimistic_request(make_request, model, x)
    silent = poster_of(optimistic, operators, request_id)
    watchers = [relayers(op, watch={}) for op in operators if op is not silent]  # the poster never runs

    wait_for(lambda: settled(hub, request_id), 60, "the watchers expire the round")
    assert int(hub.getRequest(request_id).status) == Status.EXPIRED
    assert phase(optimistic, request_id) == Phase.UNPOSTED
    penalties = [(p.operator, Fault(p.fault)) for p in hub_events(hub, "MemberPenalized", request_id)]
    assert penalties == [(silent.account.address, Fault.SILENT)]
    assert stake_of(staking, silent) == STAKE - STAKE * int(optimistic.params().slashBpsSilence) // BPS
    assert worth(token, hub, dapp.address) == dapp_before + fee  # minted for the request, refunded whole
    for proc in watchers:
        row = journal_row(proc.journal, request_id)
        assert row is not None and row["status"] == Status.EXPIRED


def test_cli__infer_optimistic__provisional_shown_as_such__challenge__wait_for_the_final_result(
    keeper: Any,
    hub: Any,
    optimistic: Any,
    sample: Any,
    publish: Any,
    crew: Any,
    bonded: Any,
    relayers: Any,
    fund: Callable[..., None],
    deployment_file: Path,
    rpc_url: str,
    tmp_path: Path,
) -> None:
    keeper.idle_interval = 1.0  # 20 s of challenge window: time for a few CLI calls
    model = publish(sample, modes=MODES)
    operators = crew(model[0], 4)
    bonded(operators)
    for op in operators:
        relayers(op)
    signer = Account.create()
    write_keystore(tmp_path / "key.json", bytes(signer.key), "pw", iterations=2**10)
    ape.accounts.test_accounts[0].transfer(signer.address, 10**18)
    fund(signer.address, 100 * E18)
    env = {**os.environ, "KEY_PASSWORD": "pw"}
    chain = ("--deployment", str(deployment_file), "--rpc-url", rpc_url)
    keys = ("--keystore", str(tmp_path / "key.json"), "--password-env", "KEY_PASSWORD")
    client = Client.connect(deployment=deployment_file, rpc_url=rpc_url)
    name = client.contracts.model(model[0]).name
    x = sample.examples[2:3]
    truth = direct_output(sample.onnx, sample.decimals, exact_features(x))
    features = json.dumps({"features": exact_features(x).tolist()})

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return verinfer_cli(*args, *chain, env=env)

    refused = cli("infer", "--model", name, "--input", features, "--mode", "optimistic", "--k", "3", *keys)
    assert refused.returncode != 0 and "optimistic mode has one poster: k must be 1, not 3" in refused.stderr
    sent = cli(
        "infer", "--model", name, "--input", features, "--mode", "optimistic", "--no-wait", "--json", *keys
    )
    assert sent.returncode == 0, sent.stderr
    pending = json.loads(sent.stdout)
    assert (pending["k"], pending["mode"]) == (1, "optimistic")
    request_id = int(pending["request_id"])
    wait_for(lambda: phase(optimistic, request_id) == Phase.POSTED, 30, "the post")

    shown = cli("requests", "show", str(request_id))
    assert shown.returncode == 0, shown.stderr
    assert f"request {request_id}  PROVISIONAL (not final: challengeable until block" in shown.stdout
    shown_json = json.loads(cli("requests", "show", str(request_id), "--json").stdout)
    assert shown_json["outputs"] is None and shown_json["settlement"]["status"] == "PENDING"
    posted = shown_json["provisional"]
    assert posted["final"] is False and posted["challenged"] is False
    assert bytes.fromhex(posted["output"][2:]) == truth  # an honest poster

    capped = cli("requests", "challenge", str(request_id), "--max-fee", "0.000001", *keys)
    assert capped.returncode == 4 and capped.stderr.count("error: ") == 1, capped.stderr
    assert (
        "the escalation costs" in capped.stderr and int(optimistic.getRound(request_id).phase) == Phase.POSTED
    )
    challenged = cli("requests", "challenge", str(request_id), "--json", *keys)
    assert challenged.returncode == 0, challenged.stderr
    escalation = json.loads(challenged.stdout)["escalation_id"]
    assert escalation == int(optimistic.getRound(request_id).escalationId) > 0
    again = cli("requests", "challenge", str(request_id), *keys)
    assert again.returncode == 1 and again.stderr.count("error: ") == 1
    assert "only a posted output can be challenged" in again.stderr

    done = cli("requests", "wait", str(request_id), "--timeout", "120", "--json", *keys)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["settlement"]["status"] == "FINALIZED"
    assert bytes(hub.getResult(request_id).output) == truth
    assert phase(optimistic, request_id) == Phase.UPHELD  # the challenge was frivolous
