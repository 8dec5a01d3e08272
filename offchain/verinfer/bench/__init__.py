"""`make bench`: gas, latency, throughput and relayer overhead, measured the same way every time."""
