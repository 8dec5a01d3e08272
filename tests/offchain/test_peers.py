"""Attestation exchange between relayers: real HTTP servers on 127.0.0.1, journals behind them."""

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from verinfer.chain.attestations import SECP256K1_N, Attestation, Domain, sign
from verinfer.relayer.journal import Journal
from verinfer.relayer.peers import (
    MAX_BATCH,
    MAX_BODY,
    OUTPUTS_PATH,
    PATH,
    PeerClient,
    PeerConfig,
    PeerServer,
    encode,
)

HUB = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
OTHER = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
DOMAIN = Domain(chain_id=31337, verifying_contract=HUB)
DIGEST = keccak(b"output")
REQUEST = 1
TIMEOUT = 0.5
MARGIN = 0.5  # thread start-up and scheduling on a busy two-core machine

# Six committee members (me, a healthy peer and four misbehaving ones) and an outsider.
KEYS: list[LocalAccount] = [Account.from_key(bytes([i + 1]) * 32) for i in range(7)]
ME, HEALTHY, DOWN, SLOW, GARBAGE, LIAR = KEYS[:6]
OUTSIDER = KEYS[6]
COMMITTEE = tuple(a.address for a in KEYS[:6])


@pytest.fixture
def make_node(tmp_path: Path) -> Iterator[Callable[[str], tuple[PeerServer, Journal]]]:
    """A relayer's peer server over its own journal, knowing request 1's committee."""
    started: list[PeerServer] = []

    def make(name: str, shared: dict[int, bytes] | None = None) -> tuple[PeerServer, Journal]:
        journal = Journal(tmp_path / f"{name}.db")
        server = PeerServer(
            DOMAIN,
            "127.0.0.1",
            0,
            committee_of={REQUEST: COMMITTEE}.get,
            on_attestation=partial(journal.add_attestation, own=False),
            held=journal.attestations,
            output_of=(shared or {}).get,
        )
        server.start()
        started.append(server)
        return server, journal

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def make_fake_peer() -> Iterator[Callable[[Callable[[BaseHTTPRequestHandler], None]], str]]:
    """An HTTP server answering every request with `answer(handler)`; its URL."""
    servers: list[ThreadingHTTPServer] = []

    def make(answer: Callable[[BaseHTTPRequestHandler], None]) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                answer(self)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                answer(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at teardown so a slow peer's handler ends."""
    event = threading.Event()
    yield event
    event.set()


def post(url: str, payload: object) -> requests.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return requests.post(url + PATH, data=body, timeout=5)


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def answer_with(code: int, body: bytes) -> Callable[[BaseHTTPRequestHandler], None]:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(code)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return answer


def malleated(attestation: Attestation) -> Attestation:
    sig = attestation.signature
    s = int.from_bytes(sig[32:64])
    return replace(attestation, signature=sig[:32] + (SECP256K1_N - s).to_bytes(32) + bytes([55 - sig[64]]))


# ------------------------------------------------------------------ server


def test_push__accepted__a_replay_is_accepted_and_stored_once(make_node: Any) -> None:
    server, journal = make_node("b")
    attestation = sign(ME, DOMAIN, REQUEST, DIGEST)

    first, replay = post(server.url, encode(attestation)), post(server.url, encode(attestation))

    assert (first.status_code, first.json()) == (202, {"accepted": 1})
    assert replay.status_code == 202
    assert journal.attestations(REQUEST) == [attestation]


def test_push__a_list__all_accepted(make_node: Any) -> None:
    server, journal = make_node("b")
    batch = [sign(member, DOMAIN, REQUEST, DIGEST) for member in (ME, SLOW)]

    answer = post(server.url, [encode(a) for a in batch])

    assert (answer.status_code, answer.json()) == (202, {"accepted": 2})
    assert sorted(journal.attestations(REQUEST), key=lambda a: a.signer) == sorted(
        batch, key=lambda a: a.signer
    )


GOOD = sign(ME, DOMAIN, REQUEST, DIGEST)
REFUSED: dict[str, tuple[object, int]] = {
    "forged_signature": (encode(replace(sign(OUTSIDER, DOMAIN, REQUEST, DIGEST), signer=ME.address)), 403),
    "non_member_signer": (encode(sign(OUTSIDER, DOMAIN, REQUEST, DIGEST)), 403),
    "foreign_chain": (encode(sign(ME, Domain(1, HUB), REQUEST, DIGEST)), 403),
    "other_contract": (encode(sign(ME, Domain(31337, OTHER), REQUEST, DIGEST)), 403),
    "malleated": (encode(malleated(GOOD)), 403),
    "short_signature": ({**encode(GOOD), "signature": "0x" + GOOD.signature[:64].hex()}, 403),
    "unknown_request": (encode(sign(ME, DOMAIN, 2, DIGEST)), 404),
    "one_bad_in_a_list": ([encode(GOOD), encode(sign(OUTSIDER, DOMAIN, REQUEST, DIGEST))], 403),
    "malformed_json": (b'{"request_id": 1,', 400),
    "not_utf8": (b"\xff\xfe", 400),
    "missing_field": ({k: v for k, v in encode(GOOD).items() if k != "signature"}, 400),
    "request_id_a_string": ({**encode(GOOD), "request_id": "1"}, 400),
    "digest_not_hex": ({**encode(GOOD), "output_digest": "0xzz"}, 400),
    "digest_31_bytes": ({**encode(GOOD), "output_digest": "0x" + "00" * 31}, 400),
    "signer_not_an_address": ({**encode(GOOD), "signer": "me"}, 400),
    "empty_list": ([], 400),
    "a_number": (b"7", 400),
    "body_over_64_kib": (b" " * (MAX_BODY + 1), 413),
    "over_64_in_a_list": ([encode(GOOD)] * (MAX_BATCH + 1), 413),
}


@pytest.mark.parametrize(("payload", "status"), REFUSED.values(), ids=REFUSED.keys())
def test_push__refused__its_status__one_line_error__nothing_stored(
    make_node: Any, payload: object, status: int
) -> None:
    server, journal = make_node("b")

    answer = post(server.url, payload)

    assert answer.status_code == status
    error = answer.json()["error"]
    assert error and "\n" not in error
    assert journal.attestations(REQUEST) == [] and journal.attestations(2) == []


def test_get__what_the_node_holds__unknown_request_404__not_a_number_400(make_node: Any) -> None:
    server, journal = make_node("b")
    held = [sign(member, DOMAIN, REQUEST, DIGEST) for member in (ME, HEALTHY)]
    for attestation in held:
        journal.add_attestation(attestation, own=False)

    answer = requests.get(f"{server.url}{PATH}/{REQUEST}", timeout=5)
    assert answer.status_code == 200 and answer.json() == [encode(a) for a in held]
    assert requests.get(f"{server.url}{PATH}/2", timeout=5).status_code == 404
    assert requests.get(f"{server.url}{PATH}/x1", timeout=5).status_code == 400
    assert requests.get(f"{server.url}/v2/attestations/1", timeout=5).status_code == 404


# ------------------------------------------------------------------ client


def test_client__push_then_pull__between_healthy_peers(make_node: Any) -> None:
    (b_server, b_journal), (c_server, c_journal) = make_node("b"), make_node("c")
    mine, theirs = sign(ME, DOMAIN, REQUEST, DIGEST), sign(HEALTHY, DOMAIN, REQUEST, DIGEST)
    b_journal.add_attestation(theirs, own=True)
    client = PeerClient(DOMAIN, ME.address, {HEALTHY.address: b_server.url, SLOW.address: c_server.url})

    assert sorted(client.push(mine, COMMITTEE)) == sorted([HEALTHY.address, SLOW.address])
    assert b_journal.attestations(REQUEST) == [theirs, mine] and c_journal.attestations(REQUEST) == [mine]
    assert client.pull(REQUEST, COMMITTEE) == [theirs, mine]


def test_client__down_slow_garbage_and_lying_peers__in_time__only_valid_attestations(
    make_node: Any, make_fake_peer: Any, release: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    healthy, journal = make_node("healthy")
    valid = [sign(HEALTHY, DOMAIN, REQUEST, DIGEST), sign(SLOW, DOMAIN, REQUEST, keccak(b"dissent"))]
    for attestation in valid:
        journal.add_attestation(attestation, own=False)

    def slow(handler: BaseHTTPRequestHandler) -> None:
        release.wait(10)  # far past the client's timeout: that is what this peer is for
        answer_with(200, b"[]")(handler)

    lies = [
        replace(sign(OUTSIDER, DOMAIN, REQUEST, DIGEST), signer=LIAR.address),  # forged
        sign(OUTSIDER, DOMAIN, REQUEST, DIGEST),  # not a member
        sign(LIAR, Domain(1, HUB), REQUEST, DIGEST),  # another chain
        sign(LIAR, DOMAIN, REQUEST + 1, DIGEST),  # another request
        malleated(sign(LIAR, DOMAIN, REQUEST, DIGEST)),
    ]
    liar_body = json.dumps([*(encode(a) for a in lies), {"request_id": "junk"}]).encode()
    endpoints = {
        HEALTHY.address: healthy.url,
        DOWN.address: closed_port_url(),
        SLOW.address: make_fake_peer(slow),
        GARBAGE.address: make_fake_peer(answer_with(200, b"\x00<html>not json")),
        LIAR.address: make_fake_peer(answer_with(200, liar_body)),
    }
    client = PeerClient(DOMAIN, ME.address, endpoints, PeerConfig(timeout=TIMEOUT))

    with caplog.at_level(logging.WARNING, logger="verinfer.relayer.peers"):
        started = time.monotonic()
        pulled = client.pull(REQUEST, COMMITTEE)
        pull_took = time.monotonic() - started
        started = time.monotonic()
        accepted = client.push(sign(ME, DOMAIN, REQUEST, DIGEST), COMMITTEE)
        push_took = time.monotonic() - started

    assert pulled == valid
    assert accepted == [HEALTHY.address]
    assert pull_took < TIMEOUT + MARGIN and push_took < TIMEOUT + MARGIN
    # One line per bad peer and call: down, slow, garbage and liar (its lies) on the pull, on the push
    # all but the healthy peer.
    assert len(caplog.records) == 4 + 4
    assert all("\n" not in r.getMessage() for r in caplog.records)


def test_client__only_other_members_with_endpoints_are_asked(make_node: Any) -> None:
    server, journal = make_node("b")
    outsider_server, outsider_journal = make_node("x")
    client = PeerClient(DOMAIN, ME.address, {ME.address: server.url, OUTSIDER.address: outsider_server.url})

    assert client.push(sign(ME, DOMAIN, REQUEST, DIGEST), COMMITTEE) == []
    assert journal.attestations(REQUEST) == [] == outsider_journal.attestations(REQUEST)


def test_push__the_store_fails__500__one_line(make_node: Any) -> None:
    def broken(attestation: Attestation) -> None:
        raise RuntimeError("disk full")

    server = PeerServer(DOMAIN, "127.0.0.1", 0, {REQUEST: COMMITTEE}.get, broken, lambda request_id: [])
    server.start()
    try:
        answer = post(server.url, encode(sign(ME, DOMAIN, REQUEST, DIGEST)))
    finally:
        server.stop()

    assert (answer.status_code, answer.json()) == (500, {"error": "internal error"})


def test_push__peer_learns_the_request_a_moment_later__delivered_by_the_retry(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "late.db")
    known: dict[int, tuple[str, ...]] = {}
    server = PeerServer(
        DOMAIN, "127.0.0.1", 0, known.get, partial(journal.add_attestation, own=False), journal.attestations
    )
    server.start()
    try:
        client = PeerClient(DOMAIN, ME.address, {HEALTHY.address: server.url}, PeerConfig(timeout=5.0))
        mine = sign(ME, DOMAIN, REQUEST, DIGEST)
        learns = threading.Timer(0.3, known.__setitem__, (REQUEST, COMMITTEE))  # its relayer polls later
        learns.start()
        started = time.monotonic()
        accepted = client.push(mine, COMMITTEE)
        took = time.monotonic() - started
        learns.join()
    finally:
        server.stop()
    assert accepted == [HEALTHY.address]
    assert journal.attestations(REQUEST) == [mine]
    assert 0.3 <= took < 0.3 + 0.2 + MARGIN  # asked again within the longest pause, not at the deadline


def test_push__peer_never_learns_the_request__skipped_at_the_deadline(make_node: Any) -> None:
    server, journal = make_node("b")
    client = PeerClient(DOMAIN, ME.address, {HEALTHY.address: server.url}, PeerConfig(timeout=TIMEOUT))
    started = time.monotonic()
    assert client.push(sign(ME, DOMAIN, REQUEST + 1, DIGEST), COMMITTEE) == []
    assert time.monotonic() - started < TIMEOUT + MARGIN
    assert journal.attestations(REQUEST + 1) == []


# ------------------------------------------------------------------ outputs (tolerance versions)


def test_get_output__the_shared_output__none_shared_or_unknown_request_404__not_a_number_400(
    make_node: Any,
) -> None:
    sharing, _ = make_node("sharing", {REQUEST: b"output"})
    silent, _ = make_node("silent")

    answer = requests.get(f"{sharing.url}{OUTPUTS_PATH}/{REQUEST}", timeout=5)
    assert (answer.status_code, answer.headers["Content-Type"], answer.content) == (
        200,
        "application/octet-stream",
        b"output",
    )
    for url, code in [
        (f"{silent.url}{OUTPUTS_PATH}/{REQUEST}", 404),
        (f"{sharing.url}{OUTPUTS_PATH}/{REQUEST + 1}", 404),
        (f"{sharing.url}{OUTPUTS_PATH}/x", 400),
    ]:
        answer = requests.get(url, timeout=5)
        assert answer.status_code == code and "\n" not in answer.json()["error"]


def test_client_outputs__kept_only_when_they_hash_to_the_digest_signed_and_fit_the_cap(
    make_node: Any, make_fake_peer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    healthy, _ = make_node("healthy", {REQUEST: b"output"})
    big = b"x" * 100
    endpoints = {
        HEALTHY.address: healthy.url,  # shares the output it signed
        LIAR.address: make_fake_peer(answer_with(200, b"another output")),  # not what it signed
        GARBAGE.address: make_fake_peer(answer_with(200, big)),  # signed, but over the cap
        DOWN.address: closed_port_url(),
        SLOW.address: make_node("silent")[0].url,  # shares nothing: 404
    }
    signed = {
        HEALTHY.address: DIGEST,
        LIAR.address: keccak(b"what it signed"),
        GARBAGE.address: keccak(big),
        DOWN.address: keccak(b"down"),
        SLOW.address: keccak(b"slow"),
    }
    client = PeerClient(DOMAIN, ME.address, endpoints, PeerConfig(timeout=TIMEOUT))

    with caplog.at_level(logging.WARNING, logger="verinfer.relayer.peers"):
        found = client.outputs(REQUEST, signed, max_bytes=len(big) - 1)

    assert found == {DIGEST: b"output"}
    assert len(caplog.records) == 4  # liar, garbage, down, silent: one line each
    assert all("\n" not in r.getMessage() for r in caplog.records)
    assert client.outputs(REQUEST, {GARBAGE.address: keccak(big)}, max_bytes=len(big)) == {keccak(big): big}
