"""Attested mode end to end: relayer processes sign, exchange signatures over HTTP and settle in one
transaction; liars, equivocators, dead peers and killed relayers."""

import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import ape
from eth_account import Account
from verinfer.chain import attestations
from verinfer.chain.attestations import Domain
from verinfer.chain.contracts import MODE_ATTESTED, Fault, Status
from verinfer.models.codec import decode_tensors
from verinfer.relayer.peers import encode

from tests.conftest import E18, wait_for
from tests.e2e.conftest import (
    direct_output,
    exact_features,
    features_input,
    hub_events,
    quiet,
    read_journal,
    round_of,
    settled,
    stake_of,
)

STAKE = 1_000 * E18
BOTH = 0x01 | MODE_ATTESTED


def paid_members(hub: Any, request_id: int) -> list[str]:
    """Members paid for the request: those counted at settlement and those who showed up late
    (`attestLate` adds them to the agreeing members)."""
    return sorted(hub.getResult(request_id).agreeing)


def test_three_relayers__attested_requests_settle_in_one_transaction__outputs_equal_direct_onnxruntime(
    hub: Any, attested: Any, sample: Any, publish: Any, crew: Any, relayers: Any, request_inference: Any
) -> None:
    model = publish(sample, modes=BOTH)
    operators = crew(model[0], 3)
    procs = [relayers(op, peers={}) for op in operators]
    rows = [sample.examples[i : i + 1] for i in range(3)]

    ids = [request_inference(model, features_input(x), mode=MODE_ATTESTED) for x in rows]

    wait_for(lambda: all(settled(hub, i) for i in ids), 60, "all attested requests settled")
    members = sorted(op.account.address for op in operators)
    for request_id, x in zip(ids, rows, strict=True):
        result = hub.getResult(request_id)
        assert int(result.status) == Status.FINALIZED
        assert bytes(result.output) == direct_output(sample.onnx, sample.decimals, exact_features(x))
        assert len(decode_tensors(bytes(result.output))) == 2
        (event,) = hub_events(attested, "Attested", request_id, hub)  # one settlement, nothing raced
        assert event.dissentMask == 0
        # A member left out of the settlement claims its fee itself with its signature.
        wait_for(lambda rid=request_id: paid_members(hub, rid) == members, 30, "every member paid")
    wait_for(lambda: all(quiet(p) for p in procs), 30, "relayers record their receipts")
    for proc in procs:
        states = {str(r["state"]) for r in read_journal(proc.journal, "SELECT state FROM requests")}
        assert states == {"settled"}
        assert proc.stop() == 0


def test_lying_member__its_signature_is_slashed_as_dissent__its_output_never_settles(
    hub: Any,
    attested: Any,
    staking: Any,
    sample: Any,
    publish: Any,
    crew: Any,
    relayers: Any,
    request_inference: Any,
) -> None:
    model = publish(sample, modes=BOTH)
    operators = crew(model[0], 3)
    liar = operators[0]
    for i, op in enumerate(operators):
        relayers(op, lie=i == 0, peers={})
    x = sample.examples[:1]

    request_id = request_inference(model, features_input(x), mode=MODE_ATTESTED)

    wait_for(lambda: settled(hub, request_id), 60, "settlement")
    result = hub.getResult(request_id)
    assert int(result.status) == Status.FINALIZED
    assert bytes(result.output) == direct_output(sample.onnx, sample.decimals, exact_features(x))
    assert liar.account.address not in result.agreeing
    wait_for(lambda: stake_of(staking, liar) < STAKE, 30, "the liar slashed")
    assert stake_of(staking, liar) == STAKE - STAKE * int(attested.params().slashBpsDissent) // 10_000
    assert all(stake_of(staking, op) == STAKE for op in operators[1:])
    penalties = hub_events(hub, "MemberPenalized", request_id)
    assert [(p.operator, Fault(p.fault)) for p in penalties] == [(liar.account.address, Fault.DISSENT)]


def test_equivocation_pushed_to_a_relayer__it_reports_it__equivocator_slashed_reporter_rewarded(
    hub: Any,
    attested: Any,
    staking: Any,
    token: Any,
    sample: Any,
    publish: Any,
    crew: Any,
    relayers: Any,
    request_inference: Any,
) -> None:
    model = publish(sample, modes=BOTH)
    operators = crew(model[0], 3)
    watcher = relayers(operators[0], peers={})  # alone: no quorum, the request stays open
    request_id = request_inference(model, features_input(sample.examples[:1]), mode=MODE_ATTESTED)
    wait_for(lambda: watcher.state(request_id) == "signed", 30, "the watcher signed")
    # Another member's key signs two different digests and hands both to the watcher's peer server.
    cheat = operators[2]
    key = Account.from_key(cheat.key)
    domain = Domain(ape.chain.chain_id, attested.address)
    signed = [attestations.sign(key, domain, request_id, bytes([n]) * 32) for n in (1, 2)]
    url = read_journal(watcher.journal, "SELECT value FROM meta WHERE key = 'peers'")[0]["value"]
    body = json.dumps([encode(a) for a in signed]).encode()
    post = urllib.request.Request(f"{url}/v1/attestations", body, {"Content-Type": "application/json"})
    reporter_before = int(token.balanceOf(operators[0].account.address))

    assert urllib.request.urlopen(post, timeout=5).status == 202

    wait_for(lambda: stake_of(staking, cheat) < STAKE, 30, "the equivocator slashed")
    # The rate is raised so that after the reporter's reward the equivocator still loses the dissent rate.
    pct = int(attested.params().equivocationRewardPct)
    bps = min(10_000, int(attested.params().slashBpsDissent) * 100 // (100 - pct))
    slashed = STAKE * bps // 10_000
    assert stake_of(staking, cheat) == STAKE - slashed
    reward = slashed * pct * 100 // 10_000
    assert int(token.balanceOf(operators[0].account.address)) - reporter_before == reward
    (proof,) = hub_events(attested, "EquivocationProven", request_id, hub)
    assert (proof.member, proof.reporter) == (cheat.account.address, operators[0].account.address)
    penalties = hub_events(hub, "MemberPenalized", request_id)
    assert [(p.operator, Fault(p.fault)) for p in penalties] == [(cheat.account.address, Fault.EQUIVOCATION)]


def test_relayer_killed_after_signing__restarted__signs_nothing_new_and_is_paid(
    hub: Any, attested: Any, sample: Any, publish: Any, crew: Any, relayers: Any, request_inference: Any
) -> None:
    model = publish(sample, modes=BOTH)
    operators = crew(model[0], 3)
    procs = [relayers(op, peers={}) for op in operators]
    first = procs[0]
    for proc in procs[1:]:
        proc.stop()  # no quorum while the first one signs
    request_id = request_inference(model, features_input(sample.examples[:1]), mode=MODE_ATTESTED)
    wait_for(lambda: first.state(request_id) == "signed", 30, "the first relayer signed")
    first.kill()

    for proc in procs:
        proc.start().wait_ready()
    wait_for(lambda: settled(hub, request_id), 60, "settlement after the restart")
    own = read_journal(
        first.journal, f"SELECT output_digest FROM attestations WHERE request_id = {request_id} AND sent = 1"
    )
    assert len(own) == 1  # one signature, the same one, across the restart
    # Its signature from before the kill counts: in the settlement, or shown late with `attestLate`.
    signer = first.operator.account.address
    wait_for(lambda: signer in paid_members(hub, request_id), 30, "the restarted relayer paid")


class _Garbage(BaseHTTPRequestHandler):
    """A peer endpoint that answers everything with bytes that are not attestations."""

    def do_GET(self) -> None:
        self._junk()

    def do_POST(self) -> None:
        self._junk()

    def _junk(self) -> None:
        body = b"\x00not json\xff"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_peer_endpoints_garbage_or_down__the_others_settle_well_before_the_deadline(
    hub: Any, staking: Any, sample: Any, publish: Any, crew: Any, relayers: Any, request_inference: Any
) -> None:
    model = publish(sample, modes=BOTH)
    operators = crew(model[0], 3)
    garbage = ThreadingHTTPServer(("127.0.0.1", 0), _Garbage)
    threading.Thread(target=garbage.serve_forever, daemon=True).start()
    try:
        # One member's published endpoint talks nonsense, another's has nobody listening.
        junk_url = f"http://127.0.0.1:{garbage.server_address[1]}"
        procs = [
            relayers(operators[0], peers={"listen": "", "url": "", "publish": False}),
            relayers(operators[1], peers={"listen": "", "url": "", "publish": False}),
            relayers(operators[2], peers={}),
        ]
        staking.setEndpoint(junk_url, sender=operators[0].account)
        staking.setEndpoint("http://127.0.0.1:9", sender=operators[1].account)  # discard port: refused
        request_id = request_inference(model, features_input(sample.examples[:1]), mode=MODE_ATTESTED)

        wait_for(lambda: settled(hub, request_id), 60, "settlement")
        result = hub.getResult(request_id)
        assert int(result.status) == Status.FINALIZED
        assert int(result.settledBlock) < int(round_of(hub, request_id).deadline)
        assert "peer skipped" in procs[2].log_text()  # the sound relayer met both broken endpoints
    finally:
        garbage.shutdown()
