"""The relayer under faults: SIGKILL, RPC outages, reorgs, bad artifacts and a lying operator."""

import hashlib
from typing import Any
from urllib.parse import urlparse

import ape
from eth_utils.crypto import keccak
from verinfer.chain.contracts import Fault, Status

from tests.conftest import E18
from tests.e2e.conftest import (
    direct_output,
    exact_features,
    features_input,
    hub_events,
    journal_txs,
    metric,
    quiet,
    round_of,
    seeded,
    settled,
    stake_of,
    wait_for,
)
from tests.e2e.proxy import FlakyProxy

STAKE = 1_000 * E18


def test_sigkill_between_commit_and_reveal__restarted_relayer_reveals_in_time__not_penalized(
    hub: Any, staking: Any, sample: Any, publish: Any, crew: Any, relayers: Any, request_inference: Any
) -> None:
    model = publish(sample)
    a, b, c = crew(model[0], 3)
    first = relayers(a)
    request_id = request_inference(model, features_input(sample.examples[:1]))
    # Alone, A can commit but not reveal: the others have not committed and the window is open.
    wait_for(lambda: first.state(request_id) == "committed", 30, "A committed")
    first.kill()

    others = [relayers(b), relayers(c)]
    wait_for(lambda: all(p.state(request_id) == "revealed" for p in others), 30, "B and C revealed")
    assert not settled(hub, request_id)  # waiting for A's reveal

    first.start().wait_ready()
    wait_for(lambda: settled(hub, request_id), 30, "settlement after A restarts")
    result = hub.getResult(request_id)
    assert int(result.status) == Status.FINALIZED
    assert a.account.address in result.agreeing and len(result.agreeing) == 3
    assert int(round_of(hub, request_id).revealDeadline) >= int(result.settledBlock)
    assert stake_of(staking, a) == STAKE


def test_sigkill_after_commit_sent_before_receipt__restart_finds_it__one_commit_no_penalty(
    hub: Any, staking: Any, sample: Any, publish: Any, crew: Any, relayers: Any, request_inference: Any
) -> None:
    model = publish(sample)
    a, b, c = crew(model[0], 3)
    request_id = request_inference(model, features_input(sample.examples[:1]))
    wait_for(lambda: seeded(hub, request_id), 10, "the seed block")  # mined by the block keeper
    provider = ape.chain.provider
    nonce = provider.get_nonce(a.account.address)
    provider.make_request("evm_setAutomine", [False])
    try:
        first = relayers(a)
        wait_for(lambda: first.state(request_id) == "commit_sent", 30, "A sent its commit")
        first.kill()
        # Besides its commit, the relayer may have sent its peer endpoint (attested mode) at start.
        (pending,) = [tx for tx in journal_txs(first.journal) if tx["kind"] == "commit"]
        assert pending["state"] == "pending"
        provider.make_request("evm_mine", [])
    finally:
        provider.make_request("evm_setAutomine", [True])

    first.start().wait_ready()
    wait_for(lambda: first.state(request_id) == "committed", 30, "A recognises its mined commit")
    relayers(b)
    relayers(c)
    wait_for(lambda: settled(hub, request_id), 30, "settlement")
    result = hub.getResult(request_id)
    assert int(result.status) == Status.FINALIZED and a.account.address in result.agreeing
    assert stake_of(staking, a) == STAKE
    # Exactly one commit and one reveal were mined from A's account.
    wait_for(lambda: quiet(first), 30, "A records its receipts")
    assert provider.get_nonce(a.account.address) == nonce + 2
    assert [t["state"] for t in journal_txs(first.journal)] == ["mined", "mined"]


def test_rpc_outage__relayers_recover__nothing_lost_no_duplicate_transactions(
    hub: Any, sample: Any, publish: Any, crew: Any, relayers: Any, request_inference: Any, rpc_url: str
) -> None:
    parsed = urlparse(rpc_url)
    proxy = FlakyProxy((parsed.hostname or "127.0.0.1", parsed.port or 8545))
    try:
        model = publish(sample)
        operators = crew(model[0], 3)
        nonces = [ape.chain.provider.get_nonce(op.account.address) for op in operators]
        procs = [relayers(op, rpc=proxy.url) for op in operators]
        before = request_inference(model, features_input(sample.examples[:1]))
        wait_for(lambda: settled(hub, before), 30, "settlement before the outage")

        proxy.cut()
        during = [request_inference(model, features_input(sample.examples[i : i + 1])) for i in (1, 2)]
        # Long enough that every relayer gives up a round, not just retries one call.
        wait_for(
            lambda: all(metric(p.metrics, "verinfer_rpc_outages") > 0 for p in procs), 30, "outage noticed"
        )
        assert not any(settled(hub, i) for i in during)
        proxy.restore()

        wait_for(lambda: all(settled(hub, i) for i in during), 60, "settlement after the outage")
        wait_for(lambda: all(quiet(p) for p in procs), 30, "relayers record their receipts")
        for request_id in during:
            result = hub.getResult(request_id)
            assert int(result.status) == Status.FINALIZED and len(result.agreeing) == 3
        for proc, nonce in zip(procs, nonces, strict=True):
            txs = journal_txs(proc.journal)
            mined = [t for t in txs if t["state"] == "mined"]
            assert not [t for t in txs if t["state"] == "failed"]
            assert ape.chain.provider.get_nonce(proc.operator.account.address) == nonce + len(mined)
            for request_id in (before, *during):
                for kind in ("commit", "reveal"):
                    carrying = [t for t in mined if t["kind"] == kind and request_id in t["request_ids"]]
                    assert len(carrying) == 1, (kind, request_id, carrying)
    finally:
        proxy.close()


def test_reorg__request_replaced_by_another__relayers_detect_and_settle_the_new_one(
    hub: Any, sample: Any, publish: Any, crew: Any, relayers: Any, request_inference: Any
) -> None:
    model = publish(sample)
    procs = [relayers(op) for op in crew(model[0], 3)]
    snapshot = ape.chain.snapshot()
    old = request_inference(model, features_input(sample.examples[:1]))
    wait_for(lambda: settled(hub, old), 30, "the first request settles")

    ape.chain.restore(snapshot)  # the request, its commits and reveals leave the chain
    new_input = sample.examples[5:6]
    new = request_inference(model, features_input(new_input))
    assert new == old  # the same id now names a different request

    wait_for(lambda: settled(hub, new), 30, "the replacement request settles")
    result = hub.getResult(new)
    assert int(result.status) == Status.FINALIZED and len(result.agreeing) == 3
    assert bytes(result.output) == direct_output(sample.onnx, sample.decimals, exact_features(new_input))
    for proc in procs:
        assert metric(proc.metrics, "verinfer_reorgs") >= 1


def test_artifact_hash_mismatch__refused_and_logged__nothing_committed(
    hub: Any, consensus: Any, sample: Any, publish: Any, crew: Any, relayers: Any, request_inference: Any
) -> None:
    model = publish(sample, sha=hashlib.sha256(b"not the registered model").digest())
    procs = [relayers(op) for op in crew(model[0], 3)]
    request_id = request_inference(model, features_input(sample.examples[:1]))

    wait_for(lambda: all(p.state(request_id) == "refused" for p in procs), 30, "every relayer refuses")
    for proc in procs:
        assert "does not match registered" in proc.log_text()
    assert int(round_of(hub, request_id).committedMask) == 0

    ape.chain.mine(
        int(consensus.params().commitWindow) + 2
    )  # the commit window passes with nothing committed
    wait_for(lambda: settled(hub, request_id), 30, "a relayer finalizes the empty request")
    assert int(hub.getResult(request_id).status) == Status.EXPIRED


def test_lying_relayer__is_slashed__honest_result_settles(
    hub: Any,
    consensus: Any,
    staking: Any,
    sample: Any,
    publish: Any,
    crew: Any,
    relayers: Any,
    request_inference: Any,
) -> None:
    model = publish(sample)
    operators = crew(model[0], 3)
    liar_index = 0
    procs = [relayers(op, lie=i == liar_index) for i, op in enumerate(operators)]
    x = sample.examples[:1]
    request_id = request_inference(model, features_input(x))

    wait_for(lambda: settled(hub, request_id), 30, "settlement")
    result = hub.getResult(request_id)
    liar, honest = operators[liar_index], [op for i, op in enumerate(operators) if i != liar_index]
    assert int(result.status) == Status.FINALIZED
    assert sorted(result.agreeing) == sorted(op.account.address for op in honest)
    assert bytes(result.output) == direct_output(sample.onnx, sample.decimals, exact_features(x))
    dissent_bps = int(consensus.params().slashBpsDissent)
    assert stake_of(staking, liar) == STAKE - STAKE * dissent_bps // 10_000
    assert all(stake_of(staking, op) == STAKE for op in honest)
    wait_for(
        lambda: metric(procs[liar_index].metrics, "verinfer_slashed") == 1, 10, "the liar counts its penalty"
    )
    (penalty,) = hub_events(hub, "MemberPenalized", request_id)
    assert penalty.operator == liar.account.address and Fault(penalty.fault) == Fault.DISSENT


def test_digest_only__liar_reveals_last__honest_relayers_finalize_with_their_output(
    hub: Any, staking: Any, sample: Any, publish: Any, crew: Any, relayers: Any, request_inference: Any
) -> None:
    model = publish(sample)
    liar, b, c = crew(model[0], 3)
    x = sample.examples[:1]
    lying = relayers(liar, lie=True)
    request_id = request_inference(model, features_input(x), digest_only=True)
    wait_for(lambda: lying.state(request_id) == "committed", 30, "the liar committed")
    lying.kill()
    honest = [relayers(b), relayers(c)]
    wait_for(lambda: all(p.state(request_id) == "revealed" for p in honest), 30, "B and C revealed")
    lying.start().wait_ready()

    # The liar's reveal is the last: it does not carry the accepted output, which the hub does not keep.
    wait_for(lambda: settled(hub, request_id), 30, "settlement by finalizeWithOutput")
    result = hub.getResult(request_id)
    expected = direct_output(sample.onnx, sample.decimals, exact_features(x))
    assert int(result.status) == Status.FINALIZED and bytes(result.outputDigest) == keccak(expected)
    assert sorted(result.agreeing) == sorted([b.account.address, c.account.address])
    (event,) = hub_events(hub, "RequestSettled", request_id)
    assert bytes(event.output) == expected
    assert stake_of(staking, liar) < STAKE and stake_of(staking, b) == stake_of(staking, c) == STAKE
