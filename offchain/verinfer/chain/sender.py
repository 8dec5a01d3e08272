"""Send-and-wait for interactive callers (SDK, CLI): the tx manager, an in-memory store, decoded reverts."""

import time
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from verinfer.chain.reverts import RevertDecoder
from verinfer.chain.rpc import Rpc
from verinfer.chain.txmanager import FeePolicy, TxManager, TxRejected, TxRow, TxState


class TransactionFailed(RuntimeError):
    """A transaction would revert, was refused by the node, or reverted when mined."""

    def __init__(self, message: str, error: str | None = None) -> None:
        super().__init__(message)
        self.error = error  # custom error name (e.g. "InsufficientOperators") when known


class MemoryTxStore:
    """A TxStore for short-lived callers: a CLI command waits for its receipts before it exits."""

    def __init__(self) -> None:
        self._rows: dict[bytes, TxRow] = {}

    def add_tx(self, tx: TxRow) -> None:
        self._rows[tx.hash] = tx

    def set_tx(
        self, tx_hash: bytes, state: TxState, block: int | None = None, gas_used: int | None = None
    ) -> None:
        row = self._rows[tx_hash]
        row.state, row.block, row.gas_used = state, block, gas_used

    def txs(self, *states: TxState) -> list[TxRow]:
        return sorted(
            (r for r in self._rows.values() if not states or r.state in states), key=lambda r: r.nonce
        )

    def txs_mined_after(self, block: int) -> list[TxRow]:
        return [r for r in self.txs(TxState.MINED, TxState.FAILED) if (r.block or 0) > block]


@dataclass(frozen=True)
class Receipt:
    tx_hash: bytes
    block: int
    gas_used: int


class Sender:
    """Signs with one account through TxManager and waits for each receipt."""

    def __init__(
        self,
        rpc: Rpc,
        account: LocalAccount,
        decoder: RevertDecoder,
        policy: FeePolicy | None = None,
        *,
        timeout: float = 120.0,
        poll_interval: float = 0.1,
    ) -> None:
        self.account = account
        self.address = account.address
        self.decoder = decoder
        self.timeout = timeout
        self.poll_interval = poll_interval
        self._txm = TxManager(rpc, account, MemoryTxStore(), rpc.chain_id(), policy or FeePolicy())
        self._txm.start()

    def transact(self, to: str, data: bytes, what: str) -> Receipt:
        """Sends and waits until mined; TransactionFailed (with the decoded custom error) otherwise."""
        try:
            tx_hash = self._txm.send(to, data, kind=what, request_ids=())
        except TxRejected as exc:
            decoded = self.decoder.decode(exc.revert_data) if exc.revert_data else None
            name = self.decoder.name(exc.revert_data) if exc.revert_data else None
            raise TransactionFailed(f"{what}: {decoded or exc}", name) from None
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            for outcome in self._txm.poll():
                if outcome.hash != tx_hash:
                    continue
                if not outcome.mined:
                    raise TransactionFailed(f"{what}: transaction 0x{tx_hash.hex()} was dropped")
                if not outcome.success:
                    raise TransactionFailed(f"{what}: transaction 0x{tx_hash.hex()} reverted")
                return Receipt(tx_hash, outcome.block or 0, outcome.gas_used or 0)
            time.sleep(self.poll_interval)
        raise TransactionFailed(f"{what}: no receipt for 0x{tx_hash.hex()} after {self.timeout:.0f}s")
