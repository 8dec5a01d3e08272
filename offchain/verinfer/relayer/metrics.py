"""Prometheus metrics and the /metrics + /healthz HTTP endpoint of one relayer."""

import json
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from verinfer.relayer.http import BackgroundServer, QuietHandler


class Metrics:
    """The relayer's counters, gauges and stage latencies, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests_seen = Counter(
            "verinfer_requests_seen", "Requests where this operator is in the committee", registry=r
        )
        self.executed = Counter("verinfer_executed", "Model executions", ["outcome"], registry=r)
        self.committed = Counter("verinfer_committed", "Commitments mined", registry=r)
        self.revealed = Counter("verinfer_revealed", "Reveals mined", registry=r)
        self.finalized = Counter("verinfer_finalized", "Requests settled, by status", ["status"], registry=r)
        self.challenges = Counter(
            "verinfer_challenges",
            "Optimistic challenges this watcher sent, and how challenges it saw resolve",
            ["outcome"],
            registry=r,
        )
        self.slashed = Counter("verinfer_slashed", "Penalties taken by this operator", registry=r)
        self.slashed_tokens = Counter(
            "verinfer_slashed_tokens", "Stake lost to penalties (token units)", registry=r
        )
        self.refused = Counter(
            "verinfer_refused", "Requests refused (artifact hash mismatch, unusable model)", registry=r
        )
        self.missed = Counter(
            "verinfer_missed", "Requests whose window closed before this operator acted", registry=r
        )
        self.rpc_errors = Counter(
            "verinfer_rpc_errors", "RPC failures (before retries succeed or give up)", registry=r
        )
        self.outages = Counter(
            "verinfer_rpc_outages", "Rounds abandoned because the RPC endpoint was unreachable", registry=r
        )
        self.round_errors = Counter(
            "verinfer_round_errors", "Rounds failed by an unexpected error", registry=r
        )
        self.txs = Counter("verinfer_txs", "Transaction events", ["event"], registry=r)
        self.reorgs = Counter("verinfer_reorgs", "Chain reorganizations detected", registry=r)
        self.latency = Histogram(
            "verinfer_stage_seconds",
            "Seconds spent per stage of a request",
            ["stage"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=r,
        )
        self.inflight = Gauge("verinfer_inflight", "Requests not yet terminal", registry=r)
        self.head = Gauge("verinfer_head_block", "Latest block seen", registry=r)
        self.checkpoint = Gauge("verinfer_checkpoint_block", "Last block whose logs were handled", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer(BackgroundServer):
    """Serves /metrics and /healthz on a background thread."""

    def __init__(
        self, metrics: Metrics, host: str, port: int, health: Callable[[], tuple[bool, dict[str, Any]]]
    ) -> None:
        self._metrics = metrics
        self._health = health
        super().__init__(host, port, self._handler(), "metrics")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        metrics, health = self._metrics, self._health

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    self.reply(200, CONTENT_TYPE_LATEST, metrics.render())
                elif self.path == "/healthz":
                    ok, detail = health()
                    body = json.dumps({"ok": ok, **detail}).encode()
                    self.reply(200 if ok else 503, "application/json", body)
                else:
                    self.reply(404, "text/plain", b"not found\n")

        return Handler


class Heartbeat:
    """When the main loop last completed a tick against the chain."""

    def __init__(self, stale_after: float) -> None:
        self.stale_after = stale_after
        self.last_ok = 0.0
        self.last_error: str | None = None

    def beat(self) -> None:
        self.last_ok = time.monotonic()
        self.last_error = None

    def health(self, extra: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        age = time.monotonic() - self.last_ok if self.last_ok else None
        ok = age is not None and age <= self.stale_after
        return ok, {"last_tick_age": age, "last_error": self.last_error, **extra}
