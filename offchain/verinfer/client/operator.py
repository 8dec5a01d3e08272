"""Operators: stake, unbond, withdraw, register for models and unjail, with the checks done first."""

from verinfer.chain.contracts import OperatorInfo
from verinfer.client.client import Client
from verinfer.client.errors import InvalidArgument


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


def register(client: Client, model: str) -> OperatorInfo:
    client.transact("staking", "register", client.model_info(model).model_id)
    return client.operator(client.address)


def deregister(client: Client, model: str) -> OperatorInfo:
    client.transact("staking", "deregister", client.model_info(model).model_id)
    return client.operator(client.address)


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
