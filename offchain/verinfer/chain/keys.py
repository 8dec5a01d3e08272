"""Operator keys: encrypted keystores (eth-account JSON or an ape account), never plaintext in config."""

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

# Chains where a raw key from the environment is tolerated: anvil/hardhat (31337) and geth --dev (1337).
DEV_CHAIN_IDS = frozenset({31337, 1337})
DEV_KEY_ENV = "VERINFER_OPERATOR_KEY"


class KeyLoadError(ValueError):
    """The operator key cannot be loaded."""


@dataclass(frozen=True)
class KeyOptions:
    """What the user calls the key settings, so every message names the thing to change."""

    keystore: str
    ape_account: str
    password: str  # how to supply the password


# The relayer reads its key settings from relayer.toml; the CLI's signing commands from flags.
RELAYER_KEY_OPTIONS = KeyOptions(
    keystore="operator.keystore",
    ape_account="operator.ape_account",
    password="set operator.password_env or operator.password_file",
)
CLI_KEY_OPTIONS = KeyOptions(
    keystore="--keystore",
    ape_account="--account",
    password="pass --password-env VAR or --password-file FILE",
)


def ape_keystore(alias: str) -> Path:
    """Where ape keeps the keyfile of account `alias`."""
    data = Path(os.environ.get("APE_DATA_FOLDER", Path.home() / ".ape"))
    return data / "accounts" / f"{alias}.json"


def read_password(
    password_env: str | None, password_file: Path | None, options: KeyOptions = RELAYER_KEY_OPTIONS
) -> str:
    """The keystore password from an environment variable or a file (first line)."""
    if password_env:
        value = os.environ.get(password_env)
        if value is None:
            raise KeyLoadError(f"keystore password: environment variable {password_env} is not set")
        return value
    if password_file:
        try:
            return (Path(password_file).read_text().splitlines() or [""])[0]
        except OSError as exc:
            raise KeyLoadError(f"keystore password file {password_file}: {exc.strerror}") from None
    raise KeyLoadError(f"the keystore needs a password: {options.password}")


def read_keyfile(path: Path, what: str = "keystore") -> dict[str, Any]:
    """The JSON of an eth-account keystore; KeyLoadError unless the file is one."""
    try:
        keyfile = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise KeyLoadError(f"{what} {path} not found") from None
    except IsADirectoryError:
        raise KeyLoadError(f"{what} {path} is a directory, not a keystore file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyLoadError(f"{what} {path} unreadable: {exc}") from None
    except json.JSONDecodeError:
        raise KeyLoadError(f"{what} {path} is not a keystore (not JSON)") from None
    if not isinstance(keyfile, dict) or not isinstance(keyfile.get("crypto", keyfile.get("Crypto")), dict):
        raise KeyLoadError(
            f"{what} {path} is not a keystore (an eth-account keystore JSON has a 'crypto' section)"
        )
    return keyfile


def load_keystore(path: Path, password: str, what: str = "keystore") -> LocalAccount:
    """Decrypts an eth-account keystore JSON."""
    return _decrypt(read_keyfile(path, what), password, f"{what} {path}")


def _decrypt(keyfile: dict[str, Any], password: str, where: str) -> LocalAccount:
    try:
        key = Account.decrypt(keyfile, password)
    except ValueError:
        raise KeyLoadError(f"{where}: wrong password or corrupt keyfile") from None
    account: LocalAccount = Account.from_key(key)
    return account


def load_dev_key(chain_id: int) -> LocalAccount:
    """A raw key from $VERINFER_OPERATOR_KEY, refused outside local dev chains."""
    if chain_id not in DEV_CHAIN_IDS:
        raise KeyLoadError(
            f"a raw key from ${DEV_KEY_ENV} is only allowed on dev chains, not chain id {chain_id}"
        )
    raw = os.environ.get(DEV_KEY_ENV)
    if not raw:
        raise KeyLoadError(f"${DEV_KEY_ENV} is not set")
    try:
        account: LocalAccount = Account.from_key(raw)
    except (ValueError, TypeError):
        raise KeyLoadError(f"${DEV_KEY_ENV} is not a valid private key") from None
    return account


def load_account(
    keystore: Path | None,
    ape_account: str | None,
    password_env: str | None,
    password_file: Path | None,
    options: KeyOptions = RELAYER_KEY_OPTIONS,
) -> LocalAccount:
    """The account in an eth-account keystore file or an ape account, with its password from env or file.

    The key file is checked before the password is looked for, so a wrong path is reported as such.
    """
    if keystore is not None:
        path, what = Path(keystore), options.keystore
    else:
        path, what = ape_keystore(ape_account or ""), f"{options.ape_account} {ape_account!r}: keyfile"
        if not path.exists():
            raise KeyLoadError(
                f"{options.ape_account} {ape_account!r}: no such ape account (no {path}); "
                "`ape accounts list` shows them, `ape accounts import` adds one"
            )
    keyfile = read_keyfile(path, what)
    return _decrypt(keyfile, read_password(password_env, password_file, options), f"{what} {path}")


def write_keystore(path: Path, private_key: bytes, password: str, iterations: int | None = None) -> str:
    """Encrypts a key to `path` (mode 0600) and returns its address."""
    keyfile = Account.encrypt(private_key, password, kdf="scrypt", iterations=iterations)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(keyfile, handle)
    return str(Account.from_key(private_key).address)
