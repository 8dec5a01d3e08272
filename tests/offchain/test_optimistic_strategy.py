"""The optimistic strategy's watcher decisions, against a real journal and a fake chain that records
what it is asked to send: a wrong post is challenged, a right one is not; an output this machine could
not compute, a closed window or an exhausted bond budget never lead to a challenge; bonds are approved
first; a silent poster is expired; sampling follows `[watch]`."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from verinfer.chain.txmanager import TxRejected
from verinfer.models.codec import ErrorCode, error_output
from verinfer.relayer.journal import Journal, RequestRow, State
from verinfer.relayer.modes.optimistic import OptimisticStrategy, Post, Watch

from tests.offchain.strategies import fake_context

ME = "0x00000000000000000000000000000000000000A1"
POSTER = "0x00000000000000000000000000000000000000B2"
MODEL, OTHER_MODEL = b"\x01" * 32, b"\x02" * 32
SEED = 100
POST_DEADLINE = SEED + 20
CHALLENGE_DEADLINE = SEED + 30
BOND, FEE = 5, 4
OUT = b"our output"
DIGEST = b"d" * 32


class Address:
    def __init__(self, address: str) -> None:
        self.address = address


@dataclass
class FakeChain:
    """Views answer from fields; call data names its function and arguments; sends are recorded."""

    sent: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    allowance: int = 10**6
    balance: int = 10**6
    credit: int = 0
    phase: int = 2  # Posted
    optimistic: Address = field(default_factory=lambda: Address("0x00000000000000000000000000000000000000D4"))
    token: Address = field(default_factory=lambda: Address("0x00000000000000000000000000000000000000E5"))
    hub: Address = field(default_factory=lambda: Address("0x00000000000000000000000000000000000000F6"))

    def view(self, contract: str, function: str, *args: Any) -> Any:
        answers = {
            ("hub", "quote"): FEE,
            ("token", "allowance"): self.allowance,
            ("token", "balanceOf"): self.balance,
            ("hub", "claimable"): self.credit,
            ("optimistic", "getRound"): {
                "phase": self.phase,
                "params": {"challengeBond": BOND, "escalationK": 3, "challengeWindow": 10, "postBond": BOND},
                "challenger": "",
                "escalationId": 0,
            },
        }
        return answers[(contract, function)]

    def fields(self, contract: str, function: str, raw: Any) -> Any:
        return raw

    def calldata(self, contract: str, function: str, *args: Any) -> tuple[str, tuple[Any, ...]]:
        return function, args

    def send(self, to: str, data: Any, *, kind: str, request_ids: Any, extra_gas: int = 0) -> bytes:
        if self.phase != 2 and kind == "challenge":
            raise TxRejected("WrongPhase")
        self.sent.append(data)
        return bytes(32)

    def pending(self) -> list[Any]:
        return []

    def functions(self) -> list[str]:
        return [function for function, _ in self.sent]


@pytest.fixture
def chain() -> FakeChain:
    return FakeChain()


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal.db")


def watcher(chain: FakeChain, journal: Journal, budget: int = 100, rate: float = 1.0) -> OptimisticStrategy:
    return OptimisticStrategy(fake_context(ME, chain, journal), Watch(frozenset({MODEL}), rate, budget))


def watched(journal: Journal, request_id: int, state: State = State.EXECUTED, **fields: Any) -> RequestRow:
    """A watcher's row: drawn to POSTER, this relayer not a member (member -1)."""
    output = fields.pop("output", OUT)
    row = RequestRow(
        request_id=request_id,
        state=state,
        model_id=MODEL,
        version=1,
        input=b"the input",
        input_hash=b"h",
        k=1,
        committee=(POSTER,),
        member=-1,
        created_block=SEED - 1,
        seed_block=SEED,
        commit_deadline=POST_DEADLINE,
        reveal_deadline=CHALLENGE_DEADLINE,
        callback_gas=0,
        mode=4,
        seen_at=0.0,
        updated_at=0.0,
        output=output,
        digest=fields.pop("digest", DIGEST),
        **fields,
    )
    journal.add_request(row)
    return journal.get(request_id) or row


def posted(strategy: OptimisticStrategy, request_id: int, digest: bytes) -> None:
    strategy.on_event(
        "Posted",
        {
            "requestId": request_id,
            "poster": POSTER,
            "digest": digest,
            "output": b"posted",
            "challengeDeadline": CHALLENGE_DEADLINE,
        },
    )


def state(journal: Journal, request_id: int) -> tuple[State, str | None]:
    row = journal.get(request_id)
    assert row is not None
    return row.state, row.reason


def test_wrong_post__challenged_with_the_input_and_the_quoted_fee(chain: FakeChain, journal: Journal) -> None:
    strategy = watcher(chain, journal)
    watched(journal, 1)
    posted(strategy, 1, b"w" * 32)
    strategy.act(journal.active(), SEED + 15)
    assert chain.sent == [("challenge", (1, b"the input", FEE))]
    assert state(journal, 1)[0] == State.CHALLENGE_SENT


def test_right_post__checked__nothing_sent(chain: FakeChain, journal: Journal) -> None:
    strategy = watcher(chain, journal)
    watched(journal, 1)
    posted(strategy, 1, DIGEST)
    strategy.act(journal.active(), SEED + 15)
    assert chain.sent == [] and state(journal, 1) == (State.CHECKED, "agrees")


@pytest.mark.parametrize("code", [ErrorCode.TIMEOUT, ErrorCode.RUNTIME, ErrorCode.INPUT_UNAVAILABLE])
def test_own_output_says_it_could_not_compute__never_challenged(
    chain: FakeChain, journal: Journal, code: ErrorCode
) -> None:
    strategy = watcher(chain, journal)
    watched(journal, 1, output=error_output(code), digest=b"e" * 32, error_code=int(code))
    posted(strategy, 1, b"w" * 32)
    strategy.act(journal.active(), SEED + 15)
    assert chain.sent == []
    row_state, reason = state(journal, 1)
    assert row_state == State.CHECKED and f"own output is error {int(code)}: not challenged" in (reason or "")


def test_deterministic_error_output__challenged_like_any_output(chain: FakeChain, journal: Journal) -> None:
    strategy = watcher(chain, journal)
    code = ErrorCode.INPUT_SHAPE  # every honest machine computes it: a post claiming otherwise is wrong
    watched(journal, 1, output=error_output(code), digest=b"e" * 32, error_code=int(code))
    posted(strategy, 1, b"w" * 32)
    strategy.act(journal.active(), SEED + 15)
    assert chain.functions() == ["challenge"]


def test_window_closed__not_challenged__checked_with_the_reason(chain: FakeChain, journal: Journal) -> None:
    strategy = watcher(chain, journal)
    watched(journal, 1)
    posted(strategy, 1, b"w" * 32)
    strategy.act(journal.active(), CHALLENGE_DEADLINE)  # the next block is past it
    assert chain.sent == []
    assert state(journal, 1) == (State.CHECKED, "differs, but the challenge window closed: not challenged")


def test_bond_budget__a_challenge_over_it_waits_until_one_resolves(
    chain: FakeChain, journal: Journal
) -> None:
    strategy = watcher(chain, journal, budget=BOND + FEE + 3)  # room for one challenge
    watched(journal, 1, State.CHALLENGED)
    watched(journal, 2)
    posted(strategy, 2, b"w" * 32)
    strategy.act([r for r in journal.active() if r.request_id == 2], SEED + 15)
    assert chain.sent == [] and state(journal, 2)[0] == State.EXECUTED  # still waiting, within the window
    journal.update(1, State.SETTLED, status=1)
    strategy.act(journal.active(), SEED + 16)
    assert chain.sent == [("challenge", (2, b"the input", FEE))]


def test_allowance_short__approves_first__challenges_on_a_later_round(
    chain: FakeChain, journal: Journal
) -> None:
    chain.allowance = 0
    strategy = watcher(chain, journal)
    watched(journal, 1)
    posted(strategy, 1, b"w" * 32)
    strategy.act(journal.active(), SEED + 15)
    assert chain.sent == [("approve", (chain.optimistic.address, BOND + FEE))]
    chain.allowance = BOND + FEE
    strategy.act(journal.active(), SEED + 16)
    assert chain.functions() == ["approve", "challenge"]


def test_balance_short__claims_hub_credit__or_says_so(chain: FakeChain, journal: Journal) -> None:
    chain.balance, chain.credit = 2, 20
    strategy = watcher(chain, journal)
    watched(journal, 1)
    posted(strategy, 1, b"w" * 32)
    strategy.act(journal.active(), SEED + 15)
    assert chain.functions() == ["claim"]
    chain.sent.clear()
    chain.credit = 0
    strategy.act(journal.active(), SEED + 16)
    assert chain.sent == [] and state(journal, 1)[0] == State.EXECUTED  # unfunded: logged, not sent


def test_someone_else_challenged_first__checked(chain: FakeChain, journal: Journal) -> None:
    strategy = watcher(chain, journal)
    watched(journal, 1)
    other = "0x00000000000000000000000000000000000000C3"
    strategy.on_event("Challenged", {"requestId": 1, "challenger": other, "escalationId": 9, "fee": FEE})
    assert state(journal, 1) == (State.CHECKED, f"challenged by {other}")


def test_silent_poster__expired_once_a_block_after_the_post_window(
    chain: FakeChain, journal: Journal
) -> None:
    strategy = watcher(chain, journal)
    watched(journal, 1)
    strategy.act(journal.active(), POST_DEADLINE - 1)  # the next block is the window's last
    assert chain.sent == []
    strategy.act(journal.active(), POST_DEADLINE)
    strategy.act(journal.active(), POST_DEADLINE)
    assert chain.sent == [("expire", (1,))]


def test_watches__watched_models_only__at_the_sample_rate(journal: Journal, chain: FakeChain) -> None:
    draws = iter([0.1, 0.9])
    strategy = OptimisticStrategy(
        fake_context(ME, chain, journal), Watch(frozenset({MODEL}), 0.5, 100), sample=lambda: next(draws)
    )
    row = watched(journal, 1)
    assert strategy.watches(row) is True  # 0.1 < 0.5
    assert strategy.watches(row) is False  # 0.9
    other = RequestRow(**{**row.__dict__, "model_id": OTHER_MODEL})
    assert strategy.watches(other) is False
    assert OptimisticStrategy(fake_context(ME, chain, journal), None).watches(row) is False
    everything = OptimisticStrategy(fake_context(ME, chain, journal), Watch(None, 1.0, 100))
    assert everything.watches(other) is True


def test_post_record__kept_from_the_event(chain: FakeChain, journal: Journal) -> None:
    strategy = watcher(chain, journal)
    watched(journal, 1)
    posted(strategy, 1, b"w" * 32)
    assert strategy._posts[1] == Post(POSTER, b"w" * 32, b"posted", CHALLENGE_DEADLINE)
    row = journal.get(1)
    assert row is not None and row.reveal_deadline == CHALLENGE_DEADLINE  # the post's own deadline


def test_reorged_row__missed_once_its_latest_deadline_passed(chain: FakeChain, journal: Journal) -> None:
    missed: list[int] = []

    def miss(row: RequestRow, reason: str) -> None:
        missed.append(row.request_id)
        journal.update(row.request_id, State.MISSED, reason=reason)

    strategy = OptimisticStrategy(fake_context(ME, chain, journal, miss), Watch(None, 1.0, 100))
    watched(journal, 1, State.REORGED)
    strategy.act(journal.active(), CHALLENGE_DEADLINE - 1)
    assert missed == []
    strategy.act(journal.active(), CHALLENGE_DEADLINE)
    assert missed == [1] and chain.sent == []
