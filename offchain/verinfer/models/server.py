"""The model store over HTTP: GET /<sha256>.onnx serves an artifact, GET / lists them as JSON;
GET /inputs/<sha256> serves an external request input, and, when the store accepts inputs,
PUT /inputs/<sha256> stores one (only bytes that hash to the name, up to a size cap)."""

import hashlib
import json
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from verinfer.models.artifacts import CHUNK
from verinfer.models.inputs import input_store

ARTIFACT = re.compile(r"^/([0-9a-f]{64})\.onnx$")
INPUT = re.compile(r"^/inputs/([0-9a-f]{64})$")
MAX_INPUT_BYTES = 64 << 20
# Uploads read at once (each holds its body in memory) and seconds a silent client is kept.
UPLOADS = 4
SOCKET_TIMEOUT = 30.0


def make_server(
    root: Path, host: str, port: int, *, accept_inputs: bool = False, max_input_bytes: int = MAX_INPUT_BYTES
) -> ThreadingHTTPServer:
    """A server for the artifacts and inputs in `root`; nothing else on disk is reachable. Uploads of
    inputs only with `accept_inputs`."""
    root = Path(root).resolve()
    inputs = input_store(root, max_bytes=max_input_bytes)
    uploads = threading.BoundedSemaphore(UPLOADS)

    class Handler(BaseHTTPRequestHandler):
        server_version = "verinfer-store"
        timeout = SOCKET_TIMEOUT  # a client that stops sending is dropped, not waited for

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def do_PUT(self) -> None:
            # Every refusal closes the connection: the body it did not read must not be parsed as a request.
            self.close_connection = True
            match = INPUT.match(self.path.split("?", 1)[0])
            if not accept_inputs or match is None:
                self._send(HTTPStatus.FORBIDDEN, "text/plain", b"this store takes no uploads here\n", True)
                return
            try:
                size = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self._send(HTTPStatus.LENGTH_REQUIRED, "text/plain", b"Content-Length required\n", True)
                return
            if not 0 < size <= max_input_bytes:
                # Read (and drop) a body up to twice the cap first: a client still sending it would get a
                # broken pipe instead of this answer. A larger one is cut off, answer unread.
                if size <= 2 * max_input_bytes:
                    self._drain(size)
                message = f"an input must be 1 to {max_input_bytes} bytes, not {size}\n".encode()
                self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "text/plain", message, True)
                return
            if not uploads.acquire(blocking=False):
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, "text/plain", b"too many uploads at once\n", True)
                return
            try:
                payload = self.rfile.read(size)
            finally:
                uploads.release()
            if hashlib.sha256(payload).hexdigest() != match.group(1):
                self._send(
                    HTTPStatus.UNPROCESSABLE_ENTITY, "text/plain", b"sha256 differs from the name\n", True
                )
                return
            inputs.put(payload)
            self._send(HTTPStatus.CREATED, "text/plain", b"stored\n", True)

        def _drain(self, size: int) -> None:
            while size > 0:
                chunk = self.rfile.read(min(size, 1 << 16))
                if not chunk:
                    return
                size -= len(chunk)

        def _serve(self, body: bool) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/":
                listing = [{"sha256": p.stem, "bytes": p.stat().st_size} for p in sorted(root.glob("*.onnx"))]
                self._send(HTTPStatus.OK, "application/json", json.dumps(listing).encode(), body)
                return
            artifact, given = ARTIFACT.match(path), INPUT.match(path)
            target = None
            if artifact:
                target = root / f"{artifact.group(1)}.onnx"
            elif given:
                target = inputs.path(bytes.fromhex(given.group(1)))
            if target is None or not target.is_file():
                self._send(HTTPStatus.NOT_FOUND, "text/plain", b"no such artifact or input\n", body)
                return
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(target.stat().st_size))
            self.end_headers()
            if body:
                with open(target, "rb") as handle:
                    while chunk := handle.read(CHUNK):
                        self.wfile.write(chunk)

        def _send(self, status: HTTPStatus, kind: str, payload: bytes, body: bool) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if body:
                self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the devnet keeps this process's output as its log

    return ThreadingHTTPServer((host, port), Handler)
