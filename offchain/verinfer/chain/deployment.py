"""Deployment records (deployments/<network>.json): addresses, ABIs and the deploy block."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address

CONTRACTS = ("token", "registry", "staking", "hub", "consensus", "attested", "optimistic")


class DeploymentError(ValueError):
    """A deployment record that is missing or malformed."""


@dataclass(frozen=True)
class ContractRecord:
    """One deployed contract."""

    address: ChecksumAddress
    abi: list[dict[str, Any]]


@dataclass(frozen=True)
class Deployment:
    """Where verinfer lives on one network."""

    network: str
    chain_id: int
    deploy_block: int
    contracts: dict[str, ContractRecord]
    parameters: dict[str, Any]
    rpc_url: str | None = None  # where the network's node answers, when the record knows (devnet)

    def __getitem__(self, name: str) -> ContractRecord:
        return self.contracts[name]

    @classmethod
    def load(cls, path: Path) -> "Deployment":
        """Reads and checks a record; raises DeploymentError with one line on any problem."""
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise DeploymentError(f"deployment record {path} not found (run `ape run deploy`)") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise DeploymentError(f"deployment record {path} unreadable: {exc}") from None
        try:
            contracts = {}
            for name in CONTRACTS:
                entry = data["contracts"][name]
                address = to_checksum_address(entry["address"])
                if not isinstance(entry["abi"], list):
                    raise ValueError(name)
                contracts[name] = ContractRecord(address, entry["abi"])
            return cls(
                network=str(data.get("network", Path(path).stem)),
                chain_id=int(data["chain_id"]),
                deploy_block=int(data["deploy_block"]),
                contracts=contracts,
                parameters=dict(data.get("parameters", {})),
                rpc_url=data.get("rpc_url"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DeploymentError(f"deployment record {path} is malformed near {exc}") from None
