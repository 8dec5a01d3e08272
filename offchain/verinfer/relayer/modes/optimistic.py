"""Optimistic mode: the drawn poster posts its output with a bond and finalizes it once the challenge
window is over; watchers re-execute a sample of the posts and challenge one they compute differently.

Poster (member 0): post within the post window (approving the bond to the mode contract first, and
claiming its hub credit into tokens when its balance is short), finalize after `challengeDeadline`,
and resolve a challenged post once its escalation has ended (a block after the challenger may have).

Watcher (member -1, `[watch]`): a request for a watched model is sampled at random when its poster is
drawn (secretly: a poster cannot tell which of its posts are checked), executed like a member's, and
compared with the `Posted` digest. Equal: nothing to do. Different: a challenge, unless this
relayer's own output is one it cannot vouch for (a timeout, a runtime failure, an input it could not
fetch), the challenge window has closed, or the bonds already locked in challenges would pass
`bond_budget`. The challenger resolves as soon as the escalation has ended. A watcher also expires
a sampled request whose poster stayed silent, so the silence is slashed before the core's own expiry
(which refunds but penalizes nobody) can end it.

Versions allowing optimistic mode are exact (the registry refuses a tolerance with it), so outputs
agree when their digests are equal.
"""

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from web3.contract import Contract

from verinfer.chain.contracts import OnchainRequest
from verinfer.chain.txmanager import TxOutcome, TxRejected
from verinfer.models.codec import ErrorCode
from verinfer.relayer.journal import RequestRow, State
from verinfer.relayer.modes import StrategyContext
from verinfer.relayer.modes.consensus import CALLBACK_RESERVE, CREDIT_RESERVE, SLASH_RESERVE

KINDS = ("post", "finalize_post", "expire_post", "challenge", "resolve", "approve", "claim")
# Own outputs a watcher never challenges with: they say this machine could not compute, not what the
# model computes.
UNREPRODUCIBLE = frozenset({int(ErrorCode.TIMEOUT), int(ErrorCode.RUNTIME), int(ErrorCode.INPUT_UNAVAILABLE)})
# Phases of OptimisticMode.Phase this strategy tells apart.
OPEN, POSTED, CHALLENGED = 1, 2, 3
# A poster approves this many post bonds at a time (an approval per post would double its transactions).
BONDS_PER_APPROVAL = 32
# Blocks a poster leaves the challenger to resolve first (the challenger is the one owed when it won).
POSTER_RESOLVE_DELAY = 2


@dataclass(frozen=True)
class Post:
    """What `Posted` said: the output stands unless challenged by `challenge_deadline`."""

    poster: str
    digest: bytes
    output: bytes
    challenge_deadline: int


@dataclass(frozen=True)
class Watch:
    """The watcher's settings, resolved against the chain: model ids (None: every served model), the
    share of requests sampled, and the most tokens locked in challenges at once."""

    models: frozenset[bytes] | None
    sample_rate: float
    budget: int


class OptimisticStrategy:
    """Post, finalize and resolve as the poster; check, challenge and resolve as a watcher."""

    def __init__(
        self, ctx: StrategyContext, watch: Watch | None, sample: Callable[[], float] = random.random
    ) -> None:
        self.ctx = ctx
        self.watch = watch
        self._sample = sample
        self._posts: dict[int, Post] = {}
        self._rounds: dict[int, dict[str, Any]] = {}  # request -> getRound fields, read once it matters
        self._tried: dict[tuple[str, int], int] = {}  # (kind, request) -> head of the last attempt
        self._budget_warned: set[int] = set()

    # ------------------------------------------------------------ events

    @property
    def contract(self) -> Contract:
        return self.ctx.contracts.optimistic

    def event_names(self) -> tuple[str, ...]:
        return ("Posted", "Challenged", "Resolved")

    def round_deadlines(self, request_id: int, deadline: int) -> tuple[int, int]:
        """(the post deadline, the latest challenge deadline a post can get); the second becomes the
        post's own once `Posted` is seen."""
        window = int(self._params(request_id)["challengeWindow"])
        return deadline, deadline + window

    def watches(self, row: RequestRow) -> bool:
        """Whether to check this request's post (asked once, when its poster is drawn without us)."""
        w = self.watch
        if w is None or (w.models is not None and row.model_id not in w.models):
            return False
        return self._sample() < w.sample_rate

    def on_event(self, name: str, args: Any) -> None:
        request_id = int(args["requestId"])
        row = self.ctx.journal.get(request_id)
        if name == "Posted":
            post = Post(
                str(args["poster"]),
                bytes(args["digest"]),
                bytes(args["output"]),
                int(args["challengeDeadline"]),
            )
            self._posts[request_id] = post
            self._rounds.pop(request_id, None)
            if row is None or row.state.terminal:
                return
            state = State.POSTED if row.member >= 0 and row.state == State.POST_SENT else None
            self.ctx.journal.update(request_id, state, reveal_deadline=post.challenge_deadline)
        elif name == "Challenged":
            self._rounds.pop(request_id, None)
            if row is None or row.state.terminal:
                return
            challenger = str(args["challenger"])
            extra = {
                "request_id": request_id,
                "challenger": challenger,
                "escalation": int(args["escalationId"]),
            }
            if row.member >= 0:
                self.ctx.log.warning("post challenged", extra=extra)
            elif challenger != self.ctx.address:
                self._check(row, f"challenged by {challenger}")
        elif name == "Resolved":
            phase = ("upheld", "overturned", "undecided")[int(args["phase"]) - 4]
            if row is not None:
                self.ctx.log.info("challenge resolved", extra={"request_id": request_id, "phase": phase})
                self.ctx.metrics.challenges.labels(phase).inc()

    # ------------------------------------------------------------ acting

    def execution_deadline(self, row: RequestRow) -> int:
        """The poster's post deadline; a watcher's (latest) challenge deadline."""
        return row.commit_deadline if row.member >= 0 else row.reveal_deadline

    def act(self, rows: list[RequestRow], head: int) -> None:
        nxt = head + 1  # the block a transaction sent now lands in, at the earliest
        for row in rows:
            if row.state == State.REORGED:
                if nxt > row.reveal_deadline:
                    self.ctx.miss(row, "not seen again after a reorg")
            elif row.member >= 0:
                self._act_poster(row, nxt)
            elif row.committee:
                self._act_watcher(row, nxt)

    def _act_poster(self, row: RequestRow, nxt: int) -> None:
        if row.state == State.EXECUTED:
            if nxt > row.commit_deadline:
                self.ctx.miss(row, "post window closed")
            elif self._funded(self._params(row.request_id)["postBond"], BONDS_PER_APPROVAL):
                self._post(row)
        elif row.state == State.POSTED and nxt > row.reveal_deadline and self._once("end", row, nxt):
            phase = self._round(row.request_id, fresh=True)["phase"]
            if phase == POSTED:
                extra = self._settle_gas(row, slashes=0)
                self._send(
                    "finalize_post", row, self._calldata("finalize", row.request_id, row.output or b""), extra
                )
            elif phase == CHALLENGED and self._escalation_over(row.request_id, nxt, POSTER_RESOLVE_DELAY):
                self._resolve(row)

    def _act_watcher(self, row: RequestRow, nxt: int) -> None:
        if row.state == State.CHALLENGED:
            if self._once("end", row, nxt) and self._escalation_over(row.request_id, nxt, 0):
                self._resolve(row)
            return
        if row.state != State.EXECUTED:
            return
        post = self._posts.get(row.request_id)
        if post is None:
            if nxt > row.commit_deadline and self._once("expire", row, nxt):
                # A silent poster: slashed by the mode's expire, which only works before the core's.
                self._send("expire_post", row, self._calldata("expire", row.request_id), SLASH_RESERVE)
            return
        if post.digest == row.digest:
            self._check(row, "agrees")
        elif row.error_code in UNREPRODUCIBLE:
            self._check(
                row, f"differs, but this relayer's own output is error {row.error_code}: not challenged"
            )
        elif nxt > post.challenge_deadline:
            self._check(row, "differs, but the challenge window closed: not challenged", warn=True)
        else:
            self._challenge(row, post)

    def _challenge(self, row: RequestRow, post: Post) -> None:
        ctx, params = self.ctx, self._params(row.request_id)
        fee = int(ctx.contracts.view("hub", "quote", row.model_id, row.version, params["escalationK"]))
        cost = int(params["challengeBond"]) + fee
        assert self.watch is not None  # only watched rows get here
        locked = self._locked()
        if locked + cost > self.watch.budget:
            if row.request_id not in self._budget_warned:
                self._budget_warned.add(row.request_id)
                ctx.log.warning(
                    "wrong post seen, bond budget exhausted: waiting for a challenge to end",
                    extra={"request_id": row.request_id, "locked": locked, "cost": cost},
                )
            return
        if not self._funded(cost, 1):
            return
        ctx.log.warning(
            "wrong post: challenging",
            extra={
                "request_id": row.request_id,
                "poster": post.poster,
                "posted": "0x" + post.digest.hex(),
                "computed": "0x" + (row.digest or b"").hex(),
            },
        )
        data = self._calldata("challenge", row.request_id, row.input, fee)
        if self._send("challenge", row, data):
            ctx.journal.update(row.request_id, State.CHALLENGE_SENT, detail=f"fee {fee}")

    def _post(self, row: RequestRow) -> None:
        if self._send("post", row, self._calldata("post", row.request_id, row.output or b"")):
            self.ctx.journal.update(row.request_id, State.POST_SENT)

    def _resolve(self, row: RequestRow) -> None:
        self._send(
            "resolve", row, self._calldata("resolve", row.request_id), self._settle_gas(row, slashes=1)
        )

    def _check(self, row: RequestRow, outcome: str, warn: bool = False) -> None:
        """Ends a watcher's row: the post was compared (or is someone else's to fight)."""
        self.ctx.journal.update(row.request_id, State.CHECKED, detail=outcome, reason=outcome)
        log = self.ctx.log.warning if warn else self.ctx.log.info
        log("post checked", extra={"request_id": row.request_id, "outcome": outcome})

    def _escalation_over(self, request_id: int, nxt: int, delay: int) -> bool:
        """Whether `resolve` can end the round: its escalation settled (`delay` blocks ago), or can be
        expired by resolve itself."""
        escalation = int(self._round(request_id)["escalationId"])
        onchain = self.ctx.contracts.request(escalation)
        if onchain is not None and onchain.status.terminal:
            return nxt > onchain.settled_block + delay
        return nxt > int(self.ctx.contracts.view("optimistic", "deadlineOf", request_id)) + delay

    def _locked(self) -> int:
        """Tokens this watcher has in challenges not resolved yet (bond plus fee, at today's prices)."""
        total = 0
        for row in self.ctx.journal.active():
            if row.member < 0 and row.state in (State.CHALLENGE_SENT, State.CHALLENGED):
                params = self._params(row.request_id)
                fee = self.ctx.contracts.view(
                    "hub", "quote", row.model_id, row.version, params["escalationK"]
                )
                total += int(params["challengeBond"]) + int(fee)
        return total

    def _funded(self, amount: int, approvals: int) -> bool:
        """Whether `amount` tokens can be taken from this operator now; if not, starts what makes it so
        (an approval of `approvals` times the amount, or claiming its hub credit) and says False."""
        ctx = self.ctx
        if amount == 0:
            return True
        if any(tx.kind in ("approve", "claim") for tx in ctx.txm.pending()):
            return False
        token, spender = ctx.contracts.token, self.contract.address
        if int(ctx.contracts.view("token", "allowance", ctx.address, spender)) < amount:
            data = ctx.contracts.calldata("token", "approve", spender, amount * approvals)
            ctx.txm.send(token.address, data, kind="approve", request_ids=[])
            ctx.log.info("approving bonds", extra={"spender": spender, "amount": amount * approvals})
            return False
        balance = int(ctx.contracts.view("token", "balanceOf", ctx.address))
        if balance >= amount:
            return True
        credit = int(ctx.contracts.view("hub", "claimable", ctx.address))
        if balance + credit >= amount:
            ctx.txm.send(
                ctx.contracts.hub.address,
                ctx.contracts.calldata("hub", "claim"),
                kind="claim",
                request_ids=[],
            )
            ctx.log.info("claiming hub credit for bonds", extra={"credit": credit})
        elif self._once("funds", None, balance):
            ctx.log.error(
                "too few tokens for a bond: fund this operator",
                extra={"needed": amount, "balance": balance, "credit": credit},
            )
        return False

    def _settle_gas(self, row: RequestRow, slashes: int) -> int:
        """What a finalize or resolve may need beyond its estimate: credits, a slash, the callback."""
        reserve = self.ctx.config.tx.settle_reserve + 3 * CREDIT_RESERVE + slashes * SLASH_RESERVE
        return reserve + row.callback_gas * 64 // 63 + CALLBACK_RESERVE

    def _send(self, kind: str, row: RequestRow, data: bytes, extra_gas: int = 0) -> bool:
        """Sends unless the node says it would revert; then the request is re-read from the chain."""
        ctx = self.ctx
        try:
            tx_hash = ctx.txm.send(
                self.contract.address, data, kind=kind, request_ids=[row.request_id], extra_gas=extra_gas
            )
        except TxRejected as exc:
            error = ctx.decoder.name(exc.revert_data) if exc.revert_data else None
            ctx.log.debug(
                f"{kind} not sent", extra={"request_id": row.request_id, "error": error or str(exc)}
            )
            self._rounds.pop(row.request_id, None)
            ctx.reconcile(row)
            return False
        ctx.log.info(f"{kind} sent", extra={"request_id": row.request_id, "tx": tx_hash.hex()})
        return True

    def _once(self, kind: str, row: RequestRow | None, at: int) -> bool:
        """True the first time for (kind, request) at block `at`: reads and attempts go once a block."""
        key = (kind, row.request_id if row is not None else 0)
        if self._tried.get(key) == at:
            return False
        self._tried[key] = at
        return True

    def _calldata(self, function: str, *args: Any) -> bytes:
        return self.ctx.contracts.calldata("optimistic", function, *args)

    def _round(self, request_id: int, fresh: bool = False) -> dict[str, Any]:
        if fresh or request_id not in self._rounds:
            raw = self.ctx.contracts.view("optimistic", "getRound", request_id)
            self._rounds[request_id] = self.ctx.contracts.fields("optimistic", "getRound", raw)
        return self._rounds[request_id]

    def _params(self, request_id: int) -> dict[str, Any]:
        """The parameters the request's round opened with."""
        return self.ctx.contracts.fields("optimistic", "params", self._round(request_id)["params"])

    # ------------------------------------------------------------ outcomes and reconciliation

    def on_outcome(self, outcome: TxOutcome) -> bool:
        if outcome.kind not in KINDS:
            return False
        if not (outcome.mined and outcome.success):
            return False
        state = {"post": State.POSTED, "challenge": State.CHALLENGED}.get(outcome.kind)
        for request_id in outcome.request_ids:
            row = self.ctx.journal.get(request_id)
            if state is None or row is None or row.state.terminal:
                continue
            if state == State.CHALLENGED:
                self.ctx.metrics.challenges.labels("sent").inc()
            self.ctx.journal.update(request_id, state, detail=outcome.hash.hex())
            self.ctx.observe(row, outcome.kind)
        return True

    def reconcile(self, row: RequestRow, onchain: OnchainRequest) -> None:
        if row.state.terminal:
            return
        request_id = row.request_id
        posted = bool(onchain.committed_mask)
        if posted and request_id not in self._posts:
            self._load_post(row)
        if row.member >= 0:
            state = State.POSTED if posted else State.EXECUTED if row.output is not None else State.SEEN
        else:
            round_ = self._round(request_id, fresh=True)
            if round_["phase"] == CHALLENGED:
                if str(round_["challenger"]) != self.ctx.address:
                    self._check(row, f"challenged by {round_['challenger']}")
                    return
                state = State.CHALLENGED
            else:
                state = State.EXECUTED if row.output is not None else State.SEEN
        deadline = onchain.reveal_deadline if posted else row.reveal_deadline
        if state != row.state or deadline != row.reveal_deadline:
            self.ctx.journal.update(
                request_id,
                state if state != row.state else None,
                detail="reconciled",
                reveal_deadline=deadline,
            )

    def _load_post(self, row: RequestRow) -> None:
        """After a restart: what `Posted` said, read back from the chain."""
        logs = self.ctx.contracts.logs("optimistic", "Posted", row.created_block, requestId=row.request_id)
        if logs:
            self.on_event("Posted", logs[-1].args)

    def forget(self, request_id: int) -> None:
        self._posts.pop(request_id, None)
        self._rounds.pop(request_id, None)
        self._budget_warned.discard(request_id)
        for key in [k for k in self._tried if k[1] == request_id]:
            del self._tried[key]
