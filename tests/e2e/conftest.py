"""Real relayer processes against the session's anvil: operators, keystores, configs and a model store."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ape
import numpy as np
import onnxruntime as ort
import pytest
from verinfer.chain.contracts import MODE_CONSENSUS, MODE_OPTIMISTIC, Status
from verinfer.chain.keys import write_keystore
from verinfer.client.client import DEFAULT_MAX_OUTPUT_BYTES
from verinfer.devnet.blocks import BlockKeeper
from verinfer.models.artifacts import ArtifactStore
from verinfer.models.codec import Tensor, decode_tensors, encode_tensors
from verinfer.models.samples import SampleModel, breast_cancer
from verinfer.models.spec import spec_from_onnx
from verinfer.relayer.config import to_toml

from scripts.deploy import write_record
from tests.conftest import E18, ROOT, next_epoch, request_id_of, wait_for

PASSWORD = "correct horse battery staple"


def read_journal(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Rows from a relayer's journal, read-only so the relayer is never locked out; [] until it exists."""
    if not path.exists():
        return []
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
        db.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in db.execute(sql, params)]
        except sqlite3.OperationalError:  # tables not created yet
            return []


def journal_row(path: Path, request_id: int) -> dict[str, Any] | None:
    """The relayer's journal row for a request."""
    rows = read_journal(path, "SELECT * FROM requests WHERE request_id = ?", (request_id,))
    return rows[0] if rows else None


def journal_txs(path: Path) -> list[dict[str, Any]]:
    """The relayer's transactions by nonce, with request_ids decoded."""
    rows = read_journal(path, "SELECT * FROM txs ORDER BY nonce")
    return [{**row, "request_ids": json.loads(row["request_ids"])} for row in rows]


def quiet(proc: "RelayerProcess") -> bool:
    """No transaction in the relayer's journal is still waiting for its receipt."""
    return all(t["state"] != "pending" for t in journal_txs(proc.journal))


def metric(address: str, name: str) -> float:
    """Sum of a Prometheus counter/gauge over its labels, read from the relayer's /metrics."""
    body = urllib.request.urlopen(f"http://{address}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in body.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            metric_name = line.split("{")[0].split(" ")[0]
            if metric_name in (name, f"{name}_total"):
                total += float(line.rsplit(" ", 1)[1])
    return total


def direct_output(sample_onnx: bytes, decimals: int, features: np.ndarray) -> bytes:
    """What ONNX Runtime gives when run directly, encoded as the protocol's fixed-point output."""
    session = ort.InferenceSession(sample_onnx, providers=["CPUExecutionProvider"])
    spec = spec_from_onnx(sample_onnx)
    names = [o.name for o in spec.outputs]
    results = session.run(names, {"features": features.astype(np.float32)})
    return encode_tensors(
        [Tensor.from_array(n, np.asarray(v), decimals) for n, v in zip(names, results, strict=True)]
    )


def features_input(features: np.ndarray, decimals: int = 4) -> bytes:
    return encode_tensors([Tensor.from_array("features", np.asarray(features, dtype=np.float64), decimals)])


def exact_features(features: np.ndarray, decimals: int = 4) -> np.ndarray:
    """The float32 values a relayer reconstructs from `features_input`."""
    (tensor,) = decode_tensors(features_input(features, decimals))
    return tensor.to_array().astype(np.float32)


@dataclass
class Operator:
    account: Any
    key: bytes


@dataclass
class RelayerProcess:
    """A `verinfer relayer run` subprocess with its own keystore, journal and log."""

    operator: Operator
    home: Path
    config: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    emulator: tuple[str, ...] = ()  # e.g. ("qemu-x86_64", "-cpu", "max"): runs on an emulated CPU
    starts: int = 0
    logs: list[Path] = field(default_factory=list)

    @property
    def journal(self) -> Path:
        return self.home / "journal.db"

    def start(self) -> "RelayerProcess":
        self.starts += 1
        log = self.home / f"relayer-{self.starts}.log"
        self.logs.append(log)
        handle = open(log, "wb")  # noqa: SIM115 (owned by the child)
        argv = [sys.executable, "-m", "verinfer", "relayer", "run", "--config", str(self.config)]
        self.proc = subprocess.Popen(
            [*self.emulator, *argv],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.home,
        )
        handle.close()
        return self

    def wait_ready(self, timeout: float = 30) -> str:
        """Waits for the metrics endpoint the relayer records in its journal; returns its address."""

        def ready() -> str | None:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"relayer exited {self.proc.returncode}: {self.log_text()[-2000:]}")
            rows = read_journal(self.journal, "SELECT value FROM meta WHERE key = 'metrics'")
            if not rows:
                return None
            address = str(rows[0]["value"])
            try:
                urllib.request.urlopen(f"http://{address}/healthz", timeout=2).read()
            except OSError:
                return None
            return address

        self.metrics = wait_for(ready, timeout, "relayer ready")
        return str(self.metrics)

    def state(self, request_id: int) -> str | None:
        row = journal_row(self.journal, request_id)
        return None if row is None else str(row["state"])

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        """SIGTERM and the exit code (0 for a clean shutdown; a relayer left killed counts as clean)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is not None:
            return 0 if self.proc.returncode == -signal.SIGKILL else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=120 if self.emulator else 20)  # emulated: slower
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logs if p.exists())


@pytest.fixture(scope="session")
def rpc_url() -> str:
    return str(ape.chain.provider.uri)


@pytest.fixture(autouse=True)
def keeper(rpc_url: str) -> Iterator[BlockKeeper]:
    """The devnet's block keeper on the session's anvil: seed blocks right after requests, and a block
    a second while idle so windows close. Tests may change its `idle_interval` while they run."""
    with BlockKeeper(rpc_url) as running:
        yield running


def stake_of(staking: Any, operator: Any) -> int:
    """An operator crew member's bonded stake."""
    return int(staking.operatorInfo(operator.account.address).stake)


def round_of(hub: Any, request_id: int) -> Any:
    """The request's round in its mode contract (seed block, deadlines, masks)."""
    mode = int(hub.getRequest(request_id).mode)
    contract = {MODE_CONSENSUS: ape.project.ConsensusMode, MODE_OPTIMISTIC: ape.project.OptimisticMode}.get(
        mode, ape.project.AttestedMode
    )
    return contract.at(hub.modeContract(mode)).getRound(request_id)


def hub_events(contract: Any, name: str, request_id: int, hub: Any = None) -> list[Any]:
    """`name` events of one request emitted by `contract` (the hub, or the mode contract given the
    hub as `hub`), in chain order."""
    start = int(round_of(hub or contract, request_id).seedBlock) - 1  # the request's own block
    stop = ape.chain.blocks.head.number + 1
    event = getattr(contract, name)
    return list(event.range(start, stop, search_topics={"requestId": request_id}))


def seeded(hub: Any, request_id: int) -> bool:
    """The request's seed block is mined (its committee can be known)."""
    return ape.chain.blocks.head.number >= int(round_of(hub, request_id).seedBlock)


@pytest.fixture(scope="session")
def deployment_file(stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("deploy") / "local.json"
    write_record(path, stack, {})
    return path


@pytest.fixture(scope="session")
def sample() -> SampleModel:
    return breast_cancer()


@pytest.fixture(scope="session")
def model_store(tmp_path_factory: pytest.TempPathFactory) -> ArtifactStore:
    return ArtifactStore(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="session")
def publish(registry: Any, model_owner: Any, model_store: ArtifactStore) -> Callable[..., tuple[bytes, int]]:
    """Registers a fresh model for `sample` and publishes it; `sha` overrides the registered hash."""
    counter = iter(range(10**6))

    def _publish(
        sample: SampleModel,
        sha: bytes | None = None,
        fee: int = E18,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        modes: int = 1,
        execution_class: str = "",
        tolerance: tuple[int, int] = (0, 0),
    ) -> tuple[bytes, int]:
        name = f"{sample.name}-{os.getpid()}-{next(counter)}"
        digest = model_store.put(sample.onnx)
        registry.registerModel(name, sender=model_owner)
        model_id = registry.modelIdOf(name)
        spec = spec_from_onnx(sample.onnx)
        uri = model_store.path(digest).as_uri()
        params = (
            sha or digest,
            [uri],
            spec.encode(),
            sample.decimals,
            modes,
            fee,
            max_output_bytes,
            ape.utils.ZERO_ADDRESS,
            execution_class,
            *tolerance,
        )
        registry.publishVersion(model_id, params, sender=model_owner)
        return model_id, 1

    return _publish


@pytest.fixture
def crew(staking: Any, fund: Callable[..., None]) -> Callable[..., list[Operator]]:
    """`crew(model_id, n)`: n fresh operators, funded, staked and registered for the model (for
    `class_id`'s versions; portable ones by default), in its pool for the next request's draw."""

    def _crew(model_id: bytes, n: int = 3, class_id: bytes = bytes(32)) -> list[Operator]:
        out = []
        for _ in range(n):
            account = ape.accounts.test_accounts.generate_test_account()
            ape.chain.set_balance(account.address, 100 * E18)
            fund(account, 1_000 * E18, staking)
            staking.stake(1_000 * E18, sender=account)
            staking.register(model_id, class_id, sender=account)
            key = bytes.fromhex(str(account.private_key).removeprefix("0x"))
            out.append(Operator(account, key))
        next_epoch(staking)
        return out

    return _crew


@pytest.fixture
def relayers(tmp_path: Path, rpc_url: str, deployment_file: Path) -> Iterator[Callable[..., RelayerProcess]]:
    """`relayers(operator, lie=False, rpc=None, start=True, tx=None, peers=None, emulator=(), watch=None)`:
    a configured, started relayer process; `peers` (a dict, {} for the defaults) serves attested mode's
    signature exchange; `emulator` runs it under qemu-user as another CPU; `watch` (a dict, {} for every
    served model at sample rate 1) makes it an optimistic-mode watcher."""
    started: list[RelayerProcess] = []
    start_block = ape.chain.blocks.head.number

    def _make(
        operator: Operator,
        *,
        lie: bool = False,
        rpc: str | None = None,
        start: bool = True,
        tx: dict[str, Any] | None = None,
        peers: dict[str, Any] | None = None,
        emulator: tuple[str, ...] = (),
        watch: dict[str, Any] | None = None,
    ) -> RelayerProcess:
        home = tmp_path / operator.account.address
        home.mkdir()
        write_keystore(home / "operator.json", operator.key, PASSWORD, iterations=2**10)
        tx_section = {"priority_fee_gwei": 1.0, "stuck_after": 30.0, **(tx or {})}
        config = {
            "chain": {
                "rpc_url": rpc or rpc_url,
                "deployment": str(deployment_file),
                "poll_interval": 0.05,
                "rpc_timeout": 2.0,
                "start_block": start_block,
            },
            "operator": {"keystore": "operator.json", "password_env": "RELAYER_PASSWORD"},
            # The slow test model takes seconds of matmuls, several times more on a busy machine.
            "runtime": {"cache_dir": "cache", "timeout": 60.0, "workers": 2},
            "tx": tx_section,
            "journal": {"path": "journal.db"},
            "metrics": {"listen": "127.0.0.1:0"},
            # Attested mode's peer server, for tests that pass `peers` (others keep their txs to the mode's).
            "peers": {"listen": ""} if peers is None else {"listen": "127.0.0.1:0", "timeout": 1.0, **peers},
            # Optimistic mode's watcher, for tests that pass `watch` ({} watches every served model).
            "watch": {} if watch is None else {"models": ["*"], "bond_budget": "100", **watch},
            "log": {"level": "debug", "format": "json"},
            "testing": {"lie": lie},
        }
        path = home / "relayer.toml"
        path.write_text(to_toml(config))
        env = {**os.environ, "RELAYER_PASSWORD": PASSWORD, "PYTHONPATH": str(ROOT / "offchain")}
        process = RelayerProcess(operator, home, path, env, emulator=emulator)
        started.append(process)
        if start:
            process.start().wait_ready()
        return process

    yield _make
    exits: dict[str, int | str] = {}
    for process in started:  # every one is stopped, even after one that would not stop
        try:
            exits[process.home.name] = process.stop()
        except subprocess.TimeoutExpired:
            exits[process.home.name] = "no exit after SIGTERM (killed)"
    crashed = {name: code for name, code in exits.items() if code != 0}
    assert not crashed, f"relayers did not exit cleanly on SIGTERM: {crashed}"


@pytest.fixture
def request_inference(make_request: Callable[..., Any]) -> Callable[..., int]:
    """`request_inference(model, input_bytes, k=3, digest_only=False, mode=1)`: the dapp's request id.
    Its seed block is left to the block keeper."""

    def _request(
        model: tuple[bytes, int], input_bytes: bytes, k: int = 3, digest_only: bool = False, mode: int = 1
    ) -> int:
        return request_id_of(
            make_request(
                k=k, model_ref=model, input_bytes=input_bytes, digest_only=digest_only, seed=False, mode=mode
            )
        )

    return _request


def settled(hub: Any, request_id: int) -> bool:
    return Status(hub.getRequest(request_id).status).terminal


# ------------------------------------------------------------ the devnet (its own anvil, relayers, store)


@dataclass(frozen=True)
class Devnet:
    """A devnet brought up by the real `verinfer devnet up` and its environment for CLI calls."""

    home: Path
    env: dict[str, str]
    state: Any  # DevnetState

    def client(self, role: str | None = "dapp") -> Any:
        from verinfer.client import Client

        account = self.state.account(role) if role else None
        return Client.connect("devnet", account=account)


def verinfer_cli(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """`python -m verinfer ARGS` as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "verinfer", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )


@contextmanager
def devnet_at(root: Path) -> Iterator[Devnet]:
    """`verinfer devnet up` with its home and deployments under `root`; `devnet down` afterwards, which
    must stop every process and remove the devnet's record."""
    from verinfer.devnet.state import DevnetState

    env = {
        **os.environ,
        "VERINFER_DEVNET_HOME": str(root / "home"),
        "VERINFER_DEPLOYMENTS": str(root / "deployments"),
    }
    up = verinfer_cli("devnet", "up", "--port", "0", env=env)
    assert up.returncode == 0, up.stderr
    state = DevnetState.load(root / "home")
    assert state is not None
    try:
        yield Devnet(root / "home", env, state)
    finally:
        down = verinfer_cli("devnet", "down", env=env)
        assert down.returncode == 0, down.stderr
        assert [p.name for p in state.processes if p.alive] == []
        assert DevnetState.load(root / "home") is None


@pytest.fixture(scope="session")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    with devnet_at(tmp_path_factory.mktemp("devnet")) as net:
        saved = {key: os.environ.get(key) for key in ("VERINFER_DEVNET_HOME", "VERINFER_DEPLOYMENTS")}
        os.environ.update({key: net.env[key] for key in saved})  # the SDK finds deployments/devnet.json
        try:
            yield net
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
