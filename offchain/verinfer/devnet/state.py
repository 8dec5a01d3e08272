"""The devnet's record of itself (home/state.json) and its well-known dev accounts."""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from verinfer.chain.keys import KeyLoadError
from verinfer.devnet.processes import DevnetError, Process

HOME_ENV = "VERINFER_DEVNET_HOME"
# anvil's and hardhat's default mnemonic: every account it derives is pre-funded on those dev chains.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
ROLES = ("deployer", "owner", "dapp")


def default_home() -> Path:
    return Path(os.environ.get(HOME_ENV, ".devnet"))


def dev_account(index: int) -> LocalAccount:
    """Account `index` of the dev mnemonic (m/44'/60'/0'/0/index)."""
    Account.enable_unaudited_hdwallet_features()
    account: LocalAccount = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return account


def role_accounts(operators: int) -> dict[str, LocalAccount]:
    """deployer, model owner, dapp, then operator-1..n: dev accounts 0, 1, 2, 3...."""
    names = [*ROLES, *(f"operator-{n}" for n in range(1, operators + 1))]
    return {name: dev_account(index) for index, name in enumerate(names)}


@dataclass
class DevnetState:
    """Everything `devnet down` and `status` need, and what the CLI borrows (keys, store, deployment)."""

    home: Path
    rpc_url: str
    chain_id: int
    embedded: bool
    deployment: Path
    store_dir: Path
    store_url: str = ""
    accounts: dict[str, str] = field(default_factory=dict)  # role -> private key (dev chains only)
    models: dict[str, int] = field(default_factory=dict)  # sample name -> published version
    relayers: dict[str, str] = field(default_factory=dict)  # process name -> metrics host:port
    processes: list[Process] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.home / "state.json"

    def save(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        data = {
            "rpc_url": self.rpc_url,
            "chain_id": self.chain_id,
            "embedded": self.embedded,
            "deployment": str(self.deployment),
            "store_dir": str(self.store_dir),
            "store_url": self.store_url,
            "accounts": self.accounts,
            "models": self.models,
            "relayers": self.relayers,
            "processes": [p.to_json() for p in self.processes],
        }
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds dev keys
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2)
        os.replace(tmp, self.path)

    @classmethod
    def load(cls, home: Path) -> "DevnetState | None":
        """The recorded devnet, or None if there is none; DevnetError if the record is unreadable."""
        path = Path(home) / "state.json"
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as exc:
            raise DevnetError(
                f"devnet state {path} unreadable ({exc}); remove it after stopping its processes"
            ) from None
        return cls(
            home=Path(home),
            rpc_url=data["rpc_url"],
            chain_id=int(data["chain_id"]),
            embedded=bool(data["embedded"]),
            deployment=Path(data["deployment"]),
            store_dir=Path(data["store_dir"]),
            store_url=data.get("store_url", ""),
            accounts=dict(data.get("accounts", {})),
            models=dict(data.get("models", {})),
            relayers=dict(data.get("relayers", {})),
            processes=[Process.from_json(p) for p in data.get("processes", [])],
        )

    def account(self, role: str) -> LocalAccount:
        if role not in self.accounts:
            raise KeyLoadError(f"the devnet has no account {role!r}; it has {sorted(self.accounts)}")
        account: LocalAccount = Account.from_key(self.accounts[role])
        return account
