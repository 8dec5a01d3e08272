"""Operators: stake, unbond, withdraw, register for models and unjail, with the checks done first."""

from collections.abc import Sequence

from verinfer.chain.contracts import OperatorInfo
from verinfer.client.client import Client
from verinfer.client.errors import InvalidArgument
from verinfer.models.execution import NO_CLASS, ExecutionClass


def stake(client: Client, amount: int) -> OperatorInfo:
    if amount <= 0:
        raise InvalidArgument("stake amount must be positive")
    client.ensure_allowance(client.contracts.staking.address, amount, purpose="staking")
    client.transact("staking", "stake", amount)
    return client.operator(client.address)


def unstake(client: Client, amount: int) -> OperatorInfo:
    """Starts unbonding `amount`; it can be withdrawn after the unbonding period (in blocks)."""
    current = client.operator(client.address)
    if not 0 < amount <= current.stake:
        raise InvalidArgument(
            f"can unbond more than 0 and at most {client.tokens(current.stake)} (the active stake), "
            f"not {client.tokens(amount)}"
        )
    client.transact("staking", "requestUnbond", amount)
    return client.operator(client.address)


def withdraw(client: Client) -> OperatorInfo:
    client.transact("staking", "withdraw")
    return client.operator(client.address)


def register(client: Client, model: str, class_ids: Sequence[bytes] | None = None) -> OperatorInfo:
    """Joins MODEL's pool for versions of this machine's execution class (or exactly `class_ids`: NO_CLASS
    for its portable versions, whose agreement across classes rests on the owner's word, or this
    machine's class); pools the operator is in already are skipped."""
    model_id = client.model_info(model).model_id
    here = ExecutionClass.current()
    wanted = (here.class_id,) if class_ids is None else tuple(class_ids)
    foreign = [c for c in wanted if c not in (NO_CLASS, here.class_id)]
    if foreign:
        raise InvalidArgument(
            f"this machine is {here.machine}: register for {_classes(foreign)} from a machine of that class "
            "(its relayer refuses to serve another)"
        )
    have = set(client.contracts.registrations(client.address))
    todo = [c for c in dict.fromkeys(wanted) if (model_id, c) not in have]
    if not todo:
        raise InvalidArgument(f"already registered for {model} in {_classes(wanted)}")
    for class_id in todo:
        client.transact("staking", "register", model_id, class_id)
    return client.operator(client.address)


def deregister(client: Client, model: str, class_ids: Sequence[bytes] | None = None) -> OperatorInfo:
    """Leaves MODEL's pools: every class it is in, or only `class_ids`."""
    model_id = client.model_info(model).model_id
    have = [c for m, c in client.contracts.registrations(client.address) if m == model_id]
    todo = have if class_ids is None else [c for c in class_ids if c in have]
    if not todo:
        raise InvalidArgument(
            f"not registered for {model}" + ("" if class_ids is None else f" in {_classes(class_ids)}")
        )
    for class_id in todo:
        client.transact("staking", "deregister", model_id, class_id)
    return client.operator(client.address)


def _classes(class_ids: Sequence[bytes]) -> str:
    return " and ".join(
        "portable versions" if c == NO_CLASS else f"class 0x{c.hex()[:12]}" for c in class_ids
    )


def unjail(client: Client) -> OperatorInfo:
    client.transact("staking", "unjail")
    return client.operator(client.address)


def set_endpoint(client: Client, url: str) -> OperatorInfo:
    """Publishes where this operator's relayer takes messages from committee peers ("" withdraws it)."""
    if url and (not url.startswith(("http://", "https://")) or len(url.encode()) > 256):
        raise InvalidArgument(f"endpoint {url!r} must be an http:// or https:// URL of at most 256 bytes")
    if url and any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise InvalidArgument(f"endpoint {url!r} must not contain spaces or control characters")
    if url.rstrip("/") in ("http:", "https:"):
        raise InvalidArgument(f"endpoint {url!r} has no host")
    if client.operator(client.address).stake == 0:
        raise InvalidArgument("stake first: only an operator with stake may publish an endpoint")
    client.transact("staking", "setEndpoint", url)
    return client.operator(client.address)
