"""`verinfer`: the command-line entry point; known failures become one line and an exit code."""

import sys
from typing import Any

import click

from verinfer.chain.deployment import DeploymentError
from verinfer.chain.keys import KeyLoadError
from verinfer.chain.rpc import RpcUnavailable
from verinfer.chain.sender import TransactionFailed
from verinfer.cli.credit import credit
from verinfer.cli.devnet import devnet
from verinfer.cli.explorer import explorer
from verinfer.cli.infer import infer, requests
from verinfer.cli.models import models
from verinfer.cli.operators import operator, operators
from verinfer.cli.relayer import relayer
from verinfer.cli.store import store
from verinfer.client.errors import (
    InferenceTimeout,
    InputMismatch,
    InsufficientAllowance,
    InsufficientBalance,
    InvalidArgument,
    UnknownModel,
    UnknownVersion,
    VerinferError,
)
from verinfer.devnet.processes import DevnetError
from verinfer.models.artifacts import ArtifactError
from verinfer.models.calibrate import CalibrationError
from verinfer.models.execution import ExecutionClassError, UnsupportedCpu
from verinfer.models.spec import SpecError
from verinfer.relayer.config import ConfigError
from verinfer.relayer.journal import JournalError
from verinfer.relayer.service import SetupError

# Exit codes, most specific first; anything else verinfer expects exits 1 (a failed request or transaction).
EXIT_CODES: tuple[tuple[tuple[type[BaseException], ...], int], ...] = (
    ((RpcUnavailable,), 3),
    ((InsufficientBalance, InsufficientAllowance), 4),
    ((InferenceTimeout,), 5),
    (
        (ConfigError, DeploymentError, KeyLoadError, JournalError, SetupError, UnknownModel, UnknownVersion),
        2,
    ),
    ((InputMismatch, InvalidArgument, SpecError, CalibrationError, ExecutionClassError, UnsupportedCpu), 2),
    ((VerinferError, TransactionFailed, DevnetError, ArtifactError), 1),
)
EXPECTED = tuple(kind for kinds, _ in EXIT_CODES for kind in kinds)


def exit_code(exc: BaseException) -> int:
    return next(code for kinds, code in EXIT_CODES if isinstance(exc, kinds))


class Cli(click.Group):
    """Turns expected failures into `error: ...` on stderr without a traceback (unless --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:  # usage errors: one line too, click's exit code
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except EXPECTED as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            for line in str(exc).splitlines():
                click.echo(f"error: {line}", err=True)
            sys.exit(exit_code(exc))


@click.group(cls=Cli)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(package_name="verinfer")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """verinfer: verifiable AI inference on EVM chains.

    Exit codes: 0 ok, 1 a request or transaction failed, 2 bad input or configuration,
    3 the chain is unreachable, 4 insufficient funds or allowance, 5 timed out waiting.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


for command in (models, operators, operator, infer, requests, credit, devnet, store, relayer, explorer):
    cli.add_command(command)
