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
