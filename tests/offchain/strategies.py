"""What the mode-strategy tests share: a StrategyContext over a real journal and a fake chain that
records what it is asked to send."""

import logging
from collections.abc import Callable
from typing import Any, cast

from verinfer.relayer.config import RelayerConfig
from verinfer.relayer.journal import Journal, RequestRow
from verinfer.relayer.metrics import Metrics
from verinfer.relayer.modes import StrategyContext


def fake_context(
    address: str,
    chain: Any,
    journal: Journal,
    miss: Callable[[RequestRow, str], None] = lambda row, reason: None,
) -> StrategyContext:
    """A context whose contracts and transaction manager are `chain`; reconcile and observe do nothing."""
    return StrategyContext(
        address=address,
        config=RelayerConfig(),
        contracts=cast(Any, chain),
        journal=journal,
        txm=cast(Any, chain),
        metrics=Metrics(),
        decoder=cast(Any, None),
        log=logging.getLogger("test"),
        miss=miss,
        reconcile=lambda row: None,
        observe=lambda row, stage: None,
    )
