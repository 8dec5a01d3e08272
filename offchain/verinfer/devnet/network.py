"""`up`, `down` and `status` of the devnet: every process it starts is recorded before it is waited on."""

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

import verinfer
from verinfer.chain.contracts import MODES
from verinfer.chain.deployment import Deployment
from verinfer.chain.keys import DEV_CHAIN_IDS, DEV_KEY_ENV
from verinfer.chain.rpc import Rpc, RpcUnavailable
from verinfer.client import operator
from verinfer.client.client import Client
from verinfer.client.owner import publish_model
from verinfer.devnet import blocks
from verinfer.devnet.processes import DevnetError, free_port, port_in_use, spawn, stop, wait_http
from verinfer.devnet.state import DevnetState, role_accounts
from verinfer.models.artifacts import ArtifactStore
from verinfer.models.execution import ExecutionClass
from verinfer.models.samples import SAMPLES
from verinfer.relayer.config import to_toml

TOKEN = 10**18
MINT = 10_000 * TOKEN  # fee tokens for the model owner, the dapp and each operator
STAKE = 1_000 * TOKEN
SAMPLE_FEE = TOKEN // 10
RECORD_OWNER = "devnet_home"  # key in the deployment record: which devnet wrote it
RPC_PROBE = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()

Progress = Callable[[str], None]


@dataclass(frozen=True)
class UpOptions:
    home: Path
    deployment: Path
    rpc_url: str | None = None  # an existing dev chain instead of the embedded anvil
    port: int = 8545  # 0 picks a free one
    block_time: float | None = None  # None: anvil mines a block per transaction
    relayers: int = 3


def project_root() -> Path:
    """The source checkout (ape project) verinfer runs from: the deploy script lives there."""
    root = Path(verinfer.__file__).resolve().parents[2]
    if not (root / "ape-config.yaml").exists():
        raise DevnetError(f"no ape project at {root}: the devnet runs from a verinfer source checkout")
    return root


def tool_env(root: Path) -> dict[str, str]:
    """The environment `make env` sets: the venv and node tools on PATH, ape and solc kept in the checkout."""
    env = dict(os.environ)
    env.setdefault("SOLCX_BINARY_PATH", str(root / ".toolchain" / "solcx"))
    env.setdefault("APE_DATA_FOLDER", str(root / ".toolchain" / "ape"))
    paths = [str(Path(sys.executable).parent), str(root / "node_modules" / ".bin"), env.get("PATH", "")]
    env["PATH"] = os.pathsep.join(paths)
    return env


def running(home: Path) -> DevnetState | None:
    """The devnet at `home` if any of its processes is alive."""
    state = DevnetState.load(home)
    if state is not None and any(p.alive for p in state.processes):
        return state
    return None


def up(options: UpOptions, progress: Progress = lambda _: None) -> DevnetState:
    """Brings the whole devnet up; on any failure stops what it started and re-raises."""
    if running(options.home) is not None:
        raise DevnetError(f"a devnet is already running from {options.home} (`verinfer devnet down` first)")
    holder = record_owner(options.deployment)
    if holder is not None and holder != options.home.resolve() and running(holder) is not None:
        raise DevnetError(
            f"{options.deployment} belongs to the devnet running from {holder}: stop it first "
            f"(`verinfer devnet down --home {holder}`) or give this devnet its own --deployment PATH"
        )
    root = project_root()
    env = tool_env(root)
    options.home.mkdir(parents=True, exist_ok=True)
    state = DevnetState(
        home=options.home,
        rpc_url=options.rpc_url or "",
        chain_id=0,
        embedded=options.rpc_url is None,
        deployment=options.deployment.resolve(),
        store_dir=(options.home / "store").resolve(),
    )
    try:
        if options.rpc_url is None:
            progress("starting anvil")
            state.rpc_url = _start_anvil(state, options, env, root)
        rpc = Rpc(state.rpc_url, timeout=5.0)
        state.chain_id = rpc.chain_id()
        if state.chain_id not in DEV_CHAIN_IDS:
            raise DevnetError(f"{rpc.endpoint} is chain {state.chain_id}; the devnet only runs on dev chains")
        accounts = role_accounts(options.relayers)
        state.accounts = {role: account.key.hex() for role, account in accounts.items()}
        _check_funded(rpc, accounts)
        state.save()
        progress("deploying contracts (ape run deploy)")
        _deploy(state)
        deployment = Deployment.load(state.deployment)
        progress("serving the model store")
        _serve_store(state, env, root)
        progress("funding accounts")
        deployer = Client(rpc, deployment, accounts["deployer"])
        for role, account in accounts.items():
            if role != "deployer":
                deployer.transact("token", "mint", account.address, MINT)
        for name, build in SAMPLES.items():
            progress(f"publishing sample model {name}")
            sample = build()
            owner = Client(rpc, deployment, accounts["owner"])
            published = publish_model(
                owner,
                ArtifactStore(state.store_dir),
                sample.onnx,
                name=name,
                decimals=sample.decimals,
                fee=SAMPLE_FEE,
                base_url=state.store_url,
                modes=MODES["consensus"] | MODES["attested"] | MODES["optimistic"],
                # Drawn from the devnet's own operators, all on this machine: its class.
                execution_class=str(ExecutionClass.current()),
            )
            state.models[name] = published.version
        for n in range(1, options.relayers + 1):
            progress(f"staking and registering operator-{n}")
            _enlist(Client(rpc, deployment, accounts[f"operator-{n}"]), list(state.models))
        # Pools reach draws an epoch late: the first request must find the operators in them.
        blocks.mine_to_next_epoch(rpc, int(deployer.contracts.view("staking", "epochBlocks")))
        state.save()
        if options.block_time is None:
            _start_keeper(state, env, root)
        for n in range(1, options.relayers + 1):
            progress(f"starting relayer-{n}")
            _start_relayer(state, n, accounts[f"operator-{n}"], deployment, env, root)
        return state
    except BaseException:
        down(options.home, state)
        raise


def _start_anvil(state: DevnetState, options: UpOptions, env: dict[str, str], root: Path) -> str:
    anvil = shutil.which("anvil", path=env["PATH"])
    if anvil is None:
        raise DevnetError("anvil not found: run `make install` (it installs anvil from npm)")
    port = options.port or free_port()
    if port_in_use("127.0.0.1", port):
        raise DevnetError(f"port {port} is in use: pass --port (0 picks a free one) or --rpc-url")
    argv = [anvil, "--host", "127.0.0.1", "--port", str(port), "--silent"]
    if options.block_time:
        argv += ["--block-time", str(options.block_time)]
    process = spawn("anvil", argv, state.home / "logs" / "anvil.log", env, root)
    state.processes.append(process)
    state.save()
    url = f"http://127.0.0.1:{port}"
    wait_http(url, process, 30, body=RPC_PROBE)
    return url


def _check_funded(rpc: Rpc, accounts: dict[str, LocalAccount]) -> None:
    for role, account in accounts.items():
        if rpc.call(lambda w3: int(w3.eth.get_balance(account.address)), "getBalance") == 0:  # noqa: B023
            raise DevnetError(
                f"{role} {account.address} has no ETH: the devnet needs a dev chain funded from the "
                "standard test mnemonic (anvil, hardhat)"
            )


def ape_run(script: str, args: list[str], rpc_url: str, log: Path) -> None:
    """`ape run SCRIPT --network RPC_URL ARGS...` in the project; DevnetError with its last line."""
    root = project_root()
    argv = [str(Path(sys.executable).parent / "ape"), "run", script, "--network", rpc_url, *args]
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as handle:
        done = subprocess.run(
            argv, cwd=root, env=tool_env(root), stdout=handle, stderr=subprocess.STDOUT, check=False
        )
    if done.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise DevnetError(f"ape run {script} failed ({tail[0]}); see {log}")


def record_owner(deployment: Path) -> Path | None:
    """The home of the devnet that wrote the record `deployment`; None: no record, or not a devnet's."""
    try:
        home = json.loads(deployment.read_text()).get(RECORD_OWNER)
    except (OSError, ValueError, AttributeError):
        return None
    return Path(home) if isinstance(home, str) else None


def _deploy(state: DevnetState) -> None:
    ape_run("deploy", ["--out", str(state.deployment)], state.rpc_url, state.home / "logs" / "deploy.log")
    record = json.loads(state.deployment.read_text())
    record["rpc_url"] = state.rpc_url
    record[RECORD_OWNER] = str(state.home.resolve())  # so another devnet neither clobbers nor deletes it
    state.deployment.write_text(json.dumps(record, indent=2) + "\n")


def _serve_store(state: DevnetState, env: dict[str, str], root: Path) -> None:
    state.store_dir.mkdir(parents=True, exist_ok=True)  # `store serve` refuses a missing directory
    port = free_port()
    argv = [sys.executable, "-m", "verinfer", "store", "serve", "--dir", str(state.store_dir)]
    argv += ["--listen", f"127.0.0.1:{port}", "--accept-inputs"]
    process = spawn("store", argv, state.home / "logs" / "store.log", env, root)
    state.processes.append(process)
    state.store_url = f"http://127.0.0.1:{port}"
    state.save()
    wait_http(state.store_url + "/", process, 30)


def _start_keeper(state: DevnetState, env: dict[str, str], root: Path) -> None:
    """The block keeper (devnet/blocks.py): seed blocks at once, and windows that close while idle."""
    argv = [sys.executable, "-m", "verinfer.devnet.blocks", "--rpc-url", state.rpc_url]
    process = spawn("blocks", argv, state.home / "logs" / "blocks.log", env, root)
    state.processes.append(process)
    state.save()


def _enlist(client: Client, models: list[str]) -> None:
    operator.stake(client, STAKE)
    here = (ExecutionClass.current().class_id,)  # the samples are published in this machine's class
    for name in models:
        operator.register(client, name, here)


def _start_relayer(
    state: DevnetState, n: int, account: LocalAccount, deployment: Deployment, env: dict[str, str], root: Path
) -> None:
    name = f"relayer-{n}"
    home = state.home / name
    home.mkdir(parents=True, exist_ok=True)
    metrics = f"127.0.0.1:{free_port()}"
    peers = f"127.0.0.1:{free_port()}"
    config: dict[str, dict[str, Any]] = {
        "chain": {
            "rpc_url": state.rpc_url,
            "deployment": str(state.deployment),
            "poll_interval": 0.02,
            "rpc_timeout": 5.0,
            "start_block": deployment.deploy_block,
        },
        "runtime": {"cache_dir": str(home / "cache"), "timeout": 30.0, "workers": 2, "input_wait": 3.0},
        "tx": {"priority_fee_gwei": 1.0},
        "journal": {"path": str(home / "journal.db")},
        "metrics": {"listen": metrics},
        # Attested mode: the relayer serves its signatures here and publishes the URL on-chain.
        "peers": {"listen": peers, "url": f"http://{peers}"},
        # relayer-1 also watches optimistic posts: it re-executes every one and challenges a wrong one.
        "watch": {"models": ["*"], "sample_rate": 1.0, "bond_budget": "500"} if n == 1 else {},
        "log": {"level": "info", "format": "json"},
    }
    (home / "relayer.toml").write_text(to_toml(config))
    argv = [sys.executable, "-m", "verinfer", "relayer", "run", "--config", str(home / "relayer.toml")]
    argv.append("--dev-key-from-env")
    process = spawn(
        name, argv, state.home / "logs" / f"{name}.log", {**env, DEV_KEY_ENV: account.key.hex()}, root
    )
    state.processes.append(process)
    state.relayers[name] = metrics
    state.save()
    wait_http(f"http://{metrics}/healthz", process, 60)


def down(home: Path, state: DevnetState | None = None) -> list[tuple[str, bool]]:
    """Stops every recorded process (relayers first, the chain last); returns (name, had to be killed)."""
    state = state or DevnetState.load(home)
    if state is None:
        return []
    stopped = [(p.name, stop(p)) for p in reversed(state.processes)]
    leftover = [p.name for p in state.processes if p.alive]
    if leftover:
        raise DevnetError(f"could not stop {leftover}; their pids are in {state.path}")
    state.path.unlink(missing_ok=True)
    if state.embedded and record_owner(state.deployment) == state.home.resolve():
        state.deployment.unlink(missing_ok=True)  # ours, and it points at a chain that no longer exists
    return stopped


def status(home: Path) -> dict[str, Any]:
    """Processes, their liveness and health, and the chain's head and request count."""
    state = DevnetState.load(home)
    if state is None:
        return {"running": False, "home": str(home), "processes": []}
    processes = []
    for process in state.processes:
        entry: dict[str, Any] = {"name": process.name, "pid": process.pid, "alive": process.alive}
        if process.name in state.relayers:
            entry["metrics"] = state.relayers[process.name]
            entry["healthy"] = process.alive and _healthy(f"http://{state.relayers[process.name]}/healthz")
        processes.append(entry)
    report: dict[str, Any] = {
        "running": all(p["alive"] for p in processes) and bool(processes),
        "home": str(home),
        "rpc_url": state.rpc_url,
        "chain_id": state.chain_id,
        "deployment": str(state.deployment),
        "store_url": state.store_url,
        "models": state.models,
        "processes": processes,
    }
    try:
        client = Client(Rpc(state.rpc_url, timeout=2.0, attempts=1), Deployment.load(state.deployment))
        report["block"] = client.rpc.block_number()
        report["requests"] = int(client.contracts.view("hub", "requestCount"))
    except (RpcUnavailable, OSError, ValueError) as exc:
        report["chain_error"] = str(exc)
    return report


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False
