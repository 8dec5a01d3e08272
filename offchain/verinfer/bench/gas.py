"""Gas: each operation of a settled request at k = 1, 3, 5, batched commit/reveal, and the committee draw
as the operator pool grows. Every number is a mined transaction's gasUsed (or, for the parts of one,
the call tracer's gasUsed of that sub-call) on anvil.

Results reach only the requester, so requests with a callback are made by the consumer contract itself
(`DigestConsumer.request`). Requesters pay from a credit at the hub funded once with `deposit`; `payment`
measures the same request paid by approval and transfer instead. The committee is drawn from the hash of
the block after the request's: the bench waits for that block (the devnet's block keeper mines it, or
the bench does), reads the committee with `previewCommittee`, and the first commit pays for the draw."""

import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

from eth_abi.abi import encode
from eth_account.signers.local import LocalAccount
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.crypto import keccak
from web3.types import TxReceipt

from verinfer.bench.harness import Stack, distinct_inputs, sample
from verinfer.chain import attestations
from verinfer.chain.attestations import Domain
from verinfer.chain.contracts import MODE_ATTESTED, MODE_CONSENSUS, MODE_OPTIMISTIC, ModelVersion, Status
from verinfer.chain.sender import Receipt
from verinfer.client import operator
from verinfer.client.client import Client, request_struct
from verinfer.client.inputs import encode_inputs
from verinfer.client.owner import publish_model
from verinfer.devnet.blocks import mine, mine_to_next_epoch
from verinfer.devnet.network import STAKE, TOKEN, project_root, tool_env
from verinfer.devnet.state import dev_account
from verinfer.models.agreement import Tolerance
from verinfer.models.artifacts import ArtifactStore
from verinfer.models.codec import Tensor, commitment, decode_tensors, encode_tensors, output_digest
from verinfer.models.execution import NO_CLASS
from verinfer.models.inputs import InputRef
from verinfer.models.runtime import ModelRuntime
from verinfer.models.samples import SAMPLES

CALLBACK_GAS = 200_000
MODEL = "iris-mlp"  # k = 1, 3, 5 pool: five operators
BATCH_MODEL = "diabetes-progression"  # batch pool: exactly three operators, so k = 3 draws all of them
MIN_STAKE = 100 * TOKEN
Progress = Callable[[str], None]


def compiled(name: str) -> dict[str, Any]:
    """`name`'s contract type from ape's build (`ape compile` first, which is quick when nothing changed)."""
    root = project_root()
    ape = str(Path(sys.executable).parent / "ape")
    done = subprocess.run([ape, "compile"], cwd=root, env=tool_env(root), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ape compile failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    types: dict[str, Any] = json.loads((root / ".build" / "__local__.json").read_text())["contractTypes"]
    if name not in types:
        raise RuntimeError(f"no contract {name} in the ape build")
    return types[name]  # type: ignore[no-any-return]


def selector(signature: str) -> str:
    return "0x" + function_signature_to_4byte_selector(signature).hex()


DRAW = selector("drawCommitteeSlots(bytes32,uint256,uint256,uint256)")
CALLBACK = selector("onInferenceResult(uint256,uint8,bytes)")
REQUEST_TYPE = "(bytes32,uint32,uint8,uint8,uint32,bool,uint256,bytes)"  # IInferenceHub.InferenceRequest
CONSUMER_REQUEST = selector(f"request(address,{REQUEST_TYPE})")
SEED_WAIT = 0.2  # seconds to let the block keeper mine a seed block before the bench mines it


@dataclass
class Member:
    client: Client
    salt: bytes = b""

    @property
    def address(self) -> str:
        return self.client.address


class GasBench:
    """Drives requests and the committee's commit/reveal by hand, from known operator accounts."""

    def __init__(self, stack: Stack, progress: Progress) -> None:
        self.stack = stack
        self.progress = progress
        self.deployer = stack.client("deployer")
        self.dapp = stack.client("dapp")
        self.runtime = ModelRuntime(ArtifactStore(stack.state.store_dir))
        self.members: dict[str, Member] = {}
        self.consumer = ""
        self.paying_consumer = ""
        self.two_pools: set[str] = set()  # operators in both models' pools (a slash writes both)

    # ------------------------------------------------------------ setup

    def setup(self) -> None:
        self.progress("gas: five operators, a consumer contract")
        # A commit window long enough for 50 requests, about one block each, to be committed in one
        # batch (it must stay under the 256 blocks a seed is readable); it changes no operation's gas.
        params = list(self.stack.contracts.view("consensus", "params"))
        params[0] = 250
        self.deployer.transact("consensus", "setParams", tuple(params))
        # The same for attested rounds: 50 requests, a block each, settled together by settleMany.
        params = list(self.stack.contracts.view("attested", "params"))
        params[0] = 250
        self.deployer.transact("attested", "setParams", tuple(params))
        self.deployer.transact("token", "mint", self.dapp.address, 300_000 * TOKEN)
        self.dapp.transact("token", "approve", self.stack.contracts.hub.address, 2**256 - 1)
        self.dapp.transact("hub", "deposit", self.dapp.address, 100_000 * TOKEN)
        # Dev-mnemonic accounts 3-7: funded with ETH by anvil, unused by a devnet without relayers.
        accounts: list[LocalAccount] = [dev_account(3 + i) for i in range(5)]
        for i, account in enumerate(accounts):
            client = self.stack.client(account)
            self.deployer.transact("token", "mint", account.address, 10 * STAKE)
            operator.stake(client, STAKE)
            operator.register(client, MODEL)  # the devnet's samples are in this machine's class
            if i < 3:
                operator.register(client, BATCH_MODEL)
                self.two_pools.add(account.address)
            self.members[account.address] = Member(client)
        self.consumer = self._deploy("DigestConsumer", ["address"], [self.stack.contracts.hub.address])
        self.dapp.transact("hub", "deposit", self.consumer, 100_000 * TOKEN)  # its credit pays its requests
        # The same consumer paying from its token balance (approval and transfer per request).
        self.paying_consumer = self._deploy("DigestConsumer", ["address"], [self.stack.contracts.hub.address])
        self.deployer.transact("token", "mint", self.paying_consumer, 1_000 * TOKEN)
        mine_to_next_epoch(self.stack.rpc, self.epoch_blocks)
        self.warm_up()

    def warm_up(self) -> None:
        """One request served by all five operators before anything is measured, so every operator,
        the model owner and the treasury hold some credit. Crediting an account with none costs a fresh
        storage slot (17k more than adding to some); without this, a settlement's gas depended on
        whether the draw happened to pick operators paid before, and any change to the contracts'
        code (which changes block hashes, so draws) moved the k = 3 settlement by 17k either way.
        Operators hold credit between their claims, so this is the common case."""
        self.progress("gas: one warm-up request served by every operator")
        request_id, _, output, _ = self.request(MODEL, 5, distinct_inputs(sample(MODEL), 1, seed=9)[0])
        members = self.committee(request_id)
        for m in members:
            self.commit(m, [request_id], [output])
        for m in members:
            self.reveal(m, [request_id], [output])
        self.expect(request_id, Status.FINALIZED)

    def _deploy(self, name: str, types: list[str], args: list[Any]) -> str:
        bytecode = bytes.fromhex(compiled(name)["deploymentBytecode"]["bytecode"][2:])
        receipt = self.send_as(self.deployer.address, None, bytecode + encode(types, args))
        return str(receipt["contractAddress"])

    def send_as(self, sender: str, to: str | None, data: bytes, gas: int = 3_000_000) -> TxReceipt:
        """A transaction from an account the dev node signs for (unlocked or impersonated)."""
        tx: dict[str, Any] = {"from": sender, "data": data, "gas": gas}
        if to is not None:
            tx["to"] = to
        w3 = self.stack.rpc.w3
        # The devnet mines each transaction as it arrives: poll for the receipt every millisecond, not
        # web3's default 0.1 s, which would dominate a bulk setup of thousands of transactions.
        tx_hash = w3.eth.send_transaction(tx)  # type: ignore[arg-type]
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.001)
        if receipt["status"] != 1:
            raise RuntimeError(f"bench setup transaction reverted: {receipt['transactionHash'].hex()}")
        return receipt

    @property
    def epoch_blocks(self) -> int:
        return int(self.stack.contracts.view("staking", "epochBlocks"))

    # ------------------------------------------------------------ one request, step by step

    def request(
        self,
        model: str,
        k: int,
        row: Any,
        callback: bool = True,
        seed: bool = True,
        mode: int = MODE_CONSENSUS,
        digest_only: bool = False,
        consumer: str | None = None,
    ) -> tuple[int, int, bytes, str]:
        """(request id, gas, encoded output every honest member computes, tx hash).

        With `callback` the consumer contract requests (it is called back); otherwise the dapp's
        account does. With `seed` the request's seed block is mined before this returns (without, the
        next transaction mines it)."""
        version = self.dapp.model(model)
        encoded = encode_inputs(version.spec, row)
        fee = self.dapp.quote(version, k)
        args = request_struct(
            version,
            encoded,
            k=k,
            max_fee=fee,
            mode_bit=mode,
            callback_gas_limit=CALLBACK_GAS if callback else 0,
            digest_only=digest_only,
        )
        if callback:
            data = bytes.fromhex(CONSUMER_REQUEST[2:]) + encode(
                ["address", REQUEST_TYPE], [self.stack.contracts.token.address, args]
            )
            receipt = self.dapp.sender.transact(consumer or self.consumer, data, "request")
        else:
            receipt = self.dapp.transact("hub", "requestInference", args)
        request_id = int(self.stack.contracts.view("hub", "requestCount"))
        output = self.runtime.run(version, encoded).output
        if seed:
            self.seeded(request_id)
        return request_id, receipt.gas_used, output, receipt.tx_hash.hex()

    def seeded(self, request_id: int) -> None:
        """Waits until the request's seed block is mined (the block keeper's job; the bench mines it
        if the keeper is not quick enough)."""
        onchain = self.stack.contracts.request(request_id)
        assert onchain is not None
        deadline = time.monotonic() + SEED_WAIT
        while self.stack.rpc.block_number() < onchain.seed_block:
            if time.monotonic() > deadline:
                self.stack.rpc.raw("evm_mine")
            time.sleep(0.005)

    def committee(self, request_id: int, mode: int = MODE_CONSENSUS) -> list[Member]:
        """The committee the first commit will draw (`previewCommittee` against the pending block)."""
        return [self.members[a] for a in self.stack.contracts.preview_committee(request_id, mode)]

    def signatures(self, request_id: int, output: bytes) -> tuple[list[Member], list[tuple[bytes, bytes]]]:
        """Every member of an attested request's committee signs the output's digest."""
        members = self.committee(request_id, MODE_ATTESTED)
        domain = Domain(self.stack.contracts.rpc.chain_id(), self.stack.contracts.attested.address)
        digest = output_digest(output)
        signed = [attestations.sign(m.client.account, domain, request_id, digest) for m in members]  # type: ignore[arg-type]
        return members, [(a.output_digest, a.signature) for a in signed]

    def commit(self, member: Member, ids: Sequence[int], outputs: Sequence[bytes]) -> int:
        return self.commit_receipt(member, ids, outputs).gas_used

    def commit_receipt(self, member: Member, ids: Sequence[int], outputs: Sequence[bytes]) -> Receipt:
        member.salt = os.urandom(32)
        digests = [
            commitment(i, member.address, output_digest(o), member.salt)
            for i, o in zip(ids, outputs, strict=True)
        ]
        if len(ids) == 1:
            return member.client.transact("consensus", "commit", ids[0], digests[0])
        return member.client.transact("consensus", "commitMany", list(ids), digests)

    def reveal(self, member: Member, ids: Sequence[int], outputs: Sequence[bytes]) -> tuple[int, str]:
        if len(ids) == 1:
            receipt = member.client.transact("consensus", "reveal", ids[0], outputs[0], member.salt)
        else:
            receipt = member.client.transact(
                "consensus", "revealMany", list(ids), list(outputs), [member.salt] * len(ids)
            )
        return receipt.gas_used, receipt.tx_hash.hex()

    def expect(self, request_id: int, status: Status) -> None:
        result = self.stack.contracts.result(request_id)
        if result.status != status or (result.callback_result != 1 and status == Status.FINALIZED):
            raise RuntimeError(
                f"request {request_id} ended {result.status.name}, callback {result.callback_result}"
            )

    def subcall_gas(self, tx_hash: str, to: str, sig: str) -> int | None:
        """gasUsed of the first call to `to` with selector `sig` inside the transaction (call tracer)."""
        tx = tx_hash if tx_hash.startswith("0x") else "0x" + tx_hash
        stack = [self.stack.rpc.raw("debug_traceTransaction", tx, {"tracer": "callTracer"}) or {}]
        while stack:
            frame = stack.pop()
            if frame.get("to", "").lower() == to.lower() and frame.get("input", "").startswith(sig):
                return int(frame["gasUsed"], 16)
            stack.extend(frame.get("calls") or [])
        return None

    # ------------------------------------------------------------ the measurements

    def per_operation(self, ks: Sequence[int], repeats: int) -> dict[str, Any]:
        """Median gas of each step of a settled request at each k, and the median of their sums.

        The first commit draws and stores the committee (`draw` is the staking contract's part of it);
        the first reveal stores the output; the last one settles (payouts, callback); at k = 1 they
        are the same transaction."""
        out: dict[str, Any] = {}
        rows = distinct_inputs(sample(MODEL), repeats * len(ks), seed=1)
        for k in ks:
            self.progress(f"gas: settled requests at k={k}")
            samples: dict[str, list[int]] = {}
            for _ in range(repeats):
                request_id, gas, output, _ = self.request(MODEL, k, rows.pop())
                steps = [("request", gas)]
                members = self.committee(request_id)
                staking = self.stack.contracts.staking.address
                draw = 0
                for i, m in enumerate(members):
                    receipt = self.commit_receipt(m, [request_id], [output])
                    steps.append(("first_commit" if i == 0 else "commit", receipt.gas_used))
                    if i == 0:
                        draw = self.subcall_gas(receipt.tx_hash.hex(), staking, DRAW) or 0
                for i, m in enumerate(members):
                    gas, tx = self.reveal(m, [request_id], [output])
                    name = "settle" if i == k - 1 else "first_reveal" if i == 0 else "reveal"
                    steps.append((name, gas))
                self.expect(request_id, Status.FINALIZED)
                # Parts of transactions counted above, not steps of their own.
                parts = [("callback", self.subcall_gas(tx, self.consumer, CALLBACK) or 0), ("draw", draw)]
                for name, value in steps + parts:
                    samples.setdefault(name, []).append(value)
                samples.setdefault("total", []).append(sum(v for _, v in steps))
            out[str(k)] = {name: int(statistics.median(v)) for name, v in samples.items()}
        return out

    def attested(self, ks: Sequence[int], repeats: int) -> dict[str, Any]:
        """Attested mode: the request, then one `settle` carrying every member's signature (it draws the
        committee, stores the output unless digest-only, pays and calls back)."""
        out: dict[str, Any] = {}
        rows = distinct_inputs(sample(MODEL), repeats * len(ks) * 2, seed=5)
        for k in ks:
            for digest_only in (True, False):
                label = f"{k}{' digest-only' if digest_only else ' stored'}"
                self.progress(f"gas: attested requests at k={label}")
                samples: dict[str, list[int]] = {}
                for _ in range(repeats):
                    request_id, gas, output, _ = self.request(
                        MODEL, k, rows.pop(), mode=MODE_ATTESTED, digest_only=digest_only
                    )
                    members, signed = self.signatures(request_id, output)
                    receipt = members[0].client.transact("attested", "settle", request_id, output, signed)
                    self.expect(request_id, Status.FINALIZED)
                    tx = receipt.tx_hash.hex()
                    samples.setdefault("request", []).append(gas)
                    samples.setdefault("settle", []).append(receipt.gas_used)
                    samples.setdefault("draw", []).append(
                        self.subcall_gas(tx, self.stack.contracts.staking.address, DRAW) or 0
                    )
                    samples.setdefault("callback", []).append(
                        self.subcall_gas(tx, self.consumer, CALLBACK) or 0
                    )
                    samples.setdefault("total", []).append(gas + receipt.gas_used)
                out[label] = {name: int(statistics.median(v)) for name, v in samples.items()}
        return out

    def attested_batched(self, sizes: Sequence[int]) -> dict[str, Any]:
        """Attested mode, many requests settled by one `settleMany` (k = 3, every signature included)."""
        out: dict[str, Any] = {}
        rows = distinct_inputs(sample(BATCH_MODEL), sum(sizes), seed=6)
        for n in sizes:
            self.progress(f"gas: attested settleMany of {n}")
            ids, outputs, request_gas = [], [], 0
            for i in range(n):
                request_id, gas, output, _ = self.request(
                    BATCH_MODEL, 3, rows.pop(), seed=i == n - 1, mode=MODE_ATTESTED, digest_only=True
                )
                ids.append(request_id)
                outputs.append(output)
                request_gas += gas
            signed = [self.signatures(i, o)[1] for i, o in zip(ids, outputs, strict=True)]
            submitter = self.committee(ids[0], MODE_ATTESTED)[0]
            receipt = submitter.client.transact("attested", "settleMany", ids, outputs, signed)
            for request_id in ids:
                self.expect(request_id, Status.FINALIZED)
            out[str(n)] = {
                "request": request_gas // n,
                "settle_per_request": receipt.gas_used // n,
                "total_per_request": (request_gas + receipt.gas_used) // n,
            }
        return out

    def payment(self) -> dict[str, int]:
        """A consumer's attested k = 3 request paid from its credit at the hub, and the same request paid
        from its token balance (approval, transfer, the hub's balance check, the approval reset)."""
        rows = distinct_inputs(sample(MODEL), 2, seed=11)
        _, credit, _, _ = self.request(MODEL, 3, rows[0], mode=MODE_ATTESTED, seed=False)
        _, transfer, _, _ = self.request(
            MODEL, 3, rows[1], mode=MODE_ATTESTED, seed=False, consumer=self.paying_consumer
        )
        return {"credit": credit, "transfer": transfer, "saved": transfer - credit}

    def inputs(self, sizes_kb: Sequence[int]) -> dict[str, Any]:
        """A k = 3 request's gas with its input inline against by reference (docs/protocol.md 4.1), at
        each size. The hub reads neither form, so the bytes need not be a real tensor; sizes over the
        hub's inline cap can only go by reference."""
        version = self.dapp.model(MODEL)
        fee = self.dapp.quote(version, 3)
        cap = int(self.stack.contracts.view("hub", "params")[1])
        store = self.stack.state.store_url or "http://127.0.0.1:8700"
        out: dict[str, Any] = {"inline_cap_bytes": cap}
        for kb in sizes_kb:
            payload = os.urandom(kb * 1024)
            sha = hashlib.sha256(payload).digest()
            ref = InputRef(sha, len(payload), (f"{store}/inputs/{sha.hex()}",)).encode()
            row: dict[str, Any] = {"reference": self._request_gas(version, ref, fee)}
            row["reference_bytes"] = len(ref)
            row["inline"] = self._request_gas(version, payload, fee) if len(payload) <= cap else None
            out[f"{kb} KB"] = row
        return out

    def _request_gas(self, version: ModelVersion, data: bytes, fee: int) -> int:
        args = request_struct(version, data, k=3, max_fee=fee)
        return self.dapp.transact("hub", "requestInference", args).gas_used

    def finalize_after_silence(self) -> dict[str, int]:
        """k = 3, one member commits but never reveals: `finalize` after the window settles, slashes and
        calls back. The silent member is in two model pools."""
        self.progress("gas: finalize after a silent member")
        request_id, _, output, _ = self.request(MODEL, 3, distinct_inputs(sample(MODEL), 1, seed=2)[0])
        # The silent member is one in two pools (any three of the five include one), so the slash
        # measured always writes two pools' history, whatever the draw.
        members = sorted(self.committee(request_id), key=lambda m: m.address in self.two_pools)
        for m in members:
            self.commit(m, [request_id], [output])
        for m in members[:2]:
            self.reveal(m, [request_id], [output])
        deadline = self.stack.contracts.request(request_id).reveal_deadline  # type: ignore[union-attr]
        head = self.stack.rpc.block_number()
        self.stack.rpc.raw("anvil_mine", hex(deadline - head + 1))
        receipt = self.dapp.transact("consensus", "finalize", request_id)
        self.expect(request_id, Status.FINALIZED)
        slash = self.subcall_gas(
            receipt.tx_hash.hex(),
            self.stack.contracts.staking.address,
            selector("slash(address,uint16,address,uint16)"),
        )
        return {"finalize": receipt.gas_used, "slash": slash or 0}

    def batched(self, sizes: Sequence[int]) -> dict[str, Any]:
        """Three operators commit and reveal `n` requests each in one transaction (commitMany/revealMany)."""
        out: dict[str, Any] = {}
        rows = distinct_inputs(sample(BATCH_MODEL), sum(sizes), seed=3)
        for n in sizes:
            self.progress(f"gas: batches of {n}")
            ids, outputs, request_gas = [], [], 0
            for i in range(n):
                # Each request mines the seed block of the one before; the last one's is waited for.
                request_id, gas, output, _ = self.request(BATCH_MODEL, 3, rows.pop(), seed=i == n - 1)
                ids.append(request_id)
                outputs.append(output)
                request_gas += gas
            members = self.committee(ids[0])
            commits = [self.commit(m, ids, outputs) for m in members]
            reveals = [self.reveal(m, ids, outputs)[0] for m in members]
            for request_id in ids:
                self.expect(request_id, Status.FINALIZED)
            operator_side = sum(commits) + sum(reveals)
            out[str(n)] = {
                "request": request_gas // n,
                "commit_per_request": sum(commits) // (3 * n),
                "reveal_per_request": sum(reveals[:-1]) // (2 * n),
                "settle_per_request": reveals[-1] // n,
                "operator_per_request": operator_side // (3 * n),
                "total_per_request": (request_gas + operator_side) // n,
            }
        return out

    def tolerance(self, sizes: Sequence[int], samples: Sequence[str]) -> dict[str, Any]:
        """k = 3 on a tolerance version with outputs of n elements: the settling reveal when all three
        revealed the same bytes (nothing is compared) against when one member's bytes differ by one unit
        in every element (the outputs are compared element by element; all three are paid). The
        difference, per element, is what the tolerance path costs. The same for each sample model in
        `samples`, on its real output (one unit added to every element for the member that differs)."""
        self.progress("gas: tolerance comparisons")
        name = "bench-tolerance"
        synthetic = sample(MODEL)
        owner, store = self.stack.client("owner"), ArtifactStore(self.stack.state.store_dir)
        models = {name: synthetic, **{f"{name}-{s}": sample(s) for s in samples}}
        for model_name, model in models.items():
            publish_model(
                owner,
                store,
                model.onnx,
                name=model_name,
                decimals=6 if model is synthetic else model.decimals,
                fee=TOKEN // 10,
                base_url=self.stack.state.store_url,
                tolerance=Tolerance(1, 0),
            )
        trio = [m for m in self.members.values() if m.address in self.two_pools]  # k = 3 draws all three
        for m in trio:
            for model_name in models:
                operator.register(m.client, model_name, class_ids=(NO_CLASS,))
        mine_to_next_epoch(self.stack.rpc, self.epoch_blocks)
        rows = distinct_inputs(synthetic, 2 * len(sizes), seed=12)
        out: dict[str, Any] = {}
        for n in sizes:
            values = tuple(range(10**6, 10**6 + n))
            same = encode_tensors([Tensor("y", (n,), values, 6)])
            settles, _ = self._compared(name, [rows.pop(), rows.pop()], _constant(same))
            out[str(n)] = self._extra(settles, n)
        first, last = out[str(sizes[0])]["extra"], out[str(sizes[-1])]["extra"]
        out["marginal_per_element"] = round((last - first) / (sizes[-1] - sizes[0]), 1)
        out["samples"] = {}
        for s in samples:
            model = models[f"{name}-{s}"]
            inputs = distinct_inputs(model, 2, seed=13)
            settles, real = self._compared(f"{name}-{s}", inputs, lambda output: output)
            elements = sum(len(t.data) for t in decode_tensors(real))
            out["samples"][s] = {"elements": elements, "bytes": len(real), **self._extra(settles, elements)}
        for m in trio:  # an operator is in at most MAX_MODELS_PER_OPERATOR pools: make room for later parts
            for model_name in models:
                operator.deregister(m.client, model_name, class_ids=(NO_CLASS,))
        return out

    def _compared(
        self, name: str, rows: list[Any], output_of: Callable[[bytes], bytes]
    ) -> tuple[list[int], bytes]:
        """The settling reveal's gas for two k = 3 requests: all three members reveal `output_of(the
        request's real output)`; in the second, one member reveals it with every element one unit up.
        Also what the first request's members revealed."""
        settles, revealed = [], []
        for row, differ in zip(rows, (False, True), strict=True):
            request_id, _, real, _ = self.request(name, 3, row, callback=False)
            same = output_of(real)
            off = encode_tensors([_one_up(t) for t in decode_tensors(same)])
            outputs = [off if differ else same, same, same]
            revealed.append(same)
            members = self.committee(request_id)
            for m, output in zip(members, outputs, strict=True):
                self.commit(m, [request_id], [output])
            for m, output in zip(members, outputs, strict=True):
                gas, _ = self.reveal(m, [request_id], [output])
            result = self.stack.contracts.result(request_id)
            if result.status != Status.FINALIZED or len(result.agreeing) != 3:
                paid = len(result.agreeing)
                raise RuntimeError(f"request {request_id} ended {result.status.name}, {paid} of 3 paid")
            settles.append(gas)
        return settles, revealed[0]

    @staticmethod
    def _extra(settles: list[int], elements: int) -> dict[str, Any]:
        extra = settles[1] - settles[0]
        return {
            "settle_equal": settles[0],
            "settle_compared": settles[1],
            "extra": extra,
            "per_element": round(extra / elements, 1),
        }

    def optimistic(self, repeats: int) -> dict[str, Any]:
        """Optimistic mode at k = 1, callback included. Unchallenged: the request, the poster's `post`
        (it draws the poster, stores the output, takes the bond), `finalize` after the window. Challenged:
        a wrong post, `challenge` (takes bond and fee, makes the consensus escalation), the escalation's
        commits and reveals, `resolve`; and the blocks from request to resolution (seconds on 1 s
        blocks)."""
        self.progress("gas: optimistic requests")
        name = "bench-optimistic"
        publish_model(
            self.stack.client("owner"),
            ArtifactStore(self.stack.state.store_dir),
            sample(MODEL).onnx,
            name=name,
            decimals=sample(MODEL).decimals,
            fee=TOKEN // 10,
            base_url=self.stack.state.store_url,
            modes=MODE_CONSENSUS | MODE_OPTIMISTIC,
        )
        for m in self.members.values():
            operator.register(m.client, name, class_ids=(NO_CLASS,))
            m.client.transact("token", "approve", self.stack.contracts.optimistic.address, 2**256 - 1)
        self.dapp.transact("token", "approve", self.stack.contracts.optimistic.address, 2**256 - 1)
        mine_to_next_epoch(self.stack.rpc, self.epoch_blocks)
        contracts = self.stack.contracts
        window = int(
            contracts.fields("optimistic", "params", contracts.view("optimistic", "params"))[
                "challengeWindow"
            ]
        )
        version = self.dapp.model(name)
        rows = distinct_inputs(sample(MODEL), repeats + 1, seed=21)
        plain: dict[str, list[int]] = {}
        for _ in range(repeats):
            request_id, request_gas, output, _ = self.request(name, 1, rows.pop(), mode=MODE_OPTIMISTIC)
            [poster] = self.committee(request_id, MODE_OPTIMISTIC)
            post = poster.client.transact("optimistic", "post", request_id, output).gas_used
            mine(self.stack.rpc, window + 1)
            final = poster.client.transact("optimistic", "finalize", request_id, output).gas_used
            self.expect(request_id, Status.FINALIZED)
            for key, gas in (("request", request_gas), ("post", post), ("finalize", final)):
                plain.setdefault(key, []).append(gas)
            plain.setdefault("total", []).append(request_gas + post + final)
        out: dict[str, Any] = {"unchallenged": {k: int(statistics.median(v)) for k, v in plain.items()}}

        row = rows.pop()
        start = self.stack.rpc.block_number()
        request_id, request_gas, output, _ = self.request(name, 1, row, mode=MODE_OPTIMISTIC)
        [poster] = self.committee(request_id, MODE_OPTIMISTIC)
        wrong = encode_tensors([_one_up(t) for t in decode_tensors(output)])
        post = poster.client.transact("optimistic", "post", request_id, wrong).gas_used
        fee = int(contracts.view("hub", "quote", version.model_id, version.version, 3))
        challenge = self.dapp.transact(
            "optimistic", "challenge", request_id, encode_inputs(version.spec, row), fee
        )
        rnd = contracts.fields("optimistic", "getRound", contracts.view("optimistic", "getRound", request_id))
        escalation_id = int(rnd["escalationId"])
        self.seeded(escalation_id)
        members = self.committee(escalation_id)
        escalation = 0
        for m in members:
            escalation += self.commit(m, [escalation_id], [output])
        for m in members:
            escalation += self.reveal(m, [escalation_id], [output])[0]
        resolve = self.dapp.transact("optimistic", "resolve", request_id).gas_used
        self.expect(request_id, Status.FINALIZED)
        blocks = self.stack.rpc.block_number() - start
        out["challenged"] = {
            "request": request_gas,
            "post": post,
            "challenge": challenge.gas_used,
            "escalation_round": escalation,
            "resolve": resolve,
            "total": request_gas + post + challenge.gas_used + escalation + resolve,
            "blocks_to_resolution": blocks,
        }
        return out

    def draw(self, sizes: Sequence[int], repeats: int) -> dict[str, Any]:
        """Draw gas (k = 3) in pools of each size, pools sharing operators: a `draw(requestId)`
        transaction after each request's seed block, and the staking contract's part of it."""
        largest = max(sizes)
        self.progress(f"gas: {largest} operators for the draw pools")
        owner = self.stack.client("owner")
        onnx = sample(MODEL)
        pools: dict[int, ModelVersion] = {}
        for n in sizes:
            pools[n] = publish_model(
                owner,
                ArtifactStore(self.stack.state.store_dir),
                onnx.onnx,
                name=f"bench-draw-{n}",
                decimals=onnx.decimals,
                fee=TOKEN // 10,
                base_url=self.stack.state.store_url,
            )
        contracts = self.stack.contracts
        token, staking = contracts.token.address, contracts.staking.address
        w3 = self.stack.rpc.w3
        self.stack.rpc.raw("anvil_autoImpersonateAccount", True)
        for i in range(largest):
            address = w3.to_checksum_address(keccak(text=f"verinfer-bench-operator-{i}")[12:])
            self.stack.rpc.raw("anvil_setBalance", address, hex(10**18))
            self.send_as(
                self.deployer.address, token, contracts.calldata("token", "mint", address, MIN_STAKE)
            )
            self.send_as(address, token, contracts.calldata("token", "approve", staking, MIN_STAKE))
            self.send_as(address, staking, contracts.calldata("staking", "stake", MIN_STAKE))
            for n, version in pools.items():
                if i < n:
                    self.send_as(
                        address,
                        staking,
                        contracts.calldata("staking", "register", version.model_id, NO_CLASS),
                    )
        self.stack.rpc.raw("anvil_autoImpersonateAccount", False)
        mine_to_next_epoch(self.stack.rpc, self.epoch_blocks)
        out: dict[str, Any] = {}
        rows = distinct_inputs(onnx, repeats * len(sizes), seed=4)
        for n, version in pools.items():
            slots, eligible, _ = contracts.view(
                "staking", "poolInfo", contracts.view("staking", "poolOf", version.model_id, NO_CLASS)
            )
            if (slots, eligible) != (n, n):
                raise RuntimeError(f"pool of {n}: {eligible} eligible of {slots}")
            draws, draw_txs, requests = [], [], []
            for _ in range(repeats):
                request_id, gas, _, _ = self.request(f"bench-draw-{n}", 3, rows.pop(), callback=False)
                receipt = self.deployer.transact("consensus", "draw", request_id)
                requests.append(gas)
                draw_txs.append(receipt.gas_used)
                draws.append(self.subcall_gas(receipt.tx_hash.hex(), staking, DRAW) or 0)
            out[str(n)] = {
                "draw": int(statistics.median(draws)),
                "draw_tx": int(statistics.median(draw_txs)),
                "request": int(statistics.median(requests)),
            }
        return out


def _one_up(t: Tensor) -> Tensor:
    return Tensor(t.name, t.shape, tuple(v + 1 for v in t.data), t.decimals)


def _constant(output: bytes) -> Callable[[bytes], bytes]:
    return lambda real: output


def run(stack: Stack, *, quick: bool, progress: Progress) -> dict[str, Any]:
    bench = GasBench(stack, progress)
    bench.setup()
    draw_sizes = (5, 20) if quick else (10, 100, 1000)
    results = {
        "per_operation": bench.per_operation((1, 3, 5), 1 if quick else 3),
        "attested": bench.attested((3,) if quick else (1, 3, 5), 1 if quick else 3),
        "attested_batched": bench.attested_batched((1, 5) if quick else (1, 10, 50)),
        "payment": bench.payment(),
        "inputs": bench.inputs((1, 16, 100)),
        "finalize_after_silence": bench.finalize_after_silence(),
        "batched": bench.batched((1, 5) if quick else (1, 10, 50)),
        "tolerance": bench.tolerance(
            (10, 100) if quick else (10, 100, 1000),
            ("breast-cancer-risk",) if quick else tuple(sorted(SAMPLES)),
        ),
        "optimistic": bench.optimistic(1 if quick else 3),
        "draw": bench.draw(draw_sizes, 2 if quick else 5),
    }
    draws = [results["draw"][str(n)]["draw"] for n in draw_sizes]
    steps = [b - a for a, b in pairwise(draws)]
    # Pool sizes grow tenfold per step (in the full run): a log n draw adds about the same gas per step,
    # a linear one ten times more each step.
    results["draw_growth"] = {
        "added_per_step": steps,
        "step_ratio": round(steps[-1] / steps[0], 2) if len(steps) > 1 and steps[0] else None,
    }
    return results
