"""`verinfer infer` and `verinfer requests show|wait|finalize|challenge`: inference from the shell."""

import json
from pathlib import Path
from typing import Any

import click

from verinfer.chain.contracts import MODES, OnchainRequest, Status
from verinfer.chain.sender import TransactionFailed
from verinfer.cli.common import JSON, Connection, connection, emit, hexs, token_units
from verinfer.client.client import INPUT_STORE_ENV, Client
from verinfer.client.errors import RequestNotFinalized, VerinferError
from verinfer.client.inputs import typed_outputs
from verinfer.client.records import InferenceResult, PendingRequest, Provisional, Settlement
from verinfer.models.codec import ErrorCode, decode_tensors, error_code_of

# How long `infer` and `requests wait` wait for settlement.
TIMEOUT = click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=120.0,
    show_default=True,
    help="Seconds to wait for settlement (more than 0).",
)


def parse_input(text: str) -> Any:
    """--input: inline JSON, or @FILE holding JSON; {name: array} or one array."""
    source = "--input"
    if text.startswith("@"):
        source = text[1:]
        try:
            text = Path(source).read_text()
        except OSError as exc:
            raise click.BadParameter(f"cannot read {source}: {exc.strerror}", param_hint="--input") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"{source} is not valid JSON ({exc})", param_hint="--input") from None
    if not isinstance(value, dict | list):
        raise click.BadParameter("expected a JSON object {name: array} or an array", param_hint="--input")
    return value


@click.command()
@click.option("--model", required=True, help="NAME or NAME@VERSION (default: the newest version).")
@click.option(
    "--input", "input_text", required=True, help='JSON ({"features": [[...]]} or [[...]]) or @FILE.'
)
@click.option(
    "--k", type=click.IntRange(1, 16), default=None, help="Committee size [default: 3; optimistic mode: 1]."
)
@click.option(
    "--mode",
    type=click.Choice(sorted(MODES)),
    default="consensus",
    show_default=True,
    help="Verification mode.",
)
@click.option("--input-decimals", type=click.IntRange(0, 18), default=6, show_default=True)
@click.option(
    "--digest-only",
    is_flag=True,
    help="Keep only the output's digest on-chain (cheaper); the output is read from the settlement event.",
)
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for settlement.")
@click.option(
    "--input-store",
    envvar=INPUT_STORE_ENV,
    metavar="URL",
    help="Model store taking inputs over the hub's inline cap (default: the devnet's store).",
)
@TIMEOUT
@connection(role="dapp")
@JSON
def infer(
    conn: Connection,
    model: str,
    input_text: str,
    k: int | None,
    mode: str,
    input_decimals: int,
    digest_only: bool,
    wait: bool,
    input_store: str | None,
    timeout: float,
    as_json: bool,
) -> None:
    """Request an inference of MODEL on --input, pay its fee and (by default) wait for the result. An
    input over the hub's inline cap is uploaded to the model store and sent by its hash."""
    inputs = parse_input(input_text)
    k = k if k is not None else 1 if mode == "optimistic" else 3
    client = conn.client()
    client.input_store = input_store or conn.devnet_store(client.rpc.chain_id())
    pending = client.request(
        model, inputs, k=k, mode=mode, input_decimals=input_decimals, digest_only=digest_only
    )
    if not wait:
        emit(as_json, _pending_json(pending), _pending_lines(client, pending))
        return
    if not as_json:
        click.echo(
            f"request {pending.request_id} sent (fee {client.tokens(pending.fee)}), "
            f"waiting for {k} operators",
            err=True,
        )
    stderr = click.get_text_stream("stderr")
    bar: Any
    label = {"consensus": "commit/reveal", "optimistic": "post, then the challenge window"}.get(
        mode, "signatures"
    )
    with click.progressbar(length=2 * k, label=label, file=stderr) as bar:
        seen = [0]

        def advance(request: OnchainRequest) -> None:
            done = bin(request.committed_mask).count("1") + bin(request.revealed_mask).count("1")
            if request.status.terminal:
                done = 2 * k
            bar.update(done - seen[0])
            seen[0] = done

        try:
            result = client.wait(pending, timeout=timeout, progress=None if as_json else advance)
        except RequestNotFinalized as exc:
            emit(as_json, exc.settlement.to_json(), _settlement_lines(exc.settlement))
            raise
    emit(as_json, result.to_json(), _result_lines(result))


@click.group()
def requests() -> None:
    """Look up, wait for, finalize and challenge inference requests."""


@requests.command(name="show")
@click.argument("request_id", type=click.IntRange(min=1))
@connection()
@JSON
def show_request(conn: Connection, request_id: int, as_json: bool) -> None:
    """Status, committee, transactions and (when finalized) the outputs of REQUEST_ID."""
    client = conn.client()
    settlement = client.settlement(request_id)
    if settlement.status == Status.FINALIZED:
        result = client.result(request_id)
        emit(as_json, result.to_json(), _result_lines(result))
    elif settlement.status == Status.PENDING and (posted := _provisional(client, request_id)) is not None:
        data = {"outputs": None, "provisional": posted.to_json(), "settlement": settlement.to_json()}
        emit(as_json, data, [*_provisional_lines(client, posted), *_settlement_lines(settlement)[1:]])
    else:
        emit(as_json, {"outputs": None, "settlement": settlement.to_json()}, _settlement_lines(settlement))


@requests.command(name="wait")
@click.argument("request_id", type=click.IntRange(min=1))
@TIMEOUT
@connection(role="dapp")
@JSON
def wait_request(conn: Connection, request_id: int, timeout: float, as_json: bool) -> None:
    """Wait until REQUEST_ID settles, finalizing it once its windows have passed; print the result."""
    client = conn.client()
    if not as_json:
        click.echo(f"waiting for request {request_id} (finalizing it once its windows pass)", err=True)
    try:
        result = client.wait(request_id, timeout=timeout)
    except RequestNotFinalized as exc:
        emit(
            as_json,
            {"outputs": None, "settlement": exc.settlement.to_json()},
            _settlement_lines(exc.settlement),
        )
        raise
    emit(as_json, result.to_json(), _result_lines(result))


@requests.command(name="finalize")
@click.argument("request_id", type=click.IntRange(min=1))
@connection(role="dapp")
@JSON
def finalize_request(conn: Connection, request_id: int, as_json: bool) -> None:
    """Settle REQUEST_ID once its windows have run out (anyone may); print how it settled.

    A digest-only request is settled with its accepted output, read back from the agreeing
    members' reveal transactions.
    """
    client = conn.client()
    _finalizable(client, request_id)
    try:
        receipt = client.finalize(request_id)
    except TransactionFailed:
        _finalizable(client, request_id)  # settled by someone else meanwhile: say so
        raise
    settlement = client.settlement(request_id)
    data: dict[str, Any] = {"finalize_tx": hexs(receipt.tx_hash), "outputs": None}
    lines = _settlement_lines(settlement)
    if settlement.status == Status.FINALIZED:
        result = client.result(request_id)
        data["outputs"] = result.to_json()["outputs"]
        lines = _result_lines(result)
    data["settlement"] = settlement.to_json()
    emit(as_json, data, [*lines, f"  finalized  {hexs(receipt.tx_hash)} in block {receipt.block}"])


@requests.command(name="challenge")
@click.argument("request_id", type=click.IntRange(min=1))
@click.option("--max-fee", metavar="TOKENS", help="The most to pay for the escalation (default: its quote).")
@connection(role="dapp")
@JSON
def challenge_request(conn: Connection, request_id: int, max_fee: str | None, as_json: bool) -> None:
    """Challenge the output posted for optimistic request REQUEST_ID: lock the challenge bond and pay a
    consensus escalation, whose accepted output decides. A wrong post costs its poster its bond and a
    slash (part of both to you); a right one costs you your bond."""
    client = conn.client()
    cap = token_units(client, max_fee) if max_fee is not None else None
    escalation = client.challenge(request_id, max_fee=cap)
    data = {"request_id": request_id, "escalation_id": escalation or None}
    if escalation:
        lines = [
            f"request {request_id} challenged: escalation request {escalation} decides",
            f"  follow it: verinfer requests show {escalation}; then verinfer requests finalize {request_id}",
        ]
    else:
        lines = [
            f"request {request_id}: the hub refused the escalation; the round ended undecided, bonds returned"
        ]
    emit(as_json, data, lines)


def _provisional(client: Client, request_id: int) -> Provisional | None:
    onchain = client.contracts.request(request_id)
    if onchain is None or onchain.mode != MODES["optimistic"]:
        return None
    return client.provisional(request_id)


def _finalizable(client: Client, request_id: int) -> OnchainRequest:
    """The request if `finalize` may settle it now; VerinferError (exit 1) saying why not otherwise."""
    onchain = client.contracts.request(request_id)
    if onchain is None:
        raise VerinferError(f"request {request_id} does not exist on this hub")
    if onchain.status.terminal:
        settled = client.contracts.result(request_id).settled_block
        raise VerinferError(
            f"request {request_id} is already {onchain.status.name} (settled in block {settled}); "
            "nothing to finalize"
        )
    if not client.can_finalize(onchain):
        # Earliest block by the windows alone; the last outstanding reveal settles it sooner.
        start = (onchain.commit_deadline if onchain.committed_mask == 0 else onchain.reveal_deadline) + 1
        raise VerinferError(
            f"request {request_id} is still in its windows: finalizable from block {start} "
            f"(head {client.rpc.block_number()})"
        )
    return onchain


def _pending_json(p: PendingRequest) -> dict[str, Any]:
    return {
        "request_id": p.request_id,
        "model": p.model,
        "version": p.version,
        "k": p.k,
        "fee": str(p.fee),
        "tx": hexs(p.tx_hash),
        "block": p.block,
        "seed_block": p.seed_block,
        "commit_deadline": p.commit_deadline,
        "reveal_deadline": p.reveal_deadline,
        "digest_only": p.digest_only,
        "mode": next(name for name, bit in MODES.items() if bit == p.mode),
    }


def _pending_lines(client: Client, p: PendingRequest) -> list[str]:
    return [
        f"request {p.request_id}  {p.model} v{p.version}  k={p.k}  "
        f"fee {client.tokens(p.fee)}  block {p.block}",
        f"  tx         {hexs(p.tx_hash)}",
        f"  committee  drawn from block {p.seed_block}'s hash; " + _windows(p),
        f"  follow it: verinfer requests show {p.request_id}",
    ]


def _windows(p: PendingRequest) -> str:
    if p.mode == MODES["consensus"]:
        return f"commits until block {p.commit_deadline}, reveals until {p.reveal_deadline}"
    if p.mode == MODES["optimistic"]:
        return (
            f"the poster posts until block {p.commit_deadline}; the post is final once unchallenged "
            f"for {p.reveal_deadline - p.commit_deadline} blocks"
        )
    return f"signatures settle it until block {p.reveal_deadline}"


def _provisional_lines(client: Client, p: Provisional) -> list[str]:
    lines = [
        f"request {p.request_id}  PROVISIONAL (not final: "
        + (
            "challenged, its escalation decides)"
            if p.challenged
            else f"challengeable until block {p.challenge_deadline})"
        ),
        f"  poster     {p.poster}",
        f"  digest     {hexs(p.output_digest)}",
    ]
    if p.challenged:
        lines.append(f"  escalation request {p.escalation_id}")
    if p.output:
        onchain = client.contracts.request(p.request_id)
        assert onchain is not None
        spec = client.contracts.model_version(onchain.model_id, onchain.version).spec
        error = error_code_of(p.output)
        if error is not None:
            lines.append(f"  posted     the error output {ErrorCode(error).name}")
        else:
            arrays = typed_outputs(spec, decode_tensors(p.output))
            width = max((len(name) for name in arrays), default=0)
            lines += [f"  {name:{width}}  {array.tolist()}" for name, array in arrays.items()]
    return lines


def _settlement_lines(s: Settlement) -> list[str]:
    status = s.status.name + (f" ({s.error})" if s.error else "")
    return [
        f"request {s.request_id}  {status}  settled in block {s.settled_block}  "
        f"agreeing {len(s.agreeing)}/{s.k}",
        f"  committee  {', '.join(s.committee) or '- (never drawn)'}",
        f"  agreeing   {', '.join(s.agreeing) or '-'}",
        f"  digest     {hexs(s.output_digest)}",
        f"  request tx {hexs(s.request_tx)}",
        f"  draw tx    {hexs(s.draw_tx)}",
        f"  commits    {', '.join(hexs(t) for t in s.commit_txs) or '-'}",
        f"  reveals    {', '.join(hexs(t) for t in s.reveal_txs) or '-'}",
        f"  settle tx  {hexs(s.settle_tx)}",
    ]


def _result_lines(result: InferenceResult) -> list[str]:
    width = max((len(name) for name in result.outputs), default=0)
    outputs = [f"  {name:{width}}  {array.tolist()}" for name, array in result.outputs.items()]
    return [*_settlement_lines(result.settlement)[:1], *outputs, *_settlement_lines(result.settlement)[1:]]
