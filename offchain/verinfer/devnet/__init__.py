"""A one-command local network: anvil, the contracts, a model store, sample models and relayers."""
