"""A chain history that makes every event kind verinfer's contracts emit: requests in every mode ending in
every status, penalties, a jail and an unjail, held fees, credit payments, claims, registry and staking
changes. `play` runs it on the session's stack and returns what the tests look up."""

from dataclasses import dataclass, field
from typing import Any

import ape
from eth_account.signers.local import LocalAccount
from verinfer.chain.attestations import Domain, sign
from verinfer.devnet.state import dev_account
from verinfer.models.codec import ErrorCode, error_output, output_digest

from tests.conftest import E18, committee_of, next_epoch, request_id_of, sample_input, sample_output, seed_of

CONSENSUS, OPTIMISTIC, ATTESTED = 1, 4, 8
OUT, OTHER, THIRD = sample_output(0.25), sample_output(0.75), sample_output(0.5)
KEYS: dict[str, LocalAccount] = {a.address: a for a in (dev_account(i) for i in range(12))}
# Events no call of the protocol emits (OpenZeppelin's role-admin change and EIP-5267 domain change).
NEVER_EMITTED = {"RoleAdminChanged", "EIP712DomainChanged"}


@dataclass
class Played:
    """Request ids by what happened to them, and the accounts involved."""

    model_id: bytes
    ids: dict[str, int] = field(default_factory=dict)
    dissenter: str = ""
    jailed: str = ""
    consumer: str = ""
    accounts: set[str] = field(default_factory=set)


class Scenario:
    """The session's fixtures the scenario drives."""

    def __init__(self, fx: dict[str, Any]) -> None:
        self.fx = fx
        self.hub, self.consensus = fx["hub"], fx["consensus"]
        self.attested, self.optimistic = fx["attested"], fx["optimistic"]
        self.staking, self.registry = fx["staking"], fx["registry"]
        self.by_address: dict[str, Any] = fx["by_address"]
        self.act = fx["act"]
        self.model: tuple[bytes, int] = (b"", 0)

    def request(self, mode: int = CONSENSUS, k: int = 3, **kwargs: Any) -> int:
        return request_id_of(self.fx["make_request"](k=k, model_ref=self.model, mode=mode, **kwargs))

    def committee(self, rid: int, mode: int = CONSENSUS) -> list[Any]:
        if mode == CONSENSUS:
            return committee_of(self.hub, self.by_address, rid)
        contract = self.attested if mode == ATTESTED else self.optimistic
        seed_block = int(contract.getRound(rid).seedBlock)
        seed = seed_of(rid, bytes(ape.chain.blocks[seed_block].hash))
        k = int(self.hub.getRequest(rid).k)
        drawn = self.staking.drawCommittee(self.hub.poolOf(rid), k, seed, seed_block)
        return [self.by_address[a] for a in drawn]

    def consensus_round(self, rid: int, outputs: list[bytes]) -> list[Any]:
        """The committee commits and reveals `outputs` in member order; finalizes if still pending."""
        members = self.committee(rid)
        for member, output in zip(members, outputs, strict=True):
            self.act.commit(member, rid, output)
        for member, output in zip(members, outputs, strict=True):
            self.act.reveal(member, rid, output)
        if int(self.hub.getRequest(rid).status) == 1:
            ape.chain.mine(60)
            self.consensus.finalize(rid, sender=members[0])
        return members

    def signed(self, member: Any, rid: int, output: bytes) -> tuple[bytes, bytes]:
        domain = Domain(ape.chain.chain_id, self.attested.address)
        att = sign(KEYS[member.address], domain, rid, output_digest(output))
        return att.output_digest, att.signature


def play(fx: dict[str, Any]) -> Played:
    s = Scenario(fx)
    deployer, dapp, challenger = fx["deployer"], fx["dapp"], fx["challenger"]
    operators, fund = fx["operators"], fx["fund"]
    model_id, version = fx["make_model"](
        "explorer-suite", modes=CONSENSUS | OPTIMISTIC | ATTESTED, max_output_bytes=1_024
    )
    s.model = (model_id, version)
    fx["join"](operators, model_id)
    for account in [*operators, challenger]:
        fund(account, 1_000 * E18, s.optimistic, s.hub)
    played = Played(model_id)
    ids = played.ids

    # Silence: nobody of five commits; finalize after the windows expires it and slashes all five.
    ids["silent"] = s.request(k=5)
    ape.chain.mine(60)
    s.consensus.finalize(ids["silent"], sender=dapp)

    # Finalized through a consumer's callback, one dissenter: its second fault jails it.
    consumer = deployer.deploy(ape.project.RecordingConsumer, s.hub)
    played.consumer = consumer.address
    ids["finalized"] = s.request(consumer=consumer, callback_gas=500_000)
    members = s.consensus_round(ids["finalized"], [OUT, OUT, OTHER])
    played.dissenter = played.jailed = members[2].address

    ids["failed"] = s.request()
    s.consensus_round(ids["failed"], [error_output(int(ErrorCode.OUTPUT_TOO_LARGE))] * 3)
    ids["disputed"] = s.request()
    s.consensus_round(ids["disputed"], [OUT, OTHER, THIRD])

    # Nobody acts and nobody finalizes: the hub's safety net expires it (faults decay meanwhile).
    ids["expired"] = s.request()
    deadline = int(s.consensus.deadlineOf(ids["expired"]))
    ape.chain.mine(deadline + 257 - ape.chain.blocks.head.number)
    s.hub.expire(ids["expired"], sender=dapp)
    s.staking.unjail(sender=s.by_address[played.jailed])
    next_epoch(s.staking)

    # Optimistic: a post that stands, and a wrong post overturned by an escalation.
    ids["posted"] = s.request(mode=OPTIMISTIC, k=1)
    [poster] = s.committee(ids["posted"], OPTIMISTIC)
    s.optimistic.post(ids["posted"], OUT, sender=poster)
    ape.chain.mine(int(s.optimistic.params().challengeWindow) + 1)
    s.optimistic.finalize(ids["posted"], OUT, sender=dapp)

    ids["overturned"] = s.request(mode=OPTIMISTIC, k=1)
    [liar] = s.committee(ids["overturned"], OPTIMISTIC)
    s.optimistic.post(ids["overturned"], OTHER, sender=liar)
    fee = s.hub.quote(model_id, version, s.optimistic.params().escalationK)
    receipt = s.optimistic.challenge(ids["overturned"], sample_input(), fee, sender=challenger)
    ids["escalation"] = int(receipt.return_value)
    ape.chain.mine(2)
    escalation = [s.by_address[a] for a in s.consensus.previewCommittee(ids["escalation"])]
    for member in escalation:
        s.act.commit(member, ids["escalation"], OUT)
    for member in escalation:
        s.act.reveal(member, ids["escalation"], OUT)
    s.optimistic.resolve(ids["overturned"], sender=challenger)

    # Attested: a member left out attests late (held fee paid); another's dissent is shown and a third
    # equivocates (held fee refunded after the late window).
    ids["attested"] = s.request(mode=ATTESTED)
    a, b, c = s.committee(ids["attested"], ATTESTED)
    rid = ids["attested"]
    s.attested.settle(rid, OUT, [s.signed(a, rid, OUT), s.signed(b, rid, OUT)], sender=a)
    s.attested.attestLate(rid, s.signed(c, rid, OUT)[1], sender=c)

    ids["attested_dissent"] = rid = s.request(mode=ATTESTED)
    a, b, c = s.committee(rid, ATTESTED)
    s.attested.settle(rid, OUT, [s.signed(a, rid, OUT), s.signed(b, rid, OUT)], sender=a)
    s.attested.reportDissent(rid, s.signed(c, rid, OTHER), sender=challenger)
    s.attested.reportEquivocation(rid, s.signed(a, rid, OUT), s.signed(a, rid, OTHER), sender=challenger)
    late = s.attested.getRound(rid)
    ape.chain.mine(int(late.deadline) + int(late.lateWindow) - ape.chain.blocks.head.number)
    s.attested.releaseHeld(rid, sender=dapp)

    # Credit: a deposit pays the next request; an operator claims what it earned.
    total = s.hub.quote(model_id, version, 1)
    fund(dapp, total, s.hub)
    s.hub.deposit(dapp, total, sender=dapp)
    ids["pending_from_credit"] = s.request(k=1)
    earner = next(op for op in operators if int(s.hub.claimable(op)) > 0)
    s.hub.claim(sender=earner)

    # Registry: a deprecated second version; the model changes hands.
    _, second = fx["make_model"]("explorer-suite", modes=CONSENSUS)
    s.registry.deprecateVersion(model_id, second, sender=fx["model_owner"])
    s.registry.transferModelOwnership(model_id, challenger, sender=fx["model_owner"])
    s.registry.acceptModelOwnership(model_id, sender=challenger)

    # Staking: an endpoint, an unbonding withdrawn, a pool left, and the admin's changes.
    leaver = operators[4]
    s.staking.setEndpoint("http://127.0.0.1:9000", sender=leaver)
    s.staking.requestUnbond(10 * E18, sender=leaver)
    ape.chain.mine(int(s.staking.unbondingPeriod()) + 1)
    s.staking.withdraw(sender=leaver)
    s.staking.deregister(model_id, bytes(32), sender=leaver)
    s.staking.setClassAllowed("explorer-test-machine", True, sender=deployer)
    s.staking.setUnbondingPeriod(int(s.staking.unbondingPeriod()), sender=deployer)
    s.staking.setTreasury(fx["treasury"], sender=deployer)
    s.hub.setTreasury(fx["treasury"], sender=deployer)
    role = s.hub.DEFAULT_ADMIN_ROLE()
    s.hub.grantRole(role, challenger, sender=deployer)
    s.hub.revokeRole(role, challenger, sender=deployer)

    played.accounts = {
        *(op.address for op in operators),
        dapp.address,
        challenger.address,
        fx["treasury"].address,
        fx["model_owner"].address,
        consumer.address,
        s.optimistic.address,
    }
    return played
