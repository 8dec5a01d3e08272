"""`make demo`: bring a devnet up, settle inferences through the SDK beside direct ONNX Runtime runs,
let the example dapp decide from a result, and take the devnet down again.

    python -m verinfer.devnet.demo [--home DIR] [--keep]
"""

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from verinfer.chain.contracts import ModelVersion
from verinfer.chain.deployment import Deployment
from verinfer.chain.rpc import Rpc
from verinfer.client.client import Client
from verinfer.client.inputs import encode_inputs
from verinfer.devnet import network
from verinfer.devnet.state import DevnetState
from verinfer.models.codec import Tensor, encode_tensors
from verinfer.models.runtime import prepare_inputs, session_options
from verinfer.models.samples import SAMPLES, SampleModel

GATE_MODEL = "breast-cancer-risk"
DECISIONS = ("None", "Pending", "Approved", "Rejected", "NoResult")


def say(text: str = "") -> None:
    print(text, flush=True)


def direct_run(
    sample: SampleModel, version: ModelVersion, encoded_input: bytes
) -> tuple[dict[str, Any], bytes]:
    """The same model run by ONNX Runtime in this process, on the values the relayers decode."""
    session = ort.InferenceSession(sample.onnx, session_options(), providers=["CPUExecutionProvider"])
    feed = prepare_inputs(version.spec.inputs, encoded_input)
    names = [o.name for o in version.spec.outputs]
    arrays = session.run(names, feed)
    tensors = [
        Tensor.from_array(n, np.asarray(a), version.decimals) for n, a in zip(names, arrays, strict=True)
    ]
    return dict(zip(names, arrays, strict=True)), encode_tensors(tensors)


def show_inferences(client: Client, rows: int) -> int:
    """Inferences on held-out rows of every sample, alternating consensus and attested mode; returns
    how many matched the direct run bit for bit."""
    matched = 0
    for name, build in SAMPLES.items():
        sample = build()
        version = client.model(name)
        say(f"\n== {name} v{version.version}: {sample.description}")
        for i, row in enumerate(sample.examples[:rows]):
            features = row.reshape(1, -1)
            mode = MODES_SHOWN[i % len(MODES_SHOWN)]
            started = time.monotonic()
            result = client.infer(name, {"features": features}, k=3, mode=mode)
            elapsed = time.monotonic() - started
            direct, direct_bytes = direct_run(
                sample, version, encode_inputs(version.spec, {"features": features})
            )
            same = direct_bytes == result.output_bytes
            matched += same
            s = result.settlement
            say(
                f"  request {s.request_id} ({mode}): {s.status.name} in block {s.settled_block} "
                f"({elapsed:.2f}s), "
                f"{len(s.agreeing)}/{s.k} operators agree, digest {s.output_digest.hex()[:16]}…"
            )
            for output, settled in result.outputs.items():
                say(f"    {output:14} settled {settled.tolist()}")
                exact = np.asarray(direct[output], dtype=np.float64).round(version.decimals)
                say(f"    {'':14} direct  {exact.tolist()}")
            say(
                f"    byte-identical to direct ONNX Runtime: {'yes' if same else 'NO'}; "
                f"txs: request {short(s.request_tx)}, "
                + (
                    f"{len(s.commit_txs)} commits, {len(s.reveal_txs)} reveals, "
                    if mode == "consensus"
                    else "signatures exchanged off-chain, "
                )
                + f"settled by {short(s.settle_tx)}"
            )
    return matched


# Each sample's rows go through both modes in turn: commit/reveal, then one transaction of signatures.
MODES_SHOWN = ("consensus", "attested")


def short(value: bytes | None) -> str:
    return "-" if value is None else "0x" + value.hex()[:10] + "…"


def lending_gate(state: DevnetState, client: Client) -> list[str]:
    """Deploys LendingGate with ape, then applies twice: a low-risk and a high-risk applicant."""
    out = state.home / "lending_gate.json"
    network.ape_run(
        "lending_gate",
        [
            "--deployment",
            str(state.deployment),
            "--model",
            GATE_MODEL,
            "--max-score",
            "0.5",
            "--out",
            str(out),
        ],
        state.rpc_url,
        state.home / "logs" / "lending_gate.log",
    )
    record = json.loads(out.read_text())
    gate = client.rpc.w3.eth.contract(address=record["address"], abi=record["abi"])
    sample = SAMPLES[GATE_MODEL]()
    version = client.model(GATE_MODEL)
    say(
        f"\n== LendingGate {record['address']}: lends 100 tokens when P(malignant) <= 0.5 "
        f"(stand-in risk model: {GATE_MODEL})"
    )
    risks = [
        direct_run(sample, version, encode_inputs(version.spec, row.reshape(1, -1)))[0]["probabilities"][0][0]
        for row in sample.examples
    ]
    picks = [int(np.argmin(risks)), int(np.argmax(risks))]
    decisions = []
    for pick in picks:
        encoded = encode_inputs(version.spec, {"features": sample.examples[pick].reshape(1, -1)})
        fee = client.quote(version, 3)
        client.ensure_allowance(record["address"], fee, purpose="the loan application")
        before = client.token_balance()
        data = bytes.fromhex(gate.encode_abi("applyForLoan", args=[encoded]).removeprefix("0x"))
        receipt = client.sender.transact(record["address"], data, "applyForLoan")
        (event,) = gate.events.LoanRequested().get_logs(from_block=receipt.block, to_block=receipt.block)
        request_id = int(event.args.requestId)
        client.wait(request_id, timeout=60)
        _, decision, _, score = gate.functions.applications(request_id).call()
        lent = client.token_balance() - before + fee
        decisions.append(DECISIONS[decision])
        say(
            f"  applicant row {pick}: request {request_id} settled, score {score / 10**version.decimals:.6f} "
            f"-> {DECISIONS[decision]} (balance change {lent / 10**18:+.1f} tokens before the fee)"
        )
    return decisions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path(".devnet-demo"))
    parser.add_argument("--rows", type=int, default=2, help="inferences per sample model")
    parser.add_argument("--keep", action="store_true", help="leave the devnet running afterwards")
    args = parser.parse_args(argv)
    options = network.UpOptions(home=args.home, deployment=args.home / "deployment.json", port=0)
    say("verinfer demo: a local chain, three staked operators running relayers, three sample models")
    started = time.monotonic()
    state = network.up(options, lambda step: say(f"  devnet: {step}"))
    say(f"devnet up in {time.monotonic() - started:.1f}s at {state.rpc_url}")
    try:
        deployment = Deployment.load(state.deployment)
        client = Client(Rpc(state.rpc_url), deployment, state.account("dapp"))
        matched = show_inferences(client, args.rows)
        decisions = lending_gate(state, client)
        total = len(SAMPLES) * args.rows
        say(
            f"\n{matched}/{total} settled outputs byte-identical to direct ONNX Runtime; "
            f"LendingGate decisions: {', '.join(decisions)}"
        )
        ok = matched == total and decisions == ["Approved", "Rejected"]
    finally:
        if not args.keep:
            network.down(args.home)
            say("devnet down: every process stopped")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
