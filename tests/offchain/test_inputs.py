"""External inputs: the reference encoding, the store's upload and serving of inputs over real HTTP,
and the relayer-side resolver (hash checked, retried until its wait, INPUT_UNAVAILABLE otherwise)."""

import hashlib
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from verinfer.models.codec import Tensor, encode_tensors
from verinfer.models.inputs import (
    InputRef,
    InputResolver,
    InputUnavailable,
    decode_reference,
    is_reference,
    upload,
)
from verinfer.models.server import make_server

PAYLOAD = encode_tensors([Tensor("features", (1, 4), (51, 35, 14, 2), 1)])


@pytest.fixture
def store(tmp_path: Path) -> Iterator[str]:
    server = make_server(tmp_path / "store", "127.0.0.1", 0, accept_inputs=True, max_input_bytes=1 << 20)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_reference__round_trips_and_is_never_an_inline_encoding() -> None:
    ref = InputRef(hashlib.sha256(PAYLOAD).digest(), len(PAYLOAD), ("http://a/inputs/x", "file:///y"))
    assert decode_reference(ref.encode()) == ref
    assert is_reference(ref.encode()) and not is_reference(PAYLOAD)
    with pytest.raises(ValueError, match="not an input reference"):
        decode_reference(PAYLOAD)
    with pytest.raises(ValueError, match=r"malformed|canonical"):
        decode_reference(ref.encode()[:-1])


def test_upload__served_back_by_hash__resolved_inline(store: str, tmp_path: Path) -> None:
    ref = upload(store, PAYLOAD)
    assert ref.sha256 == hashlib.sha256(PAYLOAD).digest() and ref.size == len(PAYLOAD)
    with urllib.request.urlopen(ref.uris[0]) as response:
        assert response.read() == PAYLOAD
    resolver = InputResolver(wait=2.0)
    assert resolver.resolve(ref.encode()) == PAYLOAD
    assert resolver.resolve(PAYLOAD) == PAYLOAD  # inline input: itself


def test_upload__bytes_that_do_not_match_the_name_or_too_large__refused(store: str) -> None:
    wrong = urllib.request.Request(f"{store}/inputs/{'ab' * 32}", data=PAYLOAD, method="PUT")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(wrong)
    assert refused.value.code == 422
    with pytest.raises(OSError, match="refused the input \\(413"):
        upload(store, b"\x01" * ((1 << 20) + 1))


def test_store__without_accept_inputs__refuses_uploads(tmp_path: Path) -> None:
    server = make_server(tmp_path, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(OSError, match="refused the input \\(403"):
            upload(f"http://127.0.0.1:{server.server_address[1]}", PAYLOAD)
    finally:
        server.shutdown()
        server.server_close()


def test_resolver__wrong_bytes_or_dead_uri__unavailable(store: str, tmp_path: Path) -> None:
    good = upload(store, PAYLOAD)
    other = upload(store, PAYLOAD + b"\x00")
    # A reference whose URI serves other bytes than its hash: refused at once (no retry helps).
    lying = InputRef(good.sha256, good.size, other.uris)
    resolver = InputResolver(wait=5.0)
    started = time.monotonic()
    with pytest.raises(InputUnavailable, match=r"does not match|the reference says"):
        resolver.resolve(lying.encode())
    assert time.monotonic() - started < 2.0  # not retried until the wait is over
    same_size = InputRef(hashlib.sha256(b"\x01" * len(PAYLOAD)).digest(), len(PAYLOAD), good.uris)
    with pytest.raises(InputUnavailable, match="does not match"):
        resolver.resolve(same_size.encode())
    dead = InputRef(
        hashlib.sha256(b"gone").digest(), 4, (f"{store}/inputs/{hashlib.sha256(b'gone').hexdigest()}",)
    )
    with pytest.raises(InputUnavailable, match=r"404|Not Found"):
        InputResolver(wait=2.0).resolve(dead.encode())
    too_big = InputRef(good.sha256, 1 << 30, good.uris)
    with pytest.raises(InputUnavailable, match="over this relayer"):
        resolver.resolve(too_big.encode())


def test_resolver__input_that_appears_while_waiting__resolved(store: str) -> None:
    """A requester that uploads a moment late loses nothing: the resolver keeps trying until its wait."""
    sha = hashlib.sha256(PAYLOAD).digest()
    ref = InputRef(sha, len(PAYLOAD), (f"{store}/inputs/{sha.hex()}",))
    tries: list[int] = []

    class Recording(InputResolver):
        @staticmethod
        def _fetch(uri: str, size: int, deadline: float) -> bytes:
            tries.append(1)
            if len(tries) == 2:
                upload(store, PAYLOAD)  # arrives after the first attempt failed
            return InputResolver._fetch(uri, size, deadline)

    assert Recording(wait=30.0).resolve(ref.encode()) == PAYLOAD
    assert len(tries) == 2


def test_resolver__trickling_server__cut_off_near_the_deadline() -> None:
    """A server that sends one byte at a time, slowly, cannot hold a relayer's worker past its wait."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = listener.accept()
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        while not stop.wait(0.2):
            try:
                conn.sendall(b"x")
            except OSError:
                break
        conn.close()

    threading.Thread(target=trickle, daemon=True).start()
    uri = f"http://127.0.0.1:{listener.getsockname()[1]}/inputs/slow"
    ref = InputRef(hashlib.sha256(b"x" * 1000).digest(), 1000, (uri,))
    started = time.monotonic()
    with pytest.raises(InputUnavailable):
        InputResolver(wait=1.0).resolve(ref.encode())
    stop.set()
    listener.close()
    assert time.monotonic() - started < 3.0


def test_resolver__malformed_http_answer__unavailable_not_a_crash() -> None:
    """Whatever a requester's server answers becomes INPUT_UNAVAILABLE (never another error code)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)

    def garbage() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.recv(4096)
            conn.sendall(b"GARBAGE\r\n\r\n")
            conn.close()

    threading.Thread(target=garbage, daemon=True).start()
    uri = f"http://127.0.0.1:{listener.getsockname()[1]}/inputs/bad"
    ref = InputRef(hashlib.sha256(PAYLOAD).digest(), len(PAYLOAD), (uri, "http://x/a\x00b"))
    with pytest.raises(InputUnavailable):
        InputResolver(wait=0.5).resolve(ref.encode())
    listener.close()


def test_resolver__file_uri__refused_even_with_the_right_hash(tmp_path: Path) -> None:
    """A requester must not make a relayer read its own disk: only http and https are fetched."""
    local = tmp_path / "secret.bin"
    local.write_bytes(PAYLOAD)
    ref = InputRef(hashlib.sha256(PAYLOAD).digest(), len(PAYLOAD), (local.as_uri(),))
    with pytest.raises(InputUnavailable, match="no http or https URI"):
        InputResolver(wait=2.0).resolve(ref.encode())


def test_resolver__only_the_first_four_network_uris_are_tried(store: str, tmp_path: Path) -> None:
    good = upload(store, PAYLOAD)
    dead = [f"http://127.0.0.1:9/inputs/{n}" for n in range(4)]  # port 9: nothing listens
    late = InputRef(good.sha256, good.size, (*dead, *good.uris))
    with pytest.raises(InputUnavailable):
        InputResolver(wait=2.0).resolve(late.encode())
    early = InputRef(good.sha256, good.size, (*dead[:3], *good.uris))
    assert InputResolver(wait=2.0).resolve(early.encode()) == PAYLOAD
