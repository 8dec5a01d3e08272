"""verinfer: verifiable AI inference on EVM chains (relayer, SDK and CLI)."""

__version__ = "0.1.0"
