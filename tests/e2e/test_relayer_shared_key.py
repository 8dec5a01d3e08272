"""A relayer whose operator key is also used by another sender keeps settling, without repeats or misses."""

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import ape
import pytest
from eth_account import Account
from verinfer.chain.contracts import Status

from tests.conftest import E18, wait_for
from tests.e2e.conftest import features_input, journal_txs, quiet, settled
from tests.rpc_proxy import RpcProxy
from tests.shared_key import OutsideSender, chain_txs_from

OUTSIDE = 40
BETWEEN = 4  # outside transactions between two requests
REQUESTS = 6


@pytest.fixture
def proxy(rpc_url: str) -> Iterator[RpcProxy]:
    proxy = RpcProxy(rpc_url)
    yield proxy
    proxy.close()


def test_operator_key_used_by_another_sender__relayer_settles_every_request_once__no_penalty(
    hub: Any,
    staking: Any,
    sample: Any,
    publish: Any,
    crew: Any,
    relayers: Any,
    request_inference: Any,
    proxy: RpcProxy,
) -> None:
    model = publish(sample)
    a, b, c = crew(model[0], 3)
    address = a.account.address
    outside = OutsideSender(Account.from_key(a.key), str(ape.chain.provider.uri), address)
    raced: list[bytes] = []
    racing = threading.Event()
    racing.set()

    def take_the_nonce(raw: bytes) -> None:
        """Before every other broadcast of A's relayer, another sender takes the nonce it signed for."""
        if racing.is_set() and len(proxy.broadcasts) % 2 == 0:
            raced.append(outside.send(b"raced%d" % len(raced)))

    proxy.on_broadcast = take_the_nonce
    first_block = ape.chain.provider.web3.eth.block_number
    nonce = ape.chain.provider.get_nonce(address)
    procs = [relayers(a, rpc=proxy.url), relayers(b), relayers(c)]

    ids: list[int] = []

    def request(i: int, between: int) -> None:
        # The key is used elsewhere between rounds (the operator CLI, a script): the relayer's next
        # nonce is stale when it sends again.
        for _ in range(between):
            outside.send(b"between%d" % len(outside.sent))
        ids.append(request_inference(model, features_input(sample.examples[i : i + 1])))
        wait_for(lambda: settled(hub, ids[-1]), 60, f"request {len(ids)} settles")

    for i in range(REQUESTS):
        request(i, BETWEEN)
    racing.clear()
    request(REQUESTS, OUTSIDE - len(outside.sent))  # what is left of the 40, then one more round

    wait_for(lambda: all(quiet(p) for p in procs), 30, "relayers record their receipts")
    assert len(outside.sent) == OUTSIDE and len(raced) >= REQUESTS  # a commit or reveal per round
    for request_id in ids:
        result = hub.getResult(request_id)
        assert int(result.status) == Status.FINALIZED and address in result.agreeing
        assert len(result.agreeing) == 3
    assert int(staking.operatorInfo(address).stake) == 1_000 * E18  # never penalized

    txs = journal_txs(procs[0].journal)
    states = Counter(t["state"] for t in txs)
    # Each raced broadcast cost one signature, signed again at once; nothing else was lost.
    assert states["superseded"] == len(raced) and set(states) <= {"mined", "failed", "superseded"}
    on_chain_by_relayer = [t for t in txs if t["state"] in ("mined", "failed")]
    for request_id in ids:
        for kind in ("commit", "reveal"):
            carrying = [
                t
                for t in on_chain_by_relayer
                if t["state"] == "mined" and t["kind"] == kind and request_id in t["request_ids"]
            ]
            assert len(carrying) == 1, (kind, request_id, carrying)
    # Every journaled signature was broadcast, at most twice; nothing unjournaled was.
    assert {bytes(t["hash"]) for t in txs} == set(proxy.broadcasts)
    assert max(Counter(proxy.broadcasts).values()) <= 2

    on_chain = chain_txs_from(address, first_block, outside)
    assert len(on_chain) == OUTSIDE + len(on_chain_by_relayer)
    assert ape.chain.provider.get_nonce(address) == nonce + OUTSIDE + len(on_chain_by_relayer)
    assert {bytes(tx["hash"]) for tx in on_chain} == {
        *map(bytes, outside.sent.values()),
        *(bytes(t["hash"]) for t in on_chain_by_relayer),
    }
