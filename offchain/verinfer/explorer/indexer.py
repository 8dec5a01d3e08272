"""Follows the hub, mode, registry and staking events into the explorer's store, resuming from its
checkpoint and rewinding on reorgs (the relayer's LogFollower, with the store as its BlockStore)."""

import logging
import threading
from dataclasses import dataclass
from typing import Any

from web3.exceptions import ContractLogicError, Web3RPCError

from verinfer.chain.contracts import Contracts
from verinfer.chain.deployment import Deployment
from verinfer.chain.follower import LogFollower
from verinfer.chain.rpc import Rpc, RpcError, RpcUnavailable
from verinfer.explorer.events import Decoder
from verinfer.explorer.projection import Projector
from verinfer.explorer.store import ExplorerStore

log = logging.getLogger("verinfer.explorer")


class ContractsReader:
    """The chain reads the projection needs, at a past block where the node keeps its state, else at the
    latest block (a node that prunes old state answers an error for older blocks)."""

    def __init__(self, contracts: Contracts) -> None:
        self.contracts = contracts

    def _at(self, contract: str, function: str, args: tuple[Any, ...], block: int | None) -> Any:
        bound = getattr(self.contracts, contract).functions[function](*args)
        if block is not None:
            try:
                return self.contracts.rpc.call(lambda _: bound.call(block_identifier=block), function)
            except (ContractLogicError, Web3RPCError, ValueError):
                log.debug("state at block unavailable, reading the latest", extra={"block": block})
        return self.contracts.rpc.call(lambda _: bound.call(), function)

    def operator_state(self, operator: str, block: int) -> tuple[int, int]:
        info = self.contracts.fields(
            "staking", "operatorInfo", self._at("staking", "operatorInfo", (operator,), block)
        )
        return int(info["stake"]), int(info["unbonding"])

    def agreeing(self, request_id: int) -> list[str]:
        try:
            return [str(a) for a in self.contracts.result(request_id).agreeing]
        except (ContractLogicError, Web3RPCError):  # settled on a branch the latest block is not on
            return []

    def treasury(self, block: int) -> str:
        return str(self._at("hub", "treasury", (), block))

    def model_owner(self, model_id: bytes, block: int) -> str:
        return str(self._at("registry", "ownerOf", (model_id,), block))


@dataclass(frozen=True)
class Progress:
    """What one `step` did."""

    events: int
    checkpoint: int
    head: int
    reorg_fork: int | None = None

    @property
    def caught_up(self) -> bool:
        return self.reorg_fork is None and self.checkpoint >= self.head


class Indexer:
    """Indexes one deployment into one store; `step` handles one batch, `run` loops until `stop`."""

    def __init__(
        self,
        rpc: Rpc,
        deployment: Deployment,
        store: ExplorerStore,
        *,
        start_block: int | None = None,
        confirmations: int = 0,
        chunk: int = 2_000,
        window: int = 256,
    ) -> None:
        self.rpc = rpc
        self.store = store
        self.contracts = Contracts(rpc, deployment)
        chain_id = rpc.chain_id()
        if chain_id != deployment.chain_id:
            raise ValueError(
                f"{rpc.endpoint} is chain {chain_id}; the deployment is on {deployment.chain_id}"
            )
        store.bind({"chain_id": str(chain_id), "hub": self.contracts.hub.address})
        self.decoder = Decoder(self.contracts)
        self.projector = Projector(store, ContractsReader(self.contracts), self.contracts.optimistic.address)
        self.follower = LogFollower(
            rpc,
            store,
            addresses=self.decoder.addresses,
            start_block=deployment.deploy_block if start_block is None else start_block,
            confirmations=confirmations,
            chunk=chunk,
            window=window,
        )
        self._stop = threading.Event()

    def step(self) -> Progress:
        """Polls once: indexes the next batch of confirmed logs (or handles a reorg) and moves the
        checkpoint past it, all in one transaction."""
        batch = self.follower.poll()
        events = self.decoder.decode_all(batch.logs)
        with self.store.transaction():
            if batch.reorg is not None:
                # The store deleted the rows above the fork when the follower rewound it; a reorg that
                # widened an earlier one is covered here too.
                self.store.delete_above(batch.reorg.fork_block)
                log.warning(
                    "reorg: rows above the fork block deleted",
                    extra={
                        "fork_block": batch.reorg.fork_block,
                        "old_checkpoint": batch.reorg.old_checkpoint,
                    },
                )
            for event in events:
                self.projector.apply(event)
            self.follower.commit(batch)
        return Progress(
            len(events),
            self.follower.position(),
            batch.head - self.follower.confirmations,
            None if batch.reorg is None else batch.reorg.fork_block,
        )

    def sync(self, max_steps: int = 1_000_000) -> Progress:
        """Steps until caught up with the confirmed head (or `max_steps`); `events` counts all steps'."""
        progress = self.step()
        events = progress.events
        for _ in range(max_steps - 1):
            if progress.caught_up:
                break
            progress = self.step()
            events += progress.events
        return Progress(events, progress.checkpoint, progress.head, progress.reorg_fork)

    def run(self, interval: float = 1.0) -> None:
        """Indexes until `stop()`; an unreachable node is retried after `interval`, never fatal."""
        while not self._stop.is_set():
            try:
                progress = self.sync(max_steps=64)
                if progress.events:
                    log.info(
                        "indexed",
                        extra={
                            "events": progress.events,
                            "checkpoint": progress.checkpoint,
                            "head": progress.head,
                        },
                    )
                if not progress.caught_up:
                    continue
            except (RpcUnavailable, RpcError) as exc:
                log.warning("rpc unavailable, retrying", extra={"error": str(exc)})
            self._stop.wait(interval)

    def stop(self) -> None:
        self._stop.set()
