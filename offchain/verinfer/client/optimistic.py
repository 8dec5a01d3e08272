"""Optimistic mode for dapps and challengers: read a posted output before it is final, challenge it,
and end a round whose window has passed (finalize an unchallenged post, expire a silent poster,
resolve a challenge whose escalation ended)."""

from typing import TYPE_CHECKING, Any

from verinfer.chain.contracts import MODE_OPTIMISTIC, OnchainRequest
from verinfer.chain.sender import Receipt
from verinfer.client.errors import InsufficientAllowance, InvalidArgument, VerinferError
from verinfer.client.records import Provisional

if TYPE_CHECKING:
    from verinfer.client.client import Client

# OptimisticMode.Phase
PHASES = ("none", "open", "posted", "challenged", "upheld", "overturned", "undecided", "unposted")
OPEN, POSTED, CHALLENGED = 1, 2, 3


def round_of(client: "Client", request_id: int) -> dict[str, Any]:
    """The request's optimistic round (getRound), VerinferError for a request of another mode."""
    onchain = client.contracts.request(request_id)
    if onchain is None:
        raise VerinferError(f"request {request_id} does not exist on this hub")
    if onchain.mode != MODE_OPTIMISTIC:
        name = client.contracts.mode_name(onchain.mode)
        raise InvalidArgument(f"request {request_id} is in {name} mode: only optimistic requests have posts")
    raw = client.contracts.view("optimistic", "getRound", request_id)
    return client.contracts.fields("optimistic", "getRound", raw)


def posted_output(client: "Client", request_id: int, from_block: int | None = None) -> bytes | None:
    """The posted output's bytes, from the `Posted` event (digest-only requests store none)."""
    logs = client.contracts.logs("optimistic", "Posted", from_block, requestId=request_id)
    return bytes(logs[-1].args.output) if logs else None


def provisional(client: "Client", request_id: int) -> Provisional | None:
    """The posted output while the round is open to challenges or awaiting its escalation; None before a
    post and once the round ended (read the result then)."""
    r = round_of(client, request_id)
    if r["phase"] not in (POSTED, CHALLENGED):
        return None
    output = posted_output(client, request_id, int(r["seedBlock"]))
    return Provisional(
        request_id=request_id,
        poster=str(r["poster"]),
        output_digest=bytes(r["postedDigest"]),
        output=output or b"",
        challenge_deadline=int(r["challengeDeadline"]),
        challenged=r["phase"] == CHALLENGED,
        escalation_id=int(r["escalationId"]),
    )


def challenge(client: "Client", request_id: int, *, max_fee: int | None = None, approve: bool = True) -> int:
    """Challenges the posted output: locks the challenge bond and pays a consensus escalation whose
    accepted output decides (bond lost if it agrees with the post). Returns the escalation's request id,
    0 if the hub refused the escalation (the round then ended undecided and everything came back)."""
    r = round_of(client, request_id)
    if r["phase"] != POSTED:
        raise VerinferError(
            f"request {request_id} is {PHASES[r['phase']]}: "
            "only a posted output can be challenged, within its window"
        )
    head = client.rpc.block_number()
    if head >= int(r["challengeDeadline"]):
        raise VerinferError(
            f"request {request_id}'s challenge window closed at block {r['challengeDeadline']}"
        )
    params = client.contracts.fields("optimistic", "params", r["params"])
    onchain = client.contracts.request(request_id)
    assert onchain is not None
    fee = int(client.contracts.view("hub", "quote", onchain.model_id, onchain.version, params["escalationK"]))
    if max_fee is not None and fee > max_fee:
        raise InsufficientAllowance(
            f"the escalation costs {client.tokens(fee)}, above max_fee {client.tokens(max_fee)}"
        )
    created = client.contracts.logs("hub", "RequestCreated", int(r["seedBlock"]) - 1, requestId=request_id)
    if not created:
        raise VerinferError(f"request {request_id}: its RequestCreated event (the input) was not found")
    cost = int(params["challengeBond"]) + fee
    client.ensure_allowance(
        client.contracts.optimistic.address,
        cost,
        approve=approve,
        purpose="the challenge bond and escalation fee",
    )
    receipt = client.transact("optimistic", "challenge", request_id, bytes(created[-1].args.input), fee)
    logs = client.contracts.logs("optimistic", "Challenged", receipt.block, requestId=request_id)
    return int(logs[-1].args.escalationId) if logs else 0


def can_end(client: "Client", onchain: OnchainRequest) -> bool:
    """Whether `end` may settle the pending request now."""
    r = round_of(client, onchain.request_id)
    head = client.rpc.block_number()
    if r["phase"] == OPEN:
        return head >= int(r["postDeadline"])
    if r["phase"] == POSTED:
        return head >= int(r["challengeDeadline"])
    if r["phase"] == CHALLENGED:
        escalation = client.contracts.request(int(r["escalationId"]))
        if escalation is not None and escalation.status.terminal:
            return True
        return head >= int(client.contracts.view("optimistic", "deadlineOf", onchain.request_id))
    return False


def end(client: "Client", request_id: int) -> Receipt:
    """Ends the round its phase allows: expire (nothing posted), finalize (unchallenged), resolve."""
    r = round_of(client, request_id)
    if r["phase"] == OPEN:
        return client.transact("optimistic", "expire", request_id)
    if r["phase"] == CHALLENGED:
        return client.transact("optimistic", "resolve", request_id)
    output = posted_output(client, request_id, int(r["seedBlock"]))
    if output is None:
        raise VerinferError(f"request {request_id}: no Posted event carries its output")
    return client.transact("optimistic", "finalize", request_id, output)
