"""One web3 connection (HTTP or WebSocket) with bounded retries, backoff and an error hook."""

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlparse

import requests
from web3 import HTTPProvider, LegacyWebSocketProvider, Web3
from web3.exceptions import TimeExhausted, Web3RPCError
from web3.providers.base import BaseProvider
from web3.types import RPCEndpoint

T = TypeVar("T")
log = logging.getLogger("verinfer.rpc")

# Errors that mean "the endpoint is unreachable or slow", not "the node refused the call".
TRANSIENT: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    ConnectionError,
    TimeoutError,
    TimeExhausted,
    OSError,
)


class RpcUnavailable(RuntimeError):
    """The endpoint did not answer after all retries."""


class RpcError(RuntimeError):
    """The node answered a call with an error."""


WS_SCHEMES = ("ws://", "wss://")
HTTP_SCHEMES = ("http://", "https://")
RPC_SCHEMES = HTTP_SCHEMES + WS_SCHEMES


def make_provider(url: str, timeout: float) -> BaseProvider:
    """An HTTP(S) or WebSocket provider for `url`."""
    if url.startswith(WS_SCHEMES):
        return LegacyWebSocketProvider(url, websocket_timeout=max(1, int(timeout)))
    if url.startswith(HTTP_SCHEMES):
        return HTTPProvider(url, request_kwargs={"timeout": timeout})
    raise ValueError(f"rpc url {url!r} must start with one of {', '.join(RPC_SCHEMES)}")


def is_transient(exc: BaseException) -> bool:
    """True for connection-level failures worth retrying."""
    if isinstance(exc, Web3RPCError):
        return False
    if isinstance(exc, TRANSIENT):
        return True
    # websockets raises its own ConnectionClosed family; match by module to avoid a hard import.
    return type(exc).__module__.startswith("websockets")


class Rpc:
    """Runs calls against one endpoint, retrying transient failures with exponential backoff."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        attempts: int = 4,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.url = url
        self.w3 = Web3(make_provider(url, timeout))
        # web3's validation middleware asks the node for its chain id before every call, estimate
        # and send (half of a relayer's round trips); transactions here are signed locally with
        # `chain_id()`, asked once. Addresses are checksummed by the callers, never ENS names.
        for name in ("validation", "ens_name_to_address"):
            self.w3.middleware_onion.remove(name)
        self._attempts = attempts
        self._backoff = backoff
        self._max_backoff = max_backoff
        self.on_error = on_error
        self._chain_id: int | None = None

    @property
    def endpoint(self) -> str:
        """scheme://host:port of the URL: safe to log (paths and query strings often carry API keys)."""
        parsed = urlparse(self.url)
        return f"{parsed.scheme}://{parsed.hostname}" + (f":{parsed.port}" if parsed.port else "")

    def call(self, fn: Callable[[Web3], T], what: str = "rpc") -> T:
        """`fn(w3)`; transient failures are retried, then raised as RpcUnavailable."""
        delay = self._backoff
        for attempt in range(1, self._attempts + 1):
            try:
                return fn(self.w3)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                if self.on_error is not None:
                    self.on_error(exc)
                if attempt == self._attempts:
                    raise RpcUnavailable(
                        f"{what}: {self.endpoint} unreachable ({type(exc).__name__})"
                    ) from exc
                log.debug("rpc retry", extra={"what": what, "attempt": attempt, "error": str(exc)})
                time.sleep(delay)
                delay = min(delay * 2, self._max_backoff)
        raise AssertionError("unreachable")

    def chain_id(self) -> int:
        """The endpoint's chain id, asked once: it does not change under a connection."""
        if self._chain_id is None:
            self._chain_id = self.call(lambda w3: int(w3.eth.chain_id), "eth_chainId")
        return self._chain_id

    def block_number(self) -> int:
        return self.call(lambda w3: int(w3.eth.block_number), "eth_blockNumber")

    def raw(self, method: str, *params: Any) -> Any:
        """The JSON result of one call, without web3's formatters (a hot loop's cheap path); a node's
        error answer raises RpcError."""
        answer = self.call(lambda w3: w3.provider.make_request(RPCEndpoint(method), list(params)), method)
        if answer.get("error"):
            raise RpcError(f"{method}: {answer['error']}")
        return answer.get("result")
