"""The one place that signs and sends transactions: nonces, EIP-1559 fees, replacement of stuck ones."""

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError

from verinfer.chain.rpc import Rpc, RpcUnavailable

GWEI = 10**9
log = logging.getLogger("verinfer.tx")


class TxState(StrEnum):
    PENDING = "pending"
    MINED = "mined"
    FAILED = "failed"  # mined but reverted
    REPLACED = "replaced"  # superseded by a fee-bumped copy with the same nonce
    DROPPED = "dropped"  # gone from the chain (reorg) and the node


@dataclass
class TxRow:
    """One signed transaction, journaled before it is broadcast."""

    hash: bytes
    nonce: int
    kind: str
    request_ids: tuple[int, ...]
    to_address: str
    data: bytes
    raw: bytes
    max_fee: int
    priority_fee: int
    gas: int
    state: TxState
    sent_at: float
    block: int | None
    gas_used: int | None


class TxStore(Protocol):
    """Durable storage of signed transactions (the relayer's journal)."""

    def add_tx(self, tx: TxRow) -> None: ...
    def set_tx(
        self, tx_hash: bytes, state: TxState, block: int | None = None, gas_used: int | None = None
    ) -> None: ...
    def txs(self, *states: TxState) -> list[TxRow]: ...
    def txs_mined_after(self, block: int) -> list[TxRow]: ...


@dataclass(frozen=True)
class FeePolicy:
    """How much to pay, and when a transaction counts as stuck."""

    priority_fee_gwei: float | None = None
    max_fee_gwei: float = 500.0
    fee_bump: float = 1.125
    stuck_after: float = 30.0
    gas_multiplier: float = 1.25


class TxRejected(RuntimeError):
    """The node would not accept the transaction (it reverts in simulation, or funds are short)."""

    def __init__(self, message: str, revert_data: bytes = b"") -> None:
        super().__init__(message)
        self.revert_data = revert_data  # the ABI-encoded custom error, when the node returned one


@dataclass(frozen=True)
class TxOutcome:
    """What became of a journaled transaction: mined (ok or reverted) or dropped."""

    hash: bytes
    kind: str
    request_ids: tuple[int, ...]
    mined: bool
    success: bool
    block: int | None = None
    gas_used: int | None = None


class TxManager:
    """Sends transactions for one account; every signed transaction is journaled before broadcast."""

    def __init__(
        self,
        rpc: Rpc,
        account: LocalAccount,
        journal: TxStore,
        chain_id: int,
        config: FeePolicy,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self.rpc = rpc
        self.account = account
        self.journal = journal
        self.chain_id = chain_id
        self.config = config
        self._on_event = on_event or (lambda _: None)
        self._nonce = 0

    # ------------------------------------------------------------ lifecycle

    def start(self) -> list[TxOutcome]:
        """Picks up journaled transactions after a restart and syncs the nonce."""
        outcomes = self.poll(force_check=True)
        self._resync()
        return outcomes

    def _resync(self) -> None:
        chain_next = self.rpc.call(
            lambda w3: int(w3.eth.get_transaction_count(self.account.address, "pending")),
            "getTransactionCount",
        )
        pending = [tx.nonce + 1 for tx in self.journal.txs(TxState.PENDING)]
        self._nonce = max([chain_next, *pending])

    # ------------------------------------------------------------ sending

    def estimate(self, to: str, data: bytes) -> int:
        """Gas estimate; TxRejected if the call would revert."""
        try:
            return self.rpc.call(
                lambda w3: int(w3.eth.estimate_gas({"from": self.account.address, "to": to, "data": data})),
                "eth_estimateGas",
            )
        except ContractLogicError as exc:
            revert = exc.data if isinstance(exc.data, str) and exc.data.startswith("0x") else "0x"
            raise TxRejected(f"would revert: {exc.message or exc}", bytes.fromhex(revert[2:])) from None
        except Web3RPCError as exc:
            raise TxRejected(str(exc.message or exc)) from None

    def send(
        self, to: str, data: bytes, *, kind: str, request_ids: Sequence[int], extra_gas: int = 0
    ) -> bytes:
        """Estimates, signs, journals and broadcasts; returns the transaction hash."""
        latest = self._latest()
        gas = int(self.estimate(to, data) * self.config.gas_multiplier) + extra_gas
        gas = min(gas, int(latest["gasLimit"]))
        max_fee, priority = self._fees(latest)
        row = self._sign(self._nonce, to, data, gas, max_fee, priority, kind, tuple(request_ids))
        self.journal.add_tx(row)
        self._nonce += 1
        self._on_event(f"sent:{kind}")
        self._broadcast(row)
        return row.hash

    def _sign(
        self,
        nonce: int,
        to: str,
        data: bytes,
        gas: int,
        max_fee: int,
        priority: int,
        kind: str,
        ids: tuple[int, ...],
    ) -> TxRow:
        tx: dict[str, Any] = {
            "type": 2,
            "chainId": self.chain_id,
            "nonce": nonce,
            "to": to,
            "data": data,
            "gas": gas,
            "value": 0,
            "maxFeePerGas": max_fee,
            "maxPriorityFeePerGas": priority,
        }
        signed = self.account.sign_transaction(tx)
        return TxRow(
            hash=bytes(signed.hash),
            nonce=nonce,
            kind=kind,
            request_ids=ids,
            to_address=to,
            data=data,
            raw=bytes(signed.raw_transaction),
            max_fee=max_fee,
            priority_fee=priority,
            gas=gas,
            state=TxState.PENDING,
            sent_at=time.time(),
            block=None,
            gas_used=None,
        )

    def _broadcast(self, row: TxRow) -> None:
        try:
            self.rpc.call(lambda w3: w3.eth.send_raw_transaction(row.raw), "eth_sendRawTransaction")
        except RpcUnavailable:
            log.warning("broadcast deferred", extra={"tx": row.hash.hex(), "nonce": row.nonce})
        except Web3RPCError as exc:
            message = str(exc.message or exc).lower()
            if "already known" in message or "known transaction" in message or "nonce too low" in message:
                return  # the node has it, or the nonce is taken: poll() sorts out which
            if "underpriced" in message:
                return  # an earlier copy with this nonce is pending
            log.error("broadcast refused", extra={"tx": row.hash.hex(), "error": message})
            self.journal.set_tx(row.hash, TxState.DROPPED)
            self._resync()
            raise TxRejected(message) from None

    def _latest(self) -> Any:
        return self.rpc.call(lambda w3: w3.eth.get_block("latest"), "getBlock")

    def _fees(self, latest: Any) -> tuple[int, int]:
        base = int(latest.get("baseFeePerGas", 0))
        if self.config.priority_fee_gwei is not None:
            priority = int(self.config.priority_fee_gwei * GWEI)
        else:
            priority = self.rpc.call(lambda w3: int(w3.eth.max_priority_fee), "eth_maxPriorityFeePerGas")
        cap = int(self.config.max_fee_gwei * GWEI)
        max_fee = min(2 * base + priority, cap)
        return max(max_fee, min(priority, cap)), min(priority, cap)

    # ------------------------------------------------------------ tracking

    def pending(self) -> list[TxRow]:
        return self.journal.txs(TxState.PENDING)

    def poll(self, force_check: bool = False) -> list[TxOutcome]:
        """Receipts for pending transactions; rebroadcasts lost ones and replaces stuck ones."""
        groups: dict[int, list[TxRow]] = {}
        for row in self.journal.txs(TxState.PENDING):
            groups.setdefault(row.nonce, []).append(row)
        if not groups:
            return []
        chain_nonce = self.rpc.call(
            lambda w3: int(w3.eth.get_transaction_count(self.account.address, "latest")),
            "getTransactionCount",
        )
        outcomes = []
        for nonce, rows in sorted(groups.items()):
            outcome = self._settle_group(rows)
            if outcome is not None:
                outcomes.append(outcome)
            elif nonce < chain_nonce:
                # The nonce was used by a transaction we did not send from this journal.
                for row in rows[:-1]:
                    self.journal.set_tx(row.hash, TxState.DROPPED)
                outcomes.append(self._dropped(rows[-1]))
            else:
                self._nudge(rows[-1], force_check)
        return outcomes

    def _settle_group(self, rows: list[TxRow]) -> TxOutcome | None:
        for row in rows:
            receipt = self._receipt(row.hash)
            if receipt is None:
                continue
            ok = int(receipt["status"]) == 1
            block, gas_used = int(receipt["blockNumber"]), int(receipt["gasUsed"])
            self.journal.set_tx(row.hash, TxState.MINED if ok else TxState.FAILED, block, gas_used)
            for other in rows:
                if other.hash != row.hash:
                    self.journal.set_tx(other.hash, TxState.REPLACED)
            return TxOutcome(row.hash, row.kind, row.request_ids, True, ok, block, gas_used)
        return None

    def _nudge(self, row: TxRow, force_check: bool) -> None:
        age = time.time() - row.sent_at
        if not force_check and age < min(2.0, self.config.stuck_after):
            return
        if not self._known(row.hash):
            log.info("rebroadcast", extra={"tx": row.hash.hex(), "nonce": row.nonce})
            self._broadcast(row)
        elif age >= self.config.stuck_after:
            self._replace(row)

    def _replace(self, row: TxRow) -> None:
        max_fee, priority = self._fees(self._latest())
        bump = self.config.fee_bump
        priority = max(priority, int(row.priority_fee * bump) + 1)
        max_fee = max(max_fee, int(row.max_fee * bump) + 1, priority)
        replacement = self._sign(
            row.nonce, row.to_address, row.data, row.gas, max_fee, priority, row.kind, row.request_ids
        )
        self.journal.add_tx(replacement)
        log.warning(
            "replacing stuck transaction",
            extra={
                "tx": row.hash.hex(),
                "replacement": replacement.hash.hex(),
                "nonce": row.nonce,
                "max_fee": max_fee,
            },
        )
        self._on_event("replaced")
        self._broadcast(replacement)

    def on_reorg(self, fork_block: int) -> list[TxOutcome]:
        """Re-checks transactions mined after `fork_block`; those gone from chain and node are dropped."""
        outcomes = []
        for row in self.journal.txs(TxState.PENDING):  # may have been mined on the abandoned branch
            if self._receipt(row.hash) is None and not self._known(row.hash):
                outcomes.append(self._dropped(row))
        for row in self.journal.txs_mined_after(fork_block):
            receipt = self._receipt(row.hash)
            if receipt is not None:
                self.journal.set_tx(
                    row.hash, TxState(row.state), int(receipt["blockNumber"]), int(receipt["gasUsed"])
                )
            elif self._known(row.hash):
                self.journal.set_tx(row.hash, TxState.PENDING)
            else:
                outcomes.append(self._dropped(row))
        self._resync()
        return outcomes

    def _dropped(self, row: TxRow) -> TxOutcome:
        self.journal.set_tx(row.hash, TxState.DROPPED)
        return TxOutcome(row.hash, row.kind, row.request_ids, mined=False, success=False)

    def _receipt(self, tx_hash: bytes) -> Any:
        try:
            return self.rpc.call(lambda w3: w3.eth.get_transaction_receipt(HexBytes(tx_hash)), "getReceipt")
        except TransactionNotFound:
            return None

    def _known(self, tx_hash: bytes) -> bool:
        try:
            found = self.rpc.call(lambda w3: w3.eth.get_transaction(HexBytes(tx_hash)), "getTransaction")
        except TransactionNotFound:
            return False
        return found is not None
