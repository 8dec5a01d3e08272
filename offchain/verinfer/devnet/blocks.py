"""Keeps a dev chain that mines a block per transaction moving, so committees get drawn and windows close.

A request's committee is drawn from the hash of the block after the request's (its seed block), and
the windows after it are counted in blocks. A node that mines a block only when a transaction arrives
(anvil's automine) leaves both waiting for someone else's transaction. The keeper mines the block
after any block holding transactions as soon as nothing else followed it, so a seed block appears at
once (and the empty block it mines does not trigger another), and one block per idle interval, so a
window with a silent member closes on a quiet devnet without anybody mining by hand.

It leaves alone a chain that is not on automine (interval mining, or automine switched off by a test
that mines by hand).

    python -m verinfer.devnet.blocks --rpc-url http://127.0.0.1:8545 [--idle-interval 1]
"""

import logging
import signal
import threading
import time
from types import FrameType

import click

from verinfer.chain.rpc import Rpc, RpcError, RpcUnavailable

log = logging.getLogger("verinfer.blocks")

POLL = 0.01  # seconds between looks at the head
QUIET = 0.01  # a block with transactions gets its successor once no block followed it for this long
IDLE_INTERVAL = 1.0  # seconds between blocks on an otherwise idle chain


class BlockKeeper:
    """Polls the node every `poll` seconds and mines with `evm_mine`; `run` until `stop`, or as a
    thread with `start`/`stop` (or `with BlockKeeper(url):`)."""

    def __init__(
        self,
        rpc_url: str,
        *,
        poll: float = POLL,
        quiet: float = QUIET,
        idle_interval: float | None = IDLE_INTERVAL,
    ) -> None:
        self.rpc = Rpc(rpc_url, timeout=5.0, attempts=1)
        self.poll = poll
        self.quiet = quiet
        self.idle_interval = idle_interval
        self.mined = 0  # blocks this keeper mined
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "BlockKeeper":
        self._thread = threading.Thread(target=self.run, name="block-keeper", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> "BlockKeeper":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def run(self) -> None:
        """Keeps the chain moving until `stop()`; a node that is away is waited for."""
        head, busy, changed = -1, False, time.monotonic()
        while not self._stop.wait(self.poll):
            try:
                number = self.rpc.block_number()
                now = time.monotonic()
                if number != head:
                    head, changed = number, now
                    busy = self._has_transactions(number)
                    continue
                quiet_for = now - changed
                due = (busy and quiet_for >= self.quiet) or (
                    self.idle_interval is not None and quiet_for >= self.idle_interval
                )
                if due and self._automine():
                    self.rpc.raw("evm_mine")
                    self.mined += 1
                    busy, changed = False, time.monotonic()
            except (RpcUnavailable, RuntimeError) as exc:
                log.debug("block keeper: node unavailable", extra={"error": str(exc)})
                head = -1

    def _has_transactions(self, number: int) -> bool:
        block = self.rpc.raw("eth_getBlockByNumber", hex(number), False)
        return bool(block and block.get("transactions"))

    def _automine(self) -> bool:
        """Whether the node mines a block per transaction (anvil, then hardhat spelling); a node that
        answers neither is assumed to."""
        for method in ("anvil_getAutomine", "hardhat_getAutomine"):
            try:
                return bool(self.rpc.raw(method))
            except RpcError:
                continue
        return True


def mine(rpc: Rpc, blocks: int) -> None:
    """Mines `blocks` blocks at once on a dev node (anvil_mine / hardhat_mine, else evm_mine each)."""
    if blocks <= 0:
        return
    for method in ("anvil_mine", "hardhat_mine"):
        try:
            rpc.raw(method, hex(blocks))
            return
        except RpcError:
            continue
    for _ in range(blocks):
        rpc.raw("evm_mine")


def mine_to_next_epoch(rpc: Rpc, epoch_blocks: int) -> int:
    """Mines until pools written by now reach draws: a request sent next (in the block after the head)
    seeds from the block after it, which must be in a later epoch than the head. Returns blocks mined."""
    head = rpc.block_number()
    needed = max(0, (head // epoch_blocks + 1) * epoch_blocks - (head + 2))
    mine(rpc, needed)
    return needed


@click.command()
@click.option("--rpc-url", required=True, help="The dev node to keep moving.")
@click.option(
    "--idle-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=IDLE_INTERVAL,
    show_default=True,
    help="Seconds between blocks on an idle chain.",
)
def main(rpc_url: str, idle_interval: float) -> None:
    """Mine the block after every block with transactions, and one per idle interval (devnet only)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    keeper = BlockKeeper(rpc_url, idle_interval=idle_interval)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        keeper.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("block keeper running on %s (idle interval %ss)", keeper.rpc.endpoint, idle_interval)
    keeper.run()
    log.info("block keeper stopped after mining %d blocks", keeper.mined)


if __name__ == "__main__":
    main()
