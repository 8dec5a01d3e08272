"""`verinfer devnet up|down|status`: the whole system on one machine, and gone again without a trace."""

from pathlib import Path

import click

from verinfer.cli.common import JSON, RPC_URL_HELP, check_rpc_url, emit
from verinfer.client.client import deployment_path
from verinfer.devnet import network
from verinfer.devnet.state import HOME_ENV, default_home
from verinfer.models.samples import SAMPLES

HOME = click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=HOME_ENV,
    help="Where the devnet keeps its state, logs, model store and relayers [default: .devnet].",
)


@click.group()
def devnet() -> None:
    """A local chain with verinfer deployed, sample models published and three relayers running."""


@devnet.command()
@HOME
@click.option(
    "--rpc-url",
    callback=check_rpc_url,
    help=f"{RPC_URL_HELP} of a running dev chain (31337/1337) to use instead of starting anvil.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8545,
    show_default=True,
    help="anvil's port; 0: any free.",
)
@click.option(
    "--block-time",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds per block (default: a block per transaction).",
)
@click.option("--relayers", type=click.IntRange(1, 7), default=3, show_default=True, help="Operators to run.")
@click.option(
    "--deployment",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the deployment record [default: deployments/devnet.json].",
)
@JSON
def up(
    home: Path | None,
    rpc_url: str | None,
    port: int,
    block_time: float | None,
    relayers: int,
    deployment: Path | None,
    as_json: bool,
) -> None:
    """Start anvil, deploy, serve the model store, publish samples, stake operators, start relayers."""
    options = network.UpOptions(
        home=home or default_home(),
        deployment=deployment or deployment_path("devnet"),
        rpc_url=rpc_url,
        port=port,
        block_time=block_time,
        relayers=relayers,
    )
    total = 4 + len(SAMPLES) + 2 * relayers - (1 if rpc_url else 0)
    step = [0]

    def progress(what: str) -> None:
        step[0] += 1
        if not as_json:
            click.echo(f"[{step[0]:>2}/{total}] {what}", err=True)

    state = network.up(options, progress)
    report = network.status(options.home)
    emit(
        as_json,
        report,
        [
            f"devnet up: chain {state.chain_id} at {state.rpc_url}",
            f"  deployment  {state.deployment}",
            f"  model store {state.store_url}  ({state.store_dir})",
            f"  models      {', '.join(f'{n}@{v}' for n, v in state.models.items())}",
            f"  relayers    {', '.join(state.relayers)}",
            f"  try: verinfer models list; verinfer devnet down when done (state in {options.home})",
        ],
    )


@devnet.command()
@HOME
@JSON
def down(home: Path | None, as_json: bool) -> None:
    """Stop every process the devnet started and remove its state."""
    stopped = network.down(home or default_home())
    lines = [f"stopped {name}{' (killed)' if killed else ''}" for name, killed in stopped]
    emit(as_json, {"stopped": [name for name, _ in stopped]}, lines or ["no devnet was running"])


@devnet.command()
@HOME
@JSON
def status(home: Path | None, as_json: bool) -> None:
    """Processes, relayer health and the chain's head; exits 1 unless everything is up."""
    report = network.status(home or default_home())
    if not report["processes"]:
        emit(as_json, report, [f"no devnet at {report['home']}"])
        raise SystemExit(1)
    lines = [
        f"devnet {'up' if report['running'] else 'DEGRADED'}: "
        f"chain {report['chain_id']} at {report['rpc_url']}"
    ]
    if "block" in report:
        lines.append(f"  block {report['block']}   requests {report['requests']}")
    else:
        lines.append(f"  chain unreachable: {report.get('chain_error')}")
    for p in report["processes"]:
        health = "" if "healthy" not in p else ("  healthy" if p["healthy"] else "  UNHEALTHY")
        lines.append(f"  {p['name']:10} pid {p['pid']:>7}  {'alive' if p['alive'] else 'DEAD'}{health}")
    emit(as_json, report, lines)
    if not report["running"]:
        raise SystemExit(1)
