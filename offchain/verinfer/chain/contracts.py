"""Typed views over the deployed contracts: the one place that reads verinfer's on-chain state."""

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError

from verinfer.chain.deployment import Deployment
from verinfer.chain.rpc import Rpc
from verinfer.models.codec import TensorSpec

MODE_CONSENSUS = 1


class Status(IntEnum):
    """InferenceHub.Status."""

    NONE = 0
    PENDING = 1
    FINALIZED = 2
    FAILED = 3
    DISPUTED = 4
    EXPIRED = 5

    @property
    def terminal(self) -> bool:
        return self >= Status.FINALIZED


@dataclass(frozen=True)
class OnchainRequest:
    """InferenceHub.Request, the fields off-chain code uses."""

    request_id: int
    requester: str
    status: Status
    k: int
    mode: int
    committed_mask: int
    revealed_mask: int
    commit_deadline: int
    reveal_deadline: int
    callback: str
    callback_gas_limit: int
    version: int
    model_id: bytes


@dataclass(frozen=True)
class ModelVersion:
    """A registered model version with its decoded tensor spec."""

    model_id: bytes
    version: int
    artifact_sha256: bytes
    fee: int
    decimals: int
    modes: int
    deprecated: bool
    verifier: str
    uris: tuple[str, ...]
    spec: TensorSpec


class Contracts:
    """web3 contract objects for one deployment and the reads everyone needs."""

    def __init__(self, rpc: Rpc, deployment: Deployment) -> None:
        self.rpc = rpc
        self.deployment = deployment
        w3 = rpc.w3
        self.hub: Contract = self._contract(w3, "hub")
        self.registry: Contract = self._contract(w3, "registry")
        self.staking: Contract = self._contract(w3, "staking")
        self.token: Contract = self._contract(w3, "token")

    def _contract(self, w3: Web3, name: str) -> Contract:
        record = self.deployment[name]
        return w3.eth.contract(address=record.address, abi=record.abi)  # checksummed by Deployment.load

    def calldata(self, contract: str, function: str, *args: Any) -> bytes:
        """ABI-encoded call data for `contract.function(*args)`."""
        encoded: str = getattr(self, contract).encode_abi(function, args=list(args))
        return bytes.fromhex(encoded.removeprefix("0x"))

    def request(self, request_id: int) -> OnchainRequest | None:
        """The request, or None if the hub does not know it."""
        if request_id <= 0:
            return None
        try:
            raw: Any = self.rpc.call(lambda _: self.hub.functions.getRequest(request_id).call(), "getRequest")
        except ContractLogicError:
            return None
        return OnchainRequest(
            request_id=request_id,
            requester=raw[0],
            status=Status(raw[1]),
            k=raw[2],
            mode=raw[3],
            committed_mask=raw[4],
            revealed_mask=raw[5],
            commit_deadline=raw[6],
            reveal_deadline=raw[9],
            callback=raw[7],
            callback_gas_limit=raw[8],
            version=raw[10],
            model_id=bytes(raw[11]),
        )

    def model_version(self, model_id: bytes, version: int) -> ModelVersion:
        raw: Any = self.rpc.call(
            lambda _: self.registry.functions.getVersion(model_id, version).call(), "getVersion"
        )
        return ModelVersion(
            model_id=model_id,
            version=version,
            artifact_sha256=bytes(raw[0]),
            fee=raw[1],
            decimals=raw[2],
            modes=raw[3],
            deprecated=raw[4],
            verifier=raw[5],
            uris=tuple(raw[7]),
            spec=TensorSpec.decode(bytes(raw[8])),
        )
