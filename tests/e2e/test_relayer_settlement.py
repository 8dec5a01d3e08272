"""Three real relayers settle requests end to end with real ONNX models on real anvil."""

from typing import Any

import ape
import numpy as np
from eth_utils.crypto import keccak
from verinfer.chain.contracts import Fault, Status
from verinfer.models.codec import ErrorCode, Tensor, decode_tensors, encode_tensors, error_output
from verinfer.models.execution import ExecutionClass
from verinfer.models.samples import SampleModel

from tests.conftest import next_epoch
from tests.e2e.conftest import (
    direct_output,
    exact_features,
    features_input,
    hub_events,
    journal_row,
    metric,
    quiet,
    round_of,
    settled,
    wait_for,
)
from tests.models import slow_model


def test_three_relayers__settle_requests__outputs_equal_direct_onnxruntime(
    hub: Any, sample: Any, publish: Any, crew: Any, relayers: Any, request_inference: Any
) -> None:
    model = publish(sample)
    operators = crew(model[0], 3)
    procs = [relayers(op) for op in operators]
    rows = [sample.examples[i : i + 1] for i in range(4)] + [sample.examples[4:8]]  # four singles and a batch

    ids = [request_inference(model, features_input(x)) for x in rows]

    wait_for(lambda: all(settled(hub, i) for i in ids), 60, "all requests settled")
    for request_id, x in zip(ids, rows, strict=True):
        result = hub.getResult(request_id)
        assert int(result.status) == Status.FINALIZED
        assert sorted(result.agreeing) == sorted(op.account.address for op in operators)
        expected = direct_output(sample.onnx, sample.decimals, exact_features(x))
        assert bytes(result.output) == expected
        label, probabilities = decode_tensors(bytes(result.output))
        assert label.shape == (len(x),) and probabilities.shape == (len(x), 2)
        np.testing.assert_allclose(probabilities.to_array().sum(axis=1), 1.0, atol=1e-5)
    wait_for(lambda: all(quiet(p) for p in procs), 30, "relayers record their receipts")
    here = str(ExecutionClass.current())  # what every relayer on this machine says it computes
    for proc in procs:
        assert metric(proc.metrics, "verinfer_revealed") == len(ids)
        assert f'"execution_class": "{here}"' in proc.log_text()
        assert proc.stop() == 0  # SIGTERM: a clean exit


def test_malformed_input__every_relayer_commits_the_error_output__request_fails_with_reason(
    hub: Any, sample: Any, publish: Any, crew: Any, relayers: Any, request_inference: Any
) -> None:
    model = publish(sample)
    for op in crew(model[0], 3):
        relayers(op)
    garbage = request_inference(model, b"\x01" * 40)
    wrong_shape = request_inference(model, features_input(np.zeros((1, 29))))
    wrong_name = request_inference(model, features_input(np.zeros((1, 30))).replace(b"features", b"festures"))

    wait_for(lambda: all(settled(hub, i) for i in (garbage, wrong_shape, wrong_name)), 60, "settlement")
    for request_id, code in ((garbage, 1), (wrong_shape, 3), (wrong_name, 2)):
        result = hub.getResult(request_id)
        assert int(result.status) == Status.FAILED
        assert int(result.errorCode) == code
        assert bytes(result.output) == error_output(code)
        assert len(result.agreeing) == 3


def test_slow_model__does_not_hold_up_a_fast_one(
    hub: Any,
    staking: Any,
    sample: Any,
    publish: Any,
    crew: Any,
    relayers: Any,
    request_inference: Any,
    keeper: Any,
) -> None:
    keeper.idle_interval = None  # idle blocks would close the windows while the slow model runs
    slow = SampleModel(
        "slow", "seconds of matmuls", slow_model(layers=200, width=1024), 6, "x", np.zeros((1, 1))
    )
    fast_model, slow_ref = publish(sample), publish(slow)
    operators = crew(fast_model[0], 3)
    for op in operators:
        staking.register(slow_ref[0], bytes(32), sender=op.account)
    next_epoch(staking)
    procs = [relayers(op) for op in operators]

    slow_id = request_inference(slow_ref, encode_tensors([Tensor.from_array("x", np.asarray([[0.5]]), 4)]))
    fast_id = request_inference(fast_model, features_input(sample.examples[:1]))

    wait_for(lambda: settled(hub, fast_id), 30, "the fast request settles")
    assert not settled(hub, slow_id)
    assert all(p.state(slow_id) == "seen" for p in procs)  # still executing
    wait_for(lambda: settled(hub, slow_id), 60, "the slow request settles too")
    assert int(hub.getResult(slow_id).status) == Status.FINALIZED


def test_websocket_endpoint__relayer_follows_and_settles(
    hub: Any, sample: Any, publish: Any, crew: Any, relayers: Any, request_inference: Any, rpc_url: str
) -> None:
    ws_url = rpc_url.replace("http://", "ws://")
    model = publish(sample)
    operators = crew(model[0], 3)
    procs = [relayers(op, rpc=ws_url if i == 0 else None) for i, op in enumerate(operators)]
    request_id = request_inference(model, features_input(sample.examples[:1]))
    wait_for(lambda: settled(hub, request_id), 30, "settlement")
    result = hub.getResult(request_id)
    assert int(result.status) == Status.FINALIZED
    assert operators[0].account.address in result.agreeing
    assert '"rpc": "ws://127.0.0.1:' in procs[0].log_text()


def test_committee_drawn_from_the_seed_block__only_its_members_act__others_journal_not_member(
    hub: Any, consensus: Any, sample: Any, publish: Any, crew: Any, relayers: Any, request_inference: Any
) -> None:
    model = publish(sample)
    operators = crew(model[0], 5)
    procs = [relayers(op) for op in operators]
    request_id = request_inference(model, features_input(sample.examples[:1]))

    wait_for(lambda: settled(hub, request_id), 30, "settlement")
    committee = list(consensus.getCommittee(request_id))
    assert len(committee) == 3 and sorted(hub.getResult(request_id).agreeing) == sorted(committee)
    (drawn,) = hub_events(consensus, "CommitteeDrawn", request_id, hub)
    assert list(drawn.committee) == committee
    # Nobody could know it at request time: it was drawn in a block after the seed block.
    assert drawn.block_number > int(round_of(hub, request_id).seedBlock)
    # Each relayer journals the settlement once it has followed the block that holds it.
    wait_for(
        lambda: all(
            (journal_row(proc.journal, request_id) or {}).get("state") in ("settled", "not_member")
            for proc in procs
        ),
        10,
        "every relayer to journal the settlement",
    )
    for op, proc in zip(operators, procs, strict=True):
        row = journal_row(proc.journal, request_id)
        assert row is not None and row["seed_block"] == int(round_of(hub, request_id).seedBlock)
        if op.account.address in committee:
            assert row["state"] == "settled" and row["member"] == committee.index(op.account.address)
        else:
            assert row["state"] == "not_member"


def test_digest_only__output_kept_off_chain__settlement_event_carries_it(
    hub: Any, sample: Any, publish: Any, crew: Any, relayers: Any, request_inference: Any
) -> None:
    model = publish(sample)
    for op in crew(model[0], 3):
        relayers(op)
    x = sample.examples[:1]
    request_id = request_inference(model, features_input(x), digest_only=True)

    wait_for(lambda: settled(hub, request_id), 30, "settlement")
    result = hub.getResult(request_id)
    expected = direct_output(sample.onnx, sample.decimals, exact_features(x))
    assert int(result.status) == Status.FINALIZED and len(result.agreeing) == 3
    assert bytes(result.output) == b"" and bytes(result.outputDigest) == keccak(expected)
    (event,) = hub_events(hub, "RequestSettled", request_id)
    assert bytes(event.output) == expected
    assert hub.verifyOutput(request_id, expected) and not hub.verifyOutput(request_id, expected + b"\0")


def test_output_longer_than_the_version_allows__members_agree_on_output_too_large(
    hub: Any, sample: Any, publish: Any, crew: Any, relayers: Any, request_inference: Any
) -> None:
    x = sample.examples[:4]
    assert len(direct_output(sample.onnx, sample.decimals, exact_features(x))) > 416
    model = publish(sample, max_output_bytes=416)  # an error output fits, the real one does not
    for op in crew(model[0], 3):
        relayers(op)
    request_id = request_inference(model, features_input(x))

    wait_for(lambda: settled(hub, request_id), 30, "settlement")
    result = hub.getResult(request_id)
    assert int(result.status) == Status.FAILED and int(result.errorCode) == ErrorCode.OUTPUT_TOO_LARGE
    assert bytes(result.output) == error_output(ErrorCode.OUTPUT_TOO_LARGE) and len(result.agreeing) == 3


def test_silent_member__windows_close_on_idle_blocks__settles_without_blocks_mined_by_hand(
    hub: Any,
    staking: Any,
    sample: Any,
    publish: Any,
    crew: Any,
    relayers: Any,
    request_inference: Any,
    keeper: Any,
) -> None:
    model = publish(sample)
    operators = crew(model[0], 3)
    for op in operators[:2]:  # the third never runs a relayer
        relayers(op)
    keeper.idle_interval = 0.1  # the devnet's 1 s, faster: the windows are 25 blocks
    request_id = request_inference(model, features_input(sample.examples[:1]))

    wait_for(lambda: settled(hub, request_id), 60, "settlement once the commit window closes")
    result = hub.getResult(request_id)
    silent = operators[2].account.address
    assert int(result.status) == Status.FINALIZED and silent not in result.agreeing
    assert len(result.agreeing) == 2
    penalties = hub_events(hub, "MemberPenalized", request_id)
    assert [(p.operator, Fault(p.fault)) for p in penalties] == [(silent, Fault.SILENT)]
    assert ape.chain.blocks.head.number > int(round_of(hub, request_id).commitDeadline)
