"""`verinfer`: the command-line entry point; known failures become one line and an exit code."""

import sys
from typing import Any

import click

from verinfer.chain.deployment import DeploymentError
from verinfer.chain.keys import KeyLoadError
from verinfer.chain.rpc import RpcUnavailable
from verinfer.cli.relayer import relayer
from verinfer.relayer.config import ConfigError
from verinfer.relayer.journal import JournalError
from verinfer.relayer.service import SetupError

# Exit codes: 1 runtime failure, 2 usage or configuration, 3 chain unreachable.
USER_ERRORS = (ConfigError, DeploymentError, KeyLoadError, JournalError, SetupError)


class Cli(click.Group):
    """Turns expected failures into `error: ...` on stderr without a traceback (unless --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (*USER_ERRORS, RpcUnavailable) as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            for line in str(exc).splitlines():
                click.echo(f"error: {line}", err=True)
            sys.exit(3 if isinstance(exc, RpcUnavailable) else 2)


@click.group(cls=Cli)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(package_name="verinfer")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """verinfer: verifiable AI inference on EVM chains."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


cli.add_command(relayer)
