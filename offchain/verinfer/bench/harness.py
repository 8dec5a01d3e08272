"""What every benchmark part shares: a devnet it owns, a block watcher that timestamps settlement,
process CPU accounting and the relayers' own stage timings."""

import json
import os
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from prometheus_client.parser import text_string_to_metric_families
from web3.types import FilterParams

from verinfer.chain.contracts import Contracts, Status
from verinfer.chain.deployment import Deployment
from verinfer.chain.rpc import Rpc
from verinfer.client.client import Client
from verinfer.devnet.network import UpOptions, down, up
from verinfer.devnet.processes import Process
from verinfer.devnet.state import DevnetState
from verinfer.models.samples import SAMPLES, SampleModel

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")  # /proc/<pid>/stat counts CPU time in these


@dataclass
class Stack:
    """A running devnet and clients for its roles."""

    state: DevnetState
    rpc: Rpc
    deployment: Deployment
    block_time: float | None = None  # seconds between blocks; None: a block per transaction

    def client(self, who: str | LocalAccount) -> Client:
        """A client signing as a devnet role (deployer, owner, dapp, operator-n) or as `who` itself."""
        signer = Account.from_key(self.state.accounts[who]) if isinstance(who, str) else who
        return Client(self.rpc, self.deployment, signer, poll_interval=0.02)

    @cached_property
    def contracts(self) -> Contracts:
        """Built once: web3 builds every function and event object of six ABIs for it."""
        return Contracts(self.rpc, self.deployment)

    def process(self, name: str) -> Process:
        return next(p for p in self.state.processes if p.name == name)


@contextmanager
def devnet(work: Path, name: str, *, block_time: float | None = None, relayers: int = 3) -> Iterator[Stack]:
    """A devnet of its own under `work/name`, taken down (every process stopped) on the way out."""
    home = work / name
    state = up(
        UpOptions(
            home=home, deployment=home / "deployment.json", port=0, block_time=block_time, relayers=relayers
        )
    )
    try:
        rpc = Rpc(state.rpc_url, timeout=30.0)
        yield Stack(state, rpc, Deployment.load(state.deployment), block_time)
    finally:
        down(home, state)


def sample(name: str) -> SampleModel:
    return SAMPLES[name]()


def distinct_inputs(model: SampleModel, n: int, seed: int = 7) -> list[np.ndarray[Any, Any]]:
    """`n` different one-row inputs near the model's held-out examples, so outputs differ too."""
    rng = np.random.default_rng(seed)
    rows = model.examples
    return [
        (rows[i % len(rows)] * (1 + 0.01 * rng.standard_normal(rows.shape[1]))).astype(np.float32)[None, :]
        for i in range(n)
    ]


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p95/p99, mean and count of `samples` (seconds), in milliseconds."""
    if not samples:
        return {"n": 0}
    ms = np.asarray(samples) * 1000
    return {
        "n": len(samples),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "mean_ms": round(float(ms.mean()), 1),
        "max_ms": round(float(ms.max()), 1),
    }


@dataclass
class Settled:
    status: Status
    block: int
    seen_at: float


@dataclass
class BlockWatcher:
    """Polls the head every `interval` seconds on its own connection and records, for every hub
    request, the wall time its creating block and its settling block were first seen."""

    rpc_url: str
    deployment: Deployment
    interval: float = 0.005
    created: dict[int, float] = field(default_factory=dict)
    settled: dict[int, Settled] = field(default_factory=dict)
    blocks: int = 0

    def __post_init__(self) -> None:
        self._rpc = Rpc(self.rpc_url, timeout=30.0)
        hub = Contracts(self._rpc, self.deployment).hub
        self._address = hub.address
        self._created = hub.events.RequestCreated()
        self._settled = hub.events.RequestSettled()
        self._topics = [
            bytes(HexBytes(e.topic)) for e in (hub.events.RequestCreated, hub.events.RequestSettled)
        ]
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="block-watcher", daemon=True)
        self._next = self._rpc.block_number() + 1

    def __enter__(self) -> "BlockWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            head = self._rpc.block_number()
            if head >= self._next:
                now = time.perf_counter()
                query: FilterParams = {
                    "address": self._address,
                    "fromBlock": self._next,
                    "toBlock": head,
                    "topics": [[HexBytes(t) for t in self._topics]],
                }
                logs: list[Any] = self._rpc.call(lambda w3: list(w3.eth.get_logs(query)), "getLogs")  # noqa: B023
                with self._changed:
                    self.blocks += head - self._next + 1
                    for entry in logs:
                        if bytes(entry["topics"][0]) == self._topics[0]:
                            args = self._created.process_log(entry)["args"]
                            self.created[int(args["requestId"])] = now
                        else:
                            args = self._settled.process_log(entry)["args"]
                            self.settled[int(args["requestId"])] = Settled(
                                Status(args["status"]), int(entry["blockNumber"]), now
                            )
                    self._changed.notify_all()
                self._next = head + 1
            self._stop.wait(self.interval)

    def wait_settled(self, ids: set[int], timeout: float) -> bool:
        """True once every id in `ids` has settled; False at the timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not ids <= self.settled.keys():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def latency(self, request_id: int) -> float | None:
        """Seconds from the request's block to its settling block, as seen by this watcher."""
        done, start = self.settled.get(request_id), self.created.get(request_id)
        return None if done is None or start is None else done.seen_at - start


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds `pid` has used so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def stage_seconds(metrics_address: str) -> dict[str, tuple[float, float]]:
    """A relayer's per-stage (sum of seconds, count) from its /metrics endpoint."""
    with urllib.request.urlopen(f"http://{metrics_address}/metrics", timeout=5) as response:
        text = response.read().decode()
    stages: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "verinfer_stage_seconds":
            continue
        for s in family.samples:
            entry = stages.setdefault(s.labels.get("stage", "?"), [0.0, 0.0])
            if s.name.endswith("_sum"):
                entry[0] = s.value
            elif s.name.endswith("_count"):
                entry[1] = s.value
    return {stage: (v[0], v[1]) for stage, v in stages.items()}


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
