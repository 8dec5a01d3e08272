"""/metrics and /healthz of the relayer's HTTP endpoint."""

import json
import urllib.error
import urllib.request

import pytest
from verinfer.relayer.metrics import Heartbeat, Metrics, MetricsServer


def test_healthz__ok_while_rounds_complete__503_with_the_error_when_stale() -> None:
    metrics, heartbeat = Metrics(), Heartbeat(stale_after=60.0)
    server = MetricsServer(metrics, "127.0.0.1", 0, lambda: heartbeat.health({"head": 7}))
    server.start()
    try:
        base = f"http://{server.address}"
        with pytest.raises(urllib.error.HTTPError) as before:
            urllib.request.urlopen(f"{base}/healthz", timeout=5)
        assert before.value.code == 503  # no round has completed yet

        heartbeat.beat()
        body = json.loads(urllib.request.urlopen(f"{base}/healthz", timeout=5).read())
        assert body["ok"] is True and body["head"] == 7

        heartbeat.stale_after = 0.0
        heartbeat.last_error = "eth_blockNumber: http://node:8545 unreachable (ConnectionError)"
        with pytest.raises(urllib.error.HTTPError) as stale:
            urllib.request.urlopen(f"{base}/healthz", timeout=5)
        assert stale.value.code == 503
        assert json.loads(stale.value.read())["last_error"].startswith("eth_blockNumber")

        metrics.requests_seen.inc(3)
        text = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
        assert "verinfer_requests_seen_total 3.0" in text
    finally:
        server.stop()
