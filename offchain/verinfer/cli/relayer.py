"""`verinfer relayer run|status`: the operator's service and a summary of its journal."""

import json
import signal
import time
from pathlib import Path
from typing import Any

import click

from verinfer.chain.deployment import Deployment
from verinfer.chain.keys import load_account, load_dev_key
from verinfer.chain.rpc import Rpc
from verinfer.chain.txmanager import TxState
from verinfer.models.execution import ExecutionClass
from verinfer.relayer import logs
from verinfer.relayer.config import RelayerConfig
from verinfer.relayer.journal import Journal
from verinfer.relayer.service import Relayer

CONFIG = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("relayer.toml"),
    show_default=True,
    help="relayer TOML file; VERINFER_<SECTION>_<KEY> environment variables override it",
)


class NoJournal(click.ClickException):
    """`status` on a config whose journal does not exist: a configuration problem, exit 2."""

    exit_code = 2


@click.group()
def relayer() -> None:
    """Run an operator relayer and inspect its journal."""


@relayer.command()
@CONFIG
@click.option(
    "--dev-key-from-env",
    is_flag=True,
    help="Take the operator key from $VERINFER_OPERATOR_KEY instead of a keystore (dev chains only).",
)
def run(config_path: Path, dev_key_from_env: bool) -> None:
    """Follow the chain, execute requests, commit, reveal and finalize until SIGTERM."""
    config = RelayerConfig.load(config_path, require_keystore=not dev_key_from_env)
    logs.configure(config.log.level, config.log.format)
    # A machine outside every execution class would be outvoted by honest peers: refuse it first.
    execution = ExecutionClass.current()
    deployment = Deployment.load(config.chain.deployment)
    rpc = Rpc(config.chain.rpc_url, timeout=config.chain.rpc_timeout)
    chain_id = rpc.chain_id()
    if dev_key_from_env:
        account = load_dev_key(chain_id)
    else:
        op = config.operator
        account = load_account(op.keystore, op.ape_account, op.password_env, op.password_file)
    service = Relayer(config, account, deployment, rpc, execution)
    signal.signal(signal.SIGTERM, lambda *_: service.stop())
    signal.signal(signal.SIGINT, lambda *_: service.stop())
    service.run()


@relayer.command()
@CONFIG
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(config_path: Path, as_json: bool) -> None:
    """Summarise the journal: checkpoint, requests by state, transactions by state."""
    config = RelayerConfig.load(config_path, require_keystore=False)  # status never signs
    if not config.journal.path.exists():
        raise NoJournal(f"no journal at {config.journal.path} (has the relayer run with this config?)")
    journal = Journal(config.journal.path)
    try:
        checkpoint = journal.checkpoint()
        pending = journal.txs(TxState.PENDING)
        summary: dict[str, Any] = {
            "journal": str(config.journal.path),
            "operator": journal.get_meta("operator"),
            "chain_id": journal.get_meta("chain_id"),
            "hub": journal.get_meta("hub"),
            "checkpoint": None if checkpoint is None else checkpoint[0],
            "metrics": journal.get_meta("metrics"),
            "requests": journal.state_counts(),
            "active": [row.request_id for row in journal.active()],
            "txs": journal.tx_counts(),
            "pending_txs": [
                {
                    "hash": "0x" + tx.hash.hex(),
                    "nonce": tx.nonce,
                    "kind": tx.kind,
                    "age": round(time.time() - tx.sent_at, 1),
                }
                for tx in pending
            ],
        }
    finally:
        journal.close()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"operator    {summary['operator']}  chain {summary['chain_id']}  hub {summary['hub']}")
    click.echo(f"checkpoint  block {summary['checkpoint']}   metrics {summary['metrics'] or '-'}")
    counts = ", ".join(f"{state} {n}" for state, n in sorted(summary["requests"].items())) or "none"
    click.echo(f"requests    {counts}")
    click.echo(f"active      {len(summary['active'])} {summary['active'][:20]}")
    tx_counts = ", ".join(f"{state} {n}" for state, n in sorted(summary["txs"].items())) or "none"
    click.echo(f"txs         {tx_counts}")
    for tx in summary["pending_txs"]:
        click.echo(f"  pending   {tx['kind']:8} nonce {tx['nonce']}  {tx['hash']}  {tx['age']}s")
