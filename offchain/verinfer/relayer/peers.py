"""Attested mode's exchange of attestations between the relayers of a committee: HTTP server and client.

Peers are not authenticated, and need not be: an attestation is accepted, by the server and from a
pull alike, only if its EIP-712 signature for this chain's AttestedMode contract recovers to its
claimed signer and that signer is a member of the request's committee. Anyone may deliver a member's
signature; nobody can make one up. Deliveries are idempotent (the store dedupes), so replays are harmless.

For a version with an agreement rule (tolerance), a signature on another digest counts only with its
output, which only its signer holds: a node also serves the output its own signature is on
(GET /v1/outputs/{request_id}), and a client keeps an answer only if it hashes to the digest that
member signed. Nothing about it needs trust either, and the output is no secret: the settlement puts
it on-chain.
"""

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, TypeVar

import requests
from eth_utils.address import is_address, to_checksum_address

from verinfer.chain import attestations
from verinfer.chain.attestations import Attestation, BadSignature, Domain
from verinfer.models.codec import output_digest
from verinfer.relayer.http import BackgroundServer, QuietHandler

log = logging.getLogger("verinfer.relayer.peers")

PATH = "/v1/attestations"
OUTPUTS_PATH = "/v1/outputs"
MAX_BODY = 64 * 1024  # bytes of one request or answer
MAX_BATCH = 64  # attestations in one post
MAX_DRAIN = 1024 * 1024  # an oversized body up to this is read before the 413, so the peer sees the answer
UNKNOWN_RETRY = 0.01  # seconds before a push the peer answered 404 (request unknown) is made again
UNKNOWN_RETRY_MAX = 0.2  # the pause doubles up to this

T = TypeVar("T")
CommitteeOf = Callable[[int], tuple[str, ...] | None]
OutputOf = Callable[[int], bytes | None]


class Refused(ValueError):
    """An attestation or a post refused, with the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def encode(attestation: Attestation) -> dict[str, Any]:
    """The JSON form of an attestation on the wire."""
    return {
        "request_id": attestation.request_id,
        "output_digest": "0x" + attestation.output_digest.hex(),
        "signer": attestation.signer,
        "signature": "0x" + attestation.signature.hex(),
    }


def decode(item: object) -> Attestation:
    """An attestation from its JSON form; Refused (400) if it is not one. The signature is not checked."""
    if not isinstance(item, dict):
        raise Refused(400, "an attestation must be a JSON object")
    missing = [key for key in ("request_id", "output_digest", "signer", "signature") if key not in item]
    if missing:
        raise Refused(400, f"attestation lacks {', '.join(missing)}")
    request_id, signer = item["request_id"], item["signer"]
    if isinstance(request_id, bool) or not isinstance(request_id, int):
        raise Refused(400, "request_id must be an integer")
    if not isinstance(signer, str) or not is_address(signer):
        raise Refused(400, "signer must be a 0x address")
    try:
        return Attestation(request_id, _hex(item, "output_digest"), signer, _hex(item, "signature"))
    except ValueError as exc:
        raise Refused(400, str(exc)) from None


def _hex(item: dict[str, Any], key: str) -> bytes:
    value = item[key]
    if not isinstance(value, str) or not value.startswith("0x") or len(value) > 2 + 2 * 1024:
        raise Refused(400, f"{key} must be 0x-prefixed hex")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise Refused(400, f"{key} must be 0x-prefixed hex") from None


def admit(domain: Domain, attestation: Attestation, committee: Sequence[str] | None) -> None:
    """Refused unless `attestation` is signed, for `domain`, by a member of `committee` (None: the
    request is unknown)."""
    if committee is None:
        raise Refused(404, f"request {attestation.request_id} unknown")
    if attestation.signer.lower() not in {member.lower() for member in committee}:
        raise Refused(
            403, f"{attestation.signer} is not in the committee of request {attestation.request_id}"
        )
    try:
        attestations.verify(domain, attestation)
    except BadSignature as exc:
        raise Refused(403, str(exc)) from None


def parse_post(body: bytes) -> list[Attestation]:
    """The attestations of a POST body (one JSON object or a list); Refused (400, 413) if malformed."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Refused(400, "body is not JSON") from None
    items = data if isinstance(data, list) else [data]
    if not items:
        raise Refused(400, "empty list of attestations")
    if len(items) > MAX_BATCH:
        raise Refused(413, f"{len(items)} attestations in one post, at most {MAX_BATCH}")
    return [decode(item) for item in items]


class PeerServer(BackgroundServer):
    """Serves POST /v1/attestations, GET /v1/attestations/{request_id} and GET /v1/outputs/{request_id}
    on a background thread.

    `committee_of(request_id)` gives the committee (None: unknown request), `on_attestation` receives
    every attestation that passed `admit` (again on a replay: it must dedupe, as Journal.add_attestation
    does), `held(request_id)` lists what this node has for a request, `output_of(request_id)` the output
    its own signature is on when it shares it (None: 404). A post is all or nothing.
    """

    def __init__(
        self,
        domain: Domain,
        host: str,
        port: int,
        committee_of: CommitteeOf,
        on_attestation: Callable[[Attestation], None],
        held: Callable[[int], list[Attestation]],
        output_of: OutputOf = lambda request_id: None,
        read_timeout: float = 5.0,
    ) -> None:
        handler = _handler(domain, committee_of, on_attestation, held, output_of, read_timeout)
        super().__init__(host, port, handler, "peers")

    @property
    def url(self) -> str:
        return f"http://{self.address}"


def _handler(
    domain: Domain,
    committee_of: CommitteeOf,
    on_attestation: Callable[[Attestation], None],
    held: Callable[[int], list[Attestation]],
    output_of: OutputOf,
    read_timeout: float,
) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        timeout = read_timeout  # a peer that stops sending mid-request does not hold a thread for long

        def do_POST(self) -> None:
            if self.path != PATH:
                self._send(404, {"error": f"no such endpoint {self.path}"})
                return
            try:
                accepted = self._accept(self._body())
            except Refused as exc:
                self._send(exc.status, {"error": _one_line(str(exc))})
                return
            except Exception:
                log.exception("attestation post failed", extra={"peer": self.client_address[0]})
                self._send(500, {"error": "internal error"})
                return
            self._send(202, {"accepted": accepted})

        def _body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                self.close_connection = True
                raise Refused(411, "Content-Length required (chunked bodies are not accepted)")
            length = self.headers.get("Content-Length", "")
            if not (length.isascii() and length.isdigit()):
                self.close_connection = True
                raise Refused(411, "Content-Length required")
            if int(length) > MAX_BODY:
                self.close_connection = True
                if int(length) <= MAX_DRAIN:
                    self.rfile.read(int(length))
                raise Refused(413, f"body of {length} bytes, at most {MAX_BODY}")
            return self.rfile.read(int(length))

        def _accept(self, body: bytes) -> int:
            batch = parse_post(body)
            for attestation in batch:
                admit(domain, attestation, committee_of(attestation.request_id))
            for attestation in batch:
                on_attestation(attestation)
            return len(batch)

        def do_GET(self) -> None:
            try:
                self._get()
            except Exception:
                log.exception("attestation pull failed", extra={"peer": self.client_address[0]})
                self._send(500, {"error": "internal error"})

        def _get(self) -> None:
            prefix, _, tail = self.path.rpartition("/")
            if prefix not in (PATH, OUTPUTS_PATH):
                self._send(404, {"error": f"no such endpoint {self.path}"})
            elif not (tail.isascii() and tail.isdigit()) or len(tail) > 78:
                self._send(400, {"error": f"request id {tail!r} is not a decimal integer"})
            elif committee_of(int(tail)) is None:
                self._send(404, {"error": f"request {tail} unknown"})
            elif prefix == PATH:
                self._send(200, [encode(a) for a in held(int(tail))])
            elif (output := output_of(int(tail))) is None:
                self._send(404, {"error": f"no output shared for request {tail}"})
            else:
                self.reply(200, "application/octet-stream", output)

        def _send(self, code: int, payload: object) -> None:
            self.reply(code, "application/json", json.dumps(payload).encode())

    return Handler


def _one_line(text: str) -> str:
    return " ".join(text.split())


@dataclass(frozen=True)
class PeerConfig:
    """How long a push or a pull waits for its peers, all of them together (they are asked at once), and
    how long a quorum waits for the rest of the committee's signatures before it settles without them."""

    timeout: float = 2.0
    full_wait: float = 0.05


class PeerUnusable(Exception):
    """A peer that did not answer usefully; logged and skipped."""


class PeerClient:
    """Pushes this operator's attestation to the other members and pulls theirs.

    Never raises because of a peer: one that is down, slow or talks nonsense gets one warning line and
    is skipped. All peers are asked at once, so a call returns within `config.timeout` (plus a thread
    switch), and what a pull returns passed the same `admit` as the server's.
    """

    def __init__(
        self, domain: Domain, me: str, endpoints: Mapping[str, str], config: PeerConfig | None = None
    ) -> None:
        self.domain = domain
        self.me = to_checksum_address(me)
        self.endpoints = {to_checksum_address(a): url.rstrip("/") for a, url in endpoints.items()}
        self.config = config or PeerConfig()

    def push(self, attestation: Attestation, committee: Sequence[str]) -> list[str]:
        """Posts `attestation` to every other member with an endpoint; the members that accepted it."""
        body = json.dumps(encode(attestation)).encode()

        def post(url: str, deadline: float) -> None:
            # A peer that has not seen the request yet (its relayer polls the chain on its own clock)
            # answers 404: it is asked again shortly, until the deadline, so the signature arrives
            # once it learns the committee instead of waiting for its next pull.
            pause = UNKNOWN_RETRY
            while True:
                status, answer = _call("POST", url + PATH, body, deadline)
                if status != 404 or time.monotonic() + pause >= deadline:
                    break
                time.sleep(pause)
                pause = min(2 * pause, UNKNOWN_RETRY_MAX)
            if status != 202:
                raise PeerUnusable(f"answered {status}: {_error_of(answer)}")

        return list(self._ask(self._peers(committee, attestation.signer), post, attestation.request_id))

    def pull(self, request_id: int, committee: Sequence[str]) -> list[Attestation]:
        """The valid attestations the other members hold for `request_id`, each once."""

        def get(url: str, deadline: float) -> list[Attestation]:
            status, answer = _call("GET", f"{url}{PATH}/{request_id}", None, deadline)
            if status != 200:
                raise PeerUnusable(f"answered {status}: {_error_of(answer)}")
            try:
                items = json.loads(answer)
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise PeerUnusable("answered with something that is not JSON") from None
            if not isinstance(items, list):
                raise PeerUnusable("answered with JSON that is not a list")
            return _valid(self.domain, request_id, committee, items, url)

        answers = self._ask(self._peers(committee, self.me), get, request_id)
        return list(dict.fromkeys(a for batch in answers.values() for a in batch))

    def outputs(self, request_id: int, signed: Mapping[str, bytes], max_bytes: int) -> dict[bytes, bytes]:
        """The outputs of the digests in `signed` (member -> the digest it signed), each asked of the
        member that signed it and kept only if it hashes to that digest and is at most `max_bytes` long;
        digest -> output."""
        wanted: dict[str, bytes] = {to_checksum_address(m): d for m, d in signed.items()}

        def get(url: str, deadline: float) -> bytes:
            status, answer = _call("GET", f"{url}{OUTPUTS_PATH}/{request_id}", None, deadline, max_bytes)
            if status != 200:
                raise PeerUnusable(f"answered {status}: {_error_of(answer)}")
            return answer

        peers = [(m, url) for m, url in self._peers(list(wanted), self.me)]
        found: dict[bytes, bytes] = {}
        for member, output in self._ask(peers, get, request_id).items():
            if len(output) <= max_bytes and output_digest(output) == wanted[member]:
                found[wanted[member]] = output
            else:
                log.warning(
                    "peer sent an output that is not the one it signed, or too long",
                    extra={"peer": member, "request_id": request_id, "bytes": len(output)},
                )
        return found

    def _peers(self, committee: Sequence[str], me: str) -> list[tuple[str, str]]:
        members = dict.fromkeys(to_checksum_address(m) for m in committee)
        return [(m, self.endpoints[m]) for m in members if m != me and m in self.endpoints]

    def _ask(
        self, peers: list[tuple[str, str]], call: Callable[[str, float], T], request_id: int
    ) -> dict[str, T]:
        """`call(url, deadline)` for every peer at once; the answers of those that gave one in time."""
        if not peers:
            return {}
        deadline = time.monotonic() + self.config.timeout
        pool = ThreadPoolExecutor(max_workers=len(peers), thread_name_prefix="peers")
        futures: dict[Future[T], tuple[str, str]] = {
            pool.submit(call, url, deadline): (p, url) for p, url in peers
        }
        done, _ = wait(futures, timeout=self.config.timeout)
        pool.shutdown(wait=False, cancel_futures=True)
        answers: dict[str, T] = {}
        for future, (peer, url) in futures.items():
            error = _failure(future) if future in done else "no answer in time"
            if error is None:
                answers[peer] = future.result()
            else:
                log.warning(
                    "peer skipped", extra={"peer": peer, "url": url, "request_id": request_id, "error": error}
                )
        return answers


def _failure(future: Future[Any]) -> str | None:
    exc = future.exception()
    if exc is None:
        return None
    if isinstance(exc, requests.RequestException):
        return _one_line(f"{type(exc).__name__}: {exc}")
    return _one_line(str(exc)) or type(exc).__name__


def _call(
    method: str, url: str, body: bytes | None, deadline: float, max_answer: int = MAX_BODY
) -> tuple[int, bytes]:
    """One HTTP exchange that ends by `deadline` and reads at most `max_answer` bytes of answer."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise PeerUnusable("no answer in time")
    headers = {"Content-Type": "application/json"} if body is not None else {}
    with requests.request(method, url, data=body, headers=headers, timeout=remaining, stream=True) as answer:
        chunks, size = [], 0
        for chunk in answer.iter_content(8192):
            size += len(chunk)
            if size > max(max_answer, MAX_BODY):  # an error answer may be JSON of up to MAX_BODY
                raise PeerUnusable(f"answer larger than {max(max_answer, MAX_BODY)} bytes")
            if time.monotonic() > deadline:
                raise PeerUnusable("no answer in time")
            chunks.append(chunk)
        return answer.status_code, b"".join(chunks)


def _error_of(answer: bytes) -> str:
    try:
        error = json.loads(answer)["error"]
    except (ValueError, TypeError, KeyError):
        return _one_line(answer[:120].decode(errors="replace")) or "(empty)"
    return _one_line(str(error))


def _valid(
    domain: Domain, request_id: int, committee: Sequence[str], items: Iterable[object], url: str
) -> list[Attestation]:
    """The attestations among `items` that a server would admit for `request_id`; one warning for the rest."""
    valid, refused = [], []
    for item in items:
        try:
            attestation = decode(item)
            if attestation.request_id != request_id:
                raise Refused(400, f"for request {attestation.request_id}, not {request_id}")
            admit(domain, attestation, committee)
        except Refused as exc:
            refused.append(str(exc))
            continue
        valid.append(attestation)
    if refused:
        log.warning(
            "peer sent invalid attestations",
            extra={
                "url": url,
                "request_id": request_id,
                "refused": len(refused),
                "error": _one_line(refused[0]),
            },
        )
    return valid
