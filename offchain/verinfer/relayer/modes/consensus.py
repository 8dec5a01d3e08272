"""Consensus mode: commit `keccak256(abi.encode(requestId, operator, digest, salt))`, reveal once the
commit window has done its work, finalize when nobody else settles."""

from collections.abc import Sequence
from typing import Any

from web3.contract import Contract

from verinfer.chain.contracts import OnchainRequest
from verinfer.chain.txmanager import TxOutcome, TxRejected
from verinfer.models.codec import commitment
from verinfer.relayer.journal import RequestRow, State
from verinfer.relayer.modes import StrategyContext

# Extra gas a reveal or finalize may need when it turns out to settle the request (on top of
# tx.settle_reserve): the hub's reserve after a callback, a fee credit per member (a fresh storage slot
# at worst) and a slash per penalized member (silent, withheld or dissenting). A slash also writes the
# operator's epoch-history cells in every pool it is in: `make bench` measured 284k for an operator in
# two pools (150k before epochs).
CALLBACK_RESERVE = 15_000
CREDIT_RESERVE = 25_000
SLASH_RESERVE = 300_000


class ConsensusStrategy:
    """Commit, reveal and finalize for the requests this operator is a member of."""

    def __init__(self, ctx: StrategyContext) -> None:
        self.ctx = ctx
        self._settle_checked: dict[int, int] = {}  # digest-only request -> head at its last canFinalize

    # ------------------------------------------------------------ events

    @property
    def contract(self) -> Contract:
        return self.ctx.contracts.consensus

    def event_names(self) -> tuple[str, ...]:
        return ("Committed",)

    def round_deadlines(self, request_id: int, deadline: int) -> tuple[int, int]:
        """Commits close at the round's own commit deadline (its windows are fixed when it opens)."""
        round_ = self.ctx.contracts.view("consensus", "getRound", request_id)
        fields = self.ctx.contracts.fields("consensus", "getRound", round_)
        return int(fields["commitDeadline"]), deadline

    def watches(self, row: RequestRow) -> bool:
        return False

    def on_event(self, name: str, args: Any) -> None:
        if name == "Committed":
            self._on_committed(int(args["requestId"]), str(args["operator"]))

    def _on_committed(self, request_id: int, operator: str) -> None:
        row = self.ctx.journal.get(request_id)
        if row is None or operator not in row.committee:
            return
        mask = row.committed_mask | (1 << row.committee.index(operator))
        if mask != row.committed_mask:
            self.ctx.journal.update(request_id, committed_mask=mask)

    # ------------------------------------------------------------ acting

    def execution_deadline(self, row: RequestRow) -> int:
        return row.commit_deadline

    def act(self, rows: list[RequestRow], head: int) -> None:
        commits: list[RequestRow] = []
        reveals: list[RequestRow] = []
        nxt = head + 1  # the block a transaction sent now lands in, at the earliest
        for row in rows:
            if row.state == State.EXECUTED:
                if nxt <= row.commit_deadline:
                    commits.append(row)
                else:
                    self.ctx.miss(row, "commit window closed")
            elif row.state == State.COMMITTED:
                full = row.committed_mask == (1 << row.k) - 1
                if (full or nxt > row.commit_deadline) and nxt <= row.reveal_deadline:
                    reveals.append(row)
                elif nxt > row.reveal_deadline:
                    self.ctx.miss(row, "reveal window closed")
            elif row.state == State.REORGED and nxt > row.reveal_deadline:
                self.ctx.miss(row, "not seen again after a reorg")
            if (
                row.status is None
                and row.member >= 0
                and (self._finalizable(row, nxt) or self._awaits_output(row, head))
            ):
                self._finalize(row)
        self._send_batches("commit", commits)
        self._send_batches("reveal", reveals)

    def _finalizable(self, row: RequestRow, nxt: int) -> bool:
        # Members take turns a block apart so they do not all pay for the same finalize.
        stagger = row.member
        if nxt > row.reveal_deadline + stagger:
            return True
        return row.committed_mask == 0 and row.state != State.EXECUTED and nxt > row.commit_deadline + stagger

    def _awaits_output(self, row: RequestRow, head: int) -> bool:
        """A digest-only request this operator revealed that every committed member has revealed but
        that did not settle: the last reveal did not carry the accepted output, so the hub waits for
        its bytes (`finalizeWithOutput`). Asked once per block."""
        if not row.digest_only or row.state != State.REVEALED or row.output is None:
            return False
        if self._settle_checked.get(row.request_id) == head:
            return False
        self._settle_checked[row.request_id] = head
        return bool(self.ctx.contracts.view("consensus", "canFinalize", row.request_id))

    def _send_batches(self, kind: str, rows: Sequence[RequestRow]) -> None:
        size = self.ctx.config.tx.max_batch
        for start in range(0, len(rows), size):
            self._send_or_split(kind, list(rows[start : start + size]))

    def _send_or_split(self, kind: str, rows: list[RequestRow]) -> None:
        """Sends `rows` in one transaction; a rejected batch is retried item by item (batches are
        all-or-nothing, so one bad item must not hold up the rest)."""
        try:
            self._send(kind, rows)
        except TxRejected as exc:
            if len(rows) > 1:
                for row in rows:
                    self._send_or_split(kind, [row])
                return
            extra = {"request_id": rows[0].request_id, "error": str(exc)}
            self.ctx.log.warning(f"{kind} rejected", extra=extra)
            self.ctx.reconcile(rows[0])

    def _send(self, kind: str, rows: list[RequestRow]) -> None:
        ctx = self.ctx
        ids = [r.request_id for r in rows]
        if kind == "commit":
            columns: list[list[Any]] = [
                ids,
                [commitment(r.request_id, ctx.address, r.digest or b"", r.salt or b"") for r in rows],
            ]
            extra, state = 0, State.COMMIT_SENT
        else:
            columns = [ids, [r.output or b"" for r in rows], [r.salt or b"" for r in rows]]
            extra, state = sum(self._settle_gas(r, "reveal") for r in rows), State.REVEAL_SENT
        # One item uses commit/reveal, several the batch variant with the same arguments as arrays.
        single = len(rows) == 1
        data = ctx.contracts.calldata(
            "consensus", kind if single else f"{kind}Many", *([c[0] for c in columns] if single else columns)
        )
        tx_hash = ctx.txm.send(
            ctx.contracts.consensus.address, data, kind=kind, request_ids=ids, extra_gas=extra
        )
        with ctx.journal.transaction():
            for row in rows:
                ctx.journal.update(row.request_id, state, detail=tx_hash.hex())
        ctx.log.info(f"{kind} sent", extra={"request_ids": ids, "tx": tx_hash.hex()})

    def _settle_gas(self, row: RequestRow, kind: str = "reveal") -> int:
        """Gas to add to a reveal's or finalize's estimate in case it turns out to settle: a base, a fee
        credit per member, a slash per member that may be penalized, and the callback's limit.

        A settling reveal is the last outstanding one: it slashes the members that never committed.
        A dissenter that revealed before the estimate is in the estimate already; one that reveals
        between the estimate and inclusion can make this reveal run out of gas, which is reconciled
        and sent again (reserving a slash for every possible dissenter made every reveal reserve 300k
        more and cut sustained throughput by two thirds in `make bench`). A finalize may also find
        committed members that withheld their reveals, so every member but this one may be penalized.

        Reserving no more than settling can use matters under load: a transaction only enters a block
        while its gas limit fits in the gas the block has left, so a batch with an oversized limit
        waits behind smaller transactions."""
        committed = bin(row.committed_mask).count("1")
        if kind == "reveal":
            penalized = row.k - committed
        else:
            penalized = row.k - 1 if row.state == State.REVEALED else row.k
        return (
            self.ctx.config.tx.settle_reserve
            + row.k * CREDIT_RESERVE
            + penalized * SLASH_RESERVE
            + row.callback_gas * 64 // 63
            + CALLBACK_RESERVE
        )

    def _finalize(self, row: RequestRow) -> None:
        """Settles the request. A digest-only request is finalized with this operator's output, which
        the hub needs when the accepted output's bytes are not at hand; if that reverts (this output is
        not the accepted one) someone else supplies it."""
        ctx = self.ctx
        if row.digest_only and row.output is not None:
            data = ctx.contracts.calldata("consensus", "finalizeWithOutput", row.request_id, row.output)
        else:
            data = ctx.contracts.calldata("consensus", "finalize", row.request_id)
        try:
            ctx.txm.send(
                ctx.contracts.consensus.address,
                data,
                kind="finalize",
                request_ids=[row.request_id],
                extra_gas=self._settle_gas(row, "finalize"),
            )
        except TxRejected as exc:
            error = ctx.decoder.name(exc.revert_data) if exc.revert_data else None
            ctx.log.debug(
                "finalize not possible", extra={"request_id": row.request_id, "error": error or str(exc)}
            )
            ctx.reconcile(row)

    # ------------------------------------------------------------ outcomes and reconciliation

    def on_outcome(self, outcome: TxOutcome) -> bool:
        if not (outcome.mined and outcome.success and outcome.kind in ("commit", "reveal")):
            return False
        ctx = self.ctx
        state = State.COMMITTED if outcome.kind == "commit" else State.REVEALED
        counter = ctx.metrics.committed if outcome.kind == "commit" else ctx.metrics.revealed
        for request_id in outcome.request_ids:
            counter.inc()
            row = ctx.journal.get(request_id)
            if row is None or row.state.terminal:
                continue  # settled already: the settlement event came first
            mask = row.committed_mask | (1 << row.member)
            ctx.journal.update(request_id, state, detail=outcome.hash.hex(), committed_mask=mask)
            ctx.observe(row, outcome.kind)
        return True

    def reconcile(self, row: RequestRow, onchain: OnchainRequest) -> None:
        bit = 1 << row.member
        mask = onchain.committed_mask
        if row.member < 0:
            state = row.state
        elif onchain.revealed_mask & bit:
            state = State.REVEALED
        elif mask & bit:
            state = State.COMMITTED
        elif row.output is not None:
            state = State.EXECUTED
        else:
            state = State.SEEN
        if row.state.terminal:  # refused or missed: keep it, only watch for settlement
            self.ctx.journal.update(row.request_id, committed_mask=mask)
            return
        if state != row.state or mask != row.committed_mask:
            self.ctx.journal.update(
                row.request_id,
                state if state != row.state else None,
                detail="reconciled",
                committed_mask=mask,
            )

    def forget(self, request_id: int) -> None:
        """The request settled: drop what was kept about it."""
        self._settle_checked.pop(request_id, None)
