"""`verinfer operators list|show` (anyone) and `verinfer operator stake|unstake|...` (the operator)."""

from collections.abc import Callable
from typing import Any

import click

from verinfer.chain.contracts import OperatorInfo
from verinfer.cli.common import JSON, Connection, connection, emit, token_units
from verinfer.client import operator as actions
from verinfer.client.client import Client
from verinfer.models.execution import NO_CLASS, ExecutionClass, UnsupportedCpu


class NotAnOperator(click.ClickException):
    """The address never staked; exit 2 like any lookup of something that does not exist."""

    exit_code = 2


def _json(info: OperatorInfo, names: dict[bytes, str]) -> dict[str, Any]:
    return {
        "address": info.address,
        "stake": str(info.stake),
        "unbonding": str(info.unbonding),
        "faults": info.faults,
        "jailed": info.jailed,
        "jailed_until": info.jailed_until,
        "models": [names.get(m, "0x" + m.hex()) for m in info.models],
        "registrations": [
            {"model": names.get(m, "0x" + m.hex()), "class": _class_name(c)} for m, c in info.registrations
        ],
        "endpoint": info.endpoint,
    }


def _class_name(class_id: bytes) -> str:
    """`portable`, this machine's class by name, or the id of another class."""
    if class_id == NO_CLASS:
        return "portable"
    try:
        here = ExecutionClass.current()
    except UnsupportedCpu:
        here = None
    return here.machine if here is not None and here.class_id == class_id else "0x" + class_id.hex()


def _class_ids(choice: str | None) -> tuple[bytes, ...] | None:
    """--class: None (the default), `portable`, `here`, or a class id `0x...` (to leave another class)."""
    if choice is None:
        return None
    if choice == "portable":
        return (NO_CLASS,)
    if choice == "here":
        return (ExecutionClass.current().class_id,)
    try:
        class_id = bytes.fromhex(choice.removeprefix("0x"))
    except ValueError:
        class_id = b""
    if not choice.startswith("0x") or len(class_id) != 32:
        raise click.BadParameter(f"{choice!r} is not portable, here or a class id (0x and 64 hex digits)")
    return (class_id,)


CLASS = click.option(
    "--class",
    "class_choice",
    metavar="here|portable|0xID",
    help="Which pool of the model: this machine's execution class (the default for register), its portable "
    "versions (outputs the owner says agree on every class), or a class id as `operators show` prints it "
    "(to leave a class of another machine). A relayer serves only its own machine's class.",
)


def _state(info: OperatorInfo) -> str:
    if info.jailed:
        return f"JAILED until block {info.jailed_until}"
    return "active" if info.stake else "no stake"


def _line(client: Client, info: OperatorInfo, names: dict[bytes, str]) -> str:
    models = ", ".join(names.get(m, "0x" + m.hex()[:12]) for m in info.models) or "-"
    return (
        f"{info.address}  stake {client.tokens(info.stake):>14}  "
        f"unbonding {client.tokens(info.unbonding):>10}  "
        f"faults {info.faults}  {_state(info):8}  {models}" + (f"  {info.endpoint}" if info.endpoint else "")
    )


def _model_names(client: Client) -> dict[bytes, str]:
    return {m.model_id: m.name for m in client.models()}


@click.group()
def operators() -> None:
    """Browse the operators that staked."""


@operators.command(name="list")
@connection()
@JSON
def list_operators(conn: Connection, as_json: bool) -> None:
    """Every operator that ever staked: stake, unbonding, faults, jail and models."""
    client = conn.client()
    found, names = client.operators(), _model_names(client)
    lines = [_line(client, o, names) for o in found] or ["no operators"]
    emit(as_json, [_json(o, names) for o in found], lines)


@operators.command(name="show")
@click.argument("address")
@connection()
@JSON
def show_operator(conn: Connection, address: str, as_json: bool) -> None:
    """One operator by ADDRESS."""
    client = conn.client()
    try:
        info = client.operator(address)
    except ValueError:
        raise click.BadParameter(f"{address!r} is not an address", param_hint="ADDRESS") from None
    if not client.contracts.logs("staking", "Staked", operator=info.address):
        raise NotAnOperator(f"{info.address} is not an operator: it never staked (`verinfer operators list`)")
    names = _model_names(client)
    emit(as_json, _json(info, names), [_line(client, info, names)])


@click.group()
def operator() -> None:
    """Act as an operator: stake, unstake, withdraw, register for models, unjail, publish an endpoint."""


def _act(
    conn: Connection,
    as_json: bool,
    action: Callable[[Client], OperatorInfo],
    done: str | Callable[[Client], str],
) -> None:
    client = conn.client()
    info = action(client)
    names = _model_names(client)
    emit(
        as_json,
        _json(info, names),
        [done if isinstance(done, str) else done(client), _line(client, info, names)],
    )


@operator.command()
@click.argument("amount")
@connection(role="operator-1")
@JSON
def stake(conn: Connection, amount: str, as_json: bool) -> None:
    """Add AMOUNT tokens of stake (approving the staking contract if needed)."""
    _act(
        conn,
        as_json,
        lambda c: actions.stake(c, token_units(c, amount)),
        lambda c: f"staked {c.tokens(token_units(c, amount))}",
    )


@operator.command()
@click.argument("amount")
@connection(role="operator-1")
@JSON
def unstake(conn: Connection, amount: str, as_json: bool) -> None:
    """Start unbonding AMOUNT tokens; `withdraw` them after the unbonding period (in blocks)."""
    _act(
        conn,
        as_json,
        lambda c: actions.unstake(c, token_units(c, amount)),
        lambda c: f"unbonding {c.tokens(token_units(c, amount))}",
    )


@operator.command()
@connection(role="operator-1")
@JSON
def withdraw(conn: Connection, as_json: bool) -> None:
    """Withdraw unbonded stake whose period has passed."""
    _act(conn, as_json, actions.withdraw, "withdrawn")


@operator.command()
@click.argument("model")
@CLASS
@connection(role="operator-1")
@JSON
def register(conn: Connection, model: str, class_choice: str | None, as_json: bool) -> None:
    """Join a committee pool of MODEL (by name); drawn for its requests from the next epoch.

    A version with an execution class draws only operators registered for that class: by default this
    joins the pool of this machine's class (run it where the relayer runs; the relayer refuses to start
    registered for another). --class portable joins the pool of the model's portable versions."""
    classes = _class_ids(class_choice)
    _act(conn, as_json, lambda c: actions.register(c, model, classes), f"registered for {model}")


@operator.command()
@click.argument("model")
@CLASS
@connection(role="operator-1")
@JSON
def deregister(conn: Connection, model: str, class_choice: str | None, as_json: bool) -> None:
    """Leave the committee pools of MODEL (every class unless --class); drawable until the next epoch."""
    classes = _class_ids(class_choice)
    _act(conn, as_json, lambda c: actions.deregister(c, model, classes), f"deregistered from {model}")


@operator.command()
@connection(role="operator-1")
@JSON
def unjail(conn: Connection, as_json: bool) -> None:
    """Leave jail once its period is over (stake must be back at the minimum; faults are kept)."""
    _act(conn, as_json, actions.unjail, "unjailed")


@operator.command()
@click.argument("url", required=False, default="")
@click.option("--clear", is_flag=True, help="Withdraw the published endpoint.")
@connection(role="operator-1")
@JSON
def endpoint(conn: Connection, url: str, clear: bool, as_json: bool) -> None:
    """Publish URL (http:// or https://, at most 256 bytes) as where this operator's relayer takes
    messages from its committee peers (attested mode); --clear withdraws it."""
    if bool(url) == clear:
        raise click.UsageError("give either URL or --clear")
    _act(
        conn,
        as_json,
        lambda c: actions.set_endpoint(c, "" if clear else url),
        "endpoint withdrawn" if clear else f"endpoint {url}",
    )
