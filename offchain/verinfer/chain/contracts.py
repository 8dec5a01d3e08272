"""Typed views over the deployed contracts: the one place that reads verinfer's on-chain state."""

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError, Web3RPCError

from verinfer.chain.calls import ViewCall
from verinfer.chain.deployment import Deployment
from verinfer.chain.rpc import Rpc
from verinfer.models.agreement import EXACT, Tolerance
from verinfer.models.codec import TensorSpec

MODE_CONSENSUS = 1
MODE_OPTIMISTIC = 4
MODE_ATTESTED = 8
# Verification modes by name, as the registry's `modes` bitmask and the hub's MODE_* constants spell them.
MODES = {"consensus": 0x01, "zk": 0x02, "optimistic": 0x04, "attested": 0x08}
# OptimisticMode.Phase values in which the poster has posted (Posted, Challenged, Upheld, Overturned,
# Undecided).
OPTIMISTIC_POSTED = (2, 3, 4, 5, 6)
LOG_CHUNK = 10_000  # blocks per eth_getLogs call, under common provider caps


class Fault(IntEnum):
    """InferenceHub.Fault: why a member lost stake."""

    NONE = 0
    SILENT = 1  # never acted (consensus: never committed): the silence rate
    WITHHELD = 2  # committed but never revealed: the dissent rate
    DISSENT = 3  # put forward an output other than the accepted one: the dissent rate
    EQUIVOCATION = 4  # signed two outputs for one request: the dissent rate, part to the reporter


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
    """A request as the hub stores it, with its round in the mode contract (ConsensusMode.getRound)."""

    request_id: int
    requester: str
    status: Status
    k: int
    mode: int
    committed_mask: int
    revealed_mask: int
    seed_block: int  # the committee is drawn from this block's hash
    commit_deadline: int
    reveal_deadline: int
    callback_gas_limit: int  # the requester is called back when non-zero
    version: int
    max_output_bytes: int
    digest_only: bool  # only the accepted output's digest is kept on-chain
    drawn: bool  # the committee is stored (getCommittee is empty until then)
    model_id: bytes
    settled_block: int = 0  # the block the mode's round ended in (zero while open)


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
    jailed_until: int  # first block at which a jailed operator may unjail
    registrations: tuple[tuple[bytes, bytes], ...]  # (model id, class id) of each pool; class zero: portable
    endpoint: str  # where its relayer takes messages from committee peers ("" if none published)

    @property
    def models(self) -> tuple[bytes, ...]:
        """The models it is registered for, in any class, each once."""
        return tuple(dict.fromkeys(model for model, _ in self.registrations))


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
    max_output_bytes: int
    verifier: str
    uris: tuple[str, ...]
    spec: TensorSpec
    execution_class: str = ""  # "" when portable
    class_id: bytes = bytes(32)  # the pool's class: keccak256 of the class's machine part, zero when portable
    tolerance: Tolerance = EXACT  # the agreement rule


class Contracts:
    """web3 contract objects for one deployment and the reads everyone needs."""

    def __init__(self, rpc: Rpc, deployment: Deployment) -> None:
        self.rpc = rpc
        self.deployment = deployment
        w3 = rpc.w3
        self.hub: Contract = self._contract(w3, "hub")
        self.consensus: Contract = self._contract(w3, "consensus")
        self.attested: Contract = self._contract(w3, "attested")
        self.optimistic: Contract = self._contract(w3, "optimistic")
        self.registry: Contract = self._contract(w3, "registry")
        self.staking: Contract = self._contract(w3, "staking")
        self.token: Contract = self._contract(w3, "token")
        self._fast: dict[tuple[str, str], ViewCall] = {}

    def fast(self, contract: str, function: str) -> ViewCall:
        """`contract.function` as a ViewCall (built once): the cheap path for reads made per request."""
        key = (contract, function)
        if key not in self._fast:
            record = self.deployment[contract]
            self._fast[key] = ViewCall.of(record.address, record.abi, function)
        return self._fast[key]

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
        """The request and its round, or None if the hub does not know it."""
        if request_id <= 0:
            return None
        try:
            raw = self.fast("hub", "getRequest")(self.rpc, request_id)
        except ContractLogicError:
            return None
        f = self.fields("hub", "getRequest", raw)
        mode = self.mode_name(f["mode"])
        g = self.fields(mode, "getRound", self.fast(mode, "getRound")(self.rpc, request_id))
        if mode == "consensus":
            commit_deadline, reveal_deadline = g["commitDeadline"], g["revealDeadline"]
            committed, revealed = g["committedMask"], g["revealedMask"]
        elif mode == "optimistic":  # one poster: its post takes the place of commit and reveal
            commit_deadline = g["postDeadline"]
            reveal_deadline = g["challengeDeadline"] or commit_deadline
            committed = revealed = int(g["phase"] in OPTIMISTIC_POSTED)
        else:  # attested: one deadline; the signatures that counted take the place of reveals
            commit_deadline = reveal_deadline = g["deadline"]
            committed = revealed = g["agreeMask"]
        return OnchainRequest(
            request_id=request_id,
            requester=f["requester"],
            status=Status(f["status"]),
            k=f["k"],
            mode=f["mode"],
            committed_mask=committed,
            revealed_mask=revealed,
            seed_block=g["seedBlock"],
            commit_deadline=commit_deadline,
            reveal_deadline=reveal_deadline,
            callback_gas_limit=f["callbackGasLimit"],
            version=f["version"],
            max_output_bytes=g["maxOutputBytes"],
            digest_only=f["digestOnly"],
            drawn=g["drawn"],
            model_id=bytes(f["modelId"]),
            settled_block=g["settledBlock"],
        )

    @staticmethod
    def mode_name(mode: int) -> str:
        """The deployment's contract name for a mode bit; ValueError for a mode it has no contract for."""
        names = {MODE_CONSENSUS: "consensus", MODE_OPTIMISTIC: "optimistic", MODE_ATTESTED: "attested"}
        if mode not in names:
            raise ValueError(f"mode {mode:#x} has no contract in this deployment")
        return names[mode]

    def result(self, request_id: int) -> OnchainResult:
        """The stored result; an empty one with status Pending before settlement (the hub's getResult
        reverts ResultNotReady then)."""
        try:
            raw = self.view("hub", "getResult", request_id)
        except ContractLogicError:
            onchain = self.request(request_id)
            if onchain is None or onchain.status != Status.PENDING:
                raise
            return OnchainResult(Status.PENDING, bytes(32), b"", (), 0, 0, 0)
        f = self.fields("hub", "getResult", raw)
        return OnchainResult(
            status=Status(f["status"]),
            output_digest=bytes(f["outputDigest"]),
            output=bytes(f["output"]),
            agreeing=tuple(f["agreeing"]),
            settled_block=f["settledBlock"],
            error_code=f["errorCode"],
            callback_result=f["callbackResult"],
        )

    def committee(self, request_id: int, mode: int = MODE_CONSENSUS) -> tuple[str, ...]:
        """The stored committee in member-index order; empty until it is drawn."""
        return tuple(self.view(self.mode_name(mode), "getCommittee", request_id))

    def preview_committee(self, request_id: int, mode: int = MODE_CONSENSUS) -> tuple[str, ...]:
        """The committee a request has or will have, as a transaction in the next block would draw it.

        Evaluated against the pending block, where `block.number` is the head's plus one, so the
        committee is known as soon as the seed block is the head rather than a block later (a node
        that runs pending calls against the latest block reverts SeedNotReady for one more block).
        ContractLogicError (SeedNotReady, SeedUnavailable, ...) when it cannot be known."""
        preview = self.fast(self.mode_name(mode), "previewCommittee")
        try:
            found = preview(self.rpc, request_id, block="pending")
        except Web3RPCError:  # a node without pending-block calls
            found = preview(self.rpc, request_id)
        return tuple(found)

    def fields(self, contract: str, function: str, raw: Any) -> dict[str, Any]:
        """A returned struct as a dict keyed by the ABI's component names (robust to field order)."""
        abi = getattr(self, contract).get_function_by_name(function).abi
        components = abi["outputs"][0]["components"]
        return {c["name"]: value for c, value in zip(components, raw, strict=True)}

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
        info = self.fields("staking", "operatorInfo", self.view("staking", "operatorInfo", address))
        registrations = self.registrations(address)
        return OperatorInfo(
            address,
            info["stake"],
            info["unbonding"],
            info["faults"],
            info["jailed"],
            info["jailedUntil"],
            registrations,
            str(self.view("staking", "endpointOf", address)),
        )

    def registrations(self, address: str) -> tuple[tuple[bytes, bytes], ...]:
        """The (model id, class id) pools an operator is in."""
        return tuple((bytes(m), bytes(c)) for m, c in self.view("staking", "registrationsOf", address))

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
        f = self.fields("registry", "getVersion", self.view("registry", "getVersion", model_id, version))
        return ModelVersion(
            model_id=model_id,
            version=version,
            artifact_sha256=bytes(f["artifactSha256"]),
            fee=f["fee"],
            decimals=f["decimals"],
            modes=f["modes"],
            deprecated=f["deprecated"],
            max_output_bytes=f["maxOutputBytes"],
            verifier=f["verifier"],
            uris=tuple(f["uris"]),
            spec=TensorSpec.decode(bytes(f["tensorSpec"])),
            execution_class=str(f["executionClass"]),
            class_id=bytes(f["classId"]),
            tolerance=Tolerance(f["toleranceUnits"], f["tolerancePpm"]),
        )
