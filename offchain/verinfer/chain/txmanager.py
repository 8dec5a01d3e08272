"""The one place that signs and sends transactions: nonces, EIP-1559 fees, replacement of stuck ones."""

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, Protocol

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError
from web3.types import TxParams

from verinfer.chain.rpc import Rpc, RpcUnavailable

GWEI = 10**9
log = logging.getLogger("verinfer.tx")


class TxState(StrEnum):
    PENDING = "pending"
    MINED = "mined"
    FAILED = "failed"  # mined but reverted
    REPLACED = "replaced"  # a fee-bumped copy with the same nonce was mined instead
    DROPPED = "dropped"  # gone from the chain (reorg) and the node, or refused by the node
    SUPERSEDED = "superseded"  # its nonce went to a transaction this journal did not sign: never minable


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
    # A node can show an account's new nonce before the receipt of the transaction that used it
    # (load-balanced providers do it routinely). A journaled transaction counts as superseded only
    # once its nonce has been used, and neither it nor a same-nonce copy had a receipt or was known
    # by hash, for this long and over this many consecutive polls.
    superseded_after: float = 12.0
    superseded_polls: int = 3


class TxRejected(RuntimeError):
    """The node would not accept the transaction (it reverts in simulation, or funds are short)."""

    def __init__(self, message: str, revert_data: bytes = b"") -> None:
        super().__init__(message)
        self.revert_data = revert_data  # the ABI-encoded custom error, when the node returned one


@dataclass(frozen=True)
class TxOutcome:
    """What became of a journaled transaction: mined (ok or reverted), dropped or superseded."""

    hash: bytes
    kind: str
    request_ids: tuple[int, ...]
    mined: bool
    success: bool
    block: int | None = None
    gas_used: int | None = None
    superseded: bool = False  # not mined because another transaction from this key took its nonce

    @property
    def state(self) -> TxState:
        if self.mined:
            return TxState.MINED if self.success else TxState.FAILED
        return TxState.SUPERSEDED if self.superseded else TxState.DROPPED


# Broadcast answers, lower-cased with "_" as " " (geth, anvil, erigon, besu, nethermind wordings).
KNOWN = ("already known", "known transaction", "already imported", "alreadyknown")
NONCE_TAKEN = (
    "nonce too low",
    "oldnonce",
    "replacement transaction underpriced",
    "replacement underpriced",
    "replacementnotallowed",
    "could not replace existing tx",
)
MAX_NONCE_ATTEMPTS = 8  # fresh nonces tried for one call when each turns out taken by another sender
NONCE_BACKOFF = 0.05  # seconds before the third attempt, doubling after (with jitter): outlasts a burst


class TxManager:
    """Sends transactions for one account; every signed transaction is journaled before broadcast.

    The key may also be used elsewhere (the operator CLI, another tool): the next nonce is re-read
    from the chain before each signature, and a nonce the node says is taken is replaced by a fresh
    one for the same call, once the transaction is known to have never been accepted.
    """

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
        # nonce -> (monotonic time, consecutive polls) since it was first seen used with no trace of ours
        self._unexplained: dict[int, tuple[float, int]] = {}

    # ------------------------------------------------------------ lifecycle

    def start(self) -> list[TxOutcome]:
        """Picks up journaled transactions after a restart and syncs the nonce."""
        outcomes = self.poll(force_check=True)
        self._resync()
        return outcomes

    def _resync(self) -> None:
        """Next nonce from the chain and the journal; may move back (after a drop or a reorg)."""
        pending = [tx.nonce + 1 for tx in self.journal.txs(TxState.PENDING)]
        self._nonce = max([self._chain_nonce("pending"), *pending])

    def _catch_up(self, chain_next: int) -> None:
        """Moves the next nonce forward to `chain_next` when the chain is ahead of it.

        Every nonce this manager journaled is below `self._nonce`, so a chain ahead of it means
        transactions signed elsewhere with the same key. Never moves back: a lagging node's count
        would make us sign at a nonce that is already used.
        """
        if chain_next > self._nonce:
            log.info(
                "nonce used elsewhere, resynced",
                extra={"nonce": self._nonce, "chain": chain_next, "address": self.account.address},
            )
            self._on_event("resync")
            self._nonce = chain_next

    def _chain_nonce(self, block: Literal["latest", "pending"]) -> int:
        return self.rpc.call(
            lambda w3: int(w3.eth.get_transaction_count(self.account.address, block)),
            "getTransactionCount",
        )

    # ------------------------------------------------------------ sending

    def estimate(self, to: str, data: bytes) -> int:
        """Gas estimate against the pending block, where the transaction lands (web3 would ask about the
        latest one: a call that needs the head's hash, like a committee draw, fails there); TxRejected
        if the call would revert."""
        tx: TxParams = {"from": self.account.address, "to": to, "data": data}
        try:
            return self.rpc.call(lambda w3: int(w3.eth.estimate_gas(tx, "pending")), "eth_estimateGas")
        except ContractLogicError as exc:
            revert = exc.data if isinstance(exc.data, str) and exc.data.startswith("0x") else "0x"
            raise TxRejected(f"would revert: {exc.message or exc}", bytes.fromhex(revert[2:])) from None
        except Web3RPCError as exc:
            raise TxRejected(str(exc.message or exc)) from None

    def send(
        self, to: str, data: bytes, *, kind: str, request_ids: Sequence[int], extra_gas: int = 0
    ) -> bytes:
        """Estimates, signs, journals and broadcasts; returns the transaction hash.

        If the node answers that the nonce is taken (another sender used the key), the transaction is
        marked superseded and the same call is signed again at the chain's next nonce.
        """
        latest = self._latest()
        gas = int(self.estimate(to, data) * self.config.gas_multiplier) + extra_gas
        gas = min(gas, int(latest["gasLimit"]))
        max_fee, priority = self._fees(latest)
        for attempt in range(MAX_NONCE_ATTEMPTS):
            if attempt >= 2:  # another sender is busy with this key: let its burst pass
                time.sleep(min(1.0, NONCE_BACKOFF * 2 ** (attempt - 2)) * random.uniform(0.5, 1.0))
            self._catch_up(self._chain_nonce("pending"))
            row = self._sign(self._nonce, to, data, gas, max_fee, priority, kind, tuple(request_ids))
            self.journal.add_tx(row)
            self._nonce += 1
            self._on_event(f"sent:{kind}")
            if self._broadcast(row, fresh=True):
                return row.hash
        raise TxRejected(f"{MAX_NONCE_ATTEMPTS} nonces in a row were taken by another sender with this key")

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

    def _broadcast(self, row: TxRow, fresh: bool = False) -> bool:
        """Sends the raw transaction; False only if a `fresh` one was refused for a taken nonce and is
        certain never to be mined (it is then journaled as superseded)."""
        attempts = 0

        def push(w3: Any) -> Any:
            nonlocal attempts
            attempts += 1
            return w3.eth.send_raw_transaction(row.raw)

        try:
            self.rpc.call(push, "eth_sendRawTransaction")
        except RpcUnavailable:
            log.warning("broadcast deferred", extra={"tx": row.hash.hex(), "nonce": row.nonce})
        except Web3RPCError as exc:
            message = str(exc.message or exc).lower()
            words = message.replace("_", " ")
            if any(k in words or k in message for k in KNOWN):
                return True
            if any(k in words or k in message for k in NONCE_TAKEN):
                # Refused at the first attempt, the node never accepted this signature, so it can never
                # be mined: its nonce went to (or is pending for) a transaction signed elsewhere. After
                # a retried attempt an earlier one may have been accepted: poll() sorts that out.
                if fresh and attempts == 1 and not self._traced([row]):
                    log.warning(
                        "nonce taken by another sender, signing again",
                        extra={"tx": row.hash.hex(), "nonce": row.nonce, "error": message},
                    )
                    self.journal.set_tx(row.hash, TxState.SUPERSEDED)
                    self._on_event("nonce_taken")
                    self._nonce = max(self._nonce, row.nonce + 1)
                    return False
                return True
            log.error("broadcast refused", extra={"tx": row.hash.hex(), "error": message})
            self.journal.set_tx(row.hash, TxState.DROPPED)
            self._resync()
            raise TxRejected(message) from None
        return True

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
        """Receipts for pending transactions; rebroadcasts lost ones and replaces stuck ones.

        A used nonce alone proves nothing (the node may show it before the receipt): a transaction
        is reported superseded only after `_unexplained_for_long` holds for its nonce.
        """
        groups: dict[int, list[TxRow]] = {}
        for row in self.journal.txs(TxState.PENDING):
            groups.setdefault(row.nonce, []).append(row)
        self._unexplained = {n: v for n, v in self._unexplained.items() if n in groups}
        if not groups:
            return []  # send() reads the chain's nonce before it signs: nothing to catch up here
        chain_nonce = self._chain_nonce("latest")
        self._catch_up(chain_nonce)
        outcomes = []
        for nonce, rows in sorted(groups.items()):
            outcome = self._settle_group(rows)
            if outcome is not None:
                self._unexplained.pop(nonce, None)
                outcomes.append(outcome)
            elif nonce >= chain_nonce:
                self._unexplained.pop(nonce, None)
                self._nudge(rows[-1], force_check)
            elif any(self._known(row.hash) for row in rows):
                self._unexplained.pop(nonce, None)  # mined or pooled: its receipt has yet to show up
            elif self._unexplained_for_long(nonce):
                outcomes.append(self._supersede(rows))
        return outcomes

    def _traced(self, rows: Sequence[TxRow]) -> bool:
        """Some copy has a receipt or is known to the node by hash."""
        return any(self._receipt(row.hash) is not None or self._known(row.hash) for row in rows)

    def _unexplained_for_long(self, nonce: int) -> bool:
        now = time.monotonic()
        since, polls = self._unexplained.get(nonce, (now, 0))
        self._unexplained[nonce] = (since, polls + 1)
        return polls + 1 >= self.config.superseded_polls and now - since >= self.config.superseded_after

    def _supersede(self, rows: list[TxRow]) -> TxOutcome:
        last = rows[-1]
        self._unexplained.pop(last.nonce, None)
        log.warning(
            "nonce used by another transaction from this key",
            extra={"tx": last.hash.hex(), "nonce": last.nonce, "copies": len(rows)},
        )
        for row in rows:
            self.journal.set_tx(row.hash, TxState.SUPERSEDED)
        return TxOutcome(last.hash, last.kind, last.request_ids, mined=False, success=False, superseded=True)

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
        """Re-checks transactions mined after `fork_block`; those gone from chain and node are dropped.

        One whose nonce the chain still shows as used goes back to pending instead: it may be mined
        on the new branch with its receipt not served yet, and poll() applies the grace period.
        """
        chain_nonce = self._chain_nonce("latest")
        outcomes = []
        for row in self.journal.txs(TxState.PENDING):  # may have been mined on the abandoned branch
            if row.nonce >= chain_nonce and self._receipt(row.hash) is None and not self._known(row.hash):
                outcomes.append(self._dropped(row))
        for row in self.journal.txs_mined_after(fork_block):
            receipt = self._receipt(row.hash)
            if receipt is not None:
                self.journal.set_tx(
                    row.hash, TxState(row.state), int(receipt["blockNumber"]), int(receipt["gasUsed"])
                )
            elif row.nonce < chain_nonce or self._known(row.hash):
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
