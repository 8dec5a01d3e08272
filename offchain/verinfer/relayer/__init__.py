"""The operator relayer: journal, pipeline and service."""
