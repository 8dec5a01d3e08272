"""The explorer: an indexer of verinfer's contract events into SQLite and the reads its pages and API make."""
