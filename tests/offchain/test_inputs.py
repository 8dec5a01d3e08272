"""External inputs: the reference encoding, the store's upload and serving of inputs over real HTTP,
and the relayer-side resolver (hash checked, retried until its wait, INPUT_UNAVAILABLE otherwise)."""

import hashlib
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from verinfer.models.codec import Tensor, encode_tensors
from verinfer.models.inputs import (
    InputRef,
    InputResolver,
    InputUnavailable,
    decode_reference,
    input_store,
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
    resolver = InputResolver(input_store(tmp_path / "relayer"), wait=0.0)
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
    resolver = InputResolver(input_store(tmp_path / "relayer"), wait=5.0)
    with pytest.raises(InputUnavailable, match="does not match"):
        resolver.resolve(lying.encode())
    dead = InputRef(
        hashlib.sha256(b"gone").digest(), 4, (f"{store}/inputs/{hashlib.sha256(b'gone').hexdigest()}",)
    )
    with pytest.raises(InputUnavailable, match=r"404|Not Found"):
        InputResolver(input_store(tmp_path / "relayer"), wait=0.0).resolve(dead.encode())
    too_big = InputRef(good.sha256, 1 << 30, good.uris)
    with pytest.raises(InputUnavailable, match="over this relayer"):
        resolver.resolve(too_big.encode())


def test_resolver__input_that_appears_while_waiting__resolved(store: str, tmp_path: Path) -> None:
    """A requester that uploads a moment late loses nothing: the resolver keeps trying until its wait."""
    sha = hashlib.sha256(PAYLOAD).digest()
    ref = InputRef(sha, len(PAYLOAD), (f"{store}/inputs/{sha.hex()}",))
    resolver = InputResolver(input_store(tmp_path / "relayer"), wait=30.0)
    tries: list[int] = []
    original = resolver.store.get

    def get_then_upload(sha256: bytes, uris: Sequence[str]) -> Path:
        tries.append(1)
        if len(tries) == 2:
            upload(store, PAYLOAD)  # arrives after the first attempt failed
        return original(sha256, uris)

    resolver.store.get = get_then_upload  # type: ignore[method-assign]
    assert resolver.resolve(ref.encode()) == PAYLOAD
    assert len(tries) == 2
