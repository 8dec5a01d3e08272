"""Another sender with the same key as the one under test: what an operator's CLI or a script does."""

from typing import Any

import ape
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.exceptions import TransactionNotFound, Web3RPCError

from tests.conftest import wait_for

GWEI = 10**9


class OutsideSender:
    """Another tool with the same key: signs at the node's pending nonce and sends straight to anvil.

    Like any careful sender it makes sure each of its transactions is mined, sending again what a
    race at the same nonce lost (anvil can accept two transactions for one nonce and keep one).
    """

    def __init__(self, account: Any, url: str, to: str) -> None:
        self.account = account
        self.w3 = Web3(HTTPProvider(url))
        self.chain_id = self.w3.eth.chain_id
        self.to = to
        self.sent: dict[bytes, bytes] = {}  # data -> hash of its latest signature

    def send(self, data: bytes, nonce: int | None = None, priority_gwei: int = 1) -> bytes:
        while True:
            pending = self.w3.eth.get_transaction_count(self.account.address, "pending")
            tx = {
                "type": 2,
                "chainId": self.chain_id,
                "nonce": pending if nonce is None else nonce,
                "to": self.to,
                "data": data,
                "gas": 50_000,
                "value": 0,
                "maxFeePerGas": 100 * GWEI,
                "maxPriorityFeePerGas": priority_gwei * GWEI,
            }
            try:
                raw = self.account.sign_transaction(tx).raw_transaction
                tx_hash = bytes(self.w3.eth.send_raw_transaction(raw))
            except Web3RPCError as exc:
                if nonce is None and ("nonce too low" in str(exc) or "underpriced" in str(exc)):
                    continue  # the manager took it first
                raise
            self.sent[data] = tx_hash
            return tx_hash

    def all_mined(self) -> bool:
        """True once every transaction is mined; sends again those gone from chain and pool."""
        done = True
        for data, tx_hash in list(self.sent.items()):
            if self._receipt(tx_hash):
                continue
            done = False
            try:
                self.w3.eth.get_transaction(HexBytes(tx_hash))
            except TransactionNotFound:
                self.send(data)
        return done

    def _receipt(self, tx_hash: bytes) -> Any:
        try:
            return self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
        except TransactionNotFound:
            return None


def chain_txs_from(address: str, first_block: int, outside: OutsideSender) -> list[Any]:
    """Every transaction `address` sent in blocks after `first_block`, from the chain itself, once the
    outside sender's are mined (anvil answers a broadcast before its automine block exists)."""
    w3 = ape.chain.provider.web3
    wait_for(outside.all_mined, 10, "the outside transactions mined")
    out: list[Any] = []
    for number in range(first_block + 1, w3.eth.block_number + 1):
        block = w3.eth.get_block(number, full_transactions=True)
        out.extend(tx for tx in block["transactions"] if tx["from"] == address)
    return out
