"""The relayer service: the pipeline every mode shares (follow the chain, learn committees, execute,
journal every step, track transactions); what a mode sends is its strategy's (`verinfer.relayer.modes`)."""

import logging
import os
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3.exceptions import ContractLogicError
from web3.types import EventData, LogReceipt

from verinfer.chain.attestations import Attestation, Domain
from verinfer.chain.contracts import (
    MODE_ATTESTED,
    MODE_CONSENSUS,
    MODE_OPTIMISTIC,
    Contracts,
    Fault,
    ModelVersion,
    OnchainRequest,
    Status,
)
from verinfer.chain.deployment import Deployment
from verinfer.chain.follower import LogFollower, Reorg
from verinfer.chain.keys import DEV_CHAIN_IDS
from verinfer.chain.reverts import RevertDecoder
from verinfer.chain.rpc import Rpc, RpcUnavailable
from verinfer.chain.txmanager import TxManager, TxOutcome
from verinfer.models.artifacts import ArtifactMismatch, ArtifactStore, ArtifactUnavailable
from verinfer.models.codec import (
    CodecError,
    ErrorCode,
    Tensor,
    decode_tensors,
    encode_tensors,
    error_code_of,
    error_output,
)
from verinfer.models.execution import NO_CLASS, ExecutionClass
from verinfer.models.inputs import InputResolver
from verinfer.models.runtime import Execution, ModelRuntime
from verinfer.relayer.config import RelayerConfig, split_listen
from verinfer.relayer.journal import Journal, RequestRow, State
from verinfer.relayer.metrics import Heartbeat, Metrics, MetricsServer
from verinfer.relayer.modes import ModeStrategy, StrategyContext
from verinfer.relayer.modes.attested import AttestedStrategy
from verinfer.relayer.modes.consensus import ConsensusStrategy
from verinfer.relayer.modes.optimistic import OptimisticStrategy, Watch
from verinfer.relayer.peers import PeerConfig, PeerServer

log = logging.getLogger("verinfer.relayer")

RETRY_FETCH_AFTER = 2.0
# Seconds between reads of the pools this operator is in (a request for a model not among them
# triggers a read at most once a second: a pool joined moments ago is drawn from the next epoch).
MODELS_REFRESH = 15.0
MODELS_REFRESH_MIN = 1.0


class SetupError(RuntimeError):
    """The relayer cannot start: one line saying why."""


@dataclass
class _Job:
    input_hash: bytes
    future: "Future[Execution]"


class Relayer:
    """One operator's relayer. `run()` blocks until `stop()`; `tick()` does one round of work."""

    def __init__(
        self,
        config: RelayerConfig,
        account: LocalAccount,
        deployment: Deployment,
        rpc: Rpc,
        execution: ExecutionClass,
    ) -> None:
        self.config = config
        self.execution = execution  # what this machine computes: runtime, version, CPU class, settings
        self.account = account
        self.address = str(account.address)
        self.metrics = Metrics()
        self.heartbeat = Heartbeat(stale_after=max(10.0, 20 * config.chain.poll_interval))
        self.rpc = rpc
        self.contracts = Contracts(rpc, deployment)
        self.decoder = RevertDecoder(c.abi for c in deployment.contracts.values())
        self.chain_id = rpc.chain_id()
        if self.chain_id != deployment.chain_id:
            raise SetupError(
                f"{rpc.endpoint} is chain {self.chain_id}; the deployment is on {deployment.chain_id}"
            )
        if config.testing.lie and self.chain_id not in DEV_CHAIN_IDS:
            raise SetupError(f"testing.lie is refused on chain {self.chain_id}: dev chains only")
        self._check_classes()
        self.journal = Journal(config.journal.path)
        self.journal.bind(
            {"operator": self.address, "chain_id": str(self.chain_id), "hub": self.contracts.hub.address}
        )
        self.follower = LogFollower(
            rpc,
            self.journal,
            addresses=[self.contracts.hub.address],
            start_block=deployment.deploy_block
            if config.chain.start_block is None
            else config.chain.start_block,
            confirmations=config.chain.confirmations,
            chunk=config.chain.log_chunk,
            window=config.chain.reorg_window,
        )
        self.txm = TxManager(rpc, account, self.journal, self.chain_id, config.tx, self._tx_event)
        store = ArtifactStore(
            config.runtime.cache_dir,
            fetch_timeout=config.runtime.fetch_timeout,
            max_bytes=config.runtime.max_artifact_mb << 20,
        )
        inputs = InputResolver(wait=config.runtime.input_wait, max_bytes=config.runtime.max_input_mb << 20)
        self.runtime = ModelRuntime(
            store, timeout=config.runtime.timeout, max_sessions=config.runtime.max_sessions, inputs=inputs
        )
        self._pool = ThreadPoolExecutor(config.runtime.workers, thread_name_prefix="inference")
        self._jobs: dict[int, _Job] = {}
        self._retry_at: dict[int, float] = {}
        self._versions: dict[tuple[bytes, int], ModelVersion] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._server: MetricsServer | None = None
        self._head = 0
        self._epoch_blocks = int(self.contracts.view("staking", "epochBlocks"))
        self._models: set[bytes] = set()
        self._models_read = -MODELS_REFRESH
        self._left: dict[bytes, int] = {}  # pools left -> head block when noticed
        context = StrategyContext(
            address=self.address,
            config=config,
            contracts=self.contracts,
            journal=self.journal,
            txm=self.txm,
            metrics=self.metrics,
            decoder=self.decoder,
            log=log,
            miss=self._miss,
            reconcile=self._reconcile,
            observe=self._observe,
        )
        # The modes this relayer runs, by mode bit; requests in any other mode are not journaled.
        self.domain = Domain(self.chain_id, self.contracts.attested.address)
        self.attested = AttestedStrategy(
            context,
            account,
            self.domain,
            PeerConfig(timeout=config.peers.timeout, full_wait=config.peers.full_wait),
            lambda member: str(self.contracts.view("staking", "endpointOf", member)),
        )
        self.modes: dict[int, ModeStrategy] = {
            MODE_CONSENSUS: ConsensusStrategy(context),
            MODE_ATTESTED: self.attested,
            MODE_OPTIMISTIC: OptimisticStrategy(context, self._watch()),
        }
        self._peer_server: PeerServer | None = None
        hub = self.contracts.hub
        self._events: dict[tuple[str, bytes], tuple[Any, ModeStrategy | None]] = {
            (hub.address, bytes(HexBytes(hub.events[name].topic))): (hub.events[name], None)
            for name in ("RequestCreated", "RequestSettled", "MemberPenalized")
        }
        for strategy in self.modes.values():
            contract = strategy.contract
            self.follower.addresses.append(contract.address)
            for name in ("CommitteeDrawn", *strategy.event_names()):
                event = contract.events[name]
                self._events[(contract.address, bytes(HexBytes(event.topic)))] = (event, strategy)
        rpc.on_error = self._rpc_error

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Serves metrics, resumes journaled work."""
        if self.config.metrics.listen:
            host, port = split_listen(self.config.metrics.listen)
            self._server = MetricsServer(self.metrics, host, port, self._health)
            self._server.start()
            self.journal.set_meta("metrics", self._server.address)
        if self.config.peers.listen:
            self._serve_peers()
        self._handle_outcomes(self.txm.start())
        self._reconcile_idle(self.journal.active())
        log.info(
            "relayer started",
            extra={
                "operator": self.address,
                "chain_id": self.chain_id,
                "rpc": self.rpc.endpoint,
                "hub": self.contracts.hub.address,
                "execution_class": str(self.execution),
                "checkpoint": self.follower.position(),
                "metrics": self._server.address if self._server else None,
                "peers": self._peer_server.url if self._peer_server else None,
                "resumed": len(self.journal.active()),
            },
        )

    def run(self) -> None:
        """Ticks until stop(); RPC outages back off and retry without losing anything."""
        self.start()
        delay = self.config.chain.poll_interval
        while not self._stop.is_set():
            try:
                self.tick()
                self.heartbeat.beat()
                delay = self.config.chain.poll_interval
            except RpcUnavailable as exc:
                self.heartbeat.last_error = str(exc)
                self.metrics.outages.inc()
                log.warning("rpc unavailable, backing off", extra={"error": str(exc), "retry_in": delay})
                delay = min(delay * 2, 10.0)
            except Exception as exc:  # a bug or an odd node answer must not take the operator offline
                self.heartbeat.last_error = f"{type(exc).__name__}: {exc}"
                self.metrics.round_errors.inc()
                log.exception("round failed, retrying")
                delay = min(delay * 2, 10.0)
            self._wake.wait(delay)
            self._wake.clear()
        self.shutdown()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def shutdown(self) -> None:
        """Lets running inferences finish and journals their results; pending transactions stay journaled."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        try:
            self._collect()
        except Exception:  # the chain may be gone; what finished is journaled, the rest runs again on restart
            log.exception("could not journal in-flight work at shutdown")
        if self._server is not None:
            self._server.stop()
        if self._peer_server is not None:
            self._peer_server.stop()
        self.attested.close()
        log.info("relayer stopped", extra={"in_flight": len(self.journal.active())})
        self.journal.close()

    def _serve_peers(self) -> None:
        """Serves this operator's attestations to its committee peers and takes theirs; publishes where
        (once, when what the chain says differs)."""
        host, port = split_listen(self.config.peers.listen)

        def committee_of(request_id: int) -> tuple[str, ...] | None:
            row = self.journal.get(request_id)
            if row is None or row.mode != MODE_ATTESTED or not row.committee:
                return None
            return row.committee

        self._peer_server = PeerServer(
            self.domain,
            host,
            port,
            committee_of,
            self._take_attestation,
            self.journal.attestations,
            self.attested.shared_output,
        )
        self._peer_server.start()
        url = self.config.peers.url or self._peer_server.url
        self.journal.set_meta("peers", url)
        published = str(self.contracts.view("staking", "endpointOf", self.address))
        if self.config.peers.publish and published != url:
            data = self.contracts.calldata("staking", "setEndpoint", url)
            self.txm.send(self.contracts.staking.address, data, kind="endpoint", request_ids=[])
            log.info("publishing peer endpoint", extra={"url": url, "was": published or None})

    def _take_attestation(self, attestation: Attestation) -> None:
        """A peer's attestation that passed `admit` (committee member, its own signature)."""
        self.journal.add_attestation(attestation, own=False)
        self._wake.set()  # a quorum may be complete now: act without waiting for the next poll

    # ------------------------------------------------------------ one round

    def tick(self) -> None:
        for _ in range(16):  # catch up in chunks, but keep acting while far behind
            batch = self.follower.poll()
            self._head = batch.head
            if batch.reorg is not None:
                self._on_reorg(batch.reorg)
            self._handle_logs(batch.logs)
            self.follower.commit(batch)
            if batch.reorg is None and (
                not batch.to_hash or batch.to_block >= batch.head - self.config.chain.confirmations
            ):
                break
        self._collect()
        self._handle_outcomes(self.txm.poll())
        self._act(self._head)
        self.metrics.head.set(self._head)
        self.metrics.checkpoint.set(self.follower.position())
        self.metrics.inflight.set(len(self._jobs))

    # ------------------------------------------------------------ events

    def _handle_logs(self, logs: Iterable[LogReceipt]) -> None:
        for entry in logs:
            topic = bytes(entry["topics"][0]) if entry["topics"] else b""
            found = self._events.get((to_checksum_address(entry["address"]), topic))
            if found is None:
                continue
            event, strategy = found
            data: EventData = event().process_log(entry)
            name, args = data["event"], data["args"]
            if name == "RequestCreated":
                self._on_request(args, int(entry["blockNumber"]))
            elif name == "CommitteeDrawn":
                self._on_drawn(int(args["requestId"]), tuple(str(a) for a in args["committee"]))
            elif strategy is not None:
                strategy.on_event(name, args)
            elif name == "RequestSettled":
                self._on_settled(int(args["requestId"]), Status(args["status"]), int(args["errorCode"]))
            elif name == "MemberPenalized" and str(args["operator"]) == self.address:
                self.metrics.slashed.inc()
                self.metrics.slashed_tokens.inc(int(args["amount"]))
                log.warning(
                    "penalized",
                    extra={
                        "request_id": int(args["requestId"]),
                        "fault": Fault(args["fault"]).name.lower(),
                        "amount": args["amount"],
                    },
                )

    def _on_request(self, args: Any, block: int) -> None:
        """Journals a request for a model this operator serves; its committee is learnt once the seed
        block exists (`_learn_committee`)."""
        model_id = bytes(args["modelId"])
        if not self._serves(model_id):
            return
        request_id = int(args["requestId"])
        mode = int(args["mode"])
        strategy = self.modes.get(mode)
        if strategy is None:
            log.debug(
                "request in a mode this relayer does not run", extra={"request_id": request_id, "mode": mode}
            )
            return
        commit_deadline, reveal_deadline = strategy.round_deadlines(request_id, int(args["deadline"]))
        now = time.time()
        row = RequestRow(
            request_id=request_id,
            state=State.AWAITING_DRAW,
            model_id=model_id,
            version=int(args["version"]),
            input=bytes(args["input"]),
            input_hash=keccak(bytes(args["input"])),
            k=int(args["k"]),
            committee=(),
            member=-1,
            created_block=block,
            seed_block=int(args["seedBlock"]),
            commit_deadline=commit_deadline,
            reveal_deadline=reveal_deadline,
            callback_gas=int(args["callbackGasLimit"]),
            digest_only=bool(args["digestOnly"]),
            mode=mode,
            seen_at=now,
            updated_at=now,
        )
        known = self.journal.get(request_id)
        if known is None:
            self.journal.add_request(row)
            log.debug("request for a served model", extra={"request_id": request_id, "seed": row.seed_block})
            return
        same = (known.model_id, known.version, known.input_hash, known.k, known.digest_only) == (
            row.model_id,
            row.version,
            row.input_hash,
            row.k,
            row.digest_only,
        )
        if same:
            if known.state == State.REORGED:
                # The same request in a new block: a new seed, so maybe another committee.
                self.journal.update(
                    request_id,
                    State.AWAITING_DRAW,
                    detail="seen again",
                    created_block=block,
                    seed_block=row.seed_block,
                    commit_deadline=row.commit_deadline,
                    reveal_deadline=row.reveal_deadline,
                    callback_gas=row.callback_gas,
                    committee=(),
                    member=-1,
                    committed_mask=0,
                )
            return
        log.warning("request changed by a reorg, starting again", extra={"request_id": request_id})
        self._jobs.pop(request_id, None)
        self.journal.replace_request(row, "changed by reorg")

    def _serves(self, model_id: bytes) -> bool:
        """Whether this operator can be drawn for the model: in its pool now, or left it so recently
        that draws may still read the pool from before (pools reach draws an epoch late)."""
        since = time.monotonic() - self._models_read
        if since >= MODELS_REFRESH or (model_id not in self._models and since >= MODELS_REFRESH_MIN):
            registrations = self.contracts.registrations(self.address)
            for model, class_id in registrations:
                if class_id not in (NO_CLASS, self.execution.class_id):  # joined since this relayer started
                    log.error(
                        "registered for another execution class: requests drawn from it will be refused",
                        extra={"model": "0x" + model.hex(), "class_id": "0x" + class_id.hex()},
                    )
            current = {model for model, _ in registrations}
            for gone in self._models - current:
                self._left[gone] = self._head
            horizon = 2 * self._epoch_blocks
            self._left = {
                m: b for m, b in self._left.items() if m not in current and self._head < b + horizon
            }
            self._models, self._models_read = current, time.monotonic()
        return model_id in self._models or model_id in self._left

    def _learn_committee(self, row: RequestRow) -> None:
        """Asks the hub for the committee once the seed block is confirmed; a member goes on to execute,
        anyone else marks the request as not its own."""
        try:
            committee = self.contracts.preview_committee(row.request_id, row.mode)
        except ContractLogicError as exc:
            data = exc.data if isinstance(exc.data, str) and exc.data.startswith("0x") else "0x"
            error = self.decoder.name(bytes.fromhex(data[2:]))
            if error == "SeedNotReady":
                return  # the node's pending block is not past the seed yet: next round
            if error in ("SeedUnavailable", "InsufficientOperators"):
                # Nobody drew while the seed was readable, or the pool shrank below k: no committee
                # will ever exist, the request can only expire (refunded, nobody penalized).
                self.journal.update(row.request_id, State.NOT_MEMBER, detail=f"no committee ({error})")
                return
            log.warning("committee unknown", extra={"request_id": row.request_id, "error": error or str(exc)})
            self._reconcile(row)
            return
        self._on_committee(row, committee, "previewed")

    def _on_drawn(self, request_id: int, committee: tuple[str, ...]) -> None:
        row = self.journal.get(request_id)
        if row is None or row.state in (State.SETTLED, State.REORGED) or committee == row.committee:
            return
        if row.state.terminal and row.state != State.NOT_MEMBER:
            return
        self._on_committee(row, committee, "drawn")

    def _on_committee(self, row: RequestRow, committee: tuple[str, ...], source: str) -> None:
        request_id = row.request_id
        self._jobs.pop(request_id, None)
        if self.address not in committee and self._watches(row):
            onchain = self.contracts.request(request_id)
            self.journal.update(
                request_id,
                State.SEEN if row.output is None else State.EXECUTED,
                detail=f"watching ({source})",
                committee=committee,
                member=-1,
                committed_mask=0,
                max_output_bytes=onchain.max_output_bytes if onchain is not None else 0,
            )
            log.info("watching a post", extra={"request_id": request_id, "poster": committee[0]})
            self._reconcile(self.journal.get(request_id) or row, onchain, committee)
            return
        if self.address not in committee:
            self.journal.update(
                request_id, State.NOT_MEMBER, detail=source, committee=committee, member=-1, committed_mask=0
            )
            log.debug("not on the committee", extra={"request_id": request_id})
            return
        member = committee.index(self.address)
        onchain = self.contracts.request(request_id)
        self.journal.update(
            request_id,
            State.SEEN if row.output is None else State.EXECUTED,
            detail=f"member {member} ({source})",
            committee=committee,
            member=member,
            committed_mask=0,
            max_output_bytes=onchain.max_output_bytes if onchain is not None else 0,
        )
        self.metrics.requests_seen.inc()
        log.info("request seen", extra={"request_id": request_id, "member": member, "k": row.k})
        self._reconcile(self.journal.get(request_id) or row, onchain, committee)

    def _watches(self, row: RequestRow) -> bool:
        """Whether to check another operator's output for this request: its mode samples it, and this
        machine computes the version's bits (a watcher never challenges what it cannot reproduce)."""
        if not self.modes[row.mode].watches(row):
            return False
        try:
            version = self._version(row.model_id, row.version)
        except (CodecError, ValueError):
            return False
        return version.class_id in (NO_CLASS, self.execution.class_id)

    def _on_settled(self, request_id: int, status: Status, error_code: int) -> None:
        row = self.journal.get(request_id)
        if row is None or row.status is not None or row.state == State.NOT_MEMBER:
            return
        self._jobs.pop(request_id, None)
        self.modes[row.mode].forget(request_id)
        if row.state == State.AWAITING_DRAW:
            # Settled before this relayer knew the committee: was it ours?
            if self.address not in self.contracts.committee(request_id, row.mode):
                self.journal.update(request_id, State.NOT_MEMBER, detail=f"settled {status.name.lower()}")
                return
            row.state = State.MISSED
            self.journal.update(request_id, State.MISSED, detail="settled before this relayer acted")
            self.metrics.missed.inc()
        state = State.SETTLED if not row.state.terminal else row.state
        self.journal.update(request_id, state, detail=status.name.lower(), status=int(status))
        self.metrics.finalized.labels(status.name.lower()).inc()
        self.metrics.latency.labels("total").observe(time.time() - row.seen_at)
        self._observe(row, "settle")
        log.info(
            "request settled",
            extra={"request_id": request_id, "status": status.name, "error_code": error_code},
        )

    def _on_reorg(self, reorg: Reorg) -> None:
        self.metrics.reorgs.inc()
        log.warning(
            "reorg detected", extra={"fork_block": reorg.fork_block, "old_checkpoint": reorg.old_checkpoint}
        )
        for row in self.journal.since_block(reorg.fork_block):
            self._jobs.pop(row.request_id, None)
            self.journal.update(
                row.request_id, State.REORGED, detail=f"fork at {reorg.fork_block}", status=None
            )
        # Requests still on the chain whose seed block may have changed: learn the committee again.
        for row in self.journal.seeded_since(reorg.fork_block):
            self._jobs.pop(row.request_id, None)
            self.journal.update(
                row.request_id,
                State.AWAITING_DRAW,
                detail=f"seed at or after the fork at {reorg.fork_block}",
                committee=(),
                member=-1,
                committed_mask=0,
                status=None,
            )
        self._handle_outcomes(self.txm.on_reorg(reorg.fork_block))
        self._reconcile_idle(self.journal.active())

    # ------------------------------------------------------------ execution

    def _schedule(self, row: RequestRow) -> None:
        if row.request_id in self._jobs or row.output is not None:
            return
        try:
            version = self._version(row.model_id, row.version)
        except (CodecError, ValueError) as exc:
            self._refuse(row, f"unusable model version: {exc}")
            return
        if version.class_id not in (NO_CLASS, self.execution.class_id):
            # Drawn from a pool this operator joined after the relayer started: not this machine's bits.
            self._refuse(
                row,
                f"version {version.version} is of class {version.execution_class}, "
                f"not {self.execution.machine}",
            )
            return
        future = self._pool.submit(self.runtime.run, version, row.input)
        future.add_done_callback(lambda _: self._wake.set())
        self._jobs[row.request_id] = _Job(row.input_hash, future)

    def _watch(self) -> Watch | None:
        """`[watch]` against the chain: model names resolved to ids, the budget in base units."""
        w = self.config.watch
        if not w.enabled:
            return None
        models = None if "*" in w.models else frozenset(self._model_ref(ref) for ref in w.models)
        decimals = int(self.contracts.view("token", "decimals"))
        budget = int(Decimal(w.bond_budget) * 10**decimals)
        return Watch(models, w.sample_rate, budget)

    def _model_ref(self, ref: str) -> bytes:
        """A model name or 0x id as the id of a registered model."""
        if ref.startswith("0x") and len(ref) == 66:
            try:
                model_id = bytes.fromhex(ref[2:])
            except ValueError:
                raise SetupError(f"watch.models: {ref!r} is not a model id (0x and 64 hex digits)") from None
        else:
            model_id = self.contracts.model_id_of(ref)
        if self.contracts.model(model_id) is None:
            raise SetupError(f"watch.models: no model {ref!r} in the registry")
        return model_id

    def _check_classes(self) -> None:
        """Refuses to start when the operator is registered for an execution class this machine is not:
        it would be drawn for versions whose bits it cannot compute."""
        for model_id, class_id in self.contracts.registrations(self.address):
            if class_id not in (NO_CLASS, self.execution.class_id):
                raise SetupError(
                    f"{self.address} is registered for model 0x{model_id.hex()} in execution class "
                    f"0x{class_id.hex()}, but this machine is {self.execution.machine}: deregister it "
                    f"(verinfer operator deregister MODEL --class 0x{class_id.hex()}) or run this operator "
                    "on a machine of that class"
                )

    def _version(self, model_id: bytes, version: int) -> ModelVersion:
        key = (model_id, version)
        if key not in self._versions:
            self._versions[key] = self.contracts.model_version(model_id, version)
        return self._versions[key]

    def _collect(self) -> None:
        for request_id, job in list(self._jobs.items()):
            if not job.future.done():
                continue
            del self._jobs[request_id]
            row = self.journal.get(request_id)
            if row is None or row.input_hash != job.input_hash or row.state != State.SEEN:
                continue  # replaced by a reorg or settled meanwhile
            try:
                execution = job.future.result()
            except ArtifactMismatch as exc:
                self._refuse(row, f"artifact refused: {exc}")
                continue
            except ArtifactUnavailable as exc:
                log.warning(
                    "artifact unavailable, will retry", extra={"request_id": request_id, "error": str(exc)}
                )
                self._retry_at[request_id] = time.monotonic() + RETRY_FETCH_AFTER
                continue
            except Exception as exc:
                # A verified artifact that ONNX Runtime cannot load fails the same way everywhere.
                log.error("model failed to load", extra={"request_id": request_id, "error": str(exc)[:300]})
                execution = Execution(error_output(ErrorCode.RUNTIME), int(ErrorCode.RUNTIME), 0.0)
            output, error_code = execution.output, execution.error_code
            if row.max_output_bytes and len(output) > row.max_output_bytes:
                # A reveal that long would revert: every honest member commits the canonical error.
                code = ErrorCode.OUTPUT_TOO_LARGE
                output, error_code = error_output(code), int(code)
            output = self._lie(output) if self.config.testing.lie else output
            salt = os.urandom(32)
            digest = keccak(output)
            # Salt and digest are durable before any commit can be sent.
            self.journal.update(
                request_id,
                State.EXECUTED,
                output=output,
                digest=digest,
                salt=salt,
                error_code=error_code,
                detail=f"{execution.seconds:.4f}s",
            )
            self.metrics.executed.labels("error" if error_code else "ok").inc()
            self.metrics.latency.labels("execute").observe(time.time() - row.seen_at)
            log.info(
                "executed",
                extra={
                    "request_id": request_id,
                    "seconds": round(execution.seconds, 4),
                    "error_code": error_code,
                },
            )

    def _refuse(self, row: RequestRow, reason: str) -> None:
        self.journal.update(row.request_id, State.REFUSED, detail=reason[:500], reason=reason[:500])
        self.metrics.refused.inc()
        log.error("request refused", extra={"request_id": row.request_id, "reason": reason})

    @staticmethod
    def _lie(output: bytes) -> bytes:
        """Test-only fault: a plausible but wrong output."""
        code = error_code_of(output)
        if code is not None:
            return error_output(code % len(ErrorCode) + 1)
        tensors = decode_tensors(output)
        first = tensors[0]
        changed = Tensor(first.name, first.shape, (first.data[0] + 1, *first.data[1:]), first.decimals)
        return encode_tensors([changed, *tensors[1:]])

    # ------------------------------------------------------------ acting on the chain

    def _act(self, head: int) -> None:
        pending = self._pending_ids()
        due: dict[int, list[RequestRow]] = {mode: [] for mode in self.modes}
        for row in self.journal.active():
            if row.request_id in pending:
                continue
            if row.state == State.AWAITING_DRAW:
                # Like logs, the seed block counts once it has the configured confirmations.
                if head - self.config.chain.confirmations >= row.seed_block:
                    self._learn_committee(row)
                continue
            strategy = self.modes[row.mode]
            if row.state == State.SEEN:
                deadline = strategy.execution_deadline(row)
                if head + 1 > deadline:
                    self._miss(
                        row, f"its round stopped taking outputs at block {deadline} before execution finished"
                    )
                elif row.request_id not in self._jobs and time.monotonic() >= self._retry_at.get(
                    row.request_id, 0
                ):
                    self._retry_at.pop(row.request_id, None)
                    self._schedule(row)
            due[row.mode].append(row)
        for mode, rows in due.items():
            self.modes[mode].act(rows, head)

    def _miss(self, row: RequestRow, reason: str) -> None:
        self._jobs.pop(row.request_id, None)
        self.journal.update(row.request_id, State.MISSED, detail=reason, reason=reason)
        self.metrics.missed.inc()
        log.warning("request missed", extra={"request_id": row.request_id, "reason": reason})

    # ------------------------------------------------------------ outcomes and reconciliation

    def _handle_outcomes(self, outcomes: Iterable[TxOutcome]) -> None:
        for outcome in outcomes:
            if any(strategy.on_outcome(outcome) for strategy in self.modes.values()):
                continue
            if not outcome.mined or not outcome.success:
                log.warning(
                    f"transaction {'reverted' if outcome.mined else outcome.state.value}",
                    extra={
                        "tx": outcome.hash.hex(),
                        "kind": outcome.kind,
                        "request_ids": list(outcome.request_ids),
                    },
                )
            self._reconcile_idle(filter(None, map(self.journal.get, outcome.request_ids)))

    def _reconcile(
        self,
        row: RequestRow,
        onchain: OnchainRequest | None = None,
        committee: tuple[str, ...] | None = None,
    ) -> None:
        """Re-derives the request's state from the chain (after a restart, a failed tx or a reorg).
        A caller that has just read the request, or learnt its committee, passes them in: each read
        is a round trip per request, and under load those round trips are what a relayer spends."""
        if row.state in (State.REORGED, State.NOT_MEMBER):
            return
        if onchain is None:
            onchain = self.contracts.request(row.request_id)
        if onchain is None or onchain.model_id != row.model_id:
            return
        if onchain.status.terminal:
            if row.status is None:
                self._on_settled(row.request_id, onchain.status, 0)
            return
        if row.state == State.AWAITING_DRAW:
            return  # `_act` learns the committee once the seed block is there
        if onchain.drawn and row.member >= 0:
            if committee is None:
                committee = self.contracts.committee(row.request_id, row.mode)
            if committee != row.committee:  # drawn from another seed than previewed (a reorg)
                self._on_committee(row, committee, "drawn differently")
                return
        self.modes[row.mode].reconcile(row, onchain)
        if (self.journal.get(row.request_id) or row).state == State.SEEN:
            self._schedule(row)

    def _pending_ids(self) -> set[int]:
        return {request_id for tx in self.txm.pending() for request_id in tx.request_ids}

    def _reconcile_idle(self, rows: Iterable[RequestRow]) -> None:
        """Reconciles the rows no transaction is still in flight for (those wait for their receipt)."""
        pending = self._pending_ids()
        for row in rows:
            if row.request_id not in pending:
                self._reconcile(row)

    # ------------------------------------------------------------ observability

    def _observe(self, row: RequestRow, stage: str) -> None:
        transitions = self.journal.transitions(row.request_id)
        if len(transitions) >= 2:
            self.metrics.latency.labels(stage).observe(transitions[-1][1] - transitions[-2][1])

    def _tx_event(self, event: str) -> None:
        self.metrics.txs.labels(event).inc()

    def _rpc_error(self, exc: BaseException) -> None:
        self.metrics.rpc_errors.inc()
        self.heartbeat.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"

    def _health(self) -> tuple[bool, dict[str, Any]]:
        return self.heartbeat.health(
            {
                "head": self._head,
                "checkpoint": self.follower.position(),
                "operator": self.address,
                "execution_class": str(self.execution),
            }
        )
