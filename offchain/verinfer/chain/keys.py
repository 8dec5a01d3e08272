"""Operator keys: encrypted keystores (eth-account JSON or an ape account), never plaintext in config."""

import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

# Chains where a raw key from the environment is tolerated: anvil/hardhat (31337) and geth --dev (1337).
DEV_CHAIN_IDS = frozenset({31337, 1337})
DEV_KEY_ENV = "VERINFER_OPERATOR_KEY"


class KeyLoadError(ValueError):
    """The operator key cannot be loaded."""


def ape_keystore(alias: str) -> Path:
    """Where ape keeps the keyfile of account `alias`."""
    data = Path(os.environ.get("APE_DATA_FOLDER", Path.home() / ".ape"))
    return data / "accounts" / f"{alias}.json"


def read_password(password_env: str | None, password_file: Path | None) -> str:
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
    raise KeyLoadError("keystore password: set operator.password_env or operator.password_file")


def load_keystore(path: Path, password: str) -> LocalAccount:
    """Decrypts an eth-account keystore JSON."""
    try:
        keyfile = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise KeyLoadError(f"keystore {path} not found") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise KeyLoadError(f"keystore {path} unreadable: {exc}") from None
    try:
        key = Account.decrypt(keyfile, password)
    except ValueError:
        raise KeyLoadError(f"keystore {path}: wrong password or corrupt keyfile") from None
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
    keystore: Path | None, ape_account: str | None, password_env: str | None, password_file: Path | None
) -> LocalAccount:
    """The account in an eth-account keystore file or an ape account, with its password from env or file."""
    path = keystore or ape_keystore(ape_account or "")
    return load_keystore(path, read_password(password_env, password_file))


def write_keystore(path: Path, private_key: bytes, password: str, iterations: int | None = None) -> str:
    """Encrypts a key to `path` (mode 0600) and returns its address."""
    keyfile = Account.encrypt(private_key, password, kdf="scrypt", iterations=iterations)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(keyfile, handle)
    return str(Account.from_key(private_key).address)
