"""Chain access: RPC connections, contract bindings, keys, the log follower and the transaction manager."""
