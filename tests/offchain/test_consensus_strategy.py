"""The consensus strategy's decisions, against a real journal and a transaction manager that records
what it is asked to send: what is committed, revealed or finalized in which block, what is missed,
and how much gas a possibly settling transaction reserves."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from verinfer.chain.txmanager import TxOutcome, TxRejected
from verinfer.relayer.config import RelayerConfig
from verinfer.relayer.journal import Journal, RequestRow, State
from verinfer.relayer.modes.consensus import (
    CALLBACK_RESERVE,
    CREDIT_RESERVE,
    SLASH_RESERVE,
    ConsensusStrategy,
)

from tests.offchain.strategies import fake_context

ME = "0x00000000000000000000000000000000000000A1"
PEERS = ("0x00000000000000000000000000000000000000B2", "0x00000000000000000000000000000000000000C3")
SEED = 100
COMMIT_DEADLINE, REVEAL_DEADLINE = SEED + 20, SEED + 40


@dataclass
class Sent:
    function: str
    request_ids: list[int]
    extra_gas: int


@dataclass
class FakeChain:
    """Call data names its function; sends are recorded (or refused with `refuse`)."""

    sent: list[Sent] = field(default_factory=list)
    refuse: set[int] = field(default_factory=set)  # request ids whose transactions would revert
    mode_address: str = "0x00000000000000000000000000000000000000D4"
    can_finalize: bool = False

    @property
    def consensus(self) -> Any:
        return type("ConsensusMode", (), {"address": self.mode_address})()

    def calldata(self, contract: str, function: str, *args: Any) -> bytes:
        return f"{contract}.{function}".encode()

    def view(self, contract: str, function: str, *args: Any) -> Any:
        assert (contract, function) == ("consensus", "canFinalize")
        return self.can_finalize

    def send(self, to: str, data: bytes, *, kind: str, request_ids: Any, extra_gas: int = 0) -> bytes:
        if self.refuse & set(request_ids):
            raise TxRejected("would revert")
        self.sent.append(Sent(data.decode().split(".")[1], list(request_ids), extra_gas))
        return bytes(32)


@pytest.fixture
def chain() -> FakeChain:
    return FakeChain()


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal.db")


@pytest.fixture
def strategy(chain: FakeChain, journal: Journal) -> ConsensusStrategy:
    missed: list[tuple[int, str]] = []

    def miss(row: RequestRow, reason: str) -> None:
        missed.append((row.request_id, reason))
        journal.update(row.request_id, State.MISSED, detail=reason, reason=reason)

    ctx = fake_context(ME, chain, journal, miss)
    made = ConsensusStrategy(ctx)
    made.missed = missed  # type: ignore[attr-defined]
    return made


def add(journal: Journal, request_id: int, state: State, member: int = 0, **fields: Any) -> RequestRow:
    committee = (ME, *PEERS) if member == 0 else (*PEERS[:member], ME, *PEERS[member:])
    row = RequestRow(
        request_id=request_id,
        state=state,
        model_id=b"\x01" * 32,
        version=1,
        input=b"x",
        input_hash=b"h",
        k=3,
        committee=committee,
        member=member,
        created_block=SEED - 1,
        seed_block=SEED,
        commit_deadline=COMMIT_DEADLINE,
        reveal_deadline=REVEAL_DEADLINE,
        callback_gas=fields.pop("callback_gas", 0),
        seen_at=0.0,
        updated_at=0.0,
        output=b"out",
        digest=b"d" * 32,
        salt=b"s" * 32,
        **fields,
    )
    journal.add_request(row)
    return journal.get(request_id) or row


def act(strategy: ConsensusStrategy, journal: Journal, head: int) -> None:
    strategy.act(journal.active(), head)


def test_executed__commits_in_one_batch__states_commit_sent(
    strategy: ConsensusStrategy, journal: Journal, chain: FakeChain
) -> None:
    for request_id in (1, 2, 3):
        add(journal, request_id, State.EXECUTED)
    act(strategy, journal, SEED + 1)
    assert [(s.function, s.request_ids, s.extra_gas) for s in chain.sent] == [("commitMany", [1, 2, 3], 0)]
    assert {journal.get(i).state for i in (1, 2, 3)} == {State.COMMIT_SENT}  # type: ignore[union-attr]


def test_executed__commit_window_closed__missed_nothing_sent(
    strategy: ConsensusStrategy, journal: Journal, chain: FakeChain
) -> None:
    add(journal, 1, State.EXECUTED)
    act(strategy, journal, COMMIT_DEADLINE)  # the next block is past the deadline
    assert chain.sent == [] and strategy.missed == [(1, "commit window closed")]  # type: ignore[attr-defined]


def test_committed__reveals_only_once_every_member_committed_or_the_window_closed(
    strategy: ConsensusStrategy, journal: Journal, chain: FakeChain
) -> None:
    add(journal, 1, State.COMMITTED, committed_mask=0b011)
    act(strategy, journal, SEED + 2)
    assert chain.sent == []  # a member is still to commit and may yet
    journal.update(1, committed_mask=0b111)
    act(strategy, journal, SEED + 3)
    assert [s.function for s in chain.sent] == ["reveal"]


def test_committed__reveal_window_closed__missed(
    strategy: ConsensusStrategy, journal: Journal, chain: FakeChain
) -> None:
    add(journal, 1, State.COMMITTED, committed_mask=0b111)
    act(strategy, journal, REVEAL_DEADLINE)
    assert strategy.missed == [(1, "reveal window closed")]  # type: ignore[attr-defined]


def test_reveal__reserves_a_settlement_with_a_slash_per_member_that_never_committed(
    strategy: ConsensusStrategy, journal: Journal, chain: FakeChain
) -> None:
    add(journal, 1, State.COMMITTED, committed_mask=0b011, callback_gas=63_000)
    act(strategy, journal, COMMIT_DEADLINE)  # the window closed with one member silent
    (reveal,) = chain.sent
    base = RelayerConfig().tx.settle_reserve + 3 * CREDIT_RESERVE + 64_000 + CALLBACK_RESERVE
    assert reveal.extra_gas == base + 1 * SLASH_RESERVE


def test_finalize__members_take_turns_a_block_apart(
    strategy: ConsensusStrategy, journal: Journal, chain: FakeChain
) -> None:
    add(journal, 1, State.REVEALED, member=0, committed_mask=0b111)
    add(journal, 2, State.REVEALED, member=2, committed_mask=0b111)
    act(strategy, journal, REVEAL_DEADLINE)  # next block: the first after the reveal window
    assert [(s.function, s.request_ids) for s in chain.sent] == [("finalize", [1])]
    act(strategy, journal, REVEAL_DEADLINE + 2)
    assert [(s.function, s.request_ids) for s in chain.sent][-1] == ("finalize", [2])


def test_finalize__digest_only_settles_with_this_members_output(
    strategy: ConsensusStrategy, journal: Journal, chain: FakeChain
) -> None:
    add(journal, 1, State.REVEALED, committed_mask=0b111, digest_only=True)
    chain.can_finalize = True  # everyone revealed but the last reveal did not carry the accepted bytes
    act(strategy, journal, SEED + 5)
    assert [s.function for s in chain.sent] == ["finalizeWithOutput"]
    act(strategy, journal, SEED + 5)  # asked once per block
    assert len(chain.sent) == 1


def test_batch_rejected__each_item_sent_alone__the_bad_one_left_out(
    strategy: ConsensusStrategy, journal: Journal, chain: FakeChain
) -> None:
    for request_id in (1, 2, 3):
        add(journal, request_id, State.EXECUTED)
    chain.refuse = {2}
    act(strategy, journal, SEED + 1)
    assert [(s.function, s.request_ids) for s in chain.sent] == [("commit", [1]), ("commit", [3])]
    assert journal.get(2).state == State.EXECUTED  # type: ignore[union-attr]


def test_mined_commit__marks_committed_with_its_bit__unknown_kinds_left_to_the_pipeline(
    strategy: ConsensusStrategy, journal: Journal
) -> None:
    add(journal, 1, State.COMMIT_SENT, member=1)
    mined = TxOutcome(bytes(32), "commit", (1,), mined=True, success=True)
    assert strategy.on_outcome(mined)
    row = journal.get(1)
    assert row is not None and row.state == State.COMMITTED and row.committed_mask == 0b010
    assert not strategy.on_outcome(TxOutcome(bytes(32), "finalize", (1,), mined=True, success=True))
    assert not strategy.on_outcome(TxOutcome(bytes(32), "commit", (1,), mined=True, success=False))
