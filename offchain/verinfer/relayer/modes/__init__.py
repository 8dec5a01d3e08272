"""What each verification mode does on the chain, beside the shared pipeline (follow, execute, journal).

The pipeline (`verinfer.relayer.service`) learns a request's committee and runs the model; a mode's
strategy takes over from there: it decides what to send for the requests this operator is a member
of, follows the mode's own events, maps its mined transactions onto journal states and re-derives a
request's state from the chain after a restart or a failed transaction. A new mode is a new module
here implementing `ModeStrategy`, not a branch in the pipeline.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from web3.contract import Contract

from verinfer.chain.contracts import Contracts, OnchainRequest
from verinfer.chain.reverts import RevertDecoder
from verinfer.chain.txmanager import TxManager, TxOutcome
from verinfer.relayer.config import RelayerConfig
from verinfer.relayer.journal import Journal, RequestRow
from verinfer.relayer.metrics import Metrics


@dataclass(frozen=True)
class StrategyContext:
    """What a strategy may use of the pipeline: its handles and the few steps it hands back."""

    address: str
    config: RelayerConfig
    contracts: Contracts
    journal: Journal
    txm: TxManager
    metrics: Metrics
    decoder: RevertDecoder
    log: logging.Logger
    # Marks a request missed (terminal) with a reason.
    miss: Callable[[RequestRow, str], None]
    # Re-derives a request's state from the chain; optional arguments are reads the caller just made.
    reconcile: Callable[[RequestRow], None]
    # Records how long the step that just ended took (journal transitions).
    observe: Callable[[RequestRow, str], None]


class ModeStrategy(Protocol):
    """One verification mode's part of the relayer."""

    @property
    def contract(self) -> Contract:
        """The mode contract: operators send to it, the pipeline follows its CommitteeDrawn."""
        ...

    def event_names(self) -> tuple[str, ...]:
        """Events of the mode contract this mode follows beyond CommitteeDrawn."""
        ...

    def round_deadlines(self, request_id: int, deadline: int) -> tuple[int, int]:
        """(last block to start acting, last block of the round) for a request the hub just took;
        `deadline` is the one RequestCreated carries."""
        ...

    def watches(self, row: RequestRow) -> bool:
        """Whether to execute a request this operator was not drawn for, to check the drawn one's output
        (asked once, when the committee is learnt; the row then has member -1)."""
        ...

    def on_event(self, name: str, args: Any) -> None:
        """One of `event_names()`, in chain order."""
        ...

    def execution_deadline(self, row: RequestRow) -> int:
        """The last block in which an output computed now is still of use."""
        ...

    def act(self, rows: list[RequestRow], head: int) -> None:
        """Sends what is due for `rows` (active requests with no transaction in flight, committee known)."""
        ...

    def on_outcome(self, outcome: TxOutcome) -> bool:
        """Journals a mined transaction of this mode; False if the pipeline should reconcile instead."""
        ...

    def reconcile(self, row: RequestRow, onchain: OnchainRequest) -> None:
        """Re-derives the state of a pending request this operator is a member of from the chain."""
        ...

    def forget(self, request_id: int) -> None:
        """The request settled: drop what was kept about it."""
        ...
