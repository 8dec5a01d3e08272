"""Three real relayers settle requests end to end with real ONNX models on real anvil."""

from typing import Any

import numpy as np
from verinfer.models.codec import decode_tensors, error_output

from tests.e2e.conftest import STATUS, direct_output, exact_features, features_input, settled, wait_for


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
        assert int(result.status) == STATUS["finalized"]
        assert sorted(result.agreeing) == sorted(op.account.address for op in operators)
        expected = direct_output(sample.onnx, sample.decimals, exact_features(x))
        assert bytes(result.output) == expected
        label, probabilities = decode_tensors(bytes(result.output))
        assert label.shape == (len(x),) and probabilities.shape == (len(x), 2)
        np.testing.assert_allclose(probabilities.to_array().sum(axis=1), 1.0, atol=1e-5)
    for proc in procs:
        assert metric_sum(proc, "verinfer_revealed") == len(ids)
        assert proc.stop() == 0  # SIGTERM: a clean exit


def metric_sum(proc: Any, name: str) -> float:
    from tests.e2e.conftest import metric

    return metric(proc.metrics, name)


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
        assert int(result.status) == STATUS["failed"]
        assert int(result.errorCode) == code
        assert bytes(result.output) == error_output(code)
        assert len(result.agreeing) == 3
