"""The `verinfer` command line."""
