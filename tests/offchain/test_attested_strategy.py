"""The attested strategy's settling decision, against a real journal and real EIP-712 signatures and a
transaction manager that records what it is asked to send: once it holds a quorum it waits up to
`full_wait` for the rest of the committee (each member left out pays an `attestLate` of its own), then
settles with what it holds. The strategy's clock is a test clock: nothing sleeps. For a tolerance
version without an exact quorum it fetches the other digests' outputs from real peer servers and
settles with them once a quorum is within the rule."""

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from verinfer.chain import attestations
from verinfer.chain.attestations import Domain
from verinfer.models.agreement import EXACT, Tolerance
from verinfer.models.codec import Tensor, encode_tensors, output_digest
from verinfer.relayer.journal import Journal, RequestRow, State
from verinfer.relayer.modes import attested as attested_module
from verinfer.relayer.modes.attested import AttestedStrategy
from verinfer.relayer.peers import PeerConfig, PeerServer

from tests.offchain.strategies import fake_context

MEMBERS: list[LocalAccount] = [Account.from_key(bytes([i + 1]) * 32) for i in range(3)]
ME = MEMBERS[0]
MODE = "0x00000000000000000000000000000000000000D4"
DOMAIN = Domain(31337, MODE)
DIGEST = b"d" * 32
SEED, DEADLINE = 100, 140


@dataclass
class FakeChain:
    """Call data names its function; each send is recorded with the arguments it was built from."""

    sent: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    rule: Tolerance = EXACT  # every version's agreement rule
    _args: dict[bytes, tuple[Any, ...]] = field(default_factory=dict)

    def model_version(self, model_id: bytes, version: int) -> Any:
        return SimpleNamespace(tolerance=self.rule)  # all the strategy reads of a version

    @property
    def attested(self) -> Any:
        return type("AttestedMode", (), {"address": MODE})()

    def calldata(self, contract: str, function: str, *args: Any) -> bytes:
        data = f"{contract}.{function}.{len(self._args)}".encode()
        self._args[data] = args
        return data

    def send(self, to: str, data: bytes, *, kind: str, request_ids: Any, extra_gas: int = 0) -> bytes:
        self.sent.append((data.decode().split(".")[1], self._args[data]))
        return bytes(32)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    made = Clock()
    monkeypatch.setattr(attested_module.time, "monotonic", made)
    return made


@pytest.fixture
def chain() -> FakeChain:
    return FakeChain()


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal.db")


def strategy(
    chain: FakeChain, journal: Journal, full_wait: float, endpoints: dict[str, str] | None = None
) -> AttestedStrategy:
    ctx = fake_context(ME.address, chain, journal)
    endpoint_of = (endpoints or {}).get
    return AttestedStrategy(ctx, ME, DOMAIN, PeerConfig(full_wait=full_wait), lambda m: endpoint_of(m, ""))


def signed(
    journal: Journal, request_id: int, *signers: LocalAccount, output: bytes = b"out", digest: bytes = DIGEST
) -> None:
    """A request this relayer signed (member 0), with the given members' signatures journaled; a
    signature is on `digest` for this relayer (whose output is `output`), on DIGEST for the others."""
    if journal.get(request_id) is None:
        journal.add_request(
            RequestRow(
                request_id=request_id,
                state=State.SIGNED,
                model_id=b"\x01" * 32,
                version=1,
                input=b"x",
                input_hash=b"h",
                k=3,
                committee=tuple(m.address for m in MEMBERS),
                member=0,
                created_block=SEED - 1,
                seed_block=SEED,
                commit_deadline=DEADLINE,
                reveal_deadline=DEADLINE,
                callback_gas=0,
                seen_at=0.0,
                updated_at=0.0,
                output=output,
                digest=digest,
                salt=None,
            )
        )
    for member in signers:
        on = digest if member is ME else DIGEST
        journal.add_attestation(attestations.sign(member, DOMAIN, request_id, on), own=member is ME)


def settled_signers(chain: FakeChain) -> list[list[str]]:
    """For each settle sent, who signed what it carries (recovered, not taken on trust)."""
    out = []
    for function, args in chain.sent:
        assert function == "settle"
        request_id, _, sigs = args
        out.append(
            sorted(
                attestations.recover(DOMAIN, attestations.Attestation(request_id, d, ME.address, s))
                for d, s in sigs
            )
        )
    return out


def test_quorum__waits_for_the_last_member__settles_with_all_three(
    chain: FakeChain, journal: Journal, clock: Clock
) -> None:
    s = strategy(chain, journal, full_wait=0.05)
    signed(journal, 1, MEMBERS[0], MEMBERS[1])
    s.act(journal.active(), SEED + 1)
    assert chain.sent == []  # a quorum, but the third member may sign any moment
    clock.now += 0.01
    signed(journal, 1, MEMBERS[2])
    s.act(journal.active(), SEED + 1)
    assert settled_signers(chain) == [sorted(m.address for m in MEMBERS)]


def test_quorum__last_member_silent__settles_without_it_once_the_wait_is_over(
    chain: FakeChain, journal: Journal, clock: Clock
) -> None:
    s = strategy(chain, journal, full_wait=0.05)
    signed(journal, 1, MEMBERS[0], MEMBERS[1])
    s.act(journal.active(), SEED + 1)
    clock.now += 0.049
    s.act(journal.active(), SEED + 1)
    assert chain.sent == []
    clock.now += 0.002
    s.act(journal.active(), SEED + 1)
    assert settled_signers(chain) == [sorted(m.address for m in MEMBERS[:2])]


def test_no_wait__settles_on_the_quorum_at_once(chain: FakeChain, journal: Journal, clock: Clock) -> None:
    s = strategy(chain, journal, full_wait=0.0)
    signed(journal, 1, MEMBERS[0], MEMBERS[1])
    s.act(journal.active(), SEED + 1)
    assert settled_signers(chain) == [sorted(m.address for m in MEMBERS[:2])]


def test_no_quorum__nothing_sent_however_long_it_waits(
    chain: FakeChain, journal: Journal, clock: Clock
) -> None:
    s = strategy(chain, journal, full_wait=0.05)
    signed(journal, 1, MEMBERS[0])
    for _ in range(3):
        s.act(journal.active(), SEED + 1)
        clock.now += 1.0
    assert chain.sent == []
    s.close()


def test_quorum_in_the_last_block__settles_at_once_without_waiting(
    chain: FakeChain, journal: Journal, clock: Clock
) -> None:
    s = strategy(chain, journal, full_wait=0.05)
    signed(journal, 1, MEMBERS[0], MEMBERS[1])
    s.act(journal.active(), DEADLINE - 1)  # the next block is the last that can settle
    assert settled_signers(chain) == [sorted(m.address for m in MEMBERS[:2])]


# ------------------------------------------------------------------ tolerance versions


def output_of(value: float) -> bytes:
    return encode_tensors([Tensor.from_array("y", np.array([value]), 4)])


MINE, NEAR, FAR = output_of(1.0), output_of(1.0001), output_of(1.01)  # NEAR is 1 unit away, FAR 100


@pytest.fixture
def peers(journal: Journal) -> Iterator[dict[str, str]]:
    """Members 1 and 2 serve NEAR and FAR, the outputs they signed."""
    servers = []
    for output in (NEAR, FAR):
        server = PeerServer(
            DOMAIN,
            "127.0.0.1",
            0,
            committee_of=lambda rid: tuple(m.address for m in MEMBERS),
            on_attestation=lambda a: None,
            held=lambda rid: [],
            output_of=lambda rid, output=output: output,
        )
        server.start()
        servers.append(server)
    yield {m.address: s.url for m, s in zip(MEMBERS[1:], servers, strict=True)}
    for server in servers:
        server.stop()


def tolerance_round(journal: Journal, *others: tuple[LocalAccount, bytes]) -> None:
    """Request 1: this relayer signed MINE; each of `others` signed its output's digest."""
    signed(journal, 1, ME, output=MINE, digest=output_digest(MINE))
    for member, output in others:
        journal.add_attestation(attestations.sign(member, DOMAIN, 1, output_digest(output)), own=False)


def act_until_sent(s: AttestedStrategy, journal: Journal, chain: FakeChain, head: int) -> None:
    """Acts at `head` until something is sent or the background fetches are over (and acts once more)."""
    deadline = time.monotonic() + 10
    s.act(journal.active(), head)
    while not chain.sent and s._in_flight and time.monotonic() < deadline:
        time.sleep(0.01)  # waits for real HTTP on the strategy's own threads, never for a result
    s.act(journal.active(), head)


def test_tolerance__no_exact_quorum__fetches_outputs__settles_with_them(
    chain: FakeChain, journal: Journal, clock: Clock, peers: dict[str, str]
) -> None:
    chain.rule = Tolerance(1, 0)
    s = strategy(chain, journal, full_wait=0.0, endpoints=peers)
    tolerance_round(journal, (MEMBERS[1], NEAR), (MEMBERS[2], FAR))

    act_until_sent(s, journal, chain, SEED + 1)

    [(function, (request_id, output, sigs, others))] = chain.sent
    assert (function, request_id, output) == ("settleWithOutputs", 1, MINE)
    assert sorted(others) == sorted([NEAR, FAR])  # FAR is shown too: outside the rule, it is dissent
    signers = {attestations.recover(DOMAIN, attestations.Attestation(1, d, ME.address, x)) for d, x in sigs}
    assert signers == {m.address for m in MEMBERS}
    s.close()


def test_tolerance__the_only_other_output_is_outside__no_quorum__nothing_sent(
    chain: FakeChain, journal: Journal, clock: Clock, peers: dict[str, str]
) -> None:
    chain.rule = Tolerance(1, 0)
    s = strategy(chain, journal, full_wait=0.0, endpoints=peers)
    tolerance_round(journal, (MEMBERS[2], FAR))

    act_until_sent(s, journal, chain, SEED + 1)

    assert chain.sent == []
    assert s.shared_output(1) == MINE  # what this relayer serves its peers
    s.close()


def test_exact_version__other_digests__no_output_fetched_or_served__nothing_sent(
    chain: FakeChain, journal: Journal, clock: Clock, peers: dict[str, str]
) -> None:
    s = strategy(chain, journal, full_wait=0.0, endpoints=peers)
    tolerance_round(journal, (MEMBERS[1], NEAR), (MEMBERS[2], FAR))

    act_until_sent(s, journal, chain, SEED + 1)

    assert chain.sent == [] and s._outputs.get(1) is None
    assert s.shared_output(1) is None
    s.close()
