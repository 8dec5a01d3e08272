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
# Verification modes by name, as the registry's `modes` bitmask and the hub's MODE_* constants spell them.
MODES = {"consensus": 0x01, "zk": 0x02, "optimistic": 0x04, "attested": 0x08}
LOG_CHUNK = 10_000  # blocks per eth_getLogs call, under common provider caps


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
class OnchainResult:
    """InferenceHub.Result: what a settled request produced."""

    status: Status
    output_digest: bytes
    output: bytes
    agreeing: tuple[str, ...]
    settled_block: int
    error_code: int
    callback_result: int


@dataclass(frozen=True)
class ModelInfo:
    """A registered model: its id, owner, name and how many versions it has."""

    model_id: bytes
    name: str
    owner: str
    version_count: int


@dataclass(frozen=True)
class OperatorInfo:
    """An operator's stake, standing and the models it serves."""

    address: str
    stake: int
    unbonding: int
    faults: int
    jailed: bool
    models: tuple[bytes, ...]


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

    def view(self, contract: str, function: str, *args: Any) -> Any:
        """`contract.function(*args)` as an eth_call, retried like every other read."""
        bound = getattr(self, contract).functions[function](*args)
        return self.rpc.call(lambda _: bound.call(), function)

    def request(self, request_id: int) -> OnchainRequest | None:
        """The request, or None if the hub does not know it."""
        if request_id <= 0:
            return None
        try:
            raw = self.view("hub", "getRequest", request_id)
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

    def result(self, request_id: int) -> OnchainResult:
        """The stored result (status None/Pending before settlement)."""
        raw = self.view("hub", "getResult", request_id)
        return OnchainResult(
            status=Status(raw[0]),
            output_digest=bytes(raw[1]),
            output=bytes(raw[2]),
            agreeing=tuple(raw[3]),
            settled_block=raw[4],
            error_code=raw[5],
            callback_result=raw[6],
        )

    def committee(self, request_id: int) -> tuple[str, ...]:
        return tuple(self.view("hub", "getCommittee", request_id))

    def model(self, model_id: bytes) -> ModelInfo | None:
        """The model, or None if no one registered it."""
        try:
            owner, name, count = self.view("registry", "getModel", model_id)
        except ContractLogicError:  # UnknownModel
            return None
        return ModelInfo(model_id, name, owner, count)

    def model_id_of(self, name: str) -> bytes:
        return bytes(self.view("registry", "modelIdOf", name))

    def operator(self, address: str) -> OperatorInfo:
        info = self.view("staking", "operatorInfo", address)
        models = self.view("staking", "modelsOf", address)
        return OperatorInfo(address, info[0], info[1], info[2], info[3], tuple(bytes(m) for m in models))

    def logs(self, contract: str, event: str, from_block: int | None = None, **topics: Any) -> list[Any]:
        """Decoded `event` logs of `contract` since the deployment (or `from_block`), in chain order."""
        events = getattr(self, contract).events[event]
        start = self.deployment.deploy_block if from_block is None else from_block
        found: list[Any] = []
        head = self.rpc.block_number()
        for low in range(start, head + 1, LOG_CHUNK):
            high = min(low + LOG_CHUNK - 1, head)

            def chunk(_: Any, lo: int = low, hi: int = high) -> list[Any]:
                return list(events.get_logs(from_block=lo, to_block=hi, argument_filters=topics or None))

            found += self.rpc.call(chunk, f"getLogs {event}")
        return found

    def model_version(self, model_id: bytes, version: int) -> ModelVersion:
        raw = self.view("registry", "getVersion", model_id, version)
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
