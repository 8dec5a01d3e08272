"""`verinfer models publish|list|show|calibrate`: the model registry from an owner's and a dapp's side."""

from pathlib import Path
from typing import Any

import click

from verinfer.chain.contracts import MODES, ModelVersion
from verinfer.cli.common import JSON, Connection, connection, emit, token_units
from verinfer.client.client import DEFAULT_MAX_OUTPUT_BYTES, MAX_OUTPUT_BYTES, MIN_OUTPUT_BYTES, Client
from verinfer.client.inputs import describe
from verinfer.client.owner import publish_model
from verinfer.client.records import version_json
from verinfer.devnet.state import DevnetState, default_home
from verinfer.models.agreement import Tolerance, ToleranceError
from verinfer.models.artifacts import ArtifactStore
from verinfer.models.calibrate import DEFAULT_DECIMALS, qemu_on_path
from verinfer.models.calibrate import calibrate as run_calibration
from verinfer.models.execution import PORTABLE, ExecutionClass
from verinfer.models.names import NAME_RULE, model_name_problem


def _check_name(name: str) -> str:
    if problem := model_name_problem(name):
        raise click.BadParameter(problem)
    return name


@click.group()
def models() -> None:
    """Publish ONNX models and browse the registry."""


@models.command()
@click.argument("onnx_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--name",
    required=True,
    callback=lambda _ctx, _param, value: _check_name(value),
    help=f"Model name ({NAME_RULE}); registered on first publish, then versioned.",
)
@click.option("--decimals", type=click.IntRange(0, 18), required=True, help="Fixed-point digits of outputs.")
@click.option("--fee", default="0", show_default=True, help="Model owner's fee per inference, in tokens.")
@click.option(
    "--mode",
    "modes",
    multiple=True,
    type=click.Choice(sorted(MODES)),
    default=("consensus",),
    show_default=True,
    help="Verification modes the version allows (repeatable).",
)
@click.option(
    "--max-output-bytes",
    type=click.IntRange(MIN_OUTPUT_BYTES, MAX_OUTPUT_BYTES),
    default=DEFAULT_MAX_OUTPUT_BYTES,
    show_default=True,
    help="Largest encoded output; a larger one settles as the OUTPUT_TOO_LARGE error.",
)
@click.option(
    "--execution-class",
    "execution_class",
    default="here",
    show_default=True,
    metavar="here|portable|CLASS",
    help="Where outputs are bit-identical, so committees are drawn only from operators of that class: "
    "this machine's class under the pinned settings, portable (outputs agree on every CPU and runtime: "
    "check with `models calibrate`), or a class like "
    "onnxruntime==1.32.0/x86-64-fma3/t1-seq-opt_basic-prepack.",
)
@click.option(
    "--tolerance",
    default="exact",
    show_default=True,
    metavar="exact|UNITS|UNITS+PPMppm",
    help="Agreement rule: outputs agree when every value is within UNITS of the last decimal plus PPM "
    "millionths of the larger value (like 1+100ppm, as `models calibrate` recommends); members within it "
    "are paid and never slashed. Consensus and attested modes only.",
)
@click.option("--store", type=click.Path(file_okay=False, path_type=Path), help="Model store directory.")
@click.option("--store-url", help="Base URL the store is served at (registered as the artifact's http URI).")
@click.option(
    "--calibrate-inputs",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Rows to run `models calibrate` on first: shows its recommendation and warns when --decimals "
    "exceeds what honest operators agree on exactly.",
)
@connection(role="owner")
@JSON
def publish(
    conn: Connection,
    onnx_file: Path,
    name: str,
    decimals: int,
    fee: str,
    modes: tuple[str, ...],
    max_output_bytes: int,
    execution_class: str,
    tolerance: str,
    store: Path | None,
    store_url: str | None,
    calibrate_inputs: Path | None,
    as_json: bool,
) -> None:
    """Hash ONNX_FILE into the model store, read its tensor spec and register it as a new version.

    On a devnet the store and its URL default to the devnet's own.
    """
    try:
        rule = Tolerance.parse(tolerance)
    except ToleranceError as e:
        raise click.BadParameter(str(e), param_hint="--tolerance") from e
    calibration = (
        None if calibrate_inputs is None else _check_decimals(onnx_file, calibrate_inputs, decimals, rule)
    )
    if store is None:
        devnet = DevnetState.load(conn.devnet_home or default_home())
        if devnet is None:
            raise click.UsageError("--store is required (no devnet is running to take its store from)")
        store, store_url = devnet.store_dir, store_url or devnet.store_url
    client = conn.client()
    version = publish_model(
        client,
        ArtifactStore(store),
        onnx_file.read_bytes(),
        name=name,
        decimals=decimals,
        fee=token_units(client, fee),
        base_url=store_url,
        modes=sum(MODES[m] for m in set(modes)),
        max_output_bytes=max_output_bytes,
        execution_class=_execution_class(execution_class),
        tolerance=rule,
    )
    extra = {} if calibration is None else {"calibration": calibration}
    emit(as_json, {"name": name, **_version(version), **extra}, _show_lines(client, name, version))


def _execution_class(choice: str) -> str:
    if choice == "here":
        return str(ExecutionClass.current())
    return PORTABLE if choice == "portable" else choice  # publish checks it is canonical


def _check_decimals(onnx_file: Path, inputs: Path, decimals: int, rule: Tolerance) -> str:
    """Calibrates at `decimals` and below; warns on stderr when honest operators may disagree at `decimals`
    under `rule`: exact agreement ends below `decimals` and the rule is narrower than the one measured."""
    checked = tuple(sorted({*DEFAULT_DECIMALS, decimals} - {d for d in DEFAULT_DECIMALS if d > decimals}))
    report = run_calibration(onnx_file, inputs, checked, qemu=qemu_on_path())
    advice = report.recommendation
    stderr = click.get_text_stream("stderr")
    click.echo(f"calibration: {advice.text}", file=stderr)
    exact_safe = advice.kind == "exact" and advice.decimals >= decimals
    needed = advice.tolerance if advice.kind == "tolerance" and advice.decimals == decimals else None
    if not exact_safe and (needed is None or not rule.covers(needed)):
        hint = f" or --tolerance {needed}" if needed is not None else ""
        click.echo(
            f"warning: at {decimals} decimals honest operators may disagree on this model's outputs under"
            f" the agreement rule {rule} (and be slashed for it); consider fewer decimals{hint}",
            file=stderr,
        )
    return advice.text


@models.command(name="list")
@connection()
@JSON
def list_models(conn: Connection, as_json: bool) -> None:
    """Every registered model with its newest version."""
    client = conn.client()
    found = client.models()
    lines = [f"{'NAME':28} {'VERSIONS':>8}  {'FEE':>12}  DEC  INPUTS"]
    for m in found:
        if m.latest is None:
            lines.append(f"{m.name:28} {m.version_count:>8}  {'-':>12}  {'-':>3}  -")
            continue
        lines.append(
            f"{m.name:28} {m.version_count:>8}  {client.tokens(m.latest.fee):>12}  {m.latest.decimals:>3}  "
            f"{describe(m.latest.spec.inputs)}"
        )
    emit(as_json, [m.to_json() for m in found], lines if found else ["no models registered"])


@models.command()
@click.argument("model")
@connection()
@JSON
def show(conn: Connection, model: str, as_json: bool) -> None:
    """One version of MODEL (NAME or NAME@VERSION; default the newest): hash, URIs, tensor spec."""
    client = conn.client()
    version = client.model(model)
    name = model.partition("@")[0]
    emit(as_json, {"name": name, **_version(version)}, _show_lines(client, name, version))


@models.command()
@click.argument("onnx_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--inputs",
    "inputs_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Rows to run: an .npy array, or JSON (a list of rows, or {input name: rows}).",
)
@click.option(
    "--decimals",
    type=click.IntRange(0, 18),
    help=f"Fixed-point digits to check [default: each of {DEFAULT_DECIMALS[0]}..{DEFAULT_DECIMALS[-1]}].",
)
@click.option(
    "--input-decimals",
    type=click.IntRange(0, 18),
    default=6,
    show_default=True,
    help="Fixed-point digits inputs are sent with (as `verinfer infer`).",
)
@JSON
def calibrate(
    onnx_file: Path, inputs_file: Path, decimals: int | None, input_decimals: int, as_json: bool
) -> None:
    """How far ONNX_FILE's encoded outputs move between the ways operators may run it, and how many
    decimals agree exactly (or what tolerance covers the differences measured).

    Every row runs under the pinned settings and under other thread counts, parallel execution, other
    graph optimization levels, prepacking disabled and batched rows; with qemu-x86_64 on PATH also on an
    emulated x86-64-fma3 CPU. Nothing is written.
    """
    stderr = click.get_text_stream("stderr")

    def progress(name: str) -> None:
        if not as_json:
            click.echo(f"running {name}", file=stderr)

    report = run_calibration(
        onnx_file,
        inputs_file,
        DEFAULT_DECIMALS if decimals is None else (decimals,),
        input_decimals=input_decimals,
        qemu=qemu_on_path(),
        progress=progress,
    )
    emit(as_json, report.to_json(), report.lines())


def _version(version: ModelVersion) -> dict[str, Any]:
    return {"model_id": "0x" + version.model_id.hex(), **version_json(version)}


def _show_lines(client: Client, name: str, v: ModelVersion) -> list[str]:
    modes = [m for m, bit in MODES.items() if v.modes & bit]
    return [
        f"{name} v{v.version}{'  (deprecated)' if v.deprecated else ''}",
        f"  model id   0x{v.model_id.hex()}",
        f"  sha256     {v.artifact_sha256.hex()}",
        f"  fee        {client.tokens(v.fee)}   decimals {v.decimals}   modes {', '.join(modes)}   "
        f"max output {v.max_output_bytes} bytes",
        f"  class      {v.execution_class or 'portable (any CPU class, pinned settings)'}",
        f"  agreement  {v.tolerance.describe()}",
        f"  inputs     {describe(v.spec.inputs)}",
        f"  outputs    {describe(v.spec.outputs)}",
        *(f"  uri        {uri}" for uri in v.uris),
    ]
