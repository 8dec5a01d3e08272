"""`Client`: a dapp's handle on one verinfer deployment (requests, settlement, results, registry views)."""

import functools
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, overload

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3.exceptions import ContractLogicError

from verinfer.chain.contracts import (
    MODE_ATTESTED,
    MODE_CONSENSUS,
    MODE_OPTIMISTIC,
    MODES,
    Contracts,
    ModelInfo,
    ModelVersion,
    OnchainRequest,
    OperatorInfo,
    Status,
)
from verinfer.chain.deployment import Deployment, DeploymentError
from verinfer.chain.reverts import RevertDecoder
from verinfer.chain.rpc import Rpc
from verinfer.chain.sender import Receipt, Sender, TransactionFailed
from verinfer.client import optimistic
from verinfer.client.errors import (
    InferenceTimeout,
    InsufficientAllowance,
    InsufficientBalance,
    InvalidArgument,
    InvalidModelName,
    RequestDisputed,
    RequestExpired,
    RequestFailed,
    UnknownModel,
    UnknownVersion,
    VerinferError,
)
from verinfer.client.inputs import Inputs, encode_inputs, typed_outputs
from verinfer.client.records import InferenceResult, ModelSummary, PendingRequest, Provisional, Settlement
from verinfer.models.codec import decode_tensors
from verinfer.models.inputs import upload
from verinfer.models.names import model_name_problem

DEPLOYMENTS_ENV = "VERINFER_DEPLOYMENTS"  # directory of <network>.json records (default ./deployments)
RPC_ENV = "VERINFER_RPC_URL"
INPUT_STORE_ENV = "VERINFER_INPUT_STORE"
ZERO_ADDRESS = "0x" + "00" * 20
# A version's default cap on its encoded output, within the registry's bounds: an error output is
# 416 bytes, and the registry accepts at most 1 MiB.
MIN_OUTPUT_BYTES, MAX_OUTPUT_BYTES = 416, 1 << 20
DEFAULT_MAX_OUTPUT_BYTES = 65_536


def request_struct(
    version: ModelVersion,
    encoded_input: bytes,
    *,
    k: int,
    max_fee: int,
    mode_bit: int = MODE_CONSENSUS,
    callback_gas_limit: int = 0,
    digest_only: bool = False,
) -> tuple[Any, ...]:
    """The hub's InferenceRequest struct, in field order, for `requestInference`.

    A non-zero `callback_gas_limit` has the hub call the requester itself (`onInferenceResult`) on
    settlement; `digest_only` keeps only the output's digest on-chain (the settlement event carries
    the bytes)."""
    return (
        version.model_id,
        version.version,
        mode_bit,
        k,
        callback_gas_limit,
        digest_only,
        max_fee,
        encoded_input,
    )


NOT_FINALIZED = {
    Status.FAILED: RequestFailed,
    Status.DISPUTED: RequestDisputed,
    Status.EXPIRED: RequestExpired,
}


def deployment_path(network: str, deployments_dir: Path | None = None) -> Path:
    """deployments/<network>.json, under $VERINFER_DEPLOYMENTS when set."""
    root = deployments_dir or Path(os.environ.get(DEPLOYMENTS_ENV, "deployments"))
    return Path(root) / f"{network}.json"


def parse_model_ref(ref: str) -> tuple[str, int | None]:
    """`name` or `name@version`."""
    name, sep, version = ref.partition("@")
    if not name or (sep and not version.isdigit()):
        raise UnknownVersion(f"model reference {ref!r} is not NAME or NAME@VERSION")
    if problem := model_name_problem(name):
        raise InvalidModelName(problem)
    return name, int(version) if sep else None


class Client:
    """Reads and (with an account) writes one deployment; every transaction goes through `Sender`."""

    def __init__(
        self,
        rpc: Rpc,
        deployment: Deployment,
        account: LocalAccount | None = None,
        *,
        poll_interval: float = 0.2,
    ) -> None:
        self.rpc = rpc
        self.deployment = deployment
        self.contracts = Contracts(rpc, deployment)
        self.decoder = RevertDecoder(c.abi for c in deployment.contracts.values())
        self.account = account
        self.poll_interval = poll_interval
        # A model store that takes inputs (`store serve --accept-inputs`): inputs over the hub's inline
        # cap are uploaded there and sent by reference.
        self.input_store: str | None = os.environ.get(INPUT_STORE_ENV) or None
        self._sender: Sender | None = None

    @classmethod
    def connect(
        cls,
        network: str = "devnet",
        *,
        rpc_url: str | None = None,
        deployment: Path | None = None,
        account: LocalAccount | None = None,
        timeout: float = 10.0,
    ) -> "Client":
        """A client for `deployments/<network>.json` (or `deployment`), on `rpc_url` or the record's node."""
        path = deployment or deployment_path(network)
        record = Deployment.load(path)
        url = rpc_url or os.environ.get(RPC_ENV) or record.rpc_url
        if not url:
            raise DeploymentError(f"no RPC URL for {path}: pass --rpc-url or set ${RPC_ENV}")
        rpc = Rpc(url, timeout=timeout)
        chain_id = rpc.chain_id()
        if chain_id != record.chain_id:
            raise DeploymentError(
                f"{rpc.endpoint} is chain {chain_id} but {path} is for chain {record.chain_id}"
            )
        return cls(rpc, record, account)

    # ------------------------------------------------------------ transactions

    @property
    def address(self) -> str:
        return self.sender.address

    @property
    def sender(self) -> Sender:
        if self.account is None:
            raise VerinferError("this needs a signing account: pass one to Client.connect(account=...)")
        if self._sender is None:
            self._sender = Sender(self.rpc, self.account, self.decoder, poll_interval=self.poll_interval / 2)
        return self._sender

    def transact(self, contract: str, function: str, *args: Any) -> Receipt:
        """Calls `contract.function(*args)` from the client's account and waits for the receipt."""
        target = getattr(self.contracts, contract).address
        return self.sender.transact(target, self.contracts.calldata(contract, function, *args), function)

    @functools.cached_property
    def _token_unit(self) -> tuple[int, str]:
        return int(self.contracts.view("token", "decimals")), str(self.contracts.view("token", "symbol"))

    def tokens(self, amount: int) -> str:
        """Base units (wei) as the fee token's decimal amount with its symbol: "3.2 VDEV"."""
        decimals, symbol = self._token_unit
        whole, fraction = divmod(amount, 10**decimals)
        digits = f"{fraction:0{decimals}d}".rstrip("0") if decimals else ""
        return f"{whole}{'.' + digits if digits else ''} {symbol}"

    def token_balance(self, address: str | None = None) -> int:
        owner = address or self.address
        return int(self.contracts.view("token", "balanceOf", owner))

    def claimable(self, address: str | None = None) -> int:
        """Credit the hub holds for `address`: refunds, earnings and deposits (payouts are pulled, never
        pushed). It pays the account's requests first when it covers a whole fee."""
        owner = address or self.address
        return int(self.contracts.view("hub", "claimable", owner))

    def deposit(self, amount: int, account: str | None = None, *, approve: bool = True) -> None:
        """Moves `amount` of this account's tokens into `account`'s credit at the hub (default: its own),
        which then pays that account's requests without an approval and a transfer each."""
        if amount <= 0:
            raise InvalidArgument(f"a deposit must be above zero, got {amount}")
        self.ensure_allowance(self.contracts.hub.address, amount, approve=approve, purpose="the deposit")
        self.transact("hub", "deposit", account or self.address, amount)

    def claim(self) -> int:
        """Withdraws everything claimable to the client's account; returns the amount."""
        amount = self.claimable()
        if amount:
            self.transact("hub", "claim")
        return amount

    def _inline_or_reference(self, encoded: bytes) -> bytes:
        """The encoded inputs, or, when they are over the hub's inline cap, a reference to them after
        uploading them to `input_store`."""
        cap = int(self.contracts.view("hub", "params")[1])  # maxInputBytes
        if len(encoded) <= cap:
            return encoded
        if not self.input_store:
            raise InvalidArgument(
                f"the input is {len(encoded)} bytes, over the hub's inline cap of {cap}: give a model store "
                f"that takes inputs (--input-store URL or ${INPUT_STORE_ENV}) to send it by reference"
            )
        try:
            reference = upload(self.input_store, encoded).encode()
        except OSError as exc:
            raise InvalidArgument(f"could not upload the input: {exc}") from None
        if len(reference) > cap:
            raise InvalidArgument(f"the input reference is {len(reference)} bytes, over the cap of {cap}")
        return reference

    def ensure_allowance(self, spender: str, amount: int, *, approve: bool = True, purpose: str) -> None:
        """Checks the balance and the spender's allowance for `amount`; approves the shortfall if allowed."""
        balance = self.token_balance()
        if balance < amount:
            raise InsufficientBalance(
                f"{purpose} costs {self.tokens(amount)} but {self.address} holds {self.tokens(balance)}"
            )
        allowance = int(self.contracts.view("token", "allowance", self.address, spender))
        if allowance >= amount:
            return
        if not approve:
            raise InsufficientAllowance(
                f"{purpose} needs an allowance of {self.tokens(amount)} for {spender}, "
                f"{self.address} granted {self.tokens(allowance)}"
            )
        self.transact("token", "approve", spender, amount)

    # ------------------------------------------------------------ registry and operators

    def model_info(self, ref: str) -> ModelInfo:
        """The registered model a `name` or `name@version` reference names; UnknownModel otherwise."""
        name, _ = parse_model_ref(ref)
        info = self.contracts.model(self.contracts.model_id_of(name))
        if info is None:
            raise UnknownModel(f"no model named {name!r} is registered (`verinfer models list` shows them)")
        return info

    def model(self, ref: str, version: int | None = None) -> ModelVersion:
        """A version of a model by name (`name` or `name@version`); newest non-deprecated by default."""
        name, ref_version = parse_model_ref(ref)
        version = version or ref_version
        info = self.model_info(ref)
        if version is not None:
            if not 1 <= version <= info.version_count:
                raise UnknownVersion(f"model {name!r} has versions 1..{info.version_count}, not {version}")
            return self.contracts.model_version(info.model_id, version)
        for candidate in range(info.version_count, 0, -1):
            found = self.contracts.model_version(info.model_id, candidate)
            if not found.deprecated:
                return found
        raise UnknownVersion(f"model {name!r} has no published, undeprecated version")

    def models(self) -> list[ModelSummary]:
        """Every registered model with its newest version, in registration order."""
        out = []
        for event in self.contracts.logs("registry", "ModelRegistered"):
            info = self.contracts.model(bytes(event.args.modelId))
            if info is None:
                continue
            latest = (
                self.contracts.model_version(info.model_id, info.version_count)
                if info.version_count
                else None
            )
            out.append(ModelSummary(info.name, info.model_id, info.owner, info.version_count, latest))
        return out

    def operators(self) -> list[OperatorInfo]:
        """Every address that ever staked, with its stake, standing and models, in order of first stake."""
        seen: dict[str, None] = {}
        for event in self.contracts.logs("staking", "Staked"):
            seen.setdefault(event.args.operator, None)
        return [self.contracts.operator(address) for address in seen]

    def operator(self, address: str) -> OperatorInfo:
        return self.contracts.operator(to_checksum_address(address))

    def quote(self, version: ModelVersion, k: int) -> int:
        return int(self.contracts.view("hub", "quote", version.model_id, version.version, k))

    # ------------------------------------------------------------ inference

    def request(
        self,
        model: str,
        inputs: Inputs,
        *,
        k: int = 3,
        mode: str = "consensus",
        version: int | None = None,
        callback_gas_limit: int = 0,
        digest_only: bool = False,
        max_fee: int | None = None,
        input_decimals: int = 6,
        approve: bool = True,
    ) -> PendingRequest:
        """Checks the inputs against the tensor spec, pays the fee and submits; returns at once.

        The committee is drawn from the hash of the block after the request's (`seed_block`), so it
        is not known yet. With `digest_only` the hub keeps only the output's digest; `result` reads
        the bytes from the settlement event and checks them against it."""
        target = self.model(model, version)
        mode_bit = MODES.get(mode)
        if mode_bit is None:
            raise InvalidArgument(f"unknown mode {mode!r}; one of {sorted(MODES)}")
        if mode_bit == MODE_OPTIMISTIC and k != 1:
            raise InvalidArgument(f"optimistic mode has one poster: k must be 1, not {k}")
        if not target.modes & mode_bit:
            allowed = [name for name, bit in MODES.items() if target.modes & bit]
            raise InvalidArgument(
                f"{model} v{target.version} does not allow mode {mode!r}; it allows {allowed}"
            )
        encoded = self._inline_or_reference(encode_inputs(target.spec, inputs, input_decimals))
        fee = self.quote(target, k)
        if max_fee is not None and fee > max_fee:
            raise InsufficientAllowance(
                f"the request costs {self.tokens(fee)}, above max_fee {self.tokens(max_fee)}"
            )
        if self.claimable() < fee:  # otherwise the hub takes the fee from the credit
            self.ensure_allowance(self.contracts.hub.address, fee, approve=approve, purpose="the request")
        args = request_struct(
            target,
            encoded,
            k=k,
            max_fee=fee if max_fee is None else max_fee,
            mode_bit=mode_bit,
            callback_gas_limit=callback_gas_limit,
            digest_only=digest_only,
        )
        receipt = self.transact("hub", "requestInference", args)
        (created,) = self.contracts.logs("hub", "RequestCreated", receipt.block, requester=self.address)[-1:]
        round_ = self.contracts.request(int(created.args.requestId))
        assert round_ is not None  # the request was just made
        return PendingRequest(
            request_id=int(created.args.requestId),
            model=parse_model_ref(model)[0],
            version=target.version,
            k=k,
            fee=fee,
            tx_hash=receipt.tx_hash,
            block=receipt.block,
            seed_block=int(created.args.seedBlock),
            commit_deadline=round_.commit_deadline,
            reveal_deadline=round_.reveal_deadline,
            mode=mode_bit,
            digest_only=bool(created.args.digestOnly),
        )

    def committee(self, request: int | PendingRequest) -> tuple[str, ...] | None:
        """The request's committee: stored once drawn, else the draw its seed gives; None before the
        seed block exists (or once it is too old to draw from)."""
        if isinstance(request, PendingRequest):
            request_id, mode = request.request_id, request.mode
        else:
            onchain = self.contracts.request(request)
            request_id, mode = request, onchain.mode if onchain is not None else MODE_CONSENSUS
        try:
            return self.contracts.preview_committee(request_id, mode)
        except ContractLogicError:
            return None

    def wait(
        self,
        request: int | PendingRequest,
        *,
        timeout: float = 60.0,
        finalize: bool = True,
        progress: Callable[[OnchainRequest], None] | None = None,
    ) -> InferenceResult:
        """Blocks until the request settles and returns its outputs; typed errors for every other ending.

        With `finalize`, a request whose windows have passed is finalized by this client, so a
        silent committee cannot leave the fee escrowed. `progress` sees the request on every poll.
        """
        request_id = request.request_id if isinstance(request, PendingRequest) else request
        from_block = request.block if isinstance(request, PendingRequest) else None
        deadline = time.monotonic() + timeout
        while True:
            onchain = self.contracts.request(request_id)
            if onchain is None:
                raise VerinferError(f"request {request_id} does not exist on this hub")
            if progress is not None:
                progress(onchain)
            if onchain.status.terminal:
                return self.result(request_id, from_block=from_block)
            if finalize and self.account is not None and self.can_finalize(onchain):
                try:
                    self.finalize(request_id)
                    continue
                except TransactionFailed:
                    pass  # a relayer settled it first, or it cannot settle yet: look again
            if time.monotonic() >= deadline:
                raise InferenceTimeout(
                    f"request {request_id} still pending after {timeout:.0f}s ({_progress(onchain)}); "
                    "wait on it again",
                    request_id,
                )
            time.sleep(self.poll_interval)

    def can_finalize(self, onchain: OnchainRequest) -> bool:
        """Whether `finalize` may settle the pending request now: consensus mode asks its contract;
        an attested round can be expired once its deadline block is behind the head."""
        if onchain.mode == MODE_ATTESTED:
            return self.rpc.block_number() >= onchain.reveal_deadline
        if onchain.mode == MODE_OPTIMISTIC:
            return optimistic.can_end(self, onchain)
        return bool(self.contracts.view("consensus", "canFinalize", onchain.request_id))

    def finalize(self, request_id: int) -> Receipt:
        """Settles a request whose windows allow it (drawing its committee first if nobody did, or
        expiring it if its seed is gone). A digest-only request whose accepted output's bytes the hub
        does not hold is settled with `finalizeWithOutput`, the bytes taken from the agreeing reveal.
        An attested request can only be ended this way without a quorum: it expires, refunded. An
        optimistic one is finalized with its post, expired without one, or resolved once challenged."""
        onchain = self.contracts.request(request_id)
        if onchain is not None and onchain.mode == MODE_ATTESTED:
            return self.transact("attested", "expire", request_id)
        if onchain is not None and onchain.mode == MODE_OPTIMISTIC:
            return optimistic.end(self, request_id)
        try:
            return self.transact("consensus", "finalize", request_id)
        except TransactionFailed as exc:
            if exc.error != "OutputRequired":
                raise
        output = self._revealed_output(request_id)
        if output is None:
            raise VerinferError(f"request {request_id} needs its output's bytes and no reveal carries them")
        return self.transact("consensus", "finalizeWithOutput", request_id, output)

    def provisional(self, request_id: int) -> Provisional | None:
        """An optimistic request's posted output before it is final (None before a post and once ended):
        it stands unless challenged by its `challenge_deadline`; callbacks come only at finality."""
        return optimistic.provisional(self, request_id)

    def challenge(self, request_id: int, *, max_fee: int | None = None, approve: bool = True) -> int:
        """Challenges an optimistic request's posted output (bond plus escalation fee, approved here unless
        `approve=False`); returns the escalation's request id (0: refused by the hub, all refunded)."""
        return optimistic.challenge(self, request_id, max_fee=max_fee, approve=approve)

    def _revealed_output(self, request_id: int) -> bytes | None:
        """The output of the most-revealed digest, read back from the reveal transactions' call data."""
        digests: dict[bytes, list[Any]] = {}
        for log in self.contracts.logs("consensus", "Revealed", requestId=request_id):
            digests.setdefault(bytes(log.args.digest), []).append(log)
        mode = self.contracts.consensus

        def calldata(tx_hash: Any) -> Any:
            return self.rpc.call(lambda w3: w3.eth.get_transaction(tx_hash), "getTransaction")["input"]

        for digest, logs in sorted(digests.items(), key=lambda item: -len(item[1])):
            function, args = mode.decode_function_input(calldata(logs[0].transactionHash))
            if function.fn_name == "reveal":
                candidates = [bytes(args["output"])]
            elif function.fn_name == "revealMany":
                candidates = [bytes(o) for o in args["outputs"]]
            else:
                continue
            for candidate in candidates:
                if keccak(candidate) == digest:
                    return candidate
        return None

    @overload
    def infer(
        self,
        model: str,
        inputs: Inputs,
        *,
        k: int = 3,
        mode: str = "consensus",
        wait: Literal[True] = True,
        timeout: float = 60.0,
        **options: Any,
    ) -> InferenceResult: ...

    @overload
    def infer(
        self,
        model: str,
        inputs: Inputs,
        *,
        k: int = 3,
        mode: str = "consensus",
        wait: Literal[False],
        timeout: float = 60.0,
        **options: Any,
    ) -> PendingRequest: ...

    def infer(
        self,
        model: str,
        inputs: Inputs,
        *,
        k: int = 3,
        mode: str = "consensus",
        wait: bool = True,
        timeout: float = 60.0,
        **options: Any,
    ) -> InferenceResult | PendingRequest:
        """`request` then, unless `wait=False`, `wait`: the outputs as numpy arrays with the settlement."""
        pending = self.request(model, inputs, k=k, mode=mode, **options)
        return self.wait(pending, timeout=timeout) if wait else pending

    def result(self, request_id: int, *, from_block: int | None = None) -> InferenceResult:
        """The outputs of a finalized request; RequestFailed/Disputed/Expired for the other endings."""
        settlement = self.settlement(request_id, from_block=from_block)
        if settlement.status == Status.FINALIZED:
            output = self.output(request_id, from_block=from_block)
            spec = self.contracts.model_version(settlement.model_id, settlement.version).spec
            arrays = typed_outputs(spec, decode_tensors(output))
            return InferenceResult(arrays, output, settlement)
        error = NOT_FINALIZED.get(settlement.status)
        if error is None:
            raise VerinferError(f"request {request_id} is {settlement.status.name}, not settled yet")
        raise error(_ending(settlement), settlement)

    def output(self, request_id: int, *, from_block: int | None = None) -> bytes:
        """The accepted output's bytes: stored on-chain, or (digest-only requests) from the
        RequestSettled event, checked against the accepted digest."""
        result = self.contracts.result(request_id)
        if result.output or result.output_digest == bytes(32):
            return result.output
        for log in self.contracts.logs("hub", "RequestSettled", from_block, requestId=request_id):
            output = bytes(log.args.output)
            if keccak(output) == result.output_digest:
                return output
        raise VerinferError(
            f"request {request_id} kept only its output digest 0x{result.output_digest.hex()} and no "
            "settlement event carries matching bytes"
        )

    def settlement(self, request_id: int, *, from_block: int | None = None) -> Settlement:
        """The on-chain record with the transactions that created, committed, revealed and settled it."""
        onchain = self.contracts.request(request_id)
        if onchain is None:
            raise VerinferError(f"request {request_id} does not exist on this hub")
        result = self.contracts.result(request_id)

        def txs(event: str, contract: str = "consensus") -> tuple[bytes, ...]:
            logs = self.contracts.logs(contract, event, from_block, requestId=request_id)
            return tuple(bytes(log.transactionHash) for log in logs)

        mode = self.contracts.mode_name(onchain.mode)
        created, settled = txs("RequestCreated", "hub"), txs("RequestSettled", "hub")
        drawn = txs("CommitteeDrawn", mode)
        consensus = onchain.mode == MODE_CONSENSUS
        return Settlement(
            request_id=request_id,
            status=onchain.status,
            model_id=onchain.model_id,
            version=onchain.version,
            k=onchain.k,
            committee=self.contracts.committee(request_id, onchain.mode),
            agreeing=result.agreeing,
            output_digest=result.output_digest,
            error_code=result.error_code,
            settled_block=result.settled_block,
            request_tx=created[0] if created else None,
            draw_tx=drawn[0] if drawn else None,
            commit_txs=txs("Committed") if consensus else (),
            reveal_txs=txs("Revealed") if consensus else (),
            settle_tx=settled[0] if settled else None,
        )


def _progress(onchain: OnchainRequest) -> str:
    """Where a pending request stands, for a timeout's message."""
    if onchain.mode == MODE_OPTIMISTIC:
        if not onchain.committed_mask:
            return f"not posted yet; the post window closes at block {onchain.commit_deadline}"
        return f"posted; final after block {onchain.reveal_deadline} unless challenged"
    return (
        f"committed {bin(onchain.committed_mask).count('1')}/{onchain.k}, "
        f"revealed {bin(onchain.revealed_mask).count('1')}/{onchain.k}"
    )


def _ending(settlement: Settlement) -> str:
    rid = settlement.request_id
    if settlement.status == Status.FAILED:
        return f"request {rid} failed: the committee agreed the model cannot run on it ({settlement.error})"
    if settlement.status == Status.DISPUTED:
        return f"request {rid} disputed: no output reached a quorum of {settlement.k}; the fee was refunded"
    return f"request {rid} expired: too few operators answered in time; the fee was refunded"
