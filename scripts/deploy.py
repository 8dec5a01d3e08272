"""Deploy and wire verinfer's contracts from a parameters file; idempotent per network.

    ape run deploy --network ethereum:local:foundry [--params FILE] [--account ALIAS]
    ape run deploy --network http://127.0.0.1:8545 --out deployments/devnet.json   # a running node

Writes deployments/<network>.json with addresses, ABIs, the deploy block and the
parameters. Run twice against the same chain, it reuses every contract that is there.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from ape import accounts, chain, networks, project
from ape.cli import ConnectedProviderCommand
from eth_utils.crypto import keccak
from verinfer.chain.deployment import CONTRACTS
from verinfer.chain.keys import DEV_CHAIN_IDS
from verinfer.models.execution import PINNED, ExecutionClass, ExecutionClassError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PARAMS = ROOT / "deployments" / "parameters.json"

INT_PARAMS = {
    "min_stake": (1, 2**128 - 1),
    "epoch_blocks": (8, 2**32 - 1),
    "unbonding_period": (1, 2**64 - 1),
    "jail_threshold": (1, 2**32 - 1),
    "jail_period": (0, 2**32 - 1),
    "fault_decay": (1, 2**32 - 1),
    "commit_window": (1, 255),
    "reveal_window": (1, 2**32 - 1),
    "max_k": (1, 16),
    "slash_bps_dissent": (0, 10_000),
    "slash_bps_silence": (0, 10_000),
    "attested_window": (1, 255),
    "attested_late_window": (8, 2**16 - 1),
    "equivocation_reward_pct": (0, 50),
    "optimistic_post_window": (1, 255),
    "optimistic_challenge_window": (1, 2**32 - 1),
    "optimistic_escalation_blocks": (1, 2**32 - 1),
    "optimistic_escalation_k": (3, 15),
    "optimistic_slash_bps_wrong": (0, 10_000),
    "optimistic_reward_bps": (0, 5_000),
    "optimistic_winner_share_bps": (0, 10_000),
    "optimistic_post_bond": (0, 2**96 - 1),
    "optimistic_challenge_bond": (0, 2**96 - 1),
    "max_input_bytes": (1, 2**32 - 1),
    "max_output_bytes": (416, 2**32 - 1),
    "max_callback_gas": (0, 2**32 - 1),
    "operator_fee": (0, 2**96 - 1),
    "protocol_fee": (0, 2**64 - 1),
}
ADDRESS_PARAMS = ("token", "treasury")
LIST_PARAMS = ("execution_classes",)  # machine parts operators may register for (staking's allow-list)


class ParamsError(click.ClickException):
    """A parameters file entry is missing, unknown or out of range."""


def load_params(path: Path = DEFAULT_PARAMS, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Reads, merges and validates deployment parameters; raises ParamsError on the first mistake."""
    try:
        params: dict[str, Any] = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ParamsError(f"cannot read parameters file {path}: {exc}") from exc
    params.update(overrides or {})
    unknown = set(params) - set(INT_PARAMS) - set(ADDRESS_PARAMS) - set(LIST_PARAMS)
    if unknown:
        raise ParamsError(f"unknown parameter(s) {sorted(unknown)} in {path}")
    for name, (low, high) in INT_PARAMS.items():
        value = params.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ParamsError(f"parameter {name} must be an integer in [{low}, {high}], got {value!r}")
    for name in ADDRESS_PARAMS:
        value = params.get(name)
        if value is not None and not (isinstance(value, str) and value.startswith("0x") and len(value) == 42):
            raise ParamsError(f"parameter {name} must be null or a 0x-prefixed address, got {value!r}")
    escalation = params["commit_window"] + params["reveal_window"] + 1
    if params["optimistic_escalation_blocks"] < escalation:
        raise ParamsError(
            f"parameter optimistic_escalation_blocks must cover a consensus round (commit_window + "
            f"reveal_window + 1 = {escalation}), got {params['optimistic_escalation_blocks']}"
        )
    classes = params.setdefault("execution_classes", [])
    for text in classes if isinstance(classes, list) else [classes]:
        try:
            parsed = ExecutionClass.parse(f"{text}/{PINNED.tag()}") if isinstance(text, str) else None
        except ExecutionClassError:
            parsed = None
        if parsed is None or parsed.machine != text:
            raise ParamsError(
                "parameter execution_classes must list classes like 'onnxruntime==1.32.0/x86-64-fma3', "
                f"got {text!r}"
            )
    return params


def consensus_params(params: dict[str, Any]) -> tuple[int, ...]:
    """ConsensusMode's Params struct, in field order."""
    return tuple(
        params[name] for name in ("commit_window", "reveal_window", "slash_bps_dissent", "slash_bps_silence")
    )


def attested_params(params: dict[str, Any]) -> tuple[int, ...]:
    """AttestedMode's Params struct, in field order."""
    return tuple(
        params[name]
        for name in (
            "attested_window",
            "attested_late_window",
            "slash_bps_dissent",
            "equivocation_reward_pct",
        )
    )


def optimistic_params(params: dict[str, Any]) -> tuple[int, ...]:
    """OptimisticMode's Params struct, in field order."""
    return tuple(
        params[name]
        for name in (
            "optimistic_post_window",
            "optimistic_challenge_window",
            "optimistic_escalation_blocks",
            "optimistic_escalation_k",
            "optimistic_slash_bps_wrong",
            "slash_bps_silence",
            "optimistic_reward_bps",
            "optimistic_winner_share_bps",
            "optimistic_post_bond",
            "optimistic_challenge_bond",
        )
    )


def hub_params(params: dict[str, Any]) -> tuple[int, ...]:
    """The hub's Params struct, in field order."""
    return tuple(
        params[name]
        for name in (
            "max_k",
            "max_input_bytes",
            "max_output_bytes",
            "max_callback_gas",
            "operator_fee",
            "protocol_fee",
        )
    )


def staking_settings(params: dict[str, Any]) -> tuple[int, ...]:
    """OperatorStaking's Settings struct, in field order."""
    return tuple(
        params[name]
        for name in (
            "min_stake",
            "epoch_blocks",
            "unbonding_period",
            "jail_threshold",
            "jail_period",
            "fault_decay",
        )
    )


@dataclass
class Stack:
    """The deployed and wired contracts."""

    token: Any
    registry: Any
    staking: Any
    hub: Any
    consensus: Any
    attested: Any
    optimistic: Any
    deploy_block: int
    reused: tuple[str, ...] = ()


def _existing(record: dict[str, Any] | None, name: str, contract_type: Any) -> Any | None:
    """The recorded contract if its code is on this chain, else None."""
    if not record or name not in record.get("contracts", {}):
        return None
    address = record["contracts"][name]["address"]
    if not chain.provider.get_code(address):
        return None
    return contract_type.at(address)


def deploy_stack(deployer: Any, params: dict[str, Any], record: dict[str, Any] | None = None) -> Stack:
    """Deploys what is missing (reusing what `record` names and the chain holds) and wires it."""
    if record and record.get("chain_id") != chain.chain_id:
        record = None
    treasury = params["treasury"] or deployer.address
    reused: list[str] = []

    def get_or_deploy(name: str, contract_type: Any, *args: Any) -> Any:
        found = _existing(record, name, contract_type)
        if found is not None:
            reused.append(name)
            return found
        return deployer.deploy(contract_type, *args)

    start_block = chain.blocks.head.number or 0
    if params["token"]:
        token = project.DevToken.at(params["token"])
    else:
        token = get_or_deploy("token", project.DevToken, deployer)
    registry = get_or_deploy("registry", project.ModelRegistry)
    staking = get_or_deploy(
        "staking",
        project.OperatorStaking,
        token,
        registry,
        staking_settings(params),
        treasury,
        deployer,
    )
    hub = get_or_deploy(
        "hub", project.InferenceHub, token, registry, staking, treasury, hub_params(params), deployer
    )
    slasher = staking.SLASHER_ROLE()
    if not staking.hasRole(slasher, hub):
        staking.grantRole(slasher, hub, sender=deployer)
    consensus = get_or_deploy(
        "consensus", project.ConsensusMode, hub, staking, consensus_params(params), deployer
    )
    attested = get_or_deploy(
        "attested", project.AttestedMode, hub, staking, attested_params(params), deployer
    )
    optimistic = get_or_deploy(
        "optimistic", project.OptimisticMode, hub, staking, optimistic_params(params), deployer
    )
    for machine in params["execution_classes"]:
        if not staking.classAllowed(keccak(text=machine)):
            staking.setClassAllowed(machine, True, sender=deployer)
    for mode_contract in (consensus, attested, optimistic):
        mode = mode_contract.MODE()
        if hub.modeContract(mode) != mode_contract.address:
            hub.registerMode(mode, mode_contract, sender=deployer)
    deploy_block = record["deploy_block"] if record and len(reused) == len(CONTRACTS) else start_block
    return Stack(token, registry, staking, hub, consensus, attested, optimistic, deploy_block, tuple(reused))


def deployment_path(network_name: str, ecosystem: str = "ethereum") -> Path:
    """deployments/<network>.json (prefixed by the ecosystem outside Ethereum)."""
    stem = network_name if ecosystem == "ethereum" else f"{ecosystem}-{network_name}"
    return ROOT / "deployments" / f"{stem}.json"


def write_record(path: Path, stack: Stack, params: dict[str, Any]) -> dict[str, Any]:
    """Writes the deployment record: addresses, ABIs, deploy block and parameters."""
    contracts = {}
    for name in CONTRACTS:
        contract = getattr(stack, name)
        contracts[name] = {
            "address": contract.address,
            "contract": contract.contract_type.name,
            "abi": [entry.model_dump(mode="json", by_alias=True) for entry in contract.contract_type.abi],
        }
    record = {
        "network": path.stem,
        "chain_id": chain.chain_id,
        "deploy_block": stack.deploy_block,
        "parameters": params,
        "contracts": contracts,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return record


def read_record(path: Path) -> dict[str, Any] | None:
    """The deployment record at `path`, or None."""
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data


def _deployer(alias: str | None) -> Any:
    if alias:
        return accounts.load(alias)
    if networks.provider.network.name not in ("local", "anvil") and chain.chain_id not in DEV_CHAIN_IDS:
        raise click.ClickException("--account ALIAS is required outside local dev chains")
    return accounts.test_accounts[0]


@click.command(cls=ConnectedProviderCommand)
@click.option(
    "--params", "params_file", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_PARAMS
)
@click.option("--account", "alias", default=None, help="ape account alias; test account 0 on local networks")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="record path")
def cli(ecosystem: Any, network: Any, params_file: Path, alias: str | None, out: Path | None) -> None:
    """Deploy verinfer's contracts and write deployments/<network>.json."""
    params = load_params(params_file)
    path = out or deployment_path(network.name, ecosystem.name)
    stack = deploy_stack(_deployer(alias), params, read_record(path))
    write_record(path, stack, params)
    action = "reused" if len(stack.reused) == len(CONTRACTS) else "deployed"
    click.echo(f"{action} verinfer on {ecosystem.name}:{network.name} (chain {chain.chain_id}) -> {path}")
    for name in CONTRACTS:
        click.echo(f"  {name:9} {getattr(stack, name).address}")
