"""The transaction manager on real anvil: journal first, then broadcast; stuck ones replaced; restarts."""

from pathlib import Path
from typing import Any

import ape
import pytest
from eth_account import Account
from verinfer.chain.rpc import Rpc
from verinfer.chain.txmanager import FeePolicy, TxManager, TxRejected, TxState
from verinfer.relayer.journal import Journal

from tests.conftest import E18, wait_for


@pytest.fixture
def sender() -> Any:
    account = Account.create()
    ape.chain.set_balance(account.address, 10 * E18)
    return account


@pytest.fixture
def automine_off() -> Any:
    provider = ape.chain.provider
    provider.make_request("evm_setAutomine", [False])
    yield provider
    provider.make_request("evm_setAutomine", [True])


def manager(sender: Any, journal: Journal, stuck_after: float = 30.0) -> TxManager:
    rpc = Rpc(str(ape.chain.provider.uri))
    config = FeePolicy(priority_fee_gwei=1.0, stuck_after=stuck_after)
    return TxManager(rpc, sender, journal, ape.chain.chain_id, config)


def test_send__journals_before_broadcast__and_reports_the_receipt(
    tmp_path: Path, sender: Any, dapp: Any
) -> None:
    journal = Journal(tmp_path / "j.db")
    txm = manager(sender, journal)
    txm.start()
    tx_hash = txm.send(dapp.address, b"", kind="commit", request_ids=[7])
    (row,) = journal.txs(TxState.PENDING)
    assert row.hash == tx_hash and row.nonce == 0 and row.request_ids == (7,)
    (outcome,) = wait_for(txm.poll, 10, "receipt")
    assert outcome.mined and outcome.success and outcome.request_ids == (7,)
    assert journal.txs(TxState.MINED)[0].gas_used == 21_000


def test_send__would_revert__rejected_and_nothing_journaled(tmp_path: Path, sender: Any, token: Any) -> None:
    journal = Journal(tmp_path / "j.db")
    txm = manager(sender, journal)
    txm.start()
    transfer = token.transfer.encode_input(token.address, 10**30)  # more than the sender holds
    with pytest.raises(TxRejected, match="would revert"):
        txm.send(token.address, transfer, kind="commit", request_ids=[1])
    assert journal.tx_counts() == {}


def test_stuck_transaction__replaced_with_bumped_fees__one_mined(
    tmp_path: Path, sender: Any, dapp: Any, automine_off: Any
) -> None:
    journal = Journal(tmp_path / "j.db")
    txm = manager(sender, journal, stuck_after=0.2)
    txm.start()
    original = txm.send(dapp.address, b"", kind="reveal", request_ids=[3])
    wait_for(lambda: txm.poll() == [] and len(journal.txs(TxState.PENDING)) == 2, 10, "a replacement")
    first, second = journal.txs(TxState.PENDING)
    assert first.hash == original and second.nonce == first.nonce
    assert second.priority_fee >= first.priority_fee * 1.125 and second.max_fee >= first.max_fee * 1.125

    automine_off.make_request("evm_mine", [])
    (outcome,) = wait_for(txm.poll, 10, "receipt")
    assert outcome.mined and outcome.hash == second.hash  # the node kept the better-paying copy
    assert journal.tx_counts() == {"mined": 1, "replaced": 1}
    assert ape.chain.provider.get_nonce(sender.address) == 1


def test_restart__pending_transaction_picked_up_from_the_journal(
    tmp_path: Path, sender: Any, dapp: Any, automine_off: Any
) -> None:
    journal = Journal(tmp_path / "j.db")
    txm = manager(sender, journal)
    txm.start()
    tx_hash = txm.send(dapp.address, b"", kind="commit", request_ids=[9])
    automine_off.make_request("evm_mine", [])
    journal.close()

    reopened = Journal(tmp_path / "j.db")
    again = manager(sender, reopened)
    (outcome,) = again.start()
    assert outcome.hash == tx_hash and outcome.success
    assert again.send(dapp.address, b"", kind="commit", request_ids=[10]) != tx_hash
    assert reopened.txs(TxState.PENDING)[0].nonce == 1
