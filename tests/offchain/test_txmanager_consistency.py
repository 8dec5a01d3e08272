"""The transaction manager against an inconsistent node and a key shared with another sender (real anvil)."""

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ape
import pytest
from eth_account import Account
from verinfer.chain.rpc import Rpc
from verinfer.chain.txmanager import MAX_NONCE_ATTEMPTS, FeePolicy, TxManager, TxOutcome, TxState
from verinfer.relayer.journal import Journal
from web3.exceptions import TransactionNotFound

from tests.conftest import E18, wait_for
from tests.rpc_proxy import RpcProxy
from tests.shared_key import OutsideSender, chain_txs_from


@pytest.fixture
def sender() -> Any:
    account = Account.create()
    ape.chain.set_balance(account.address, 10 * E18)
    return account


@pytest.fixture
def anvil() -> str:
    return str(ape.chain.provider.uri)


@pytest.fixture
def proxy(anvil: str) -> Iterator[RpcProxy]:
    proxy = RpcProxy(anvil)
    yield proxy
    proxy.close()


@pytest.fixture
def automine_off() -> Any:
    provider = ape.chain.provider
    provider.make_request("evm_setAutomine", [False])
    yield provider
    provider.make_request("evm_setAutomine", [True])


def manager(url: str, account: Any, journal: Journal, **policy: Any) -> TxManager:
    config = FeePolicy(priority_fee_gwei=1.0, **policy)
    return TxManager(Rpc(url), account, journal, ape.chain.chain_id, config)


def collect(txm: TxManager, outcomes: list[TxOutcome], n: int) -> bool:
    outcomes.extend(txm.poll())
    return len(outcomes) >= n


def test_receipts_lag_behind_the_nonce__every_transaction_reported_mined__none_dropped(
    tmp_path: Path, sender: Any, dapp: Any, proxy: RpcProxy
) -> None:
    proxy.lag = 1.0  # receipts and lookups by hash answer null for 1 s; the nonce moves at once
    journal = Journal(tmp_path / "j.db")
    txm = manager(proxy.url, sender, journal)
    txm.start()
    sent, outcomes = [], []
    for i in range(30):
        sent.append(txm.send(dapp.address, b"lag%d" % i, kind="commit", request_ids=[i]))
        outcomes.extend(txm.poll())
    wait_for(lambda: collect(txm, outcomes, 30), 30, "every receipt")

    assert proxy.hidden > 0  # polls did see the nonce past a transaction whose receipt was withheld
    assert sorted(o.hash for o in outcomes) == sorted(sent)
    assert all(o.mined and o.success and o.state == TxState.MINED for o in outcomes)
    assert journal.tx_counts() == {"mined": 30}
    assert len(proxy.broadcasts) == 30
    assert ape.chain.provider.get_nonce(sender.address) == 30


def test_nonce_taken_in_the_pool_by_another_sender__superseded_only_after_the_grace_period(
    tmp_path: Path, sender: Any, dapp: Any, anvil: str, automine_off: Any
) -> None:
    journal = Journal(tmp_path / "j.db")
    txm = manager(anvil, sender, journal, superseded_after=1.0, superseded_polls=3)
    txm.start()
    ours = txm.send(dapp.address, b"ours", kind="commit", request_ids=[1])
    theirs = OutsideSender(sender, anvil, dapp.address).send(b"theirs", nonce=0, priority_gwei=5)
    automine_off.make_request("evm_mine", [])  # the pool kept the better-paying outside transaction
    w3 = ape.chain.provider.web3
    assert w3.eth.get_transaction_receipt(theirs)["status"] == 1

    taken = time.monotonic()
    (outcome,) = wait_for(txm.poll, 10, "a verdict on the transaction whose nonce was taken")
    assert time.monotonic() - taken >= 1.0  # not before the grace period
    assert outcome.hash == ours and not outcome.mined and outcome.superseded
    assert outcome.state == TxState.SUPERSEDED
    assert journal.tx_counts() == {"superseded": 1}
    with pytest.raises(TransactionNotFound):
        w3.eth.get_transaction_receipt(ours)

    txm.send(dapp.address, b"next", kind="commit", request_ids=[2])
    assert journal.txs(TxState.PENDING)[0].nonce == 1  # after the nonce the other sender used


def test_shared_key__another_sender_takes_the_nonce_before_a_broadcast__signed_again_once_mined_once(
    tmp_path: Path, sender: Any, dapp: Any, anvil: str, proxy: RpcProxy
) -> None:
    outside = OutsideSender(sender, anvil, dapp.address)
    race = threading.Event()

    def take_the_nonce(raw: bytes) -> None:
        if race.is_set():  # the first broadcast of each call: the other sender gets there first
            race.clear()
            outside.send(b"raced%d" % len(outside.sent))

    proxy.on_broadcast = take_the_nonce
    journal = Journal(tmp_path / "j.db")
    # anvil answers the outside broadcast before its automine block exists, so now and then it takes
    # our raced signature into the pool too and keeps the other one: that copy is only reported
    # superseded after the grace period, and the call is sent again, as the relayer does.
    txm = manager(proxy.url, sender, journal, superseded_after=1.0)
    txm.start()
    first_block = ape.chain.provider.web3.eth.block_number
    latest: dict[int, bytes] = {}  # call -> hash of the transaction last sent for it
    done: dict[int, TxOutcome] = {}

    def settle() -> bool:
        for outcome in txm.poll():
            (i,) = outcome.request_ids
            if outcome.superseded:
                latest[i] = txm.send(dapp.address, b"call%d" % i, kind="commit", request_ids=[i])
            else:
                done[i] = outcome
        return len(done) == 20

    for i in range(20):
        outside.send(b"between%d" % i)  # signed elsewhere between two of ours: send() catches up
        race.set()
        latest[i] = txm.send(dapp.address, b"call%d" % i, kind="commit", request_ids=[i])
        settle()
    wait_for(settle, 30, "every call mined")

    assert len(outside.sent) == 40
    assert {i: o.hash for i, o in done.items()} == latest
    assert all(o.mined and o.success for o in done.values())
    counts = journal.tx_counts()
    assert counts["mined"] == 20 and counts["superseded"] >= 20 and set(counts) == {"mined", "superseded"}
    # each call: the raced signature, then one at a fresh nonce (and again for a copy lost in the pool)
    assert len(proxy.broadcasts) >= 20 + counts["superseded"]
    on_chain = Counter(bytes(tx["input"]) for tx in chain_txs_from(sender.address, first_block, outside))
    assert sum(on_chain.values()) == 40 + 20 == ape.chain.provider.get_nonce(sender.address)
    assert all(on_chain[b"call%d" % i] == 1 for i in range(20))


def test_shared_key__40_outside_transactions_interleaved__each_call_mined_exactly_once(
    tmp_path: Path, sender: Any, dapp: Any, anvil: str, proxy: RpcProxy
) -> None:
    outside = OutsideSender(sender, anvil, dapp.address)
    journal = Journal(tmp_path / "j.db")
    # No lag behind this proxy: a short grace period keeps the test quick where a race is lost.
    txm = manager(proxy.url, sender, journal, superseded_after=1.0)
    txm.start()
    first_block = ape.chain.provider.web3.eth.block_number
    errors: list[BaseException] = []

    def other_tool() -> None:
        try:
            for i in range(40):
                outside.send(b"outside%d" % i)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    latest: dict[int, bytes] = {}  # call -> hash of the transaction last sent for it
    sends: Counter[int] = Counter()
    done: dict[int, TxOutcome] = {}

    def send(i: int) -> None:
        sends[i] += 1
        latest[i] = txm.send(dapp.address, b"call%d" % i, kind="commit", request_ids=[i])

    def settle() -> bool:
        for outcome in txm.poll():
            (i,) = outcome.request_ids
            if outcome.superseded:  # both signatures reached the pool; the other one was kept
                send(i)  # as the relayer does: the call is sent again
            else:
                done[i] = outcome
        return len(done) == 30

    thread = threading.Thread(target=other_tool)
    thread.start()
    for i in range(30):
        send(i)
        settle()
    thread.join(60)
    assert not thread.is_alive() and errors == []
    wait_for(settle, 60, "every call mined")

    assert all(o.mined and o.success and o.hash == latest[i] for i, o in done.items())
    counts = journal.tx_counts()
    assert counts["mined"] == 30 and set(counts) <= {"mined", "superseded"}
    # A signature is lost only to a nonce an outside transaction took, and each nonce only once.
    assert len(set(proxy.broadcasts)) == sum(counts.values()) <= 30 + 40
    per_call = Counter(row.request_ids[0] for row in journal.txs(*TxState))
    assert all(per_call[i] <= MAX_NONCE_ATTEMPTS * sends[i] for i in range(30))
    on_chain = Counter(bytes(tx["input"]) for tx in chain_txs_from(sender.address, first_block, outside))
    assert sum(on_chain.values()) == 40 + 30 == ape.chain.provider.get_nonce(sender.address)
    assert all(on_chain[b"call%d" % i] == 1 for i in range(30))
    assert all(on_chain[b"outside%d" % i] == 1 for i in range(40))
