"""What the chain-facing commands share: where the deployment is, who signs, and how results print."""

import functools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import click
from eth_account.signers.local import LocalAccount

from verinfer.chain.keys import CLI_KEY_OPTIONS, DEV_CHAIN_IDS, KeyLoadError, load_account
from verinfer.chain.rpc import RPC_SCHEMES
from verinfer.client.client import Client
from verinfer.devnet.state import HOME_ENV, DevnetState, default_home

JSON = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")


def check_rpc_url(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """--rpc-url must be an http(s):// or ws(s):// URL (checked before anything connects)."""
    if value is not None and not value.startswith(RPC_SCHEMES):
        raise click.BadParameter(f"{value!r} is not a node URL: it must start with {', '.join(RPC_SCHEMES)}")
    return value


RPC_URL_HELP = "Node URL (http://, https://, ws://, wss://)"

_CHAIN = [
    click.option(
        "--network",
        envvar="VERINFER_NETWORK",
        default="devnet",
        show_default=True,
        help="Reads deployments/<network>.json ($VERINFER_DEPLOYMENTS is the directory).",
    ),
    click.option(
        "--rpc-url",
        envvar="VERINFER_RPC_URL",
        callback=check_rpc_url,
        help=f"{RPC_URL_HELP}; default: the record's rpc_url.",
    ),
    click.option(
        "--deployment",
        type=click.Path(dir_okay=False, path_type=Path),
        help="A deployment record to use instead of the network's.",
    ),
    click.option(
        "--devnet-home",
        type=click.Path(file_okay=False, path_type=Path),
        envvar=HOME_ENV,
        help="Devnet directory for --dev-account keys [default: .devnet].",
    ),
]
_SIGNER = [
    click.option("--keystore", type=click.Path(dir_okay=False, path_type=Path), help="eth-account keystore."),
    click.option(
        "--account", "ape_account", help="An ape account alias (its keystore under APE_DATA_FOLDER)."
    ),
    click.option("--password-env", help="Environment variable holding the keystore password."),
    click.option("--password-file", type=click.Path(dir_okay=False, path_type=Path), help="Password file."),
    click.option(
        "--dev-account",
        help="A devnet role (owner, dapp, operator-1, ...); dev chains only. Default: the command's role.",
    ),
]
_KEYS = (
    *("network", "rpc_url", "deployment", "devnet_home"),
    *("keystore", "ape_account", "password_env", "password_file", "dev_account"),
)


@dataclass
class Connection:
    """The parsed connection and signer options of one command invocation."""

    network: str
    rpc_url: str | None
    deployment: Path | None
    devnet_home: Path | None
    role: str | None  # the devnet account this command signs with by default; None: read-only
    keystore: Path | None = None
    ape_account: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    dev_account: str | None = None

    def client(self) -> Client:
        client = Client.connect(self.network, rpc_url=self.rpc_url, deployment=self.deployment)
        if self.role is not None:
            client.account = self._signer(client.rpc.chain_id())
        return client

    def devnet_store(self, chain_id: int) -> str | None:
        """The devnet's model store URL, when talking to a dev chain with a devnet at the chosen home
        (never for another chain: its members could not reach a local store)."""
        if chain_id not in DEV_CHAIN_IDS:
            return None
        state = DevnetState.load(self.devnet_home or default_home())
        return (state.store_url or None) if state is not None else None

    def _signer(self, chain_id: int) -> LocalAccount:
        if self.keystore or self.ape_account:
            return load_account(
                self.keystore, self.ape_account, self.password_env, self.password_file, CLI_KEY_OPTIONS
            )
        role = self.dev_account or self.role
        if chain_id not in DEV_CHAIN_IDS:
            raise KeyLoadError(f"chain {chain_id} is not a dev chain: sign with --keystore or --account")
        home = self.devnet_home or default_home()
        state = DevnetState.load(home)
        if state is None:
            raise KeyLoadError(
                f"no devnet at {home} to take the {role!r} key from: pass --keystore or --account"
            )
        assert role is not None
        return state.account(role)


def connection(role: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Adds the chain options (and, with a `role`, the signer options); passes `conn: Connection`."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {key: kwargs.pop(key, None) for key in _KEYS}
            return command(*args, conn=Connection(role=role, **values), **kwargs)

        for option in reversed(_CHAIN + (_SIGNER if role else [])):
            wrapper = option(wrapper)
        return wrapper

    return decorate


def token_units(client: Client, amount: str) -> int:
    """A decimal token amount ("1000", "0.5") in the fee token's base units (wei)."""
    decimals = int(client.contracts.view("token", "decimals"))
    try:
        value = Decimal(amount) * (Decimal(10) ** decimals)
    except InvalidOperation:
        raise click.BadParameter(f"{amount!r} is not a number of tokens", param_hint="amount") from None
    if not value.is_finite() or value < 0 or value != value.to_integral_value():
        raise click.BadParameter(
            f"{amount!r} is negative or finer than {decimals} decimals", param_hint="amount"
        ) from None
    return int(value)


def emit(as_json: bool, data: Any, lines: Iterable[str]) -> None:
    """JSON on stdout, or the human lines."""
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for line in lines:
        click.echo(line)


def hexs(value: bytes | None) -> str:
    return "-" if value is None else "0x" + value.hex()
