"""Deploy the example dapp, LendingGate, against a verinfer deployment and fund its loan pool.

    ape run lending_gate --network http://127.0.0.1:8545 --deployment deployments/devnet.json \
        --model breast-cancer-risk --max-score 0.5 --loan 100 --fund 1000 --out lending_gate.json

The gate lends `--loan` tokens when output `--score-tensor`[`--score-index`] of the model is at
most `--max-score`. Writes the gate's address and ABI to `--out`.
"""

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
from ape import accounts, chain, project
from ape.cli import ConnectedProviderCommand
from verinfer.chain.keys import DEV_CHAIN_IDS


@click.command(cls=ConnectedProviderCommand)
@click.option("--deployment", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--model", "model_name", required=True, help="registered model name")
@click.option("--version", type=int, default=None, help="model version (default: the newest)")
@click.option("--score-tensor", default="probabilities", show_default=True)
@click.option("--score-index", type=int, default=0, show_default=True, help="flat index into the tensor")
@click.option("--max-score", default="0.5", show_default=True, help="highest score approved (real value)")
@click.option("--loan", default="100", show_default=True, help="tokens lent on approval")
@click.option("--fund", default="1000", show_default=True, help="tokens minted into the pool (DevToken)")
@click.option("--account", "alias", default=None, help="ape account alias; test account 0 on dev chains")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def cli(
    network: Any,
    deployment: Path,
    model_name: str,
    version: int | None,
    score_tensor: str,
    score_index: int,
    max_score: str,
    loan: str,
    fund: str,
    alias: str | None,
    out: Path,
) -> None:
    """Deploy LendingGate wired to the hub and a model, and fund it."""
    if alias is None and chain.chain_id not in DEV_CHAIN_IDS:
        raise click.ClickException("--account ALIAS is required outside dev chains")
    deployer = accounts.load(alias) if alias else accounts.test_accounts[0]
    record = json.loads(deployment.read_text())["contracts"]
    hub = project.InferenceHub.at(record["hub"]["address"])
    registry = project.ModelRegistry.at(record["registry"]["address"])
    token = project.DevToken.at(record["token"]["address"])
    model_id = registry.modelIdOf(model_name)
    if not registry.exists(model_id):
        raise click.ClickException(f"no model named {model_name!r} in {deployment}")
    version = version or registry.getModel(model_id).versionCount
    decimals = registry.getVersion(model_id, version).decimals
    unit = 10 ** token.decimals()
    gate = deployer.deploy(
        project.LendingGate,
        hub,
        token,
        model_id,
        version,
        score_tensor,
        score_index,
        int(Decimal(max_score) * 10**decimals),
        int(Decimal(loan) * unit),
    )
    if Decimal(fund) > 0:
        token.mint(gate, int(Decimal(fund) * unit), sender=deployer)
    abi = [entry.model_dump(mode="json", by_alias=True) for entry in gate.contract_type.abi]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"address": gate.address, "abi": abi}, indent=2) + "\n")
    click.echo(f"LendingGate {gate.address} for {model_name} v{version}, pool {fund} -> {out}")
