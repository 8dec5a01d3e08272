"""Stateful property test: random honest, lying, silent and withholding operators; requests from an
EOA and through recording, reverting and gas-burning consumer contracts, with callbacks and
digest-only storage; stakes, unbondings, jail; requests the consensus round never settles, expired
by anyone through the hub's safety net; and an attacker calling consumers directly. After every step
tokens are conserved, every escrowed token is paid or refunded exactly once, and no callback reaches
a contract for a request it did not make; once time advances, every request reaches a terminal
status, and no request ends twice (the mode cannot settle what the hub expired, nor the reverse)."""

import ape
import pytest
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
from verinfer.chain.contracts import Fault, Status

from tests.conftest import E18, TEST_PARAMS, sample_input, sample_output

BEHAVIORS = ("honest", "liar", "silent", "withhold")
HONEST = sample_output(0.25)
# What each behaviour may be penalized for: a member that reveals late counts as withholding.
ALLOWED_FAULTS = {
    "honest": {Fault.WITHHELD},
    "liar": {Fault.DISSENT, Fault.WITHHELD},
    "silent": {Fault.SILENT},
    "withhold": {Fault.WITHHELD},
}
REQUESTERS = ("dapp", "recording", "reverting", "burner")
REQUEST_ARGS = {
    "k": st.integers(1, 3),
    "behaviors": st.lists(st.sampled_from(BEHAVIORS), min_size=3, max_size=3),
    "via": st.sampled_from(REQUESTERS),
    "callback_gas": st.sampled_from([0, 60_000, 400_000]),
    "digest_only": st.booleans(),
}


@pytest.fixture
def machine(
    chain,
    accounts,
    token,
    registry,
    staking,
    hub,
    consensus,
    model,
    operators,
    dapp,
    act,
    deployer,
    challenger,
    project,
):
    model_id, version = model
    model_owner = registry.ownerOf(model_id)
    attacker = challenger
    holders = [accounts[i] for i in range(10)]
    consumers = {
        "recording": deployer.deploy(project.RecordingConsumer, hub),
        "reverting": deployer.deploy(project.RevertingConsumer, hub),
        "burner": deployer.deploy(project.GasBurnerConsumer, hub),
    }
    actors = [*holders, *consumers.values()]
    token.approve(hub, 2**256 - 1, sender=dapp)
    for op in operators:
        token.approve(staking, 2**256 - 1, sender=op)

    class HubMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.snapshot = chain.snapshot()
            self.supply = token.totalSupply()
            # Tokens held by accounts this machine never touches (other modules' operators).
            self.untracked = self.supply - self.held()
            self.staked_elsewhere = token.balanceOf(staking) - self.staked()
            self.plans: dict[int, dict] = {}
            self.committed: set[int] = set()
            self.revealed: set[int] = set()
            self.settled: dict[int, int] = {}
            self.credits = {a.address: hub.claimable(a) for a in actors}
            self.callbacks: list[tuple[int, str, bool]] = []
            windows = consensus.params()
            self.windows = windows.commitWindow + windows.revealWindow
            self.grace = hub.EXPIRY_GRACE()

        # ---------------------------------------------------------------- helpers

        def held(self):
            return sum(token.balanceOf(a) for a in actors) + token.balanceOf(hub) + token.balanceOf(staking)

        def staked(self):
            return sum(
                staking.operatorInfo(op).stake + staking.operatorInfo(op).unbonding for op in operators
            )

        def mint(self, account, amount):
            token.mint(account, amount, sender=deployer)
            self.supply += amount

        def record(self, receipt):
            """Books what a settling transaction did: status, fee split, penalties, callbacks."""
            for event in receipt.decode_logs(hub.RequestSettled):
                rid = event.requestId
                assert rid not in self.settled, "settled twice"
                assert Status(event.status).terminal
                self.settled[rid] = event.status
            for event in receipt.decode_logs(hub.FeesDistributed):
                rid = event.requestId
                plan = self.plans[rid]
                paid = event.perOperator * event.agreeing + event.modelOwner + event.treasury + event.refund
                assert paid == plan["fee"], "escrow not fully paid or refunded"
                agreeing = hub.getResult(rid).agreeing if event.agreeing else []
                assert len(agreeing) == event.agreeing
                for member in agreeing:
                    self.credit(member, event.perOperator)
                self.credit(model_owner, event.modelOwner)
                self.credit(hub.treasury(), event.treasury)
                self.credit(plan["requester"], event.refund)
            for event in receipt.decode_logs(hub.MemberPenalized):
                behavior = self.plans[event.requestId]["behaviors"][event.operator]
                assert Fault(event.fault) in ALLOWED_FAULTS[behavior], (behavior, event.fault)
            for event in receipt.decode_logs(hub.CallbackExecuted):
                self.callbacks.append((event.requestId, event.requester, event.success))

        def credit(self, account, amount):
            if amount:
                self.credits[account] = self.credits.get(account, 0) + amount

        def pending(self):
            return [rid for rid in self.plans if rid not in self.settled]

        def lie(self, address):
            return sample_output(0.5 + operators.index(ape.accounts[address]) / 100)

        def output_of(self, rid, address):
            return HONEST if self.plans[rid]["behaviors"][address] == "honest" else self.lie(address)

        def accepted_output(self, rid):
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

        # ---------------------------------------------------------------- rules

        @initialize(**REQUEST_ARGS)
        def first_request(self, k, behaviors, via, callback_gas, digest_only):
            """Every run has a request to settle, however few steps it takes."""
            self.request(k, behaviors, via, callback_gas, digest_only)

        @rule(**REQUEST_ARGS)
        def request(self, k, behaviors, via, callback_gas, digest_only):
            fee = hub.quote(model_id, version, k)
            req = (model_id, version, 1, k, callback_gas, digest_only, fee, sample_input())
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
                return
            if via == "dapp":
                receipt = hub.requestInference(req, sender=dapp)
            else:
                receipt = requester.request(token, req, sender=dapp)
            created = receipt.decode_logs(hub.RequestCreated)[0]
            rid = created.requestId
            r = consensus.getRound(rid)
            assert created.seedBlock == r.seedBlock == seed_block
            assert created.deadline == r.revealDeadline == seed_block + self.windows
            # One block makes the seed block; views run on the latest block, so the preview needs one more.
            chain.mine(2)
            committee = consensus.previewCommittee(rid)
            self.plans[rid] = {
                "requester": requester.address,
                "fee": fee,
                "callback": callback_gas != 0,
                "behaviors": dict(zip(committee, behaviors, strict=False)),
            }
            # Members that are not silent commit at once, as their relayers would; the first draws.
            for address, behavior in self.plans[rid]["behaviors"].items():
                if behavior != "silent":
                    act.commit(ape.accounts[address], rid, self.output_of(rid, address))
            if any(b != "silent" for b in self.plans[rid]["behaviors"].values()):
                assert list(consensus.getCommittee(rid)) == list(committee)
            self.committed.add(rid)

        @rule()
        def reveal_all(self):
            for rid in self.pending():
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
        def advance(self, blocks):
            chain.mine(blocks)
            # Members that reveal at all reveal as soon as they can, as their relayers would.
            self.reveal_all()

        @rule()
        def finalize_ready(self):
            self.finalize(self.pending())

        def finalize(self, rids):
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
        def expire(self, pick, ended, wait):
            """Anyone may call the safety net on any request: it refuses those that ended already and
            those whose round may still end (waiting, when asked, until it may expire them)."""
            rids = sorted(self.settled) if ended else self.pending()
            if rids:
                self.expire_request(rids[pick % len(rids)], wait)

        def expire_request(self, rid, wait):
            """The safety net: a request its round left open is expired with a full refund and nobody
            penalized, but only once the round's reveal deadline and the grace after it are over; a
            request that ended already never ends again."""
            if rid in self.settled:
                with ape.reverts(hub.RequestNotPending, requestId=rid):
                    hub.expire(rid, sender=attacker)
                return
            expires_after = consensus.getRound(rid).revealDeadline + self.grace
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
            result = hub.getResult(rid)
            assert (result.status, result.settledBlock, list(result.agreeing)) == (
                Status.EXPIRED,
                receipt.block_number,
                [],
            )
            # The round cannot settle the request a second time.
            with ape.reverts(hub.RequestNotPending, requestId=rid):
                consensus.finalize(rid, sender=deployer)

        @rule(i=st.integers(0, 4), amount=st.integers(1, 300))
        def stake_more(self, i, amount):
            self.mint(operators[i], amount * E18)
            staking.stake(amount * E18, sender=operators[i])

        @rule(i=st.integers(0, 4), amount=st.integers(1, 400))
        def unbond(self, i, amount):
            op = operators[i]
            if amount * E18 > staking.operatorInfo(op).stake:
                with ape.reverts(staking.InsufficientStake):
                    staking.requestUnbond(amount * E18, sender=op)
            elif len(staking.unbondingsOf(op)) < staking.MAX_UNBONDINGS():
                staking.requestUnbond(amount * E18, sender=op)

        @rule(i=st.integers(0, 4), wait=st.booleans())
        def withdraw_matured(self, i, wait):
            if wait:
                chain.mine(TEST_PARAMS["unbonding_period"])
            op = operators[i]
            if any(u.releaseAt <= chain.blocks.height + 1 for u in staking.unbondingsOf(op)):
                staking.withdraw(sender=op)
            else:
                with ape.reverts(staking.NothingToWithdraw):
                    staking.withdraw(sender=op)

        @rule(i=st.integers(0, 4))
        def unjail(self, i):
            op = operators[i]
            info = staking.operatorInfo(op)
            if info.jailed and info.stake >= TEST_PARAMS["min_stake"]:
                if chain.blocks.height + 1 < info.jailedUntil:
                    with ape.reverts(staking.JailPeriodNotOver):
                        staking.unjail(sender=op)
                    chain.mine(info.jailedUntil - chain.blocks.height - 1)
                staking.unjail(sender=op)

        @rule(i=st.integers(0, 9))
        def claim(self, i):
            holder = holders[i]
            if hub.claimable(holder) > 0:
                receipt = hub.claim(sender=holder)
                assert receipt.events.filter(hub.Claimed)[0].amount == self.credits[holder.address]
                self.credits[holder.address] = 0
            else:
                with ape.reverts(hub.NothingToClaim):
                    hub.claim(sender=holder)

        @rule(name=st.sampled_from(sorted(consumers)))
        def claim_consumer_refunds(self, name):
            consumer = consumers[name]
            before = token.balanceOf(consumer)
            owed = hub.claimable(consumer)
            consumer.claimRefunds(sender=attacker)  # anyone may push; the tokens go only to the consumer
            assert token.balanceOf(consumer) - before == owed
            self.credits[consumer.address] = 0

        @rule(name=st.sampled_from(sorted(consumers)), pick=st.integers(0, 50), status=st.integers(2, 5))
        def attacker_calls_consumer(self, name, pick, status):
            consumer = consumers[name]
            rids = sorted(self.plans) or [1]
            rid = rids[pick % len(rids)]
            with ape.reverts(consumer.OnlyHub, caller=attacker.address):
                consumer.onInferenceResult(rid, status, HONEST, sender=attacker)

        # ---------------------------------------------------------------- invariants

        @invariant()
        def tokens_conserved(self):
            assert token.totalSupply() == self.supply
            assert self.held() + self.untracked == self.supply

        @invariant()
        def hub_holds_exactly_escrow_plus_credits(self):
            escrow = sum(self.plans[rid]["fee"] for rid in self.pending())
            credits = sum(hub.claimable(a) for a in actors)
            assert token.balanceOf(hub) == escrow + credits

        @invariant()
        def claimable_matches_the_fee_splits(self):
            for account in actors:
                assert hub.claimable(account) == self.credits.get(account.address, 0), account

        @invariant()
        def each_request_settled_once_in_its_status(self):
            for rid in self.plans:
                status = Status(hub.getRequest(rid).status)
                if rid in self.settled:
                    assert status == self.settled[rid]
                else:
                    assert status == Status.PENDING

        @invariant()
        def callbacks_only_to_the_requester(self):
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
        def staking_holds_exactly_stakes(self):
            assert token.balanceOf(staking) == self.staked() + self.staked_elsewhere

        def teardown(self):
            try:
                # Time runs on; members that reveal at all keep revealing when they can.
                for _ in range((TEST_PARAMS["commit_window"] + TEST_PARAMS["reveal_window"]) // 5 + 1):
                    self.advance(5)
                # The rounds still open are finalized, but for one, left to the safety net (its relayers
                # went away): it expires once its grace is over, never before.
                left = self.pending()
                self.finalize(left[:-1])
                if left:
                    self.expire_request(left[-1], wait=True)
                for rid in self.plans:
                    assert Status(hub.getRequest(rid).status).terminal, rid
                    assert rid in self.settled, rid
                    # Ended once and for good: neither the safety net nor the round can end it again.
                    with ape.reverts(hub.RequestNotPending, requestId=rid):
                        hub.expire(rid, sender=attacker)
                    if consensus.getRound(rid).settledBlock == 0:  # expired by the hub, not the round
                        assert self.settled[rid] == Status.EXPIRED
                        with ape.reverts(hub.RequestNotPending, requestId=rid):
                            consensus.finalize(rid, sender=deployer)
                    else:
                        with ape.reverts(consensus.RoundClosed, requestId=rid):
                            consensus.finalize(rid, sender=deployer)
                self.tokens_conserved()
                self.hub_holds_exactly_escrow_plus_credits()
                self.claimable_matches_the_fee_splits()
                self.callbacks_only_to_the_requester()
            finally:
                chain.restore(self.snapshot)

    return HubMachine


def test_hub__random_operators_requesters_and_consumers__invariants_hold(machine):
    run_state_machine_as_test(
        machine, settings=settings(max_examples=5, stateful_step_count=15, deadline=None)
    )
