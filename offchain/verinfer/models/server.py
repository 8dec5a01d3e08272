"""The model store over HTTP: GET /<sha256>.onnx serves an artifact, GET / lists them as JSON."""

import json
import re
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from verinfer.models.artifacts import CHUNK

ARTIFACT = re.compile(r"^/([0-9a-f]{64})\.onnx$")


def make_server(root: Path, host: str, port: int) -> ThreadingHTTPServer:
    """A read-only server for the artifacts in `root`; nothing else on disk is reachable."""
    root = Path(root).resolve()

    class Handler(BaseHTTPRequestHandler):
        server_version = "verinfer-store"

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/":
                listing = [{"sha256": p.stem, "bytes": p.stat().st_size} for p in sorted(root.glob("*.onnx"))]
                self._send(HTTPStatus.OK, "application/json", json.dumps(listing).encode(), body)
                return
            match = ARTIFACT.match(path)
            target = root / f"{match.group(1)}.onnx" if match else None
            if target is None or not target.is_file():
                self._send(HTTPStatus.NOT_FOUND, "text/plain", b"no such artifact\n", body)
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
