"""A JSON-RPC proxy in front of anvil that behaves like an inconsistent node (load-balanced providers).

It can hide the receipt of a transaction it forwarded (and the transaction itself) for a while after
the broadcast, while eth_getTransactionCount already counts it, and it can run a hook just before it
forwards a broadcast (another sender racing for the same nonce).
"""

import json
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from eth_utils.crypto import keccak

LAGGED = ("eth_getTransactionReceipt", "eth_getTransactionByHash")


class RpcProxy:
    """Forwards JSON-RPC over HTTP to `upstream`; see the module docstring for what it changes."""

    def __init__(self, upstream: str, *, lag: float = 0.0) -> None:
        self.upstream = upstream
        self.lag = lag
        self.on_broadcast: Callable[[bytes], None] | None = None
        self.broadcasts: list[bytes] = []  # hashes of the raw transactions forwarded, in order
        self.hidden = 0  # answers replaced by null although the node had the receipt or transaction
        self.calls: Counter[str] = Counter()
        self._sent_at: dict[str, float] = {}
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                payload = json.loads(body)
                if isinstance(payload, list):
                    answer: Any = [proxy._handle(item) for item in payload]
                else:
                    answer = proxy._handle(payload)
                out = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, request: dict[str, Any]) -> Any:
        method = str(request.get("method"))
        params = request.get("params") or []
        with self._lock:
            self.calls[method] += 1
        if method == "eth_sendRawTransaction":
            raw = bytes.fromhex(str(params[0]).removeprefix("0x"))
            if self.on_broadcast is not None:
                self.on_broadcast(raw)
            tx_hash = keccak(raw)
            with self._lock:
                self.broadcasts.append(tx_hash)
                self._sent_at.setdefault("0x" + tx_hash.hex(), time.monotonic())
        answer = self._forward(request)
        if method in LAGGED and answer.get("result") is not None:
            sent = self._sent_at.get(str(params[0]).lower())
            if sent is not None and time.monotonic() - sent < self.lag:
                with self._lock:
                    self.hidden += 1
                return {"jsonrpc": "2.0", "id": request.get("id"), "result": None}
        return answer

    def _forward(self, request: dict[str, Any]) -> Any:
        call = urllib.request.Request(
            self.upstream,
            data=json.dumps(request).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(call, timeout=10) as response:
            return json.loads(response.read())
