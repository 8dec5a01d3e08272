"""Stateful property test: random honest, lying and silent operators, stakes, unbondings and
requests. After every step tokens are conserved and nothing is paid twice; once time advances,
every request reaches a terminal status."""

import ape
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from verinfer.chain.contracts import Status

from tests.conftest import E18, TEST_PARAMS, sample_input, sample_output

BEHAVIORS = ("honest", "liar", "silent")
HONEST = sample_output(0.25)


@pytest.fixture
def machine(chain, accounts, token, staking, hub, model, operators, dapp, act, deployer):
    model_id, version = model
    holders = [accounts[i] for i in range(10)]
    token.approve(hub, 2**256 - 1, sender=dapp)
    for op in operators:
        token.approve(staking, 2**256 - 1, sender=op)

    class HubMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.snapshot = chain.snapshot()
            self.plans: dict[int, dict[str, str]] = {}
            self.committed: set[int] = set()
            self.revealed: set[int] = set()
            self.settled: set[int] = set()

        # ---------------------------------------------------------------- helpers

        def record(self, receipt):
            for event in receipt.decode_logs(hub.RequestSettled):
                assert event.requestId not in self.settled, "settled twice"
                self.settled.add(event.requestId)

        def pending(self):
            return [rid for rid in self.plans if rid not in self.settled]

        def lie(self, op):
            return sample_output(0.5 + operators.index(op) / 100)

        def output_of(self, rid, address):
            return HONEST if self.plans[rid][address] == "honest" else self.lie(ape.accounts[address])

        # ---------------------------------------------------------------- rules

        @rule(k=st.integers(1, 3), behaviors=st.lists(st.sampled_from(BEHAVIORS), min_size=3, max_size=3))
        def request(self, k, behaviors):
            fee = hub.quote(model_id, version, k)
            token.mint(dapp, fee, sender=deployer)
            req = (model_id, version, 1, k, ape.utils.ZERO_ADDRESS, 0, fee, sample_input())
            eligible = staking.poolInfo(model_id)[1]
            if eligible < k:
                with ape.reverts(hub.InsufficientOperators):
                    hub.requestInference(req, sender=dapp)
                return
            rid = hub.requestInference(req, sender=dapp).return_value
            self.plans[rid] = dict(zip(hub.getCommittee(rid), behaviors, strict=False))
            # Members that are not silent commit at once, as their relayers would.
            for address, behavior in self.plans[rid].items():
                if behavior != "silent":
                    act.commit(ape.accounts[address], rid, self.output_of(rid, address))
            self.committed.add(rid)

        @rule()
        def reveal_all(self):
            for rid in self.pending():
                if rid not in self.committed or rid in self.revealed:
                    continue
                r = hub.getRequest(rid)
                next_block = chain.blocks.head.number + 1
                full = r.committedMask == (1 << r.k) - 1
                if not (full or next_block > r.commitDeadline) or next_block > r.revealDeadline:
                    continue
                for address, behavior in self.plans[rid].items():
                    # Each reveal is a block of its own: a late member can find the window closed.
                    if behavior != "silent" and chain.blocks.head.number + 1 <= r.revealDeadline:
                        self.record(act.reveal(ape.accounts[address], rid, self.output_of(rid, address)))
                self.revealed.add(rid)

        @rule(blocks=st.integers(1, 12))
        def advance(self, blocks):
            chain.mine(blocks)
            # Members that are not silent reveal as soon as they can, as their relayers would.
            self.reveal_all()

        @rule()
        def finalize_ready(self):
            for rid in self.pending():
                if hub.canFinalize(rid):
                    self.record(hub.finalize(rid, sender=deployer))

        @rule(i=st.integers(0, 4), amount=st.integers(1, 300))
        def stake_more(self, i, amount):
            token.mint(operators[i], amount * E18, sender=deployer)
            staking.stake(amount * E18, sender=operators[i])

        @rule(i=st.integers(0, 4), amount=st.integers(1, 400))
        def unbond(self, i, amount):
            op = operators[i]
            if amount * E18 > staking.operatorInfo(op).stake:
                with ape.reverts(staking.InsufficientStake):
                    staking.requestUnbond(amount * E18, sender=op)
            elif len(staking.unbondingsOf(op)) < 16:
                staking.requestUnbond(amount * E18, sender=op)

        @rule(i=st.integers(0, 4))
        def withdraw_matured(self, i):
            chain.pending_timestamp += TEST_PARAMS["unbonding_period"]
            op = operators[i]
            if any(u.releaseAt <= chain.pending_timestamp for u in staking.unbondingsOf(op)):
                staking.withdraw(sender=op)

        @rule(i=st.integers(0, 4))
        def unjail(self, i):
            op = operators[i]
            info = staking.operatorInfo(op)
            if info.jailed and info.stake >= TEST_PARAMS["min_stake"]:
                staking.unjail(sender=op)

        @rule(i=st.integers(0, 9))
        def claim(self, i):
            if hub.claimable(holders[i]) > 0:
                hub.claim(sender=holders[i])
                assert hub.claimable(holders[i]) == 0

        # ---------------------------------------------------------------- invariants

        @invariant()
        def tokens_conserved(self):
            balances = sum(token.balanceOf(a) for a in holders)
            assert balances + token.balanceOf(hub) + token.balanceOf(staking) == token.totalSupply()

        @invariant()
        def hub_holds_exactly_escrow_plus_credits(self):
            escrow = 0
            for rid in self.pending():
                r = hub.getRequest(rid)
                escrow += r.modelFee + r.k * r.operatorFee + r.protocolFee
            credits = sum(hub.claimable(a) for a in holders)
            assert token.balanceOf(hub) == escrow + credits

        @invariant()
        def staking_holds_exactly_stakes(self):
            held = sum(
                staking.operatorInfo(op).stake + staking.operatorInfo(op).unbonding for op in operators
            )
            assert token.balanceOf(staking) == held

        def teardown(self):
            try:
                # Time runs on; members that are not silent keep revealing when they can.
                for _ in range((TEST_PARAMS["commit_window"] + TEST_PARAMS["reveal_window"]) // 5 + 1):
                    self.advance(5)
                self.finalize_ready()
                for rid in self.plans:
                    assert Status(hub.getRequest(rid).status).terminal, rid
                self.tokens_conserved()
                self.hub_holds_exactly_escrow_plus_credits()
            finally:
                chain.restore(self.snapshot)

    return HubMachine


def test_hub__random_operators_and_requests__invariants_hold(machine):
    run_state_machine_as_test(
        machine, settings=settings(max_examples=6, stateful_step_count=20, deadline=None)
    )
