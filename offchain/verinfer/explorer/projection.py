"""Turns decoded events into the explorer's rows: requests, settlements, committees, penalties, the credit
ledger, operator states, pools and models. One handler per event that changes more than the event log."""

import json
import logging
from collections.abc import Callable
from typing import Any, Protocol

from eth_utils.crypto import keccak

from verinfer.chain.contracts import MODE_ATTESTED, MODE_CONSENSUS, MODE_OPTIMISTIC
from verinfer.explorer.events import Event
from verinfer.explorer.store import ExplorerStore

log = logging.getLogger("verinfer.explorer")


class ChainReader(Protocol):
    """The few reads events cannot replace (each a gap in the contracts' events)."""

    def operator_state(self, operator: str, block: int) -> tuple[int, int]:
        """(active stake, unbonding) at the end of `block`: Slashed does not say how much of what it
        took was active stake and how much unbonding."""
        ...

    def agreeing(self, request_id: int) -> list[str]:
        """The members a settled request paid (`getResult().agreeing`), when its events do not tell
        (a consensus tolerance version pays members whose digests differ from the accepted one)."""
        ...

    def treasury(self, block: int) -> str:
        """The hub's treasury at `block` (its constructor sets it without an event)."""
        ...

    def model_owner(self, model_id: bytes, block: int) -> str:
        """A model's owner at `block`, for a model registered before the indexer's start block."""
        ...


def _bits(mask: int) -> list[int]:
    return [i for i in range(16) if mask & (1 << i)]


class Projector:
    """Applies events, in chain order, to the store (inside the caller's transaction)."""

    def __init__(self, store: ExplorerStore, reader: ChainReader, optimistic_address: str) -> None:
        self.store = store
        self.reader = reader
        self.optimistic = optimistic_address
        self._handlers: dict[tuple[str, str], Callable[[Event], None]] = {
            ("hub", "RequestCreated"): self._request_created,
            ("hub", "RequestSettled"): self._request_settled,
            ("hub", "FeesDistributed"): self._fees_distributed,
            ("hub", "MemberPenalized"): self._member_penalized,
            ("hub", "CallbackExecuted"): self._callback_executed,
            ("hub", "HeldFeePaid"): self._held_fee_paid,
            ("hub", "HeldFeesRefunded"): self._held_fees_refunded,
            ("hub", "Claimed"): self._claimed,
            ("hub", "Deposited"): self._deposited,
            ("hub", "TreasuryUpdated"): self._treasury_updated,
            ("optimistic", "Challenged"): self._challenged,
            ("registry", "ModelRegistered"): self._model_registered,
            ("registry", "ModelOwnershipTransferred"): self._model_transferred,
            ("registry", "VersionPublished"): self._version_published,
            ("registry", "VersionDeprecated"): self._version_deprecated,
            ("staking", "Staked"): self._staking_changed,
            ("staking", "UnbondingRequested"): self._staking_changed,
            ("staking", "Withdrawn"): self._staking_changed,
            ("staking", "Slashed"): self._staking_changed,
            ("staking", "Jailed"): self._staking_changed,
            ("staking", "Unjailed"): self._staking_changed,
            ("staking", "ModelJoined"): self._pool_changed,
            ("staking", "ModelLeft"): self._pool_changed,
            ("staking", "EndpointSet"): self._endpoint_set,
        }
        for mode in ("consensus", "attested", "optimistic"):
            self._handlers[(mode, "CommitteeDrawn")] = self._committee_drawn

    def apply(self, event: Event) -> None:
        """Records the event, then what it changes."""
        self.store.insert(
            "events",
            {
                "block": event.block,
                "log_index": event.log_index,
                "tx_hash": event.tx_hash,
                "contract": event.contract,
                "event": event.name,
                "request_id": event.request_id,
                "account": event.account,
                "args": json.dumps(event.json),
            },
        )
        handler = self._handlers.get((event.contract, event.name))
        if handler is not None:
            handler(event)

    # ------------------------------------------------------------ helpers

    @staticmethod
    def _at(event: Event) -> dict[str, Any]:
        return {"block": event.block, "log_index": event.log_index}

    def _credit(self, event: Event, seq: int, account: str, amount: int, reason: str) -> None:
        """A change of `account`'s credit in the hub, with its balance after."""
        self.store.insert(
            "credits",
            {
                **self._at(event),
                "seq": seq,
                "account": account,
                "request_id": event.request_id,
                "reason": reason,
                "amount": str(amount),
                "balance": str(self.balance(account) + amount),
            },
        )

    def balance(self, account: str) -> int:
        found = self.store.row(
            "SELECT balance FROM credits WHERE account = ?"
            " ORDER BY block DESC, log_index DESC, seq DESC LIMIT 1",
            (account,),
        )
        return 0 if found is None else int(found[0])

    def _request(self, request_id: int) -> Any:
        return self.store.row("SELECT * FROM requests WHERE request_id = ?", (request_id,))

    def _committee(self, request_id: int) -> list[str]:
        rows = self.store.rows(
            "SELECT operator FROM committees WHERE request_id = ? ORDER BY member_index", (request_id,)
        )
        return [str(r[0]) for r in rows]

    def _owner(self, model_id: bytes, block: int) -> str:
        found = self.store.row(
            "SELECT owner FROM model_owners WHERE model_id = ? ORDER BY block DESC, log_index DESC LIMIT 1",
            (model_id,),
        )
        return str(found[0]) if found is not None else self.reader.model_owner(model_id, block)

    def _treasury(self, block: int) -> str:
        found = self.store.row("SELECT address FROM treasuries ORDER BY block DESC, log_index DESC LIMIT 1")
        if found is not None:
            return str(found[0])
        address = self.reader.treasury(block)
        self.store.insert("treasuries", {"block": block, "log_index": -1, "address": address})
        return address

    # ------------------------------------------------------------ hub

    def _request_created(self, e: Event) -> None:
        a = e.args
        requester, fee = str(a["requester"]), int(a["fee"])
        # The hub takes the fee from the requester's credit when that covers all of it (_collect).
        from_credit = self.balance(requester) >= fee
        if from_credit and fee:
            self._credit(e, 0, requester, -fee, "request")
        self.store.insert(
            "requests",
            {
                **self._at(e),
                "request_id": e.request_id,
                "tx_hash": e.tx_hash,
                "requester": requester,
                "model_id": bytes(a["modelId"]),
                "version": int(a["version"]),
                "mode": int(a["mode"]),
                "k": int(a["k"]),
                "fee": str(fee),
                "input": bytes(a["input"]),
                "input_hash": keccak(bytes(a["input"])),
                "seed_block": int(a["seedBlock"]),
                "deadline": int(a["deadline"]),
                "callback_gas_limit": int(a["callbackGasLimit"]),
                "digest_only": int(bool(a["digestOnly"])),
                "paid_from_credit": int(from_credit),
            },
        )

    def _request_settled(self, e: Event) -> None:
        a = e.args
        self.store.insert(
            "settlements",
            {
                **self._at(e),
                "request_id": e.request_id,
                "tx_hash": e.tx_hash,
                "status": int(a["status"]),
                "output_digest": bytes(a["outputDigest"]),
                "error_code": int(a["errorCode"]),
                "output": bytes(a["output"]),
            },
        )

    def _fees_distributed(self, e: Event) -> None:
        a = e.args
        request_id = int(a["requestId"])
        per_operator, paid = int(a["perOperator"]), int(a["agreeing"])
        owner_fee, treasury_fee, refund = int(a["modelOwner"]), int(a["treasury"]), int(a["refund"])
        self.store.execute(
            "UPDATE settlements SET per_operator = ?, paid = ?, model_owner_fee = ?, treasury_fee = ?,"
            " refund = ? WHERE request_id = ?",
            (str(per_operator), paid, str(owner_fee), str(treasury_fee), str(refund), request_id),
        )
        request = self._request(request_id)
        seq = 0
        for member in self._paid_members(request_id, request, paid) if paid else []:
            seq += 1
            self._credit(e, seq, member, per_operator, "operator_fee")
        if owner_fee:
            seq += 1
            self._credit(e, seq, self._owner(bytes(request["model_id"]), e.block), owner_fee, "model_fee")
        if treasury_fee:
            seq += 1
            self._credit(e, seq, self._treasury(e.block), treasury_fee, "protocol_fee")
        if refund:
            seq += 1
            self._credit(e, seq, str(request["requester"]), refund, "refund")

    def _paid_members(self, request_id: int, request: Any, paid: int) -> list[str]:
        """Who the settlement paid, from the round's events; read from the hub when they disagree with
        the paid count (a tolerance version pays members within the rule of the accepted output)."""
        committee = self._committee(request_id)
        settled = self.store.row("SELECT output_digest FROM settlements WHERE request_id = ?", (request_id,))
        accepted = "0x" + bytes(settled[0]).hex() if settled is not None else ""
        mode = int(request["mode"])
        members: list[str] = []
        if mode == MODE_CONSENSUS:
            reveals = self.store.rows(
                "SELECT account, args FROM events WHERE request_id = ? AND contract = 'consensus'"
                " AND event = 'Revealed' ORDER BY block, log_index",
                (request_id,),
            )
            agreed = {str(r[0]) for r in reveals if json.loads(r[1])["digest"] == accepted}
            members = [m for m in committee if m in agreed]
        elif mode == MODE_ATTESTED:
            found = self.store.row(
                "SELECT args FROM events WHERE request_id = ? AND contract = 'attested'"
                " AND event = 'Attested' ORDER BY block DESC, log_index DESC LIMIT 1",
                (request_id,),
            )
            mask = int(json.loads(found[0])["agreeMask"]) if found is not None else 0
            members = [committee[i] for i in _bits(mask) if i < len(committee)]
        elif mode == MODE_OPTIMISTIC:
            members = committee[:1]
        if len(members) == paid:
            return members
        read = self.reader.agreeing(request_id)
        if len(read) != paid:
            log.warning(
                "paid members unknown", extra={"request_id": request_id, "paid": paid, "read": len(read)}
            )
        return read

    def _member_penalized(self, e: Event) -> None:
        a = e.args
        operator = str(a["operator"])
        # staking.slash emits Jailed (when it jails), then Slashed, just before the hub's MemberPenalized.
        slashed = self.store.row(
            "SELECT log_index, args FROM events WHERE tx_hash = ? AND contract = 'staking'"
            " AND event = 'Slashed' AND account = ? AND log_index < ? ORDER BY log_index DESC LIMIT 1",
            (e.tx_hash, operator, e.log_index),
        )
        reward, reporter, jailed = 0, None, False
        if slashed is not None:
            args = json.loads(slashed[1])
            reward = int(args["reward"])
            reporter = str(args["rewardRecipient"]) if reward else None
            jailed = (
                self.store.row(
                    "SELECT 1 FROM events WHERE tx_hash = ? AND event = 'Jailed' AND account = ?"
                    " AND log_index = ?",
                    (e.tx_hash, operator, int(slashed[0]) - 1),
                )
                is not None
            )
        self.store.insert(
            "penalties",
            {
                **self._at(e),
                "tx_hash": e.tx_hash,
                "request_id": e.request_id,
                "operator": operator,
                "fault": int(a["fault"]),
                "amount": str(int(a["amount"])),
                "reward": str(reward),
                "reporter": reporter,
                "jailed": int(jailed),
            },
        )

    def _callback_executed(self, e: Event) -> None:
        self.store.execute(
            "UPDATE settlements SET callback_success = ? WHERE request_id = ?",
            (int(bool(e.args["success"])), e.request_id),
        )

    def _held_fee_paid(self, e: Event) -> None:
        self._credit(e, 0, str(e.args["member"]), int(e.args["amount"]), "held_fee")

    def _held_fees_refunded(self, e: Event) -> None:
        request = self._request(int(e.args["requestId"]))
        if request is not None:
            self._credit(e, 0, str(request["requester"]), int(e.args["amount"]), "held_refund")

    def _claimed(self, e: Event) -> None:
        self._credit(e, 0, str(e.args["account"]), -int(e.args["amount"]), "claim")

    def _deposited(self, e: Event) -> None:
        # OptimisticMode pays bonds back (and a winner's share of the loser's) into the hub's credit.
        reason = "bond" if str(e.args["from"]) == self.optimistic else "deposit"
        self._credit(e, 0, str(e.args["account"]), int(e.args["amount"]), reason)

    def _treasury_updated(self, e: Event) -> None:
        self.store.insert("treasuries", {**self._at(e), "address": str(e.args["treasury"])})

    # ------------------------------------------------------------ modes

    def _committee_drawn(self, e: Event) -> None:
        for index, operator in enumerate(e.args["committee"]):
            self.store.insert(
                "committees",
                {**self._at(e), "request_id": e.request_id, "member_index": index, "operator": str(operator)},
            )

    def _challenged(self, e: Event) -> None:
        a = e.args
        self.store.insert(
            "challenges",
            {
                **self._at(e),
                "request_id": e.request_id,
                "challenger": str(a["challenger"]),
                "escalation_id": int(a["escalationId"]),
                "fee": str(int(a["fee"])),
            },
        )

    # ------------------------------------------------------------ registry

    def _model_registered(self, e: Event) -> None:
        a = e.args
        model_id = bytes(a["modelId"])
        self.store.insert(
            "models", {**self._at(e), "model_id": model_id, "name": str(a["name"]), "tx_hash": e.tx_hash}
        )
        self.store.insert("model_owners", {**self._at(e), "model_id": model_id, "owner": str(a["owner"])})

    def _model_transferred(self, e: Event) -> None:
        self.store.insert(
            "model_owners",
            {**self._at(e), "model_id": bytes(e.args["modelId"]), "owner": str(e.args["newOwner"])},
        )

    def _version_published(self, e: Event) -> None:
        p = e.json["params"]
        self.store.insert(
            "versions",
            {
                **self._at(e),
                "model_id": bytes(e.args["modelId"]),
                "version": int(e.args["version"]),
                "tx_hash": e.tx_hash,
                "artifact_sha256": bytes(e.args["artifactSha256"]),
                "uris": json.dumps(p["uris"]),
                "tensor_spec": bytes.fromhex(p["tensorSpec"][2:]),
                "decimals": int(p["decimals"]),
                "modes": int(p["modes"]),
                "fee": str(int(p["fee"])),
                "max_output_bytes": int(p["maxOutputBytes"]),
                "verifier": str(p["verifier"]),
                "execution_class": str(p["executionClass"]),
                "class_id": bytes(e.args["classId"]),
                "tolerance_units": int(p["toleranceUnits"]),
                "tolerance_ppm": int(p["tolerancePpm"]),
            },
        )

    def _version_deprecated(self, e: Event) -> None:
        self.store.insert(
            "deprecations",
            {**self._at(e), "model_id": bytes(e.args["modelId"]), "version": int(e.args["version"])},
        )

    # ------------------------------------------------------------ staking

    def _staking_changed(self, e: Event) -> None:
        """The operator's state after a stake, unbonding, withdrawal, slash or jail change."""
        a = e.args
        operator = str(a["operator"])
        before = self.store.row(
            "SELECT * FROM operator_states WHERE operator = ? ORDER BY block DESC, log_index DESC LIMIT 1",
            (operator,),
        )
        stake, unbonding = (int(before["stake"]), int(before["unbonding"])) if before is not None else (0, 0)
        faults = int(before["faults"]) if before is not None else 0
        jailed = bool(before["jailed"]) if before is not None else False
        until = int(before["jailed_until"]) if before is not None else 0
        amount = int(a.get("amount", 0))
        if e.name == "Staked":
            stake = int(a["stake"])
        elif e.name == "UnbondingRequested":
            stake, unbonding = stake - amount, unbonding + amount
        elif e.name == "Withdrawn":
            unbonding -= amount
        elif e.name == "Slashed":
            stake, unbonding = self.reader.operator_state(operator, e.block)
            faults = int(a["faults"])
        elif e.name == "Jailed":
            jailed, until, faults = True, int(a["until"]), int(a["faults"])
        elif e.name == "Unjailed":
            jailed = False
        self.store.insert(
            "operator_states",
            {
                **self._at(e),
                "operator": operator,
                "event": e.name,
                "amount": str(amount),
                "stake": str(stake),
                "unbonding": str(unbonding),
                "faults": faults,
                "jailed": int(jailed),
                "jailed_until": until,
            },
        )

    def _pool_changed(self, e: Event) -> None:
        self.store.insert(
            "pools",
            {
                **self._at(e),
                "operator": str(e.args["operator"]),
                "model_id": bytes(e.args["modelId"]),
                "class_id": bytes(e.args["classId"]),
                "joined": int(e.name == "ModelJoined"),
            },
        )

    def _endpoint_set(self, e: Event) -> None:
        self.store.insert(
            "endpoints", {**self._at(e), "operator": str(e.args["operator"]), "url": str(e.args["url"])}
        )
