"""Stateful property test: random honest, lying, silent and withholding operators; consensus and attested
requests side by side, from an EOA and through recording, reverting and gas-burning consumer contracts,
with callbacks and digest-only storage; stakes, unbondings, jail; consensus rounds finalized or never
settled; attested rounds settled alone or in batches on a random quorum of the signatures held (members
left out, dissent included or left out), late attestations, dissent shown after settlement, equivocation
proven by anyone, rounds the mode expires without quorum, held fees released after the late window;
requests expired by anyone through the hub's safety net; credits funded by anyone with `deposit` that pay
whole fees first; and an attacker calling consumers directly. Optimistic requests run beside them: the
drawn poster posts the true output, a lie or an error output with its bond (or stays silent and is
expired), the post is finalized after the challenge window or challenged, and the challenge's consensus
escalation (a request the optimistic contract makes and pays for, settled by the machine's consensus
rules or left to expire) decides in `resolve`; `sweep` pays the treasury what the mode holds beyond
`locked`.

After every step tokens are conserved: every account's balance is what the machine booked for it (fees
escrowed, credits claimed, stake bonded and withdrawn, slashes moved from staking to the treasury and the
reporter, bonds locked in and paid out of the optimistic mode), the hub holds exactly the escrow of pending
requests, the fees it still holds for left-out members and the credits (the optimistic mode's among them);
every request's escrow is paid, held or refunded exactly once, and no callback reaches a contract for a
request it did not make; the optimistic mode's `locked` is the bonds and escalation fees of its rounds not
ended, it holds at least what it must pay out, and a sweep leaves it exactly `locked` (less the fees of
escalations not back in it yet). Once time advances, every request reaches a terminal
status, its held fees are paid or released, and no request ends twice (a mode cannot settle what the hub
expired, nor the reverse); every optimistic round ends once in its mode, in a phase that matches the hub's
status (Upheld or Overturned: Finalized or Failed; Undecided: Disputed; Unposted: Expired) unless the hub's
safety net expired the request first."""

from enum import IntEnum
from typing import Any

import ape
import pytest
from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from verinfer.chain.attestations import Domain, sign
from verinfer.chain.contracts import Fault, Status
from verinfer.devnet.state import dev_account
from verinfer.models.codec import ErrorCode, error_output, output_digest

from tests.conftest import E18, TEST_PARAMS, sample_input, sample_output

CONSENSUS = 0x01
OPTIMISTIC = 0x04
ATTESTED = 0x08
BPS = 10_000
BEHAVIORS = ("honest", "liar", "silent", "withhold")
HONEST = sample_output(0.25)
# What each behaviour may be penalized for in a consensus round: a member that reveals late counts as
# withholding.
ALLOWED_FAULTS = {
    "honest": {Fault.WITHHELD},
    "liar": {Fault.DISSENT, Fault.WITHHELD},
    "silent": {Fault.SILENT},
    "withhold": {Fault.WITHHELD},
}
# In an attested round only a signature on another digest is slashable: a liar's, or one of the two an
# equivocating member signed (whatever its behaviour). Attested behaviours: "honest" signs the true output
# and shares it at once, "liar" signs its own lie, "silent" signs nothing, "withhold" signs the true output
# but shares it only after the settlement (a member the submitter could not include).
ATTESTED_FAULTS: dict[str, set[Fault]] = {
    "honest": set(),
    "liar": {Fault.DISSENT},
    "silent": set(),
    "withhold": set(),
}


class Phase(IntEnum):
    """OptimisticMode.Phase."""

    NONE = 0
    OPEN = 1
    POSTED = 2
    CHALLENGED = 3
    UPHELD = 4
    OVERTURNED = 5
    UNDECIDED = 6
    UNPOSTED = 7


# The hub statuses an optimistic round that ended in each phase leaves its request in (unless the hub's
# safety net expired the request before the round ended).
PHASE_STATUSES = {
    Phase.UPHELD: {Status.FINALIZED, Status.FAILED},
    Phase.OVERTURNED: {Status.FINALIZED, Status.FAILED},
    Phase.UNDECIDED: {Status.DISPUTED},
    Phase.UNPOSTED: {Status.EXPIRED},
}
# What a poster posts: the true output, its own lie, or an error output (the input ran fine).
POSTS = ("honest", "lie", "error")
FAILED_OUTPUT = error_output(ErrorCode.MALFORMED_INPUT)
REQUESTERS = ("dapp", "recording", "reverting", "burner")
K = st.integers(1, 3)
# Honest members are drawn three times as often as each other behaviour: enough rounds reach a quorum.
BEHAVIOR_LISTS = st.lists(st.sampled_from(("honest", "honest", *BEHAVIORS)), min_size=3, max_size=3)
VIA = st.sampled_from(REQUESTERS)
CALLBACK_GAS = st.sampled_from([0, 60_000, 400_000])
MODE = st.sampled_from([CONSENSUS, ATTESTED])
INCLUDE = st.lists(st.booleans(), min_size=3, max_size=3)
# The test accounts are the dev mnemonic's first twelve accounts.
KEYS: dict[str, LocalAccount] = {a.address: a for a in (dev_account(i) for i in range(12))}
SETTLE_MANY_SELECTOR = keccak(text="settleMany(uint256[],bytes[],(bytes32,bytes)[][])")[:4]


def settle_many_data(rids: list[int], outputs: list[bytes], sigs: list[list[tuple[bytes, bytes]]]) -> bytes:
    """settleMany's calldata, encoded by hand: ape's argument conversion garbles Signed[][]."""
    return SETTLE_MANY_SELECTOR + abi_encode(
        ["uint256[]", "bytes[]", "(bytes32,bytes)[][]"], [rids, outputs, sigs]
    )


def cut(bond: tuple[int, list[int]], bps: int) -> tuple[int, tuple[int, list[int]]]:
    """What OperatorStaking.slash takes at `bps` from (stake, unbonding amounts), and what is left."""
    stake, unbondings = bond
    taken = stake * bps // BPS
    left = [u - u * bps // BPS for u in unbondings]
    return taken + sum(u * bps // BPS for u in unbondings), (stake - taken, left)


@pytest.fixture
def machine(
    chain: Any,
    accounts: Any,
    token: Any,
    registry: Any,
    staking: Any,
    hub: Any,
    consensus: Any,
    attested: Any,
    optimistic: Any,
    model: Any,
    make_model: Any,
    operators: Any,
    dapp: Any,
    act: Any,
    deployer: Any,
    challenger: Any,
    project: Any,
) -> Any:
    # A version of the default model (its operators joined it) that allows the three modes (optimistic
    # needs consensus: its escalations are consensus requests for the same version).
    model_id, version = make_model("risk", modes=CONSENSUS | ATTESTED | OPTIMISTIC)
    model_owner = registry.ownerOf(model_id)
    attacker = challenger
    holders = [accounts[i] for i in range(10)]
    consumers = {
        "recording": deployer.deploy(project.RecordingConsumer, hub),
        "reverting": deployer.deploy(project.RevertingConsumer, hub),
        "burner": deployer.deploy(project.GasBurnerConsumer, hub),
    }
    # The optimistic mode holds bonds and escalation refunds (tokens and a credit in the hub): booked
    # like any account.
    actors = [*holders, *consumers.values(), optimistic]
    token.approve(hub, 2**256 - 1, sender=dapp)
    for op in operators:
        token.approve(staking, 2**256 - 1, sender=op)
    # Posters lock their bonds, challengers their bonds and escalation fees, in the optimistic mode.
    for account in [*operators, attacker, dapp]:
        token.approve(optimistic, 2**256 - 1, sender=account)
    domain = Domain(chain.chain_id, attested.address)
    modes = {CONSENSUS: consensus, ATTESTED: attested, OPTIMISTIC: optimistic}
    opt = optimistic.params()
    challengers = {"attacker": attacker, "dapp": dapp}

    class HubMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.snapshot = chain.snapshot()
            self.read_at: Any = None
            self.supply = token.totalSupply()
            # Tokens held by accounts this machine never touches (other modules' operators).
            self.untracked = self.supply - self.held()
            self.staked_elsewhere = token.balanceOf(staking) - self.staked()
            self.plans: dict[int, dict[str, Any]] = {}
            self.committed: set[int] = set()
            self.revealed: set[int] = set()
            self.settled: dict[int, int] = {}
            self.credits = {a.address: hub.claimable(a) for a in actors}
            self.callbacks: list[tuple[int, str, bool]] = []
            windows = consensus.params()
            self.windows = windows.commitWindow + windows.revealWindow
            self.grace = hub.EXPIRY_GRACE()
            # Token bookkeeping: every actor's balance and every operator's bond (stake + unbonding).
            self.wallets = {a.address: token.balanceOf(a) for a in actors}
            self.bonded = {op.address: self.bond_of(op) for op in operators}
            self.slash_treasury = staking.treasury()
            # Per request: escrow credited so far (split, late payments, releases) and fees still held.
            self.accounted: dict[int, int] = {}
            self.held_fees: dict[int, int] = {}
            self.paid: dict[int, list[str]] = {}
            self.penalized: set[tuple[int, str]] = set()
            self.equivocators: set[tuple[int, str]] = set()
            self.sigs: dict[tuple[int, str, bytes], tuple[bytes, bytes]] = {}
            # Optimistic rounds: what the mode owed before the machine began, and the requests the
            # hub's safety net expired (their rounds may still end in the mode, paying bonds only).
            self.base_locked = int(optimistic.locked())
            self.net_expired: set[int] = set()

        # ---------------------------------------------------------------- helpers

        def reads(self) -> tuple[dict[str, int], dict[str, int]]:
            """Token balances (actors, hub, staking) and the actors' credits in the hub, read once per block
            (its hash fixes the state): the invariants checked after a step share them."""
            head = chain.blocks.head.hash
            if self.read_at != head:
                self.balances = {a.address: int(token.balanceOf(a)) for a in [*actors, hub, staking]}
                self.claimables = {a.address: int(hub.claimable(a)) for a in actors}
                self.read_at = head
            return self.balances, self.claimables

        def held(self) -> int:
            return sum(self.reads()[0].values())

        def bond_of(self, op: Any) -> int:
            info = staking.operatorInfo(op)
            return int(info.stake) + int(info.unbonding)

        def staked(self) -> int:
            return sum(self.bond_of(op) for op in operators)

        def bonds(self) -> dict[str, tuple[int, list[int]]]:
            return {
                op.address: (
                    int(staking.operatorInfo(op).stake),
                    [int(u.amount) for u in staking.unbondingsOf(op)],
                )
                for op in operators
            }

        def mint(self, account: Any, amount: int) -> None:
            token.mint(account, amount, sender=deployer)
            self.supply += amount
            self.wallets[account.address] = self.wallets.get(account.address, 0) + amount

        def move(self, address: str, amount: int) -> None:
            self.wallets[address] = self.wallets.get(address, 0) + amount

        def record(self, receipt: Any) -> None:
            """Books what a settling transaction did: status, fee split, held fees, penalties, slashes,
            callbacks."""
            for event in receipt.decode_logs(hub.RequestSettled):
                rid = event.requestId
                assert rid not in self.settled, "settled twice"
                assert Status(event.status).terminal
                self.settled[rid] = event.status
            for event in receipt.decode_logs(hub.FeesDistributed):
                rid = event.requestId
                plan = self.plans[rid]
                assert rid not in self.accounted, "fees distributed twice"
                paid = event.perOperator * event.agreeing + event.modelOwner + event.treasury + event.refund
                held = hub.heldFees(rid)
                assert held <= plan["k"] - event.agreeing
                assert paid + held * plan["op_fee"] == plan["fee"], "escrow not fully paid, held or refunded"
                self.accounted[rid] = paid
                self.held_fees[rid] = held
                agreeing = list(hub.getResult(rid).agreeing) if event.agreeing else []
                assert len(agreeing) == event.agreeing
                for member in agreeing:
                    self.pay_member(rid, member, event.perOperator)
                self.credit(model_owner, event.modelOwner)
                self.credit(hub.treasury(), event.treasury)
                self.credit(plan["requester"], event.refund)
            for event in receipt.decode_logs(hub.HeldFeePaid):
                rid = event.requestId
                assert self.held_fees[rid] > 0, "held fee paid beyond what was held"
                assert event.amount == self.plans[rid]["op_fee"]
                self.held_fees[rid] -= 1
                self.accounted[rid] += event.amount
                self.pay_member(rid, event.member, event.amount)
            for event in receipt.decode_logs(hub.HeldFeesRefunded):
                rid = event.requestId
                plan = self.plans[rid]
                assert event.amount == self.held_fees[rid] * plan["op_fee"] > 0
                self.held_fees[rid] = 0
                self.accounted[rid] += event.amount
                self.credit(plan["requester"], event.amount)
            penalties = receipt.decode_logs(hub.MemberPenalized)
            slashes = receipt.decode_logs(staking.Slashed)
            assert [(p.operator, p.amount) for p in penalties] == [(s.operator, s.amount) for s in slashes]
            for event in penalties:
                rid, member = event.requestId, event.operator
                plan = self.plans[rid]
                if plan["mode"] == OPTIMISTIC:
                    # Only the poster, once: for silence if it never posted, else for a post the
                    # escalation overturned.
                    assert member == plan["committee"][0], (rid, member)
                    expected = Fault.SILENT if plan["posted"] is None else Fault.DISSENT
                    assert Fault(event.fault) == expected and plan["posted"] != HONEST, (rid, event.fault)
                    assert (rid, member) not in self.penalized, "poster penalized twice"
                    self.penalized.add((rid, member))
                    continue
                behavior = plan["behaviors"][member]
                if plan["mode"] == CONSENSUS:
                    assert Fault(event.fault) in ALLOWED_FAULTS[behavior], (behavior, event.fault)
                else:
                    allowed = set(ATTESTED_FAULTS[behavior])
                    if (rid, member) in self.equivocators:
                        allowed |= {Fault.DISSENT, Fault.EQUIVOCATION}
                    assert Fault(event.fault) in allowed, (rid, behavior, event.fault)
                    assert (rid, member) not in self.penalized, "penalized twice in one round"
                    self.penalized.add((rid, member))
            for event in slashes:
                assert event.reward <= event.amount
                self.bonded[event.operator] -= event.amount
                self.move(self.slash_treasury, event.amount - event.reward)
                if event.reward:
                    self.move(event.rewardRecipient, event.reward)
            for event in receipt.decode_logs(hub.CallbackExecuted):
                self.callbacks.append((event.requestId, event.requester, event.success))

        def credit(self, account: Any, amount: int) -> None:
            if amount:
                self.credits[account] = self.credits.get(account, 0) + amount

        def pay_member(self, rid: int, member: str, amount: int) -> None:
            paid = self.paid.setdefault(rid, [])
            assert member not in paid, "member paid twice for one request"
            paid.append(member)
            assert len(paid) <= self.plans[rid]["k"]
            self.credit(member, amount)

        def pending(self, mode: int | None = None) -> list[int]:
            return [
                rid
                for rid in self.plans
                if rid not in self.settled and (mode is None or self.plans[rid]["mode"] == mode)
            ]

        def attested_rids(self) -> list[int]:
            return [rid for rid in self.plans if self.plans[rid]["mode"] == ATTESTED]

        def mode_closed(self) -> list[int]:
            """Attested rounds the mode itself ended (settled or expired), not the hub's safety net."""
            return [rid for rid in self.attested_rids() if attested.getRound(rid).settledBlock != 0]

        def accepted(self) -> list[int]:
            return [rid for rid in self.attested_rids() if "output" in self.plans[rid]]

        def lie(self, address: str) -> bytes:
            return sample_output(0.5 + operators.index(ape.accounts[address]) / 100)

        def output_of(self, rid: int, address: str) -> bytes:
            return HONEST if self.plans[rid]["behaviors"][address] == "honest" else self.lie(address)

        def next_block(self) -> int:
            return int(chain.blocks.head.number) + 1

        def accepted_output(self, rid: int) -> bytes | None:
            """The output a strict majority of revealed members gave, if any (computed off-chain)."""
            r = consensus.getRound(rid)
            outputs = [
                self.output_of(rid, a)
                for i, a in enumerate(consensus.getCommittee(rid))
                if r.revealedMask >> i & 1
            ]
            for output in outputs:
                if outputs.count(output) >= r.k // 2 + 1:
                    return output
            return None

        # ---------------------------------------------------------------- attested helpers

        def signed(self, rid: int, member: str, output: bytes) -> tuple[bytes, bytes]:
            """The member's signature on (rid, keccak256(output)), with its digest."""
            key = (rid, member, output)
            if key not in self.sigs:
                att = sign(KEYS[member], domain, rid, output_digest(output))
                self.sigs[key] = (att.output_digest, att.signature)
            return self.sigs[key]

        def shared(self, rid: int) -> dict[str, bytes]:
            """What each member signed and shared before settlement: honest members the true output,
            liars their lie; silent members nothing, withholding members only later."""
            behaviors = self.plans[rid]["behaviors"]
            return {
                a: HONEST if b == "honest" else self.lie(a)
                for a, b in behaviors.items()
                if b in ("honest", "liar")
            }

        def true_output(self, rid: int, member: str) -> bytes | None:
            """What the member signs when it signs at all (withholding members sign the true output)."""
            behavior = self.plans[rid]["behaviors"][member]
            if behavior == "silent":
                return None
            return self.lie(member) if behavior == "liar" else HONEST

        def quorum_output(self, rid: int, penalized: int) -> bytes | None:
            """An output a quorum of unpenalized members signed and shared, if any."""
            committee, k = self.plans[rid]["committee"], self.plans[rid]["k"]
            counted = [o for a, o in self.shared(rid).items() if not penalized >> committee.index(a) & 1]
            for output in counted:
                if counted.count(output) >= k // 2 + 1:
                    return output
            return None

        def choose(self, rid: int, output: bytes, include: list[bool], penalized: int) -> list[str]:
            """A random subset of the signatures held, topped up to a quorum on `output`."""
            committee, k = self.plans[rid]["committee"], self.plans[rid]["k"]
            shared = self.shared(rid)
            chosen = [a for i, a in enumerate(committee) if a in shared and include[i % len(include)]]
            winners = [
                a for a in committee if shared.get(a) == output and not penalized >> committee.index(a) & 1
            ]
            missing = k // 2 + 1 - len([a for a in chosen if a in winners])
            for a in winners:
                if missing > 0 and a not in chosen:
                    chosen.append(a)
                    missing -= 1
            return chosen

        def expect_settlement(
            self, rid: int, output: bytes, chosen: list[str], penalized: int
        ) -> dict[str, Any]:
            committee, k = self.plans[rid]["committee"], self.plans[rid]["k"]
            shared = self.shared(rid)
            agree = dissent = 0
            for a in chosen:
                bit = 1 << committee.index(a)
                if penalized & bit:
                    continue  # a proven equivocator's word counts for nothing
                if shared[a] == output:
                    agree |= bit
                else:
                    dissent |= bit
            held = k - bin(agree).count("1") - bin(penalized | dissent).count("1")
            return {"agree": agree, "dissent": dissent, "held": held, "output": output}

        def check_settled(self, rid: int, receipt: Any, expected: dict[str, Any]) -> None:
            plan = self.plans[rid]
            committee = plan["committee"]
            (log,) = [e for e in receipt.decode_logs(attested.Attested) if e.requestId == rid]
            assert (log.agreeMask, log.dissentMask) == (expected["agree"], expected["dissent"]), rid
            assert bytes(log.digest) == output_digest(expected["output"])
            assert self.settled[rid] == Status.FINALIZED
            assert hub.heldFees(rid) == self.held_fees[rid] == expected["held"], rid
            r = attested.getRound(rid)
            assert r.settledBlock == receipt.block_number and r.agreeMask == expected["agree"]
            assert list(attested.getCommittee(rid)) == committee
            assert hub.verifyOutput(rid, expected["output"])
            agreeing = [a for i, a in enumerate(committee) if expected["agree"] >> i & 1]
            assert list(hub.getResult(rid).agreeing) == agreeing
            plan["output"] = expected["output"]

        def expect_cuts(self, penalties: list[tuple[str, int]]) -> list[tuple[str, int]]:
            """The stake each penalty (member, bps), applied in order, takes."""
            bonds = self.bonds()
            amounts = []
            for member, bps in penalties:
                amount, bonds[member] = cut(bonds[member], bps)
                amounts.append((member, amount))
            return amounts

        def slashed_in(self, receipt: Any) -> list[tuple[str, int]]:
            return [(e.operator, e.amount) for e in receipt.decode_logs(staking.Slashed)]

        # ---------------------------------------------------------------- rules

        @initialize(
            k=K,
            behaviors=BEHAVIOR_LISTS,
            via=VIA,
            callback_gas=CALLBACK_GAS,
            digest_only=st.booleans(),
            mode=MODE,
        )
        def first_request(
            self, k: int, behaviors: list[str], via: str, callback_gas: int, digest_only: bool, mode: int
        ) -> None:
            """Every run has a request to settle, however few steps it takes."""
            self.request(k, behaviors, via, callback_gas, digest_only, mode)

        @rule(
            k=K,
            behaviors=BEHAVIOR_LISTS,
            via=VIA,
            callback_gas=CALLBACK_GAS,
            digest_only=st.booleans(),
            mode=MODE,
        )
        def request(
            self, k: int, behaviors: list[str], via: str, callback_gas: int, digest_only: bool, mode: int
        ) -> None:
            self.make_request(k, behaviors, via, callback_gas, digest_only, mode)

        def make_request(
            self, k: int, behaviors: list[str], via: str, callback_gas: int, digest_only: bool, mode: int
        ) -> int | None:
            """Requests an inference; the request's id, or None when the hub or the mode refuses it."""
            fee = hub.quote(model_id, version, k)
            req = (model_id, version, mode, k, callback_gas, digest_only, fee, sample_input())
            requester = dapp if via == "dapp" else consumers[via]
            self.mint(requester, fee)
            seed_block = chain.blocks.height + 2  # the block after the request's
            if staking.eligibleAt(model_id, seed_block) < k:
                if via == "dapp":
                    with ape.reverts(hub.InsufficientOperators):
                        hub.requestInference(req, sender=dapp)
                else:
                    with ape.reverts():  # the hub's error, bubbled up through the consumer
                        requester.request(token, req, sender=dapp)
                return None
            if mode == OPTIMISTIC and k != 1:  # one poster per request: the mode refuses any other k
                if via == "dapp":
                    with ape.reverts(optimistic.OnePoster, k=k):
                        hub.requestInference(req, sender=dapp)
                else:
                    with ape.reverts():
                        requester.request(token, req, sender=dapp)
                return None
            if via == "dapp":
                receipt = hub.requestInference(req, sender=dapp)
            else:
                receipt = requester.request(token, req, sender=dapp)
            if self.credits.get(requester.address, 0) >= fee:  # a credit that covers the fee pays it
                self.credits[requester.address] -= fee
                assert not receipt.decode_logs(token.Transfer)
            else:
                self.move(requester.address, -fee)
            created = receipt.decode_logs(hub.RequestCreated)[0]
            rid = int(created.requestId)
            assert created.fee == fee and created.mode == mode
            if mode == CONSENSUS:
                r = consensus.getRound(rid)
                assert created.seedBlock == r.seedBlock == seed_block
                assert created.deadline == r.revealDeadline == seed_block + self.windows
            elif mode == ATTESTED:
                ar = attested.getRound(rid)
                assert created.seedBlock == ar.seedBlock == seed_block
                assert created.deadline == ar.deadline == seed_block + attested.params().window
            else:
                orr = optimistic.getRound(rid)
                assert orr.phase == Phase.OPEN and created.seedBlock == orr.seedBlock == seed_block
                assert created.deadline == orr.postDeadline == seed_block + opt.postWindow
            # One block makes the seed block; views run on the latest block, so the preview needs one more.
            chain.mine(2)
            committee = list(modes[mode].previewCommittee(rid))
            self.plans[rid] = {
                "mode": mode,
                "k": k,
                "requester": requester.address,
                "fee": fee,
                "op_fee": hub.getRequest(rid).operatorFee,
                "callback": callback_gas != 0,
                "committee": committee,
                "behaviors": dict(zip(committee, behaviors, strict=False)),
            }
            if mode == OPTIMISTIC:
                # The drawn poster; what it posted, who challenged and the escalation; the mode's phase.
                self.plans[rid].update(
                    phase=Phase.OPEN,
                    posted=None,
                    challenger=None,
                    escalation=None,
                    post_deadline=seed_block + opt.postWindow,
                    challenge_deadline=None,
                )
                return rid
            if mode == ATTESTED:
                return rid
            self.commit_all(rid)
            return rid

        def commit_all(self, rid: int) -> None:
            """Members that are not silent commit at once, as their relayers would; the first draws."""
            committee = self.plans[rid]["committee"]
            for address, behavior in self.plans[rid]["behaviors"].items():
                if behavior != "silent":
                    act.commit(ape.accounts[address], rid, self.output_of(rid, address))
            if any(b != "silent" for b in self.plans[rid]["behaviors"].values()):
                assert list(consensus.getCommittee(rid)) == list(committee)
            self.committed.add(rid)

        @rule()
        def reveal_all(self) -> None:
            for rid in self.pending(CONSENSUS):
                if rid not in self.committed or rid in self.revealed:
                    continue
                r = consensus.getRound(rid)
                next_block = chain.blocks.head.number + 1
                full = r.committedMask == (1 << r.k) - 1
                if not (full or next_block > r.commitDeadline) or next_block > r.revealDeadline:
                    continue
                for address, behavior in self.plans[rid]["behaviors"].items():
                    # Each reveal is a block of its own: a late member can find the window closed.
                    if behavior in ("honest", "liar") and chain.blocks.head.number + 1 <= r.revealDeadline:
                        self.record(act.reveal(ape.accounts[address], rid, self.output_of(rid, address)))
                self.revealed.add(rid)

        @rule(blocks=st.integers(1, 12))
        def advance(self, blocks: int) -> None:
            chain.mine(blocks)
            # Members that reveal at all reveal as soon as they can, as their relayers would.
            self.reveal_all()

        @rule()
        def finalize_ready(self) -> None:
            self.finalize(self.pending(CONSENSUS))

        def finalize(self, rids: list[int]) -> None:
            for rid in rids:
                if not consensus.canFinalize(rid):
                    continue
                r = consensus.getRound(rid)
                output = self.accepted_output(rid) if r.digestOnly and r.drawn else None
                if output is None:
                    self.record(consensus.finalize(rid, sender=deployer))
                    continue
                # A digest-only request with a quorum needs the accepted bytes, and only those.
                with ape.reverts(consensus.OutputRequired, requestId=rid):
                    consensus.finalize(rid, sender=deployer)
                with ape.reverts(consensus.OutputMismatch, requestId=rid):
                    consensus.finalizeWithOutput(rid, output + b"\x00", sender=attacker)
                self.record(consensus.finalizeWithOutput(rid, output, sender=attacker))
                assert hub.verifyOutput(rid, output)

        @precondition(lambda self: self.plans)
        @rule(pick=st.integers(0, 50), ended=st.booleans(), wait=st.booleans())
        def expire(self, pick: int, ended: bool, wait: bool) -> None:
            """Anyone may call the safety net on any request: it refuses those that ended already and
            those whose round may still end (waiting, when asked, until it may expire them)."""
            rids = sorted(self.settled) if ended else self.pending()
            if rids:
                self.expire_request(rids[pick % len(rids)], wait)

        def expire_request(self, rid: int, wait: bool) -> None:
            """The safety net: a request its round left open is expired with a full refund and nobody
            penalized, but only once the round's deadline and the grace after it are over; a request that
            ended already never ends again."""
            if rid in self.settled:
                with ape.reverts(hub.RequestNotPending, requestId=rid):
                    hub.expire(rid, sender=attacker)
                return
            mode = self.plans[rid]["mode"]
            expires_after = modes[mode].deadlineOf(rid) + self.grace
            if chain.blocks.head.number + 1 <= expires_after:
                with ape.reverts(hub.TooEarlyToExpire, requestId=rid, expiresAfter=expires_after):
                    hub.expire(rid, sender=attacker)
                if not wait:
                    return
                # Nobody settles the round (relayers down): mine to the last block before it may expire.
                chain.mine(expires_after - chain.blocks.head.number)
            stakes = {op.address: staking.operatorInfo(op).stake for op in operators}
            receipt = hub.expire(rid, sender=attacker)
            self.record(receipt)
            assert self.settled[rid] == Status.EXPIRED
            assert receipt.decode_logs(hub.MemberPenalized) == []
            assert {op.address: staking.operatorInfo(op).stake for op in operators} == stakes
            (fees,) = receipt.decode_logs(hub.FeesDistributed)
            assert (fees.agreeing, fees.refund) == (0, self.plans[rid]["fee"])  # a full refund
            assert hub.heldFees(rid) == 0
            result = hub.getResult(rid)
            assert (result.status, result.settledBlock, list(result.agreeing)) == (
                Status.EXPIRED,
                receipt.block_number,
                [],
            )
            if mode == OPTIMISTIC:
                self.net_expired.add(rid)
            # The round cannot settle the request a second time.
            self.check_round_cannot_end(rid)

        def check_round_cannot_end(self, rid: int) -> None:
            """Neither the round nor the safety net can end a request that ended."""
            with ape.reverts(hub.RequestNotPending, requestId=rid):
                hub.expire(rid, sender=attacker)
            if self.plans[rid]["mode"] == OPTIMISTIC:
                self.check_optimistic_cannot_end(rid)
                return
            if self.plans[rid]["mode"] == CONSENSUS:
                if consensus.getRound(rid).settledBlock == 0:  # expired by the hub, not the round
                    assert self.settled[rid] == Status.EXPIRED
                    with ape.reverts(hub.RequestNotPending, requestId=rid):
                        consensus.finalize(rid, sender=deployer)
                else:
                    with ape.reverts(consensus.RoundClosed, requestId=rid):
                        consensus.finalize(rid, sender=deployer)
                return
            r = attested.getRound(rid)
            sigs = [self.signed(rid, a, HONEST) for a in self.plans[rid]["committee"]]
            if r.settledBlock == 0:  # expired by the hub: the round is past its deadline for good
                assert self.settled[rid] == Status.EXPIRED
                with ape.reverts(attested.DeadlinePassed, requestId=rid, deadline=r.deadline):
                    attested.settle(rid, HONEST, sigs, sender=attacker)
                with ape.reverts(hub.RequestNotPending, requestId=rid):
                    attested.expire(rid, sender=attacker)
            else:
                with ape.reverts(attested.RoundClosed, requestId=rid):
                    attested.settle(rid, HONEST, sigs, sender=attacker)
                with ape.reverts(attested.RoundClosed, requestId=rid):
                    attested.expire(rid, sender=attacker)

        # ---------------------------------------------------------------- attested rules

        @precondition(lambda self: self.pending(ATTESTED))
        @rule(pick=st.integers(0, 50), include=INCLUDE, submitter=st.integers(0, 2))
        def attested_settle(self, pick: int, include: list[bool], submitter: int) -> None:
            """Whoever holds a quorum settles with a random subset of the signatures it holds: members
            left out keep their fee held, included dissent is slashed."""
            rids = self.pending(ATTESTED)
            rid = rids[pick % len(rids)]
            r = attested.getRound(rid)
            all_held = [self.signed(rid, a, o) for a, o in self.shared(rid).items()]
            if self.next_block() > r.deadline:
                with ape.reverts(attested.DeadlinePassed, requestId=rid, deadline=r.deadline):
                    attested.settle(rid, HONEST, all_held, sender=attacker)
                return
            output = self.quorum_output(rid, r.penalizedMask)
            if output is None:
                committee = self.plans[rid]["committee"]
                counted = [
                    a
                    for a, o in self.shared(rid).items()
                    if o == HONEST and not r.penalizedMask >> committee.index(a) & 1
                ]
                needed = r.k // 2 + 1
                with ape.reverts(attested.NoQuorum, requestId=rid, signatures=len(counted), needed=needed):
                    attested.settle(rid, HONEST, all_held, sender=attacker)
                return
            chosen = self.choose(rid, output, include, r.penalizedMask)
            expected = self.expect_settlement(rid, output, chosen, r.penalizedMask)
            committee = self.plans[rid]["committee"]
            cuts = self.expect_cuts(
                [(a, r.slashBpsDissent) for i, a in enumerate(committee) if expected["dissent"] >> i & 1]
            )
            sender = [attacker, dapp, deployer][submitter]
            receipt = attested.settle(
                rid, output, [self.signed(rid, a, self.shared(rid)[a]) for a in chosen], sender=sender
            )
            self.record(receipt)
            assert self.slashed_in(receipt) == cuts
            self.check_settled(rid, receipt, expected)

        @initialize(
            requests=st.lists(
                st.tuples(K, BEHAVIOR_LISTS, VIA, CALLBACK_GAS, st.booleans()), min_size=2, max_size=3
            ),
            include=st.lists(st.booleans(), min_size=12, max_size=12),
        )
        def first_burst(
            self, requests: list[tuple[int, list[str], str, int, bool]], include: list[bool]
        ) -> None:
            """Every run has attested rounds settled in a batch, with members left out and dissent."""
            self.attested_burst(requests, include, skip=False)

        @rule(
            requests=st.lists(
                st.tuples(K, BEHAVIOR_LISTS, VIA, CALLBACK_GAS, st.booleans()), min_size=2, max_size=3
            ),
            include=st.lists(st.booleans(), min_size=12, max_size=12),
            skip=st.booleans(),
        )
        def attested_burst(
            self, requests: list[tuple[int, list[str], str, int, bool]], include: list[bool], skip: bool
        ) -> None:
            """A relayer collects a few attested requests and settles those with a quorum in one batch."""
            for k, behaviors, via, callback_gas, digest_only in requests:
                self.request(k, behaviors, via, callback_gas, digest_only, ATTESTED)
            self.attested_settle_many(4, include, skip)

        def settle_left_out(self, rid: int) -> None:
            """Every member left out shows its agreement, and every dissent left out is reported."""
            for idx in range(self.plans[rid]["k"]):
                self.late(rid, idx)
                self.dissent(rid, idx)

        def settleable(self) -> list[int]:
            return [
                rid
                for rid in self.pending(ATTESTED)
                if self.next_block() <= attested.getRound(rid).deadline
                and self.quorum_output(rid, attested.getRound(rid).penalizedMask) is not None
            ]

        @precondition(
            lambda self: len(self.pending(ATTESTED)) >= 2 or (self.pending(ATTESTED) and self.accepted())
        )
        @rule(
            count=st.integers(2, 4),
            include=st.lists(st.booleans(), min_size=12, max_size=12),
            skip=st.booleans(),
        )
        def attested_settle_many(self, count: int, include: list[bool], skip: bool) -> None:
            """Several open rounds settled in one transaction; one the mode closed already is skipped."""
            rids = self.settleable()[:count]
            closed = self.mode_closed()
            batch: list[int] = list(rids)
            if skip and closed:
                batch.insert(len(batch) // 2, closed[-1])
            if not rids:
                return
            outputs, sigs, expectations, penalties = [], [], {}, []
            for rid in batch:
                r = attested.getRound(rid)
                if rid not in rids:  # closed: whatever is shown, it is skipped
                    outputs.append(HONEST)
                    sigs.append([self.signed(rid, a, o) for a, o in self.shared(rid).items()])
                    continue
                output = self.quorum_output(rid, r.penalizedMask)
                assert output is not None
                j = 3 * rids.index(rid)  # the skipped round takes no draws
                chosen = self.choose(rid, output, include[j : j + 3], r.penalizedMask)
                expected = self.expect_settlement(rid, output, chosen, r.penalizedMask)
                expectations[rid] = expected
                committee = self.plans[rid]["committee"]
                penalties += [
                    (a, r.slashBpsDissent) for i, a in enumerate(committee) if expected["dissent"] >> i & 1
                ]
                outputs.append(output)
                sigs.append([self.signed(rid, a, self.shared(rid)[a]) for a in chosen])
            cuts = self.expect_cuts(penalties)
            receipt = attacker.transfer(attested, 0, data=settle_many_data(batch, outputs, sigs))
            self.record(receipt)
            assert [e.requestId for e in receipt.decode_logs(hub.RequestSettled)] == rids
            assert self.slashed_in(receipt) == cuts
            for rid in rids:
                self.check_settled(rid, receipt, expectations[rid])

        @precondition(lambda self: self.accepted())
        @rule(pick=st.integers(0, 50), idx=st.integers(0, 2))
        def attest_late(self, pick: int, idx: int) -> None:
            """A member the settlement left out shows its signature on the accepted output: paid its held
            fee once, within the late window; a member counted already, or penalized, is refused."""
            rids = self.accepted()
            self.late(rids[pick % len(rids)], idx)

        def late(self, rid: int, idx: int) -> None:
            plan = self.plans[rid]
            signers = [a for a in plan["committee"] if self.true_output(rid, a) == plan["output"]]
            if not signers:
                return
            member = signers[idx % len(signers)]
            bit = 1 << plan["committee"].index(member)
            r = attested.getRound(rid)
            until = r.deadline + r.lateWindow
            _, signature = self.signed(rid, member, plan["output"])
            if self.next_block() > until:
                with ape.reverts(attested.LateWindowClosed, requestId=rid, until=until):
                    attested.attestLate(rid, signature, sender=attacker)
            elif (r.agreeMask | r.penalizedMask) & bit:
                with ape.reverts(attested.AlreadyCounted, requestId=rid, member=member):
                    attested.attestLate(rid, signature, sender=attacker)
            else:
                held = self.held_fees[rid]
                receipt = attested.attestLate(rid, signature, sender=attacker)
                self.record(receipt)
                (paid,) = receipt.decode_logs(hub.HeldFeePaid)
                assert (paid.member, paid.amount) == (member, plan["op_fee"])
                assert hub.heldFees(rid) == self.held_fees[rid] == held - 1
                assert attested.getRound(rid).agreeMask == r.agreeMask | bit

        @precondition(lambda self: self.accepted())
        @rule(pick=st.integers(0, 50), idx=st.integers(0, 2))
        def report_dissent(self, pick: int, idx: int) -> None:
            """Anyone shows a signature on another digest that the settlement left out: slashed at the
            dissent rate, all of it to the treasury, once, within the late window."""
            rids = self.accepted()
            self.dissent(rids[pick % len(rids)], idx)

        def dissent(self, rid: int, idx: int) -> None:
            plan = self.plans[rid]
            committee = plan["committee"]
            member = committee[idx % len(committee)]
            r = attested.getRound(rid)
            until = r.deadline + r.lateWindow
            own = self.true_output(rid, member)
            if (rid, member) in self.equivocators:
                own = self.lie(member) if plan["output"] == HONEST else HONEST
            if own is None:
                return
            dissent = self.signed(rid, member, own)
            if own == plan["output"]:
                with ape.reverts(attested.NotDissent, requestId=rid):
                    attested.reportDissent(rid, dissent, sender=attacker)
            elif self.next_block() > until:
                with ape.reverts(attested.LateWindowClosed, requestId=rid, until=until):
                    attested.reportDissent(rid, dissent, sender=attacker)
            elif r.penalizedMask >> committee.index(member) & 1:
                with ape.reverts(attested.AlreadyPenalized, requestId=rid, member=member):
                    attested.reportDissent(rid, dissent, sender=attacker)
            else:
                cuts = self.expect_cuts([(member, r.slashBpsDissent)])
                held = self.held_fees[rid]
                receipt = attested.reportDissent(rid, dissent, sender=attacker)
                self.record(receipt)
                assert self.slashed_in(receipt) == cuts
                assert [e.reward for e in receipt.decode_logs(staking.Slashed)] == [0]
                (penalty,) = receipt.decode_logs(hub.MemberPenalized)
                assert Fault(penalty.fault) == Fault.DISSENT
                assert hub.heldFees(rid) == held  # nothing taken from the held fees

        @precondition(lambda self: self.attested_rids())
        @rule(pick=st.integers(0, 50), idx=st.integers(0, 2), first_lie=st.booleans())
        def report_equivocation(self, pick: int, idx: int, first_lie: bool) -> None:
            """A member signs two digests for one request; anyone who shows both has it slashed (at the
            raised rate, part to the reporter), once, whenever the committee is known."""
            rids = self.attested_rids()
            rid = rids[pick % len(rids)]
            committee = self.plans[rid]["committee"]
            member = committee[idx % len(committee)]
            self.equivocators.add((rid, member))
            pair = [self.signed(rid, member, HONEST), self.signed(rid, member, self.lie(member))]
            if first_lie:
                pair.reverse()
            r = attested.getRound(rid)
            if not r.drawn and self.next_block() > r.seedBlock + 256:
                with ape.reverts(attested.SeedUnavailable, requestId=rid, seedBlock=r.seedBlock):
                    attested.reportEquivocation(rid, *pair, sender=attacker)
                return
            if r.penalizedMask >> committee.index(member) & 1:
                with ape.reverts(attested.AlreadyPenalized, requestId=rid, member=member):
                    attested.reportEquivocation(rid, *pair, sender=attacker)
                return
            pct = r.equivocationRewardPct
            bps = r.slashBpsDissent * 100 // (100 - pct)
            cuts = self.expect_cuts([(member, bps)])
            held = hub.heldFees(rid)
            receipt = attested.reportEquivocation(rid, *pair, sender=attacker)
            self.record(receipt)
            assert self.slashed_in(receipt) == cuts
            (slash,) = receipt.decode_logs(staking.Slashed)
            assert (slash.rewardRecipient, slash.reward) == (
                attacker.address,
                slash.amount * pct * 100 // BPS,
            )
            (penalty,) = receipt.decode_logs(hub.MemberPenalized)
            assert Fault(penalty.fault) == Fault.EQUIVOCATION
            assert hub.heldFees(rid) == held
            assert list(attested.getCommittee(rid)) == committee

        @precondition(lambda self: self.attested_rids())
        @rule(pick=st.integers(0, 50), ended=st.booleans(), wait=st.booleans())
        def attested_expire(self, pick: int, ended: bool, wait: bool) -> None:
            """The mode expires a round without quorum after its deadline: a full refund, nobody
            penalized; never before the deadline, never a round that ended."""
            rids = [r for r in self.attested_rids() if r in self.settled] if ended else self.pending(ATTESTED)
            if not rids:
                return
            rid = rids[pick % len(rids)]
            if rid in self.settled:
                self.check_round_cannot_end(rid)
                return
            self.expire_round(rid, wait)

        def expire_round(self, rid: int, wait: bool) -> None:
            r = attested.getRound(rid)
            if self.next_block() <= r.deadline:
                with ape.reverts(attested.DeadlineNotPassed, requestId=rid, deadline=r.deadline):
                    attested.expire(rid, sender=attacker)
                if not wait:
                    return
                chain.mine(r.deadline - chain.blocks.head.number)
            bonds = self.bonds()
            receipt = attested.expire(rid, sender=attacker)
            self.record(receipt)
            assert self.settled[rid] == Status.EXPIRED
            assert receipt.decode_logs(hub.MemberPenalized) == []
            assert self.bonds() == bonds
            (fees,) = receipt.decode_logs(hub.FeesDistributed)
            assert (fees.agreeing, fees.refund) == (0, self.plans[rid]["fee"])  # a full refund
            assert hub.heldFees(rid) == 0
            closed = attested.getRound(rid)
            assert closed.settledBlock == receipt.block_number
            if receipt.block_number <= r.seedBlock + 256:  # the committee is kept for equivocation proofs
                assert closed.drawn and list(attested.getCommittee(rid)) == self.plans[rid]["committee"]
            self.check_round_cannot_end(rid)

        @precondition(lambda self: any(rid in self.settled for rid in self.attested_rids()))
        @rule(pick=st.integers(0, 50), wait=st.booleans())
        def release_held(self, pick: int, wait: bool) -> None:
            """After the late window anyone refunds the fees still held to the requester, once."""
            rids = [rid for rid in self.attested_rids() if rid in self.settled]
            self.release(rids[pick % len(rids)], wait)

        def release(self, rid: int, wait: bool) -> None:
            r = attested.getRound(rid)
            until = r.deadline + r.lateWindow
            if self.next_block() <= until:
                with ape.reverts(attested.LateWindowOpen, requestId=rid, until=until):
                    attested.releaseHeld(rid, sender=attacker)
                if not wait:
                    return
                chain.mine(until - chain.blocks.head.number)
            held = self.held_fees.get(rid, 0)
            if held == 0:
                with ape.reverts(hub.NothingHeld, requestId=rid):
                    attested.releaseHeld(rid, sender=attacker)
                return
            receipt = attested.releaseHeld(rid, sender=attacker)
            self.record(receipt)
            (refund,) = receipt.decode_logs(hub.HeldFeesRefunded)
            assert refund.amount == held * self.plans[rid]["op_fee"]
            assert hub.heldFees(rid) == 0

        # ---------------------------------------------------------------- optimistic helpers

        def opt_rids(self, *phases: Phase) -> list[int]:
            """Optimistic requests whose round is in one of `phases` (in any phase when none is given)."""
            return [
                rid
                for rid, plan in self.plans.items()
                if plan["mode"] == OPTIMISTIC and (not phases or plan["phase"] in phases)
            ]

        def escalation_fee(self, rid: int) -> int:
            return int(self.plans[self.plans[rid]["escalation"]]["fee"])

        def opt_locked(self) -> int:
            """What the mode owes by its own count: the post bond of each posted round; both bonds and the
            escalation's fee of each challenged one."""
            locked: int = self.base_locked + opt.postBond * len(self.opt_rids(Phase.POSTED))
            for rid in self.opt_rids(Phase.CHALLENGED):
                locked += opt.postBond + opt.challengeBond + self.escalation_fee(rid)
            return locked

        def opt_owed(self) -> int:
            """What the mode must be able to pay out now: `locked` less the fees of escalations that are
            not back in it (still pending, or accepted: then spent on the escalation's members)."""
            owed = self.opt_locked()
            for rid in self.opt_rids(Phase.CHALLENGED):
                if self.settled.get(self.plans[rid]["escalation"]) not in (Status.DISPUTED, Status.EXPIRED):
                    owed -= self.escalation_fee(rid)
            return owed

        def opt_holds(self) -> int:
            """The mode's tokens and its credit in the hub, as booked."""
            return int(self.wallets[optimistic.address] + self.credits.get(optimistic.address, 0))

        def opt_pay(self, payouts: list[tuple[str, str, int]], account: str, amount: int) -> None:
            """Books one payment by the mode (OptimisticMode._credit): when its tokens fall short it first
            claims its whole credit from the hub, then it deposits `amount` to the account's credit."""
            if amount == 0:
                return
            mode = optimistic.address
            if self.wallets[mode] < amount:
                claimed = self.credits.get(mode, 0)
                assert self.wallets[mode] + claimed >= amount, "the mode cannot pay what it owes"
                self.credits[mode] = 0
                self.move(mode, claimed)
                payouts.append(("claim", mode, claimed))
            self.move(mode, -amount)
            self.credit(account, amount)
            payouts.append(("deposit", account, amount))

        def check_payouts(self, receipt: Any, payouts: list[tuple[str, str, int]]) -> None:
            """The mode's claims and deposits in the transaction are the ones booked, in order."""
            mode = optimistic.address
            claims = [e.amount for e in receipt.decode_logs(hub.Claimed) if e.account == mode]
            deposits = [
                (e.account, e.amount)
                for e in receipt.decode_logs(hub.Deposited)
                if e.event_arguments["from"] == mode
            ]
            assert claims == [amount for kind, _, amount in payouts if kind == "claim"]
            assert deposits == [(account, amount) for kind, account, amount in payouts if kind == "deposit"]

        def end_round(self, rid: int, phase: Phase, receipt: Any) -> None:
            """The round ended in `phase` in this transaction, once, leaving its request in the status the
            phase gives (or Expired, if the hub's safety net ended the request first)."""
            plan = self.plans[rid]
            assert plan["phase"] not in PHASE_STATUSES, "round ended twice"
            plan["phase"] = phase
            r = optimistic.getRound(rid)
            assert (r.phase, r.settledBlock) == (phase, receipt.block_number), rid
            assert not optimistic.provisional(rid).posted
            if rid in self.net_expired:  # (a second settlement would have failed `record`)
                assert self.settled[rid] == Status.EXPIRED
            else:
                assert self.settled[rid] in PHASE_STATUSES[phase], (rid, phase, self.settled[rid])

        def check_optimistic_cannot_end(self, rid: int) -> None:
            """A round that ended cannot end again in its mode; a round whose request the hub's safety net
            expired may still end in its mode, paying bonds only."""
            plan = self.plans[rid]
            phase = plan["phase"]
            if phase not in PHASE_STATUSES:
                assert rid in self.net_expired and self.settled[rid] == Status.EXPIRED
                return
            with ape.reverts(optimistic.WrongPhase, requestId=rid, phase=phase):
                optimistic.expire(rid, sender=attacker)
            with ape.reverts(optimistic.WrongPhase, requestId=rid, phase=phase):
                optimistic.finalize(rid, plan["posted"] or HONEST, sender=attacker)
            with ape.reverts(optimistic.WrongPhase, requestId=rid, phase=phase):
                optimistic.resolve(rid, sender=attacker)

        # ---------------------------------------------------------------- optimistic rules

        @initialize(
            via=VIA,
            callback_gas=CALLBACK_GAS,
            digest_only=st.booleans(),
            post=st.sampled_from(("silent", *POSTS)),
            challenge=st.sampled_from(["no", "open", "settled", "settled"]),
            behaviors=BEHAVIOR_LISTS,
            who=st.sampled_from(sorted(challengers)),
        )
        def first_optimistic(
            self,
            via: str,
            callback_gas: int,
            digest_only: bool,
            post: str,
            challenge: str,
            behaviors: list[str],
            who: str,
        ) -> None:
            """Every run has an optimistic request: its poster silent, or posting; the post maybe
            challenged, and the escalation maybe settled at once by its committee."""
            rid = self.make_request(1, ["honest"], via, callback_gas, digest_only, OPTIMISTIC)
            assert rid is not None
            if post == "silent":
                return
            self.post(rid, post, impostor=True)
            if challenge == "no":
                return
            self.challenge(rid, behaviors, who)
            eid = self.plans[rid]["escalation"]
            if challenge == "settled" and eid is not None:
                self.settle_escalation(eid)

        @rule(k=st.sampled_from([1, 1, 1, 3]), via=VIA, callback_gas=CALLBACK_GAS, digest_only=st.booleans())
        def optimistic_request(self, k: int, via: str, callback_gas: int, digest_only: bool) -> None:
            """An optimistic request: one poster, so any k other than 1 is refused."""
            self.make_request(k, ["honest"], via, callback_gas, digest_only, OPTIMISTIC)

        @precondition(lambda self: self.opt_rids(Phase.OPEN))
        @rule(pick=st.integers(0, 50), kind=st.sampled_from(POSTS), impostor=st.booleans())
        def optimistic_post(self, pick: int, kind: str, impostor: bool) -> None:
            """The drawn poster posts the true output, its lie or an error output, locking its bond, within
            the post window; another operator cannot post, nor the poster once the window is over."""
            rids = self.opt_rids(Phase.OPEN)
            self.post(rids[pick % len(rids)], kind, impostor)

        def post(self, rid: int, kind: str, impostor: bool) -> None:
            plan = self.plans[rid]
            poster = ape.accounts[plan["committee"][0]]
            output = {"honest": HONEST, "lie": self.lie(poster.address), "error": FAILED_OUTPUT}[kind]
            deadline = plan["post_deadline"]
            if self.next_block() > deadline:
                with ape.reverts(optimistic.PostWindowClosed, requestId=rid, postDeadline=deadline):
                    optimistic.post(rid, output, sender=poster)
                return
            if impostor:
                other = next(op for op in operators if op.address != poster.address)
                with ape.reverts(optimistic.NotCommitteeMember, requestId=rid, operator=other.address):
                    optimistic.post(rid, output, sender=other)
            self.mint(poster, opt.postBond)
            receipt = optimistic.post(rid, output, sender=poster)
            self.move(poster.address, -opt.postBond)
            self.move(optimistic.address, opt.postBond)
            plan.update(
                phase=Phase.POSTED,
                posted=output,
                challenge_deadline=receipt.block_number + opt.challengeWindow,
            )
            r = optimistic.getRound(rid)
            assert (r.phase, r.poster, r.challengeDeadline) == (
                Phase.POSTED,
                poster.address,
                plan["challenge_deadline"],
            )
            assert bytes(r.postedDigest) == output_digest(output)
            assert hub.getRequest(rid).status == Status.PENDING  # posted is not a result

        @precondition(lambda self: self.opt_rids(Phase.POSTED))
        @rule(pick=st.integers(0, 50), behaviors=BEHAVIOR_LISTS, who=st.sampled_from(sorted(challengers)))
        def optimistic_challenge(self, pick: int, behaviors: list[str], who: str) -> None:
            """Anyone challenges a post within the challenge window, locking a bond and paying for a
            consensus escalation of the same input, whose committee then behaves as drawn; when the pool
            is too small to escalate, nothing can check the post and both bonds go back."""
            rids = self.opt_rids(Phase.POSTED)
            self.challenge(rids[pick % len(rids)], behaviors, who)

        def challenge(self, rid: int, behaviors: list[str], who: str) -> None:
            plan = self.plans[rid]
            sender = challengers[who]
            mode = optimistic.address
            k = opt.escalationK
            fee = hub.quote(model_id, version, k)
            deadline = plan["challenge_deadline"]
            if self.next_block() > deadline:
                with ape.reverts(optimistic.ChallengeWindowClosed, requestId=rid, challengeDeadline=deadline):
                    optimistic.challenge(rid, sample_input(), fee, sender=sender)
                return
            with ape.reverts(optimistic.FeeAboveMax, fee=fee, maxFee=fee - 1):
                optimistic.challenge(rid, sample_input(), fee - 1, sender=sender)
            paid = opt.challengeBond + fee
            self.mint(sender, paid)
            escalable = staking.eligibleAt(model_id, self.next_block() + 1) >= k
            receipt = optimistic.challenge(rid, sample_input(), fee, sender=sender)
            self.move(sender.address, -paid)
            self.move(mode, paid)
            plan["challenger"] = sender.address
            eid = int(receipt.return_value)
            if not escalable:
                # Nothing can check the post: bonds and fee go back, the request ends Disputed.
                assert eid == 0
                self.record(receipt)
                payouts: list[tuple[str, str, int]] = []
                self.opt_pay(payouts, plan["committee"][0], opt.postBond)
                self.opt_pay(payouts, sender.address, paid)
                self.check_payouts(receipt, payouts)
                self.end_round(rid, Phase.UNDECIDED, receipt)
                return
            # The escalation's fee: from the mode's credit when that covers it, else from its tokens.
            if self.credits.get(mode, 0) >= fee:
                self.credits[mode] -= fee
            else:
                self.move(mode, -fee)
            (created,) = receipt.decode_logs(hub.RequestCreated)
            assert (created.requestId, created.requester, created.mode, created.k, created.fee) == (
                eid,
                mode,
                CONSENSUS,
                k,
                fee,
            )
            plan.update(phase=Phase.CHALLENGED, escalation=eid)
            r = optimistic.getRound(rid)
            assert (r.phase, r.challenger, r.escalationId) == (Phase.CHALLENGED, sender.address, eid)
            assert optimistic.deadlineOf(rid) == consensus.deadlineOf(eid) + self.grace
            chain.mine(2)  # the escalation's seed block, and one more for the preview
            committee = list(consensus.previewCommittee(eid))
            self.plans[eid] = {
                "mode": CONSENSUS,
                "k": k,
                "requester": mode,
                "fee": fee,
                "op_fee": hub.getRequest(eid).operatorFee,
                "callback": False,
                "committee": committee,
                "behaviors": dict(zip(committee, [*behaviors, *["honest"] * k], strict=False)),
                "parent": rid,
            }
            self.commit_all(eid)

        @precondition(lambda self: self.opt_rids(Phase.CHALLENGED))
        @rule(pick=st.integers(0, 50), how=st.sampled_from(["now", "settle", "expire"]))
        def optimistic_resolve(self, pick: int, how: str) -> None:
            """Anyone resolves a challenged round once its escalation ended: now (refused while the
            escalation may still end), once the escalation's committee revealed and anyone finalized it,
            or once nobody did and resolve may expire the escalation itself. The escalation's output
            decides who gets the bonds."""
            rids = self.opt_rids(Phase.CHALLENGED)
            self.resolve(rids[pick % len(rids)], how)

        def settle_escalation(self, eid: int) -> None:
            """The escalation's committee reveals as its relayers would, and anyone finalizes it."""
            r = consensus.getRound(eid)
            if r.committedMask != (1 << r.k) - 1 and self.next_block() <= r.commitDeadline:
                chain.mine(r.commitDeadline - chain.blocks.head.number)
            self.reveal_all()
            if not consensus.canFinalize(eid) and self.next_block() <= r.revealDeadline:
                chain.mine(r.revealDeadline - chain.blocks.head.number)
            self.finalize([eid])

        def resolve(self, rid: int, how: str) -> None:
            plan = self.plans[rid]
            eid = plan["escalation"]
            if eid not in self.settled and how == "settle":
                self.settle_escalation(eid)
            if eid not in self.settled:
                expirable = consensus.deadlineOf(eid) + self.grace
                if self.next_block() <= expirable:
                    with ape.reverts(optimistic.EscalationPending, escalationId=eid):
                        optimistic.resolve(rid, sender=attacker)
                    if how == "now":
                        return
                    chain.mine(expirable - chain.blocks.head.number)
            # The escalation accepted the true output (the only one a majority of it can give), or nothing
            # (an escalation nobody settled is expired by resolve itself).
            escalated = self.settled.get(eid, Status.EXPIRED)
            poster, challenger = plan["committee"][0], plan["challenger"]
            if escalated in (Status.FINALIZED, Status.FAILED):
                assert bytes(hub.getResult(eid).outputDigest) == output_digest(HONEST)
                phase = Phase.UPHELD if plan["posted"] == HONEST else Phase.OVERTURNED
            else:
                phase = Phase.UNDECIDED
            slashed = phase == Phase.OVERTURNED and opt.slashBpsWrong > 0
            cuts = self.expect_cuts([(poster, opt.slashBpsWrong)]) if slashed else []
            pending = rid not in self.settled
            receipt = optimistic.resolve(rid, sender=deployer)
            # The escalation, when it expired here; then the request, if the hub still waited for it.
            self.record(receipt)
            assert self.settled[eid] == escalated
            payouts: list[tuple[str, str, int]] = []
            share = opt.winnerShareBps
            if phase == Phase.UPHELD:
                self.opt_pay(payouts, poster, opt.postBond + opt.challengeBond * share // BPS)
            elif phase == Phase.OVERTURNED:
                self.opt_pay(payouts, challenger, opt.challengeBond + opt.postBond * share // BPS)
            else:
                self.opt_pay(payouts, poster, opt.postBond)
                self.opt_pay(payouts, challenger, opt.challengeBond + self.escalation_fee(rid))
            self.check_payouts(receipt, payouts)
            assert self.slashed_in(receipt) == cuts
            for slash in receipt.decode_logs(staking.Slashed):
                assert (slash.rewardRecipient, slash.reward) == (
                    challenger,
                    slash.amount * opt.rewardBps // BPS,
                )
            (resolved,) = receipt.decode_logs(optimistic.Resolved)
            assert resolved.phase == phase
            if pending:
                assert self.settled[rid] == (
                    Status.DISPUTED if phase == Phase.UNDECIDED else Status.FINALIZED
                )
                if phase != Phase.UNDECIDED:
                    assert hub.verifyOutput(rid, HONEST)
                    agreeing = [poster] if phase == Phase.UPHELD else []
                    assert list(hub.getResult(rid).agreeing) == agreeing
            self.end_round(rid, phase, receipt)

        @precondition(lambda self: self.opt_rids(Phase.POSTED))
        @rule(pick=st.integers(0, 50), wait=st.booleans())
        def optimistic_finalize(self, pick: int, wait: bool) -> None:
            """Anyone finalizes an unchallenged post with the posted bytes once the challenge window is
            over: the poster is paid and gets its bond back (only the bond if the hub expired the
            request)."""
            rids = self.opt_rids(Phase.POSTED)
            self.finalize_post(rids[pick % len(rids)], wait)

        def finalize_post(self, rid: int, wait: bool) -> None:
            plan = self.plans[rid]
            posted, deadline = plan["posted"], plan["challenge_deadline"]
            if self.next_block() <= deadline:
                with ape.reverts(optimistic.ChallengeWindowOpen, requestId=rid, challengeDeadline=deadline):
                    optimistic.finalize(rid, posted, sender=attacker)
                if not wait:
                    return
                chain.mine(deadline - chain.blocks.head.number)
            with ape.reverts(optimistic.OutputMismatch, requestId=rid):
                optimistic.finalize(rid, posted + b"\x00", sender=attacker)
            pending = rid not in self.settled
            receipt = optimistic.finalize(rid, posted, sender=attacker)
            self.record(receipt)
            payouts: list[tuple[str, str, int]] = []
            self.opt_pay(payouts, plan["committee"][0], opt.postBond)
            self.check_payouts(receipt, payouts)
            assert receipt.decode_logs(hub.MemberPenalized) == []
            if pending:
                assert self.settled[rid] == (Status.FAILED if posted == FAILED_OUTPUT else Status.FINALIZED)
                assert hub.verifyOutput(rid, posted)
                assert list(hub.getResult(rid).agreeing) == plan["committee"]
            self.end_round(rid, Phase.UPHELD, receipt)

        @precondition(lambda self: self.opt_rids(Phase.OPEN))
        @rule(pick=st.integers(0, 50), wait=st.booleans())
        def optimistic_expire(self, pick: int, wait: bool) -> None:
            """Anyone expires a round nothing was posted for once the post window is over: a full refund,
            the drawn poster slashed for silence while its seed is readable; never before."""
            rids = self.opt_rids(Phase.OPEN)
            self.expire_post(rids[pick % len(rids)], wait)

        def expire_post(self, rid: int, wait: bool) -> None:
            plan = self.plans[rid]
            deadline = plan["post_deadline"]
            if self.next_block() <= deadline:
                with ape.reverts(optimistic.PostWindowOpen, requestId=rid, postDeadline=deadline):
                    optimistic.expire(rid, sender=attacker)
                if not wait:
                    return
                chain.mine(deadline - chain.blocks.head.number)
            pending = rid not in self.settled
            seed_block = optimistic.getRound(rid).seedBlock
            drawable = self.next_block() <= seed_block + 256 and staking.eligibleAt(model_id, seed_block) >= 1
            slashed = pending and drawable and opt.slashBpsSilence > 0
            cuts = self.expect_cuts([(plan["committee"][0], opt.slashBpsSilence)]) if slashed else []
            receipt = optimistic.expire(rid, sender=attacker)
            self.record(receipt)
            assert self.slashed_in(receipt) == cuts
            assert all(e.reward == 0 for e in receipt.decode_logs(staking.Slashed))
            if pending:
                assert self.settled[rid] == Status.EXPIRED
                (fees,) = receipt.decode_logs(hub.FeesDistributed)
                assert (fees.agreeing, fees.refund) == (0, plan["fee"])  # a full refund
            self.end_round(rid, Phase.UNPOSTED, receipt)

        @rule(gift=st.sampled_from(["none", "tokens", "credit"]), amount=st.integers(1, 10**6))
        def optimistic_sweep(self, gift: str, amount: int) -> None:
            """Anyone sweeps the mode: the treasury is credited what it holds beyond `locked` (shares of
            lost bonds, escalation refunds for members who did not agree, tokens sent or deposited to it),
            never what a round still needs."""
            mode = optimistic.address
            if gift != "none":
                self.mint(attacker, amount)
                self.move(attacker.address, -amount)
                if gift == "tokens":
                    token.transfer(optimistic, amount, sender=attacker)
                    self.move(mode, amount)
                else:
                    token.approve(hub, amount, sender=attacker)
                    hub.deposit(optimistic, amount, sender=attacker)
                    self.credit(mode, amount)
            self.sweep()

        def sweep(self) -> None:
            holds, locked = self.opt_holds(), self.opt_locked()
            surplus = max(0, holds - locked)
            payouts: list[tuple[str, str, int]] = []
            self.opt_pay(payouts, hub.treasury(), surplus)
            receipt = optimistic.sweep(sender=attacker)
            assert receipt.return_value == surplus
            self.check_payouts(receipt, payouts)
            # Exactly `locked` stays, but for escalation fees it counts that are not back in it (yet).
            assert self.opt_holds() == min(holds, locked)

        def end_optimistic_rounds(self) -> None:
            """Every optimistic round still open ends in its mode, waiting as long as it must."""
            for rid in self.opt_rids(Phase.OPEN):
                self.expire_post(rid, wait=True)
            for rid in self.opt_rids(Phase.POSTED):
                self.finalize_post(rid, wait=True)
            for rid in self.opt_rids(Phase.CHALLENGED):
                self.resolve(rid, "settle")

        # ---------------------------------------------------------------- stake and claims

        @rule(i=st.integers(0, 4), amount=st.integers(1, 300))
        def stake_more(self, i: int, amount: int) -> None:
            self.mint(operators[i], amount * E18)
            staking.stake(amount * E18, sender=operators[i])
            self.move(operators[i].address, -amount * E18)
            self.bonded[operators[i].address] += amount * E18

        @rule(i=st.integers(0, 4), amount=st.integers(1, 400))
        def unbond(self, i: int, amount: int) -> None:
            op = operators[i]
            if amount * E18 > staking.operatorInfo(op).stake:
                with ape.reverts(staking.InsufficientStake):
                    staking.requestUnbond(amount * E18, sender=op)
            elif len(staking.unbondingsOf(op)) < staking.MAX_UNBONDINGS():
                staking.requestUnbond(amount * E18, sender=op)

        @rule(i=st.integers(0, 4), wait=st.booleans())
        def withdraw_matured(self, i: int, wait: bool) -> None:
            if wait:
                chain.mine(TEST_PARAMS["unbonding_period"])
            op = operators[i]
            if any(u.releaseAt <= chain.blocks.height + 1 for u in staking.unbondingsOf(op)):
                receipt = staking.withdraw(sender=op)
                (withdrawn,) = receipt.decode_logs(staking.Withdrawn)
                self.move(op.address, withdrawn.amount)
                self.bonded[op.address] -= withdrawn.amount
            else:
                with ape.reverts(staking.NothingToWithdraw):
                    staking.withdraw(sender=op)

        @rule(i=st.integers(0, 4))
        def unjail(self, i: int) -> None:
            op = operators[i]
            info = staking.operatorInfo(op)
            if info.jailed and info.stake >= TEST_PARAMS["min_stake"]:
                if chain.blocks.height + 1 < info.jailedUntil:
                    with ape.reverts(staking.JailPeriodNotOver):
                        staking.unjail(sender=op)
                    chain.mine(info.jailedUntil - chain.blocks.height - 1)
                staking.unjail(sender=op)

        @rule(i=st.integers(0, 9))
        def claim(self, i: int) -> None:
            holder = holders[i]
            if hub.claimable(holder) > 0:
                receipt = hub.claim(sender=holder)
                amount = receipt.events.filter(hub.Claimed)[0].amount
                assert amount == self.credits[holder.address]
                self.credits[holder.address] = 0
                self.move(holder.address, amount)
            else:
                with ape.reverts(hub.NothingToClaim):
                    hub.claim(sender=holder)

        @initialize(to=st.sampled_from(REQUESTERS), fees=st.integers(1, 3), extra=st.integers(1, 10**6))
        def first_deposit(self, to: str, fees: int, extra: int) -> None:
            """Every run has one requester whose credit pays some of its requests."""
            self.deposit(to, fees, extra)

        @rule(to=st.sampled_from(REQUESTERS), fees=st.integers(0, 2), extra=st.integers(1, 10**6))
        def deposit(self, to: str, fees: int, extra: int) -> None:
            """Anyone (here the attacker) funds a requester's credit, sometimes enough for its next
            requests, sometimes just short."""
            account = dapp if to == "dapp" else consumers[to]
            amount = fees * hub.quote(model_id, version, 3) + extra
            self.mint(attacker, amount)
            token.approve(hub, amount, sender=attacker)
            hub.deposit(account, amount, sender=attacker)
            self.move(attacker.address, -amount)
            self.credits[account.address] = self.credits.get(account.address, 0) + amount

        @rule(name=st.sampled_from(sorted(consumers)))
        def claim_consumer_refunds(self, name: str) -> None:
            consumer = consumers[name]
            before = token.balanceOf(consumer)
            owed = hub.claimable(consumer)
            consumer.claimRefunds(sender=attacker)  # anyone may push; the tokens go only to the consumer
            assert token.balanceOf(consumer) - before == owed
            self.credits[consumer.address] = 0
            self.move(consumer.address, owed)

        @rule(name=st.sampled_from(sorted(consumers)), pick=st.integers(0, 50), status=st.integers(2, 5))
        def attacker_calls_consumer(self, name: str, pick: int, status: int) -> None:
            consumer = consumers[name]
            rids = sorted(self.plans) or [1]
            rid = rids[pick % len(rids)]
            with ape.reverts(consumer.OnlyHub, caller=attacker.address):
                consumer.onInferenceResult(rid, status, HONEST, sender=attacker)

        # ---------------------------------------------------------------- invariants

        @invariant()
        def tokens_conserved(self) -> None:
            assert token.totalSupply() == self.supply
            assert self.held() + self.untracked == self.supply

        @invariant()
        def every_balance_as_booked(self) -> None:
            """Fees, claims, stakes, withdrawals and slashes (to the treasury and reporters) moved exactly
            the tokens the machine booked."""
            balances, _ = self.reads()
            for account in actors:
                assert balances[account.address] == self.wallets[account.address], account

        @invariant()
        def hub_holds_exactly_escrow_held_fees_and_credits(self) -> None:
            escrow = sum(self.plans[rid]["fee"] for rid in self.pending())
            held = 0
            for rid in self.settled:
                assert hub.heldFees(rid) == self.held_fees.get(rid, 0), rid
                held += self.held_fees.get(rid, 0) * self.plans[rid]["op_fee"]
            balances, claimables = self.reads()
            assert balances[hub.address] == escrow + held + sum(claimables.values())

        @invariant()
        def each_escrow_paid_held_or_refunded(self) -> None:
            for rid, plan in self.plans.items():
                if rid in self.settled:
                    assert self.accounted[rid] + self.held_fees[rid] * plan["op_fee"] == plan["fee"], rid
                else:
                    assert rid not in self.accounted and hub.heldFees(rid) == 0, rid

        @invariant()
        def claimable_matches_the_fee_splits(self) -> None:
            _, claimables = self.reads()
            for account in actors:
                assert claimables[account.address] == self.credits.get(account.address, 0), account

        @invariant()
        def each_request_settled_once_in_its_status(self) -> None:
            for rid in self.plans:
                status = Status(hub.getRequest(rid).status)
                if rid in self.settled:
                    assert status == self.settled[rid]
                else:
                    assert status == Status.PENDING

        @invariant()
        def callbacks_only_to_the_requester(self) -> None:
            seen = set()
            for rid, target, success in self.callbacks:
                plan = self.plans[rid]
                assert target == plan["requester"] and plan["callback"], (rid, target)
                assert rid not in seen, "called back twice"
                seen.add(rid)
                if target == consumers["reverting"].address or target == consumers["burner"].address:
                    assert not success
            recording = consumers["recording"]
            delivered = [rid for rid, target, ok in self.callbacks if ok and target == recording.address]
            assert recording.calls() == len(delivered)
            if delivered:
                assert recording.lastRequestId() == delivered[-1]

        @invariant()
        def staking_holds_exactly_stakes(self) -> None:
            for op in operators:
                assert self.bond_of(op) == self.bonded[op.address], op
            assert token.balanceOf(staking) == sum(self.bonded.values()) + self.staked_elsewhere

        @invariant()
        def optimistic_locked_is_what_open_rounds_owe(self) -> None:
            """`locked` is the bonds and escalation fees of the rounds not ended, and the mode holds at
            least what it must pay out."""
            assert optimistic.locked() == self.opt_locked()
            assert self.opt_holds() >= self.opt_owed()

        @invariant()
        def optimistic_rounds_end_once_in_their_status(self) -> None:
            """Each round is in the phase booked for it, and its request in the status that phase gives
            (each_request_settled_once_in_its_status ties the booked statuses to the hub's)."""
            for rid in self.opt_rids():
                plan = self.plans[rid]
                phase = plan["phase"]
                r = optimistic.getRound(rid)
                assert r.phase == phase, rid
                if rid in self.net_expired:
                    assert self.settled[rid] == Status.EXPIRED, rid
                elif phase in PHASE_STATUSES:
                    assert self.settled[rid] in PHASE_STATUSES[phase], (rid, phase, self.settled[rid])
                else:
                    assert rid not in self.settled, rid
                eid = plan["escalation"]
                expected = (plan["challenger"], eid) if eid else (ape.utils.ZERO_ADDRESS, 0)
                assert (r.challenger, r.escalationId) == expected, rid
                if eid is not None:
                    assert self.plans[eid]["parent"] == rid, eid

        def teardown(self) -> None:
            try:
                # Open attested rounds with a quorum are settled in one batch with every signature held.
                ready = self.settleable()
                if ready:
                    self.attested_settle_many(len(ready), [True] * 3 * len(ready), skip=True)
                # Within the late window, left-out agreement is shown and left-out dissent reported.
                for rid in self.accepted():
                    self.settle_left_out(rid)
                # Time runs on; members that reveal at all keep revealing when they can.
                for _ in range((TEST_PARAMS["commit_window"] + TEST_PARAMS["reveal_window"]) // 5 + 1):
                    self.advance(5)
                # The rounds still open are finalized or expired by their mode, but for one, left to the
                # safety net (its relayers went away): it expires once its grace is over, never before.
                left = self.pending()
                self.finalize([rid for rid in left[:-1] if self.plans[rid]["mode"] == CONSENSUS])
                for rid in left[:-1]:
                    if self.plans[rid]["mode"] == ATTESTED:
                        self.expire_round(rid, wait=True)
                if left:
                    self.expire_request(left[-1], wait=True)
                # Optimistic rounds end in their mode (those the safety net expired pay their bonds only),
                # and the sweep leaves the mode exactly what it owed before the machine began.
                self.end_optimistic_rounds()
                self.sweep()
                assert optimistic.locked() == self.opt_locked() == self.base_locked
                assert self.opt_holds() == self.base_locked
                # Once every late window is over, the fees still held go back to their requesters.
                for rid in self.attested_rids():
                    self.release(rid, wait=True)
                for rid in self.plans:
                    assert Status(hub.getRequest(rid).status).terminal, rid
                    assert rid in self.settled, rid
                    assert hub.heldFees(rid) == self.held_fees[rid] == 0, rid
                    assert self.accounted[rid] == self.plans[rid]["fee"], rid
                    # Ended once and for good: neither the safety net nor the round can end it again.
                    self.check_round_cannot_end(rid)
                self.tokens_conserved()
                self.every_balance_as_booked()
                self.hub_holds_exactly_escrow_held_fees_and_credits()
                self.each_escrow_paid_held_or_refunded()
                self.claimable_matches_the_fee_splits()
                self.callbacks_only_to_the_requester()
                self.staking_holds_exactly_stakes()
                self.optimistic_locked_is_what_open_rounds_owe()
                self.optimistic_rounds_end_once_in_their_status()
                assert all(self.plans[rid]["phase"] in PHASE_STATUSES for rid in self.opt_rids())
            finally:
                chain.restore(self.snapshot)

    return HubMachine


def test_hub__random_operators_requesters_and_consumers__invariants_hold(machine: Any) -> None:
    run_state_machine_as_test(
        machine, settings=settings(max_examples=3, stateful_step_count=24, deadline=None)
    )
