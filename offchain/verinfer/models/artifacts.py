"""Content-addressed artifact store: model files named by sha256, fetched from file:// and http(s)://."""

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

CHUNK = 1 << 20


class ArtifactError(RuntimeError):
    """An artifact could not be provided."""


class ArtifactMismatch(ArtifactError):
    """Bytes were fetched but their sha256 is not the registered one: never load them."""


class ArtifactUnavailable(ArtifactError):
    """No URI could be read (worth retrying later)."""


class ArtifactStore:
    """A directory of artifacts named by the hex sha256 of their bytes (``<root>/<sha256><suffix>``,
    ``.onnx`` for models)."""

    def __init__(
        self, root: Path, *, fetch_timeout: float = 30.0, max_bytes: int = 512 << 20, suffix: str = ".onnx"
    ) -> None:
        self.root = Path(root)
        self.fetch_timeout = fetch_timeout
        self.max_bytes = max_bytes
        self.suffix = suffix

    def path(self, sha256: bytes) -> Path:
        return self.root / f"{sha256.hex()}{self.suffix}"

    def put(self, data: bytes) -> bytes:
        """Stores `data` and returns its sha256; idempotent."""
        digest = hashlib.sha256(data).digest()
        target = self.path(digest)
        if not target.exists():
            self._write(target, data)
        return digest

    def get(self, sha256: bytes, uris: Sequence[str]) -> Path:
        """The local path of the artifact, fetching it from `uris` if needed and checking its hash."""
        target = self.path(sha256)
        if target.exists():
            if hashlib.sha256(target.read_bytes()).digest() == sha256:
                return target
            target.unlink()  # corrupted cache entry: fetch again
        problems: list[str] = []
        mismatch = False
        for uri in uris:
            try:
                data = self._fetch(uri)
            except ArtifactUnavailable as exc:
                problems.append(str(exc))
                continue
            got = hashlib.sha256(data).digest()
            if got != sha256:
                mismatch = True
                problems.append(f"{uri}: sha256 {got.hex()} does not match registered {sha256.hex()}")
                continue
            self._write(target, data)
            return target
        if not uris:
            problems.append("no artifact URIs registered")
        if mismatch:
            raise ArtifactMismatch("; ".join(problems))
        raise ArtifactUnavailable("; ".join(problems))

    def _fetch(self, uri: str) -> bytes:
        parsed = urlparse(uri)
        try:
            if parsed.scheme == "file":
                with open(unquote(parsed.path), "rb") as handle:
                    return self._read_capped(uri, handle)
            if parsed.scheme in ("http", "https"):
                with urllib.request.urlopen(uri, timeout=self.fetch_timeout) as response:
                    return self._read_capped(uri, response)
        except (OSError, urllib.error.URLError, ValueError) as exc:
            raise ArtifactUnavailable(f"{uri}: {getattr(exc, 'reason', None) or exc}") from None
        raise ArtifactUnavailable(f"{uri}: unsupported scheme {parsed.scheme!r} (file, http, https)")

    def _read_capped(self, uri: str, handle: object) -> bytes:
        read = getattr(handle, "read")  # noqa: B009
        data = bytearray()
        while chunk := read(CHUNK):
            data += chunk
            if len(data) > self.max_bytes:
                raise ArtifactUnavailable(f"{uri}: larger than {self.max_bytes} bytes")
        return bytes(data)

    def _write(self, target: Path, data: bytes) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".partial-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
