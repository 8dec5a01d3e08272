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

from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_utils.crypto import keccak

from verinfer.models.artifacts import ArtifactError, ArtifactMismatch, ArtifactStore

INPUT_REF_TAG = keccak(text="verinfer.input-ref.v1")
REF_TYPES = ["bytes32", "bytes32", "uint64", "string[]"]
INPUT_SUFFIX = ".input"
# How long a relayer keeps trying a reference's URIs before it answers INPUT_UNAVAILABLE.
DEFAULT_INPUT_WAIT = 10.0
RETRY_PAUSE = 0.25


class InputUnavailable(RuntimeError):
    """No URI of a reference gave bytes with its hash (in time)."""


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
    """Turns a request's input into inline tensor bytes, fetching a reference's bytes when needed."""

    def __init__(self, store: ArtifactStore, wait: float = DEFAULT_INPUT_WAIT) -> None:
        self.store = store
        self.wait = wait

    def resolve(self, data: bytes) -> bytes:
        """`data` itself when inline; the referenced bytes (hash checked) otherwise. InputUnavailable
        when the reference is malformed, too large, or no URI serves the right bytes within `wait`."""
        if not is_reference(data):
            return data
        try:
            ref = decode_reference(data)
        except ValueError as exc:
            raise InputUnavailable(str(exc)) from None
        if ref.size > self.store.max_bytes:
            raise InputUnavailable(f"input of {ref.size} bytes is over this relayer's {self.store.max_bytes}")
        deadline = time.monotonic() + self.wait
        while True:
            try:
                path = self.store.get(ref.sha256, ref.uris)
            except ArtifactMismatch as exc:
                raise InputUnavailable(str(exc)) from None  # wrong bytes stay wrong: no retry
            except ArtifactError as exc:
                if time.monotonic() + RETRY_PAUSE > deadline:
                    raise InputUnavailable(str(exc)) from None
                time.sleep(RETRY_PAUSE)
                continue
            payload = path.read_bytes()
            if len(payload) != ref.size:
                raise InputUnavailable(f"input is {len(payload)} bytes, the reference says {ref.size}")
            return payload


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
