"""`verinfer explorer index`: follows a deployment's events into the explorer's SQLite database."""

import json
import signal
from pathlib import Path
from typing import Any

import click

from verinfer.chain.blockstore import IdentityMismatch
from verinfer.cli.common import connection
from verinfer.explorer.indexer import Indexer
from verinfer.explorer.store import ExplorerStore
from verinfer.relayer import logs


class WrongDatabase(click.ClickException):
    """The database indexes another chain or hub: a configuration problem, exit 2."""

    exit_code = 2


@click.group()
def explorer() -> None:
    """Index requests, results, operators and money for the explorer."""


@explorer.command()
@connection()
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("explorer.db"),
    show_default=True,
    help="SQLite database (created; a restart resumes from its checkpoint).",
)
@click.option(
    "--confirmations",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Blocks a log must be under the head before it is indexed.",
)
@click.option(
    "--chunk",
    type=click.IntRange(min=1),
    default=2_000,
    show_default=True,
    help="Blocks per eth_getLogs call (and per database transaction).",
)
@click.option("--start-block", type=click.IntRange(min=0), help="First block [default: the deploy block].")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.0),
    default=1.0,
    show_default=True,
    help="Seconds between polls once caught up.",
)
@click.option("--once", is_flag=True, help="Catch up with the head, print where the index stands and exit.")
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning"]), default="info", show_default=True
)
def index(
    conn: Any,
    db: Path,
    confirmations: int,
    chunk: int,
    start_block: int | None,
    interval: float,
    once: bool,
    log_level: str,
) -> None:
    """Follow the hub, mode, registry and staking events into DB until SIGTERM (or, with --once, until
    caught up). Reorgs are rewound; a killed indexer resumes where its last transaction ended."""
    logs.configure(log_level, "text")
    client = conn.client()
    store = ExplorerStore(db)
    try:
        indexer = Indexer(
            client.rpc,
            client.deployment,
            store,
            start_block=start_block,
            confirmations=confirmations,
            chunk=chunk,
        )
    except IdentityMismatch as exc:
        store.close()
        raise WrongDatabase(str(exc)) from None
    try:
        if once:
            progress = indexer.sync()
            click.echo(json.dumps({"checkpoint": progress.checkpoint, "head": progress.head}))
            return
        signal.signal(signal.SIGTERM, lambda *_: indexer.stop())
        signal.signal(signal.SIGINT, lambda *_: indexer.stop())
        indexer.run(interval)
    finally:
        store.close()
