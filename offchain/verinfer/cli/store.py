"""`verinfer store serve`: the model store over HTTP, for relayers to fetch artifacts and external
inputs by sha256."""

from pathlib import Path

import click

from verinfer.models.server import MAX_INPUT_BYTES, make_server
from verinfer.relayer.config import split_listen


@click.group()
def store() -> None:
    """The content-addressed model store."""


@store.command()
@click.option(
    "--dir",
    "root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="The store directory (must exist; `models publish --store DIR` fills it).",
)
@click.option("--listen", default="127.0.0.1:8700", show_default=True, help="HOST:PORT")
@click.option(
    "--accept-inputs",
    is_flag=True,
    help="Take external request inputs by PUT /inputs/<sha256> (bytes must hash to the name).",
)
@click.option(
    "--max-input-mb",
    type=click.IntRange(min=1),
    default=MAX_INPUT_BYTES >> 20,
    show_default=True,
    help="Largest input accepted.",
)
def serve(root: Path, listen: str, accept_inputs: bool, max_input_mb: int) -> None:
    """Serve DIR's <sha256>.onnx artifacts and inputs/<sha256> inputs over HTTP until interrupted."""
    try:
        host, port = split_listen(listen)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--listen") from None
    server = make_server(root, host, port, accept_inputs=accept_inputs, max_input_bytes=max_input_mb << 20)
    click.echo(f"serving {root} at http://{host}:{server.server_address[1]}/", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
