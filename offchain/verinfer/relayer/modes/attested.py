"""Attested mode: sign the output digest once, exchange signatures with the committee over HTTP, and
settle in one transaction as soon as a strict majority signed this operator's digest.

Its one signing rule: this operator never signs two output digests for one request (`sign_once`).
Peers' signatures arrive by push (the peer server) or pull (`PeerClient.pull`, at most once a block
per request); both check the signer is on the committee and the signature is theirs before anything
is journaled. Whoever first holds a quorum settles (members take turns a block apart), including
every signature it holds: signatures on another digest are slashed as dissent, members left out get
their fee with `attestLate`, which this relayer sends for itself when a settlement left it out.

For a version with a tolerance a signature on another digest is judged only with its output, which
only its signer holds. Members serve the output their own signature is on; a relayer that holds no
quorum on its own digest fetches the outputs of the other digests signed, and settles with
`settleWithOutputs` once k/2+1 members signed its digest or an output within the tolerance of its own.
A relayer whose own output differs from the accepted one but is within the tolerance, and was left
out, is paid with `attestLateWithOutput`. Signatures on other digests of such a version are never
reported as dissent after a settlement (that needs every agreeing output as well).
"""

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from web3.contract import Contract

from verinfer.chain import attestations
from verinfer.chain.attestations import Attestation, Domain
from verinfer.chain.contracts import OnchainRequest
from verinfer.chain.txmanager import TxOutcome, TxRejected
from verinfer.models.agreement import Tolerance
from verinfer.models.codec import ErrorCode, error_output, output_digest
from verinfer.relayer.journal import Journal, RequestRow, State
from verinfer.relayer.modes import StrategyContext
from verinfer.relayer.peers import PeerClient, PeerConfig

# Extra gas on top of a settle's estimate: nothing in it depends on other transactions landing first,
# so only what a callback may leave unused matters; a slash writes epoch-history cells in every pool
# of the slashed operator (see consensus mode).
SETTLE_RESERVE = 20_000
KINDS = ("settle", "attest_late", "expire_round", "equivocation", "dissent")
# The digest of INPUT_UNAVAILABLE's error output: never dissent, on either side (docs/protocol.md 4.1).
UNAVAILABLE = output_digest(error_output(ErrorCode.INPUT_UNAVAILABLE))
# What a peer's output may weigh when the request does not say (its journal row predates the field).
DEFAULT_OUTPUT_CAP = 1024 * 1024


@dataclass(frozen=True)
class Ready:
    """A round this relayer can settle now: the signatures to include and, for a tolerance version
    without an exact quorum, the other digests' outputs to show (None: plain `settle`)."""

    row: RequestRow
    signatures: list[Attestation]
    others: list[bytes] | None = None


class Equivocation(RuntimeError):
    """Signing would put this operator's key on a second output digest for one request (slashable)."""


def sign_once(
    journal: Journal, account: LocalAccount, domain: Domain, request_id: int, output_digest: bytes
) -> Attestation:
    """This operator's attestation for `request_id`: signed and journaled the first time, the journaled
    one again for the same digest (after a restart too), Equivocation for another digest.

    The check, the signature and the write are one journal transaction and the signature is returned
    only once it is durable, so neither a crash nor a second thread can leak a second signature. Any
    journaled signature by this key counts, also one a peer handed back, in case the own row was lost.
    """
    with journal.transaction():
        for held in journal.attestations(request_id):
            if held.signer != account.address:
                continue
            if held.output_digest != output_digest:
                raise Equivocation(
                    f"request {request_id}: already signed output digest 0x{held.output_digest.hex()},"
                    f" refusing to sign 0x{output_digest.hex()}"
                )
            journal.add_attestation(held, own=True)
            return held
        attestation = attestations.sign(account, domain, request_id, output_digest)
        journal.add_attestation(attestation, own=True)
        return attestation


def tally(
    held: Sequence[Attestation], committee: Sequence[str]
) -> tuple[dict[bytes, list[Attestation]], set[str]]:
    """Committee members' attestations grouped by digest, one per signer, and the signers seen on two
    digests (equivocators: their word counts for nothing, and they can be reported)."""
    members = set(committee)
    by_signer: dict[str, list[Attestation]] = defaultdict(list)
    for attestation in held:
        if attestation.signer in members:
            by_signer[attestation.signer].append(attestation)
    groups: dict[bytes, list[Attestation]] = defaultdict(list)
    equivocators = set()
    for signer, signed in by_signer.items():
        if len({a.output_digest for a in signed}) > 1:
            equivocators.add(signer)
            continue
        groups[signed[0].output_digest].append(signed[0])
    return groups, equivocators


class AttestedStrategy:
    """Sign, exchange, settle, claim a left-out fee, expire, and report equivocation."""

    def __init__(
        self,
        ctx: StrategyContext,
        account: LocalAccount,
        domain: Domain,
        peers: PeerConfig,
        endpoint_of: Callable[[str], str],
    ) -> None:
        self.ctx = ctx
        self.account = account
        self.domain = domain
        self.peers = peers
        self._endpoint_of = endpoint_of
        self._endpoints: dict[str, str] = {}
        self._io = ThreadPoolExecutor(4, thread_name_prefix="peers-io")
        self._lock = threading.Lock()
        self._in_flight: set[tuple[str, int]] = set()  # (push|pull, request id) running now
        self._pulled: dict[int, int] = {}  # request id -> head at its last pull
        self._quorum_at: dict[int, int] = {}  # request id -> head when this relayer first held a quorum
        self._quorum_since: dict[int, float] = {}  # request id -> monotonic time of that first quorum
        self._reported: set[tuple[int, str]] = set()
        self._rules: dict[tuple[bytes, int], Tolerance] = {}  # (model, version) -> agreement rule
        # Tolerance versions: request id -> digest -> (a peer's output, within the rule of this one's)
        self._outputs: dict[int, dict[bytes, tuple[bytes, bool]]] = {}
        self._asked: dict[int, int] = {}  # request id -> head at its last output fetch

    # ------------------------------------------------------------ mode

    @property
    def contract(self) -> Contract:
        return self.ctx.contracts.attested

    def event_names(self) -> tuple[str, ...]:
        return ("Attested",)

    def round_deadlines(self, request_id: int, deadline: int) -> tuple[int, int]:
        return deadline, deadline

    def execution_deadline(self, row: RequestRow) -> int:
        return row.reveal_deadline

    def watches(self, row: RequestRow) -> bool:
        return False

    def on_event(self, name: str, args: Any) -> None:
        if name == "Attested":
            request_id, digest = int(args["requestId"]), bytes(args["digest"])
            self._on_attested(request_id, digest, int(args["agreeMask"]) | int(args["dissentMask"]))

    def _on_attested(self, request_id: int, digest: bytes, counted: int) -> None:
        """After a settlement: claim this operator's fee if the submitter left its signature out, and
        prove the dissent of members whose signatures on another digest it left out."""
        row = self.ctx.journal.get(request_id)
        if row is None or row.member < 0:
            return
        groups, equivocators = tally(self.ctx.journal.attestations(request_id), row.committee)
        exact = self._rule(row).exact
        for other, signed in groups.items():
            if UNAVAILABLE in (other, digest) or not exact:
                continue  # never dissent (the requester chooses who gets an external input; a tolerance
                # version's dissent is judged on an output only its signer holds)
            for a in signed if other != digest else ():
                if not counted & (1 << row.committee.index(a.signer)) and a.signer not in equivocators:
                    data = self._calldata("reportDissent", request_id, (a.output_digest, a.signature))
                    self._send("dissent", [request_id], data)
        own = self.ctx.journal.own_attestation(request_id)
        if own is None or counted & (1 << row.member):
            return
        if own.output_digest == digest:
            self._send("attest_late", [request_id], self._calldata("attestLate", request_id, own.signature))
        elif not exact and row.output is not None and own.output_digest != UNAVAILABLE:
            # Paid if the output is within the version's tolerance of the accepted one (the node refuses
            # the transaction otherwise, and nothing is sent).
            signed_own = (own.output_digest, own.signature)
            data = self._calldata("attestLateWithOutput", request_id, signed_own, row.output)
            self._send("attest_late", [request_id], data)

    def _rule(self, row: RequestRow) -> Tolerance:
        key = (row.model_id, row.version)
        if key not in self._rules:
            self._rules[key] = self.ctx.contracts.model_version(row.model_id, row.version).tolerance
        return self._rules[key]

    def shared_output(self, request_id: int) -> bytes | None:
        """The output this operator's signature is on, for a tolerance version (what the peer server
        gives a member that needs it to settle); None for an exact version or before signing."""
        row = self.ctx.journal.get(request_id)
        if row is None or row.output is None or row.member < 0:
            return None
        own = self.ctx.journal.own_attestation(request_id)
        rule = self._rules.get((row.model_id, row.version))  # read when signing
        if own is None or rule is None or rule.exact or own.output_digest != output_digest(row.output):
            return None
        return row.output

    # ------------------------------------------------------------ acting

    def act(self, rows: list[RequestRow], head: int) -> None:
        ready: list[Ready] = []
        nxt = head + 1
        for row in rows:
            if row.member < 0 or row.status is not None:
                continue
            if row.state == State.EXECUTED:
                row = self._sign(row) or row
            if row.state == State.SIGNED and nxt <= row.reveal_deadline:
                settling = self._ready(row, head)
                if settling is not None:
                    ready.append(settling)
            elif row.state == State.REORGED and nxt > row.reveal_deadline:
                self.ctx.miss(row, "not seen again after a reorg")
            if nxt > row.reveal_deadline + row.member:
                # No quorum by the deadline: refunded, nobody penalized. Members take turns a block apart.
                self._send("expire_round", [row.request_id], self._calldata("expire", row.request_id))
        for item in ready:
            if item.others is not None:
                self._settle_with_outputs(item)
        plain = [item for item in ready if item.others is None]
        size = self.ctx.config.tx.max_batch
        for start in range(0, len(plain), size):
            self._settle(plain[start : start + size])

    def _sign(self, row: RequestRow) -> RequestRow | None:
        try:
            own = sign_once(self.ctx.journal, self.account, self.domain, row.request_id, row.digest or b"")
        except Equivocation as exc:
            self.ctx.miss(row, str(exc))
            return None
        self._rule(row)  # known before a peer asks for the output (served for tolerance versions only)
        self.ctx.journal.update(row.request_id, State.SIGNED, detail=f"0x{own.output_digest.hex()[:16]}")
        self.ctx.observe(row, "sign")
        self._background("push", row, lambda client: client.push(own, row.committee))
        return self.ctx.journal.get(row.request_id)

    def _ready(self, row: RequestRow, head: int) -> Ready | None:
        """What to settle with, once this relayer holds a quorum on its own digest (for a tolerance
        version: on its own digest or outputs within the rule of its own) and it is its turn; None
        otherwise (then it pulls what the peers hold, at most once a block)."""
        groups, equivocators = tally(self.ctx.journal.attestations(row.request_id), row.committee)
        for signer in equivocators:
            self._report(row, signer)
        agreeing = groups.get(row.digest or b"", [])
        others = None
        if len(agreeing) < row.k // 2 + 1:
            within, others = self._within(row, groups, head)
            agreeing = agreeing + within
        if len(agreeing) < row.k // 2 + 1:
            if self._pulled.get(row.request_id) != head:
                self._pulled[row.request_id] = head
                self._background(
                    "pull", row, lambda client: self._store(client.pull(row.request_id, row.committee))
                )
            return None
        first = self._quorum_at.setdefault(row.request_id, head)
        held = [a for group in groups.values() for a in group]
        # A member left out pays a transaction (attestLate) to get its fee: the rest of the committee
        # usually signs within milliseconds of the quorum, so wait briefly for it.
        since = self._quorum_since.setdefault(row.request_id, time.monotonic())
        last_block = head + 1 >= row.reveal_deadline  # no later block can settle it
        if len(held) < row.k and not last_block and time.monotonic() - since < self.peers.full_wait:
            return None
        # Members take turns a block apart, in member order among those who signed this digest.
        turn = sum(1 for a in agreeing if row.committee.index(a.signer) < row.member)
        if head < first + turn:
            return None
        return Ready(row, held, others)

    def _within(
        self, row: RequestRow, groups: dict[bytes, list[Attestation]], head: int
    ) -> tuple[list[Attestation], list[bytes] | None]:
        """For a tolerance version: the signatures on other digests whose outputs are within the rule of
        this relayer's own, and the other outputs fetched so far (all shown in a settlement: those
        outside the rule are dissent unless within an agreeing one). Fetches the missing outputs from
        their signers in the background, at most once a block. ([], None) for an exact version."""
        own = row.digest or b""
        if row.output is None or own == UNAVAILABLE or self._rule(row).exact:
            return [], None
        other = {d: signed for d, signed in groups.items() if d not in (own, UNAVAILABLE)}
        fetched = self._outputs.setdefault(row.request_id, {})
        missing = {a.signer: d for d, signed in other.items() if d not in fetched for a in signed}
        if missing and self._asked.get(row.request_id) != head:
            self._asked[row.request_id] = head
            self._background("outputs", row, lambda client: self._fetch(client, row, missing))
        within = [a for d, signed in other.items() if fetched.get(d, (b"", False))[1] for a in signed]
        return within, [fetched[d][0] for d in other if d in fetched]

    def _fetch(self, client: PeerClient, row: RequestRow, missing: dict[str, bytes]) -> None:
        """Fetches the outputs of `missing` (member -> digest) and judges each against this relayer's."""
        rule, own = self._rule(row), row.output or b""
        cap = row.max_output_bytes or DEFAULT_OUTPUT_CAP
        found = client.outputs(row.request_id, missing, cap)
        judged = {d: (output, rule.outputs_agree(own, output)) for d, output in found.items()}
        held = self._outputs.get(row.request_id)
        if held is not None:  # else settled and forgotten meanwhile
            held.update(judged)
        if judged:
            self.ctx.log.info(
                "peer outputs fetched",
                extra={"request_id": row.request_id, "within": sum(w for _, w in judged.values())},
            )

    def _settle(self, batch: list[Ready]) -> None:
        ids = [item.row.request_id for item in batch]
        signed = [self._signed(item) for item in batch]
        outputs = [item.row.output or b"" for item in batch]
        if len(batch) == 1:
            data = self._calldata("settle", ids[0], outputs[0], signed[0])
        else:
            data = self._calldata("settleMany", ids, outputs, signed)
        extra = sum(SETTLE_RESERVE + item.row.callback_gas // 63 for item in batch)
        if not self._send("settle", ids, data, extra) and len(batch) > 1:
            for item in batch:  # a batch that would revert: find the item, settle the rest
                self._settle([item])

    def _settle_with_outputs(self, item: Ready) -> None:
        row = item.row
        data = self._calldata(
            "settleWithOutputs", row.request_id, row.output or b"", self._signed(item), item.others or []
        )
        self._send("settle", [row.request_id], data, SETTLE_RESERVE + row.callback_gas // 63)

    @staticmethod
    def _signed(item: Ready) -> list[tuple[bytes, bytes]]:
        return [(a.output_digest, a.signature) for a in item.signatures]

    def _report(self, row: RequestRow, signer: str) -> None:
        key = (row.request_id, signer)
        if key in self._reported:
            return
        self._reported.add(key)
        a, b = [x for x in self.ctx.journal.attestations(row.request_id) if x.signer == signer][:2]
        data = self._calldata(
            "reportEquivocation",
            row.request_id,
            (a.output_digest, a.signature),
            (b.output_digest, b.signature),
        )
        self.ctx.log.warning("equivocation seen", extra={"request_id": row.request_id, "member": signer})
        self._send("equivocation", [row.request_id], data)

    def _send(self, kind: str, ids: list[int], data: bytes, extra_gas: int = 0) -> bool:
        """Sends unless the node says it would revert (someone else settled first: nothing is paid)."""
        try:
            tx_hash = self.ctx.txm.send(
                self.contract.address, data, kind=kind, request_ids=ids, extra_gas=extra_gas
            )
        except TxRejected as exc:
            error = self.ctx.decoder.name(exc.revert_data) if exc.revert_data else None
            self.ctx.log.debug(f"{kind} not sent", extra={"request_ids": ids, "error": error or str(exc)})
            return False
        self.ctx.log.info(f"{kind} sent", extra={"request_ids": ids, "tx": tx_hash.hex()})
        return True

    def _calldata(self, function: str, *args: Any) -> bytes:
        return self.ctx.contracts.calldata("attested", function, *args)

    # ------------------------------------------------------------ peers

    def _client(self, committee: Sequence[str]) -> PeerClient:
        for member in committee:
            if member not in self._endpoints and member != self.ctx.address:
                self._endpoints[member] = self._endpoint_of(member)
        endpoints = {m: url for m, url in self._endpoints.items() if url and m in committee}
        return PeerClient(self.domain, self.ctx.address, endpoints, self.peers)

    def _background(self, kind: str, row: RequestRow, job: Callable[[PeerClient], Any]) -> None:
        """Runs a push or pull off the main loop (a slow peer delays nothing); one of each per request."""
        key = (kind, row.request_id)
        with self._lock:
            if key in self._in_flight:
                return
            self._in_flight.add(key)
        client = self._client(row.committee)

        def run() -> None:
            try:
                job(client)
            except Exception as exc:
                self.ctx.log.warning(
                    f"peer {kind} failed", extra={"request_id": row.request_id, "error": str(exc)}
                )
            finally:
                with self._lock:
                    self._in_flight.discard(key)

        self._io.submit(run)

    def _store(self, received: Sequence[Attestation]) -> None:
        # Verified by the pull. An own signature a peer hands back is kept too: if this journal lost
        # its own row, `sign_once` still finds it and refuses to sign another digest.
        for attestation in received:
            self.ctx.journal.add_attestation(attestation, own=False)

    # ------------------------------------------------------------ outcomes

    def on_outcome(self, outcome: TxOutcome) -> bool:
        if outcome.kind not in KINDS:
            return False
        return outcome.mined and outcome.success

    def reconcile(self, row: RequestRow, onchain: OnchainRequest) -> None:
        if row.member < 0 or row.state.terminal:
            return
        own = self.ctx.journal.own_attestation(row.request_id)
        state = State.SIGNED if own is not None else State.EXECUTED if row.output is not None else State.SEEN
        if state != row.state:
            self.ctx.journal.update(row.request_id, state, detail="reconciled")

    def forget(self, request_id: int) -> None:
        self._outputs.pop(request_id, None)
        self._asked.pop(request_id, None)
        self._pulled.pop(request_id, None)
        self._quorum_at.pop(request_id, None)
        self._quorum_since.pop(request_id, None)

    def close(self) -> None:
        self._io.shutdown(wait=False, cancel_futures=True)
