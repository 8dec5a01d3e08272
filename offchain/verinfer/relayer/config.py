"""relayer.toml: the one place that reads relayer configuration (file, then environment overrides)."""

import json
import os
import tomllib
import types
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from verinfer.chain.rpc import RPC_SCHEMES
from verinfer.chain.txmanager import FeePolicy

ENV_PREFIX = "VERINFER_"


class ConfigError(ValueError):
    """One line per mistake found in the configuration."""


@dataclass(frozen=True)
class ChainConfig:
    """Where to follow the chain and how carefully."""

    rpc_url: str = ""
    deployment: Path = Path("deployments/local.json")
    confirmations: int = 0
    poll_interval: float = 1.0
    rpc_timeout: float = 10.0
    log_chunk: int = 2_000
    start_block: int | None = None
    reorg_window: int = 256


@dataclass(frozen=True)
class OperatorConfig:
    """The operator key: an encrypted keystore and where its password comes from."""

    keystore: Path | None = None
    ape_account: str | None = None
    password_env: str | None = None
    password_file: Path | None = None


@dataclass(frozen=True)
class RuntimeConfig:
    """Artifact cache and ONNX Runtime execution."""

    cache_dir: Path = Path("artifacts")
    timeout: float = 30.0
    workers: int = 2
    max_sessions: int = 8
    fetch_timeout: float = 30.0
    max_artifact_mb: int = 512
    # External inputs: the largest fetched, and how long a reference's URIs are tried before the
    # request is answered INPUT_UNAVAILABLE.
    max_input_mb: int = 64
    input_wait: float = 10.0


@dataclass(frozen=True)
class TxConfig(FeePolicy):
    """Fees and replacement of stuck transactions (FeePolicy), plus batching and the settle reserve."""

    max_batch: int = 16
    settle_reserve: int = 100_000


@dataclass(frozen=True)
class JournalConfig:
    """The SQLite journal."""

    path: Path = Path("relayer.db")


@dataclass(frozen=True)
class MetricsConfig:
    """Prometheus /metrics and /healthz; an empty listen address disables them."""

    listen: str = "127.0.0.1:9464"


@dataclass(frozen=True)
class PeersConfig:
    """Attested mode's signature exchange with committee peers. `listen` serves this operator's
    attestations (empty: serve nothing; the relayer still pulls from peers and settles); `url` is
    where peers reach it (empty: http://<listen address>), published on-chain at start with `publish`."""

    listen: str = ""
    url: str = ""
    publish: bool = True
    timeout: float = 2.0
    # Seconds to wait, once a quorum is held, for the other members' signatures before settling
    # without them (each one left out costs its member an `attestLate` transaction); 0 settles at once.
    full_wait: float = 0.05


@dataclass(frozen=True)
class WatchConfig:
    """Optimistic mode's watcher: re-executes a random sample of the outputs posted for the models listed
    (names or 0x ids; "*" for every model this operator serves) and challenges one it computes
    differently, with at most `bond_budget` tokens locked in challenges at once. Off while `models` is
    empty."""

    models: tuple[str, ...] = ()
    sample_rate: float = 1.0
    bond_budget: str = "0"

    @property
    def enabled(self) -> bool:
        return bool(self.models)


@dataclass(frozen=True)
class LogConfig:
    """Structured logs on stderr."""

    level: str = "info"
    format: str = "json"


@dataclass(frozen=True)
class TestingConfig:
    """Fault injection for tests; refused outside dev chains."""

    lie: bool = False


@dataclass(frozen=True)
class RelayerConfig:
    """Everything `verinfer relayer run` needs."""

    chain: ChainConfig = field(default_factory=ChainConfig)
    operator: OperatorConfig = field(default_factory=OperatorConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    tx: TxConfig = field(default_factory=TxConfig)
    journal: JournalConfig = field(default_factory=JournalConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    peers: PeersConfig = field(default_factory=PeersConfig)
    watch: WatchConfig = field(default_factory=WatchConfig)
    log: LogConfig = field(default_factory=LogConfig)
    testing: TestingConfig = field(default_factory=TestingConfig)

    @classmethod
    def load(
        cls, path: Path, environ: dict[str, str] | None = None, require_keystore: bool = True
    ) -> "RelayerConfig":
        """Reads `path`, applies VERINFER_<SECTION>_<KEY> overrides and validates everything.

        `require_keystore=False` is for commands that never sign, or a dev key from the environment.
        """
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from None
        env = dict(os.environ if environ is None else environ)
        errors: list[str] = []
        sections: dict[str, Any] = {}
        for unknown in sorted(set(data) - {f.name for f in fields(cls)}):
            errors.append(f"unknown section [{unknown}]")
        for section in fields(cls):
            raw = data.get(section.name, {})
            if not isinstance(raw, dict):
                errors.append(f"[{section.name}] must be a table")
                raw = {}
            section_type = get_type_hints(cls)[section.name]
            sections[section.name] = _build(section_type, section.name, raw, env, path.parent, errors)
        config = cls(**sections) if not errors else None
        if config is not None:
            errors.extend(config._problems(require_keystore))
        if errors:
            raise ConfigError("\n".join(f"{path}: {line}" for line in errors))
        assert config is not None
        return config

    def _problems(self, require_keystore: bool) -> list[str]:
        out = []
        c, o, r, t = self.chain, self.operator, self.runtime, self.tx
        if not c.rpc_url:
            out.append("chain.rpc_url is required")
        elif not c.rpc_url.startswith(RPC_SCHEMES):
            out.append(f"chain.rpc_url {c.rpc_url!r} must be an http(s):// or ws(s):// URL")
        if c.confirmations < 0:
            out.append("chain.confirmations must be >= 0")
        if c.poll_interval <= 0 or c.rpc_timeout <= 0:
            out.append("chain.poll_interval and chain.rpc_timeout must be > 0")
        if c.log_chunk < 1 or c.reorg_window < 1:
            out.append("chain.log_chunk and chain.reorg_window must be >= 1")
        if require_keystore and (o.keystore is None) == (o.ape_account is None):
            out.append(
                "operator: set exactly one of keystore or ape_account (or run with --dev-key-from-env)"
            )
        if o.password_env and o.password_file:
            out.append("operator: set only one of password_env or password_file")
        if r.timeout <= 0 or r.fetch_timeout <= 0:
            out.append("runtime.timeout and runtime.fetch_timeout must be > 0")
        if r.workers < 1 or r.max_sessions < 1 or r.max_artifact_mb < 1:
            out.append("runtime.workers, runtime.max_sessions and runtime.max_artifact_mb must be >= 1")
        if t.fee_bump < 1.1:
            out.append("tx.fee_bump must be >= 1.1 (nodes refuse smaller replacement bumps)")
        if t.max_batch < 1 or t.gas_multiplier < 1 or t.stuck_after <= 0:
            out.append("tx.max_batch and tx.gas_multiplier must be >= 1, tx.stuck_after > 0")
        if self.log.level.lower() not in ("debug", "info", "warning", "error"):
            out.append(f"log.level {self.log.level!r} must be debug, info, warning or error")
        if self.log.format not in ("json", "text"):
            out.append(f"log.format {self.log.format!r} must be json or text")
        if self.metrics.listen and _split_listen(self.metrics.listen) is None:
            out.append(f"metrics.listen {self.metrics.listen!r} must be HOST:PORT")
        if self.peers.listen and _split_listen(self.peers.listen) is None:
            out.append(f"peers.listen {self.peers.listen!r} must be HOST:PORT")
        if self.peers.url and not self.peers.url.startswith(("http://", "https://")):
            out.append(f"peers.url {self.peers.url!r} must be an http(s):// URL")
        if self.peers.timeout <= 0:
            out.append("peers.timeout must be > 0")
        out.extend(_watch_problems(self.watch))
        return out


def _watch_problems(w: WatchConfig) -> list[str]:
    out = []
    if not 0 < w.sample_rate <= 1:
        out.append(f"watch.sample_rate must be in (0, 1], not {w.sample_rate}")
    try:
        budget = Decimal(w.bond_budget)
    except InvalidOperation:
        budget = Decimal(-1)
    if not budget.is_finite() or budget < 0:
        out.append(f'watch.bond_budget {w.bond_budget!r} must be a number of tokens ("250", "0.5")')
    elif w.enabled and budget == 0:
        out.append("watch.bond_budget must be above 0 when watch.models is set: challenges lock bonds")
    for model in w.models:
        if not model.strip():
            out.append("watch.models must not contain empty names")
    return out


def split_listen(listen: str) -> tuple[str, int]:
    """HOST:PORT as a tuple; ValueError if it is not one."""
    parsed = _split_listen(listen)
    if parsed is None:
        raise ValueError(f"{listen!r} is not HOST:PORT")
    return parsed


def _split_listen(listen: str) -> tuple[str, int] | None:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        return None
    return host, int(port)


def _build(
    kind: type, section: str, raw: dict[str, Any], env: dict[str, str], base: Path, errors: list[str]
) -> Any:
    hints = get_type_hints(kind)
    names = {f.name for f in fields(kind)}
    for unknown in sorted(set(raw) - names):
        errors.append(f"unknown key {section}.{unknown}")
    values: dict[str, Any] = {}
    for f in fields(kind):
        key = f"{section}.{f.name}"
        env_name = f"{ENV_PREFIX}{section}_{f.name}".upper()
        if env_name in env:
            value, from_env = env[env_name], True
        elif f.name in raw:
            value, from_env = raw[f.name], False
        else:
            if isinstance(f.default, Path) and not f.default.is_absolute():
                values[f.name] = (base / f.default).resolve()
            continue
        try:
            values[f.name] = _convert(hints[f.name], value, from_env, base)
        except (TypeError, ValueError) as exc:
            source = f" (from ${env_name})" if from_env else ""
            errors.append(f"{key}{source}: {exc}")
    return kind(**values)


def _convert(hint: Any, value: Any, from_env: bool, base: Path) -> Any:
    optional = get_origin(hint) in (Union, types.UnionType) and type(None) in get_args(hint)
    if optional:
        if value is None or (from_env and value == ""):
            return None
        hint = next(a for a in get_args(hint) if a is not type(None))
    if hint is bool:
        if isinstance(value, bool):
            return value
        if from_env and str(value).lower() in ("1", "true", "yes", "0", "false", "no", ""):
            return str(value).lower() in ("1", "true", "yes")
        raise ValueError(f"expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or not (isinstance(value, int) or from_env):
            raise ValueError(f"expected an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"expected an integer, got {value!r}") from None
    if hint is float:
        if isinstance(value, bool) or not (isinstance(value, int | float) or from_env):
            raise ValueError(f"expected a number, got {value!r}")
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"expected a number, got {value!r}") from None
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
        return value
    if get_origin(hint) is tuple:  # tuple[str, ...]: a TOML array, or comma-separated in the environment
        if from_env and isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"expected a list of strings, got {value!r}")
        return tuple(value)
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise ValueError(f"expected a path, got {value!r}")
        path = Path(value).expanduser()
        return path if path.is_absolute() else (base / path).resolve()
    raise TypeError(f"unsupported config type {hint}")


def to_toml(config: dict[str, dict[str, Any]]) -> str:
    """A relayer TOML file from sections of scalars (what the devnet and tests generate)."""
    lines = []
    for section, values in config.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
        lines.append("")
    return "\n".join(lines)
