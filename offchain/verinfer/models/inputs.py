"""External inputs: a request's `input` may name its tensors by hash instead of carrying them.

A reference is `abi.encode(bytes32 INPUT_REF_TAG, bytes32 sha256, uint64 size, string[] uris)`. Inline
inputs (`abi.encode(Tensor[])`) always begin with the word 0x20, so the tag tells the two apart. The
referenced bytes are themselves an inline encoding (`abi.encode(Tensor[])`) whose sha256 is `sha256`.
The model store keeps them beside the artifacts (`PUT`/`GET /inputs/<sha256>`); a relayer fetches
them, checks the hash, and yields the canonical INPUT_UNAVAILABLE error output when no URI gives the
right bytes in time.
"""

import hashlib
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_utils.crypto import keccak

from verinfer.models.artifacts import CHUNK, ArtifactStore

INPUT_REF_TAG = keccak(text="verinfer.input-ref.v1")
REF_TYPES = ["bytes32", "bytes32", "uint64", "string[]"]
INPUT_SUFFIX = ".input"
# How long a relayer keeps trying a reference's URIs before it answers INPUT_UNAVAILABLE.
DEFAULT_INPUT_WAIT = 10.0
RETRY_PAUSE = 0.25
REMOTE_SCHEMES = ("http", "https")
# Each URI may take the fetch timeout: a reference naming hundreds must not hold a worker for hours.
MAX_URIS = 4


class InputUnavailable(RuntimeError):
    """No URI of a reference gave bytes with its hash (in time)."""


class WrongBytes(ValueError):
    """A URI served a whole body, but not the referenced bytes (size or hash)."""


@dataclass(frozen=True)
class InputRef:
    """Where the bytes of an external input are and what they hash to."""

    sha256: bytes
    size: int
    uris: tuple[str, ...]

    def encode(self) -> bytes:
        return encode(REF_TYPES, [INPUT_REF_TAG, self.sha256, self.size, list(self.uris)])


def is_reference(data: bytes) -> bool:
    return len(data) >= 32 and data[:32] == INPUT_REF_TAG


def decode_reference(data: bytes) -> InputRef:
    """The reference in `data`; ValueError when `data` is not a well-formed reference."""
    if not is_reference(data):
        raise ValueError("not an input reference")
    try:
        _, sha256, size, uris = decode(REF_TYPES, data)
    except (DecodingError, ValueError, OverflowError) as exc:
        raise ValueError(f"malformed input reference: {exc}") from None
    if encode(REF_TYPES, [INPUT_REF_TAG, sha256, size, list(uris)]) != data:
        raise ValueError("input reference is not in canonical encoding")
    return InputRef(bytes(sha256), int(size), tuple(uris))


def input_store(root: Path, fetch_timeout: float = 30.0, max_bytes: int = 64 << 20) -> ArtifactStore:
    """The content-addressed directory of external inputs under a model store's root."""
    return ArtifactStore(
        root / "inputs", fetch_timeout=fetch_timeout, max_bytes=max_bytes, suffix=INPUT_SUFFIX
    )


class InputResolver:
    """Turns a request's input into inline tensor bytes, fetching a reference's bytes when needed.

    Everything a requester chooses is bounded: only http(s), at most MAX_URIS URIs, at most `max_bytes`
    (and never more than the reference's size), and one wall-clock deadline `wait` for the whole
    resolution, enforced on every read (a server that trickles bytes cannot hold a worker). Fetched
    inputs are kept in memory only: a requester cannot fill a relayer's disk."""

    def __init__(self, *, wait: float = DEFAULT_INPUT_WAIT, max_bytes: int = 64 << 20) -> None:
        self.wait = wait
        self.max_bytes = max_bytes

    def resolve(self, data: bytes) -> bytes:
        """`data` itself when inline; the referenced bytes (hash checked) otherwise. InputUnavailable
        for anything else: a malformed or too large reference, or no URI serving the right bytes
        within `wait` (a URI that serves other bytes is dropped; the others are retried)."""
        if not is_reference(data):
            return data
        try:
            ref = decode_reference(data)
        except ValueError as exc:
            raise InputUnavailable(str(exc)) from None
        if ref.size > self.max_bytes:
            raise InputUnavailable(f"input of {ref.size} bytes is over this relayer's {self.max_bytes}")
        # Only the network: a requester must not make a relayer read its own disk (file://, a FIFO).
        uris = [u for u in ref.uris if urlparse(u).scheme in REMOTE_SCHEMES][:MAX_URIS]
        if not uris:
            raise InputUnavailable(f"no http or https URI in the input reference {list(ref.uris)}")
        deadline = time.monotonic() + self.wait
        problems: dict[str, str] = {}
        while True:
            for uri in list(uris):
                try:
                    payload = self._fetch(uri, ref.size, deadline)
                    got = hashlib.sha256(payload).digest()
                    if got != ref.sha256:
                        raise WrongBytes(f"sha256 {got.hex()} does not match {ref.sha256.hex()}")
                    return payload
                except WrongBytes as exc:
                    problems[uri] = f"{uri}: {exc}"
                    uris.remove(uri)  # other bytes stay other bytes: not retried
                except Exception as exc:  # any failure of a requester-chosen server is its problem
                    problems[uri] = f"{uri}: {getattr(exc, 'reason', None) or exc or type(exc).__name__}"
            if not uris or time.monotonic() + RETRY_PAUSE > deadline:
                raise InputUnavailable("; ".join(problems.values()) or "no URI answered in time")
            time.sleep(RETRY_PAUSE)

    @staticmethod
    def _fetch(uri: str, size: int, deadline: float) -> bytes:
        """At most `size` bytes from `uri`. Every socket operation waits at most what was left of
        `deadline` when the fetch began, and each read is one receive, so a server that trickles bytes
        is cut off at most that long past the deadline."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("out of time")
        with urllib.request.urlopen(uri, timeout=left) as response:
            data = bytearray()
            while len(data) <= size:
                if time.monotonic() > deadline:
                    raise TimeoutError("out of time")
                chunk = response.read1(min(CHUNK, size + 1 - len(data)))
                if not chunk:
                    break
                data += chunk
        if len(data) != size:
            more = "+" if len(data) > size else ""
            raise WrongBytes(f"served {len(data)}{more} bytes, the reference says {size}")
        return bytes(data)


def upload(store_url: str, payload: bytes, timeout: float = 60.0) -> InputRef:
    """PUTs `payload` into a model store's inputs; the reference to it. OSError when the store refuses."""
    sha256 = hashlib.sha256(payload).digest()
    uri = f"{store_url.rstrip('/')}/inputs/{sha256.hex()}"
    request = urllib.request.Request(uri, data=payload, method="PUT")
    request.add_header("Content-Type", "application/octet-stream")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace").strip()
        raise OSError(f"{uri}: the store refused the input ({exc.code} {detail})") from None
    except urllib.error.URLError as exc:
        raise OSError(f"{uri}: {exc.reason}") from None
    return InputRef(sha256, len(payload), (uri,))
