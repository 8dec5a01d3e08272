"""Latency and throughput on a running devnet: pre-signed requests from the dapp, settlement timed by a
block watcher, offered load raised step by step until settled throughput stops following it."""

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_account import Account

from verinfer.bench.harness import (
    BlockWatcher,
    Stack,
    cpu_seconds,
    distinct_inputs,
    percentiles,
    sample,
    stage_seconds,
)
from verinfer.chain.contracts import MODE_CONSENSUS, Status
from verinfer.chain.rpc import Rpc
from verinfer.client.client import request_struct
from verinfer.client.inputs import encode_inputs
from verinfer.devnet.network import TOKEN

MODEL = "iris-mlp"
K = 3
GWEI = 10**9
Progress = Callable[[str], None]


class RequestLoad:
    """Signs requestInference transactions ahead of time (so signing stays out of the timings) and
    sends them closed-loop (one at a time) or open-loop (at a fixed rate)."""

    def __init__(self, stack: Stack, watcher: BlockWatcher, mode: int = MODE_CONSENSUS) -> None:
        self.stack = stack
        self.watcher = watcher
        self.mode = mode
        self.rpc = Rpc(stack.state.rpc_url, timeout=30.0)  # the sender's own connection
        self.account = Account.from_key(stack.state.accounts["dapp"])
        dapp = stack.client("dapp")
        stack.client("deployer").transact("token", "mint", self.account.address, 10**6 * TOKEN)
        dapp.transact("token", "approve", stack.contracts.hub.address, 2**256 - 1)
        self.version = dapp.model(MODEL)
        self.fee = dapp.quote(self.version, K)
        self.rows = [encode_inputs(self.version.spec, r) for r in distinct_inputs(sample(MODEL), 256)]
        self.nonce = int(self.rpc.w3.eth.get_transaction_count(self.account.address, "pending"))
        self.next_id = int(stack.contracts.view("hub", "requestCount")) + 1
        self.gas = int(self.rpc.w3.eth.estimate_gas(self._tx(self.rows[0])) * 1.2)  # type: ignore[arg-type]

    def _tx(self, encoded: bytes) -> dict[str, Any]:
        args = request_struct(self.version, encoded, k=K, max_fee=self.fee, mode_bit=self.mode)
        return {
            "from": self.account.address,
            "to": self.stack.contracts.hub.address,
            "data": self.stack.contracts.calldata("hub", "requestInference", args),
        }

    def sign(self, n: int) -> list[tuple[int, bytes]]:
        """`n` signed requests, each with the request id it will get (the dapp is the only requester)."""
        chain_id = self.rpc.chain_id()
        signed = []
        for _ in range(n):
            tx = self._tx(self.rows[self.nonce % len(self.rows)])
            del tx["from"]
            tx.update(
                type=2,
                chainId=chain_id,
                nonce=self.nonce,
                gas=self.gas,
                value=0,
                maxFeePerGas=200 * GWEI,
                maxPriorityFeePerGas=GWEI,
            )
            signed.append((self.next_id, bytes(self.account.sign_transaction(tx).raw_transaction)))
            self.nonce += 1
            self.next_id += 1
        return signed

    def send(self, raw: bytes) -> None:
        self.rpc.w3.eth.send_raw_transaction(raw)

    def closed_loop(self, n: int, timeout: float) -> list[float]:
        """One request at a time, each sent once the previous one settled; their latencies."""
        latencies = []
        for request_id, raw in self.sign(n):
            self.send(raw)
            if not self.watcher.wait_settled({request_id}, timeout):
                raise RuntimeError(f"request {request_id} did not settle within {timeout}s")
            self._check(request_id)
            latencies.append(self.watcher.latency(request_id) or 0.0)
        return latencies

    def open_loop(self, rate: float, duration: float) -> tuple[list[int], float, float]:
        """Sends at `rate` per second for `duration` seconds: (ids, first send time, achieved rate)."""
        batch = self.sign(max(1, round(rate * duration)))
        start = time.perf_counter()
        for i, (_, raw) in enumerate(batch):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            self.send(raw)
        elapsed = time.perf_counter() - start
        return [i for i, _ in batch], start, len(batch) / max(elapsed, 1e-9) if len(batch) > 1 else rate

    def _check(self, request_id: int) -> None:
        settled = self.watcher.settled[request_id]
        if settled.status != Status.FINALIZED:
            raise RuntimeError(f"request {request_id} settled {settled.status.name}")


def latency(
    stack: Stack, n: int, progress: Progress, label: str, mode: int = MODE_CONSENSUS, warmup: int = 3
) -> dict[str, Any]:
    """Closed-loop latency from the request's block to its settling block."""
    with BlockWatcher(stack.state.rpc_url, stack.deployment) as watcher:
        load = RequestLoad(stack, watcher, mode)
        progress(f"latency ({label}): warming up")
        load.closed_loop(warmup, 60)  # sessions loaded, artifacts cached
        progress(f"latency ({label}): {n} requests, one at a time")
        return percentiles(load.closed_loop(n, 60))


@dataclass
class Step:
    offered: float
    sent: int
    settled: int
    throughput: float
    latency: dict[str, Any]
    seconds: float
    sustained: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "offered_per_s": round(self.offered, 1),
            "sent": self.sent,
            "settled": self.settled,
            "settled_per_s": round(self.throughput, 1),
            "latency": self.latency,
            "seconds": round(self.seconds, 2),
            "sustained": self.sustained,
        }


class Profiler:
    """CPU seconds per devnet process and per relayer stage between `start()` and `stop()`."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.processes = list(stack.state.processes)

    def start(self) -> None:
        self.t0 = time.perf_counter()
        self.cpu0 = {p.name: cpu_seconds(p.pid) for p in self.processes}
        self.self0 = sum(os.times()[:2])
        self.stages0 = {name: stage_seconds(addr) for name, addr in self.stack.state.relayers.items()}
        self.block0 = self.stack.rpc.block_number()

    def stop(self, settled: int, block_time: float | None) -> dict[str, Any]:
        wall = time.perf_counter() - self.t0
        cpu = {p.name: cpu_seconds(p.pid) - self.cpu0[p.name] for p in self.processes}
        cpu["bench (load + watcher)"] = sum(os.times()[:2]) - self.self0
        stages: dict[str, list[float]] = {}
        for name, addr in self.stack.state.relayers.items():
            after = stage_seconds(addr)
            for stage, (total, count) in after.items():
                before = self.stages0[name].get(stage, (0.0, 0.0))
                acc = stages.setdefault(stage, [0.0, 0.0])
                acc[0] += total - before[0]
                acc[1] += count - before[1]
        head = self.stack.rpc.block_number()
        blocks = [self.stack.rpc.w3.eth.get_block(b, True) for b in range(self.block0 + 1, head + 1)]
        txs = sum(len(b["transactions"]) for b in blocks)
        gas_used = sum(int(b["gasUsed"]) for b in blocks)
        gas_limit = sum(int(b["gasLimit"]) for b in blocks)
        # A transaction only enters a block while its gas limit fits in the gas the block has left.
        full: list[Any] = [tx for b in blocks for tx in b["transactions"]]
        reserved = sum(int(tx["gas"]) for tx in full)
        return {
            "wall_s": round(wall, 2),
            "cores_busy": {name: round(s / wall, 2) for name, s in sorted(cpu.items(), key=lambda x: -x[1])},
            "cpu_s_per_settled_request_ms": {
                name: round(1000 * s / max(settled, 1), 2)
                for name, s in sorted(cpu.items(), key=lambda x: -x[1])
            },
            "relayer_stage_mean_ms": {
                stage: round(1000 * total / count, 1)
                for stage, (total, count) in sorted(stages.items())
                if count
            },
            "blocks": head - self.block0,
            "transactions": txs,
            "transactions_per_settled_request": round(txs / max(settled, 1), 2),
            "block_gas_used": round(gas_used / max(gas_limit, 1), 3),
            "gas_per_settled_request": gas_used // max(settled, 1),
            "gas_reserved_per_settled_request": reserved // max(settled, 1),
            # What the chain alone allows: its gas per second over the gas one settled request used.
            "chain_cap_per_s": round(
                gas_limit / len(blocks) / block_time / max(gas_used / max(settled, 1), 1), 1
            )
            if blocks and block_time
            else None,
        }


def throughput(
    stack: Stack,
    rates: list[float],
    duration: float,
    progress: Progress,
    mode: int = MODE_CONSENSUS,
    warmup: int = 3,
) -> dict[str, Any]:
    """Settled requests per second at rising offered load until a step is not sustained, and a profile
    of that step (or of the last one)."""
    steps: list[Step] = []
    profile: dict[str, Any] | None = None
    with BlockWatcher(stack.state.rpc_url, stack.deployment, interval=0.02) as watcher:
        load = RequestLoad(stack, watcher, mode)
        load.closed_loop(warmup, 60)
        name = "consensus" if mode == MODE_CONSENSUS else "attested"
        for rate in rates:
            progress(f"throughput ({name}): offering {rate:g} requests/s for {duration:g}s")
            profiler = Profiler(stack)
            profiler.start()
            ids, start, achieved = load.open_loop(rate, duration)
            done = watcher.wait_settled(set(ids), timeout=max(60.0, 4 * duration))
            settled = [i for i in ids if i in watcher.settled]
            times = sorted(watcher.settled[i].seen_at for i in settled)
            # Below saturation settlements arrive as fast as requests were sent; above it the backlog
            # drains at the rate the system sustains, over a longer span than the sending took.
            span = max(len(ids) / achieved, times[-1] - times[0] if times else 0.0)
            step = Step(
                offered=achieved,
                sent=len(ids),
                settled=len(settled),
                throughput=len(times) / span,
                latency=percentiles([watcher.latency(i) or 0.0 for i in settled]),
                seconds=(times[-1] - start) if times else 0.0,
            )
            steps.append(step)
            # Sustained: everything settled, at the offered rate, without a backlog stretching latency
            # past twice the lightest step's.
            step.sustained = (
                done
                and step.throughput >= 0.9 * step.offered
                and step.latency.get("p50_ms", 0) <= 2 * steps[0].latency.get("p50_ms", 0)
            )
            if not step.sustained or rate == rates[-1]:
                profile = {
                    "offered_per_s": round(achieved, 1),
                    **profiler.stop(len(settled), stack.block_time),
                }
            if not step.sustained:
                break
    sustained = [s.throughput for s in steps if s.sustained]
    return {
        "steps": [s.to_json() for s in steps],
        "sustained_per_s": round(max(sustained), 1) if sustained else 0.0,
        "peak_drain_per_s": round(max(s.throughput for s in steps), 1),
        "saturated": not steps[-1].sustained,
        "profile": profile,
    }
