"""`python -m verinfer` runs the command line."""

from verinfer.cli.main import cli

cli()
