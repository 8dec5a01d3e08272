"""Follows contract logs from a persisted checkpoint, with a confirmation depth and reorg detection."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from eth_utils.address import to_checksum_address
from web3.types import LogReceipt

from verinfer.chain.rpc import Rpc, RpcError


class BlockStore(Protocol):
    """Where the follower keeps its checkpoint and the hashes of blocks it has read."""

    def checkpoint(self) -> tuple[int, bytes | None] | None: ...
    def advance(
        self, number: int, block_hash: bytes, seen: Sequence[tuple[int, bytes]], window: int
    ) -> None: ...
    def known_blocks(self) -> list[tuple[int, bytes]]: ...
    def rewind(self, number: int, block_hash: bytes | None, old_checkpoint: int) -> None: ...
    def pending_reorg(self) -> tuple[int, int] | None: ...
    def reorg_handled(self) -> None: ...


@dataclass(frozen=True)
class Reorg:
    """The chain no longer holds blocks after `fork_block` that were read before."""

    fork_block: int
    old_checkpoint: int


@dataclass
class Batch:
    """Logs from one range of confirmed blocks; `commit` it once they are handled."""

    logs: list[LogReceipt]
    to_block: int
    to_hash: bytes
    head: int
    reorg: Reorg | None = None
    seen: list[tuple[int, bytes]] = field(default_factory=list)


class LogFollower:
    """eth_getLogs over confirmed blocks, resuming from the store's checkpoint."""

    def __init__(
        self,
        rpc: Rpc,
        store: BlockStore,
        *,
        addresses: Sequence[str],
        start_block: int,
        confirmations: int = 0,
        chunk: int = 2_000,
        window: int = 256,
    ) -> None:
        self.rpc = rpc
        self.store = store
        self.addresses = [to_checksum_address(a) for a in addresses]
        self.start_block = start_block
        self.confirmations = confirmations
        self.chunk = chunk
        self.window = window

    def position(self) -> int:
        """The last block whose logs were handled."""
        checkpoint = self.store.checkpoint()
        return self.start_block - 1 if checkpoint is None else checkpoint[0]

    def poll(self) -> Batch:
        """The next range of confirmed logs (empty when caught up), or, alone, a reorg not yet handled."""
        latest = self.rpc.raw("eth_getBlockByNumber", "latest", False)
        head, head_hash = int(latest["number"], 16), bytes.fromhex(latest["hash"][2:])
        self._check_reorg(head, head_hash)
        # A reorg is kept in the store until the batch reporting it is committed (handled): a poll that
        # fails half-way, or a crash, cannot lose it after the checkpoint has already moved back.
        pending = self.store.pending_reorg()
        if pending is not None:
            return Batch([], self.position(), b"", head, Reorg(*pending))
        start = self.position() + 1
        end = min(head - self.confirmations, start + self.chunk - 1)
        if end < start:
            return Batch([], self.position(), b"", head)
        logs: list[LogReceipt] = self.rpc.call(
            lambda w3: list(w3.eth.get_logs({"fromBlock": start, "toBlock": end, "address": self.addresses})),
            "eth_getLogs",
        )
        end_hash = self._hash(end)
        if end_hash is None:  # the chain shrank under us: handle it on the next poll
            return Batch([], self.position(), b"", head)
        seen = sorted({(int(log["blockNumber"]), bytes(log["blockHash"])) for log in logs})
        return Batch(logs, end, end_hash, head, None, seen)

    def commit(self, batch: Batch) -> None:
        """Records that `batch` was handled: the checkpoint moves past it."""
        if batch.reorg is not None:
            self.store.reorg_handled()
        if batch.to_hash:
            self.store.advance(batch.to_block, batch.to_hash, batch.seen, self.window)

    def _hash(self, number: int) -> bytes | None:
        if number < 0:
            return None
        try:
            block = self.rpc.raw("eth_getBlockByNumber", hex(number), False)
        except RpcError:  # anvil answers an error for blocks beyond its head
            return None
        return None if block is None else bytes.fromhex(block["hash"][2:])

    def _check_reorg(self, head: int, head_hash: bytes) -> None:
        """Moves the checkpoint back to the last block still on the chain if the checkpoint's is gone;
        the store records the reorg until it is handled."""
        checkpoint = self.store.checkpoint()
        if checkpoint is None or checkpoint[1] is None:
            return
        number, stored = checkpoint
        # Caught up without confirmations, the checkpoint is the head: its hash came with the head.
        if number <= head and (head_hash if number == head else self._hash(number)) == stored:
            return
        fork, fork_hash = self.start_block - 1, None
        for known, known_hash in self.store.known_blocks():
            if known <= head and self._hash(known) == known_hash:
                fork, fork_hash = known, known_hash
                break
        self.store.rewind(fork, fork_hash, number)
