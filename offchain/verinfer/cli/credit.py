"""`verinfer credit show|deposit|claim`: an account's credit at the hub (refunds, earnings, deposits),
which pays its requests first and is withdrawn with `claim`."""

import click
from eth_utils.address import is_address, to_checksum_address

from verinfer.cli.common import JSON, Connection, connection, emit, token_units
from verinfer.client.client import Client


def _account(address: str | None, client: Client) -> str:
    if address is None:
        return client.address
    if not is_address(address):
        raise click.BadParameter(f"{address!r} is not an address", param_hint="address")
    return to_checksum_address(address)


def _report(as_json: bool, client: Client, account: str, done: str | None = None) -> None:
    credit = client.claimable(account)
    line = f"{account}  credit {client.tokens(credit)}"
    emit(as_json, {"account": account, "credit": str(credit)}, [done, line] if done else [line])


@click.group()
def credit() -> None:
    """An account's credit at the hub: refunds, fees earned and deposits. It pays the account's
    requests first (when it covers a whole fee) and is withdrawn with `claim`."""


@credit.command(name="show")
@click.argument("address", required=False)
@connection(role="dapp")
@JSON
def show_credit(conn: Connection, address: str | None, as_json: bool) -> None:
    """Show ADDRESS's credit (default: the signer's)."""
    client = conn.client()
    _report(as_json, client, _account(address, client))


@credit.command()
@click.argument("amount")
@click.option("--for", "account", metavar="ADDRESS", help="whose credit to fund (default: the signer's)")
@connection(role="dapp")
@JSON
def deposit(conn: Connection, amount: str, account: str | None, as_json: bool) -> None:
    """Move AMOUNT tokens into a credit (approving the hub if needed)."""
    client = conn.client()
    target = _account(account, client)
    units = token_units(client, amount)
    client.deposit(units, target)
    _report(as_json, client, target, f"deposited {client.tokens(units)}")


@credit.command()
@connection(role="dapp")
@JSON
def claim(conn: Connection, as_json: bool) -> None:
    """Withdraw the signer's whole credit to its token balance."""
    client = conn.client()
    amount = client.claim()
    _report(as_json, client, client.address, f"claimed {client.tokens(amount)}")
