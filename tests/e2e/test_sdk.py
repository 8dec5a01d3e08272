"""The dapp SDK against a real devnet: results byte-equal to ONNX Runtime, and every failure typed."""

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import pytest
from eth_account import Account
from onnx import TensorProto, helper
from verinfer.chain.contracts import MODES, Status
from verinfer.chain.deployment import DeploymentError
from verinfer.chain.rpc import RpcUnavailable
from verinfer.client import (
    Client,
    InferenceTimeout,
    InputMismatch,
    InsufficientAllowance,
    InsufficientBalance,
    RequestExpired,
    RequestFailed,
    UnknownModel,
    UnknownVersion,
)
from verinfer.client import operator as operator_actions
from verinfer.client.client import request_struct
from verinfer.client.errors import InvalidArgument
from verinfer.client.inputs import encode_inputs
from verinfer.client.owner import publish_model
from verinfer.devnet.demo import direct_run
from verinfer.models.artifacts import ArtifactStore
from verinfer.models.codec import ErrorCode, Tensor, encode_tensors
from verinfer.models.execution import PINNED, ExecutionClass
from verinfer.models.inputs import InputRef, decode_reference, upload
from verinfer.models.samples import SAMPLES, SampleModel, iris_mlp

from tests.e2e.conftest import Devnet


@pytest.fixture
def dapp(devnet: Devnet) -> Client:
    return devnet.client("dapp")


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_infer__sample_model__outputs_equal_direct_onnx_runtime(dapp: Client, name: str) -> None:
    sample = SAMPLES[name]()
    features = sample.examples[:1]
    version = dapp.model(name)

    result = dapp.infer(name, {"features": features}, k=3)

    direct, direct_bytes = direct_run(sample, version, encode_inputs(version.spec, {"features": features}))
    assert result.output_bytes == direct_bytes
    for output, array in direct.items():
        assert result[output].shape == np.asarray(array).shape
        np.testing.assert_allclose(result[output], array, atol=10**-version.decimals)
    s = result.settlement
    assert s.status == Status.FINALIZED
    assert sorted(s.agreeing) == sorted(s.committee) and len(s.committee) == 3
    assert len(s.commit_txs) == 3 and len(s.reveal_txs) == 3
    assert s.draw_tx in s.commit_txs  # the first commit drew the committee
    assert s.settle_tx in s.reveal_txs  # the last reveal settles
    assert s.request_tx is not None and s.settled_block > 0


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_infer__attested_mode__one_settlement_transaction__outputs_equal_direct_onnx_runtime(
    dapp: Client, name: str
) -> None:
    sample = SAMPLES[name]()
    features = sample.examples[1:2]
    version = dapp.model(name)

    result = dapp.infer(name, {"features": features}, k=3, mode="attested")

    _, direct_bytes = direct_run(sample, version, encode_inputs(version.spec, {"features": features}))
    assert result.output_bytes == direct_bytes
    s = result.settlement
    assert s.status == Status.FINALIZED and len(s.committee) == 3
    assert len(s.agreeing) >= 2 and set(s.agreeing) <= set(s.committee)  # a quorum signed it
    assert s.commit_txs == () and s.reveal_txs == ()  # signatures travel off-chain
    assert s.settle_tx is not None and s.draw_tx == s.settle_tx  # the settlement drew the committee


def test_infer__classifier_label__comes_back_as_integers(dapp: Client) -> None:
    result = dapp.infer("iris-mlp", iris_mlp().examples[:2])  # a bare array for a one-input model
    assert result["label"].dtype == np.int64 and result["label"].shape == (2,)
    assert result["probabilities"].shape == (2, 3)


def test_request_then_wait__same_record_as_result(dapp: Client) -> None:
    pending = dapp.request("diabetes-progression", SAMPLES["diabetes-progression"]().examples[:1], k=1)
    assert pending.fee == dapp.quote(dapp.model("diabetes-progression"), 1)
    assert pending.seed_block == pending.block + 1 and not pending.digest_only

    waited = dapp.wait(pending, timeout=60)

    again = dapp.result(pending.request_id)
    assert waited.settlement.request_tx == pending.tx_hash
    assert dapp.committee(pending) == waited.settlement.committee and len(waited.settlement.committee) == 1
    assert again.output_bytes == waited.output_bytes and again.settlement == waited.settlement


def test_infer__digest_only__outputs_from_the_settlement_event(dapp: Client) -> None:
    sample = iris_mlp()
    result = dapp.infer("iris-mlp", sample.examples[:1], digest_only=True)

    assert dapp.contracts.result(result.settlement.request_id).output == b""  # only the digest stored
    plain = dapp.infer("iris-mlp", sample.examples[:1])
    assert result.output_bytes == plain.output_bytes
    assert result.settlement.output_digest == plain.settlement.output_digest
    assert dapp.contracts.view("hub", "verifyOutput", result.settlement.request_id, result.output_bytes)


def test_wait__too_short__times_out_and_can_wait_again(dapp: Client) -> None:
    pending = dapp.request("iris-mlp", iris_mlp().examples[:1])
    with pytest.raises(InferenceTimeout) as caught:
        dapp.wait(pending, timeout=0)
    assert caught.value.request_id == pending.request_id
    assert dapp.wait(pending.request_id, timeout=60).settlement.status == Status.FINALIZED


def test_models_and_operators__list_what_the_devnet_set_up(dapp: Client, devnet: Devnet) -> None:
    models = {m.name: m for m in dapp.models()}
    assert set(SAMPLES) <= set(models)
    iris = models["iris-mlp"].latest
    assert iris is not None and [s.shape for s in iris.spec.inputs] == [(0, 4)]
    assert iris.modes == MODES["consensus"] | MODES["attested"] | MODES["optimistic"] and iris.uris[
        0
    ].startswith(devnet.state.store_url)

    operators = dapp.operators()
    addresses = {devnet.state.account(f"operator-{n}").address for n in (1, 2, 3)}
    assert addresses <= {o.address for o in operators}
    for operator in operators:
        if operator.address in addresses:
            assert operator.stake >= 1_000 * 10**18 and not operator.jailed
            assert {m.model_id for m in models.values() if m.name in SAMPLES} <= set(operator.models)
    here = ExecutionClass.current()
    assert iris.execution_class == str(here) and iris.class_id == here.class_id  # the devnet's class
    member = next(o for o in operators if o.address in addresses)
    assert (iris.model_id, here.class_id) in member.registrations


def test_operator_register__another_class_or_again__refused_before_sending(devnet: Devnet) -> None:
    client = devnet.client("operator-1")
    nonce = client.contracts.rpc.w3.eth.get_transaction_count(client.address)
    arm = ExecutionClass.parse(f"onnxruntime==1.32.0/arm64/{PINNED.tag()}")
    with pytest.raises(InvalidArgument, match=r"this machine is .*: register for class 0x\w+ from a machine"):
        operator_actions.register(client, "iris-mlp", (arm.class_id,))
    with pytest.raises(InvalidArgument, match="already registered for iris-mlp in class 0x"):
        operator_actions.register(client, "iris-mlp", (ExecutionClass.current().class_id,))
    assert client.contracts.rpc.w3.eth.get_transaction_count(client.address) == nonce


@pytest.mark.parametrize(
    ("model", "inputs", "error", "message"),
    [
        ("no-such-model", [[1, 2, 3, 4]], UnknownModel, "no model named 'no-such-model'"),
        ("iris-mlp@9", [[1, 2, 3, 4]], UnknownVersion, "versions 1..1, not 9"),
        ("iris-mlp", [[1, 2, 3]], InputMismatch, "shape (1, 3)"),
        ("iris-mlp", {"petals": [[1, 2, 3, 4]]}, InputMismatch, "do not match ['features']"),
        ("iris-mlp", [[1, 2, float("nan"), 4]], InputMismatch, "NaN"),
    ],
)
def test_request__bad_model_or_input__typed_error_and_nothing_sent(
    dapp: Client, model: str, inputs: Any, error: type[Exception], message: str
) -> None:
    count, balance = dapp.contracts.hub.functions.requestCount().call(), dapp.token_balance()
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        dapp.request(model, inputs)
    assert dapp.contracts.hub.functions.requestCount().call() == count
    assert dapp.token_balance() == balance


def test_request__no_tokens__insufficient_balance(devnet: Devnet) -> None:
    broke = Client.connect("devnet", account=Account.create())  # no fee tokens (and no ETH)
    with pytest.raises(InsufficientBalance, match="holds 0"):
        broke.request("iris-mlp", [[1, 2, 3, 4]])


def test_request__no_allowance_and_no_approving__insufficient_allowance(devnet: Devnet) -> None:
    owner = devnet.client("owner")  # holds tokens, never approved the hub
    count = owner.contracts.hub.functions.requestCount().call()
    with pytest.raises(InsufficientAllowance, match="granted 0"):
        owner.request("iris-mlp", [[1, 2, 3, 4]], approve=False)
    assert owner.contracts.hub.functions.requestCount().call() == count


def _raw_request(client: Client, model: str, encoded: bytes) -> int:
    """A request sent around the SDK's input check, as a careless dapp contract could."""
    version = client.model(model)
    fee = client.quote(version, 3)
    client.ensure_allowance(client.contracts.hub.address, fee, purpose="test")
    args = request_struct(version, encoded, k=3, max_fee=fee)
    receipt = client.transact("hub", "requestInference", args)
    logs = client.contracts.logs("hub", "RequestCreated", receipt.block, requester=client.address)
    return int(logs[-1].args.requestId)


def test_wait__input_the_model_cannot_take__request_failed_with_code(dapp: Client) -> None:
    wrong_shape = encode_tensors([Tensor.from_array("features", np.ones((1, 3)), 4)])
    request_id = _raw_request(dapp, "iris-mlp", wrong_shape)

    with pytest.raises(RequestFailed, match="INPUT_SHAPE") as caught:
        dapp.wait(request_id, timeout=60)

    assert caught.value.settlement.status == Status.FAILED
    assert caught.value.settlement.error_code == ErrorCode.INPUT_SHAPE
    assert len(caught.value.settlement.agreeing) == 3


def test_wait__nobody_can_fetch_the_model__windows_close_while_idle__client_finalizes_as_expired(
    devnet: Devnet, dapp: Client, tmp_path: Any, anvil_mine: Callable[[int], None]
) -> None:
    owner = devnet.client("owner")
    store = ArtifactStore(tmp_path)  # served by nobody: the relayers cannot fetch it
    sample = iris_mlp()
    model = onnx.load_from_string(sample.onnx)
    model.doc_string = "unfetchable"  # other bytes than the devnet's iris-mlp, which relayers have cached
    name = "unfetchable-iris"
    publish_model(owner, store, model.SerializeToString(), name=name, decimals=6, fee=0)
    for n in (1, 2, 3):
        devnet.client(f"operator-{n}").transact(
            "staking", "register", owner.contracts.model_id_of(name), bytes(32)
        )
    epoch = int(owner.contracts.view("staking", "epochBlocks"))
    anvil_mine(epoch)  # the pools reach draws from the next epoch
    store.path(owner.model(name).artifact_sha256).unlink()
    balance = dapp.token_balance()

    pending = dapp.request(name, sample.examples[:1])

    # No block is mined by hand: the devnet's block keeper mines one a second while nothing happens.
    with pytest.raises(RequestExpired) as caught:
        dapp.wait(pending, timeout=90)
    assert caught.value.settlement.status == Status.EXPIRED
    refund = dapp.claimable()
    assert refund >= pending.fee  # refunded in full, to be pulled
    assert dapp.claim() == refund and dapp.claimable() == 0
    assert dapp.token_balance() == balance + refund - pending.fee


def test_connect__missing_record__deployment_error(tmp_path: Any) -> None:
    with pytest.raises(DeploymentError, match="not found"):
        Client.connect("nowhere", deployment=tmp_path / "nowhere.json")


def test_connect__unreachable_node__rpc_unavailable(devnet: Devnet) -> None:
    with pytest.raises(RpcUnavailable, match="unreachable"):
        Client.connect("devnet", rpc_url="http://127.0.0.1:9", timeout=0.5)


@pytest.fixture
def anvil_mine(devnet: Devnet) -> Callable[[int], None]:
    def _mine(blocks: int) -> None:
        client = devnet.client(None)
        client.rpc.w3.provider.make_request("anvil_mine", [hex(blocks)])  # type: ignore[arg-type]

    return _mine


def _sum_model(n: int) -> bytes:
    """One input of n floats, summed: an input of about 1 MB in the fixed-point encoding."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])
    total = helper.make_tensor_value_info("total", TensorProto.FLOAT, [1, 1])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    node = helper.make_node("ReduceSum", ["x", "axes"], ["total"], keepdims=1)
    graph = helper.make_graph([node], "sum", [x], [total], initializer=[axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return bytes(model.SerializeToString())


def test_infer__1_mb_input__uploaded_to_the_store_and_sent_by_hash__equals_direct_run(
    devnet: Devnet, dapp: Client, anvil_mine: Callable[[int], None]
) -> None:
    owner = devnet.client("owner")
    n, name = 32_768, "sum-32k"
    onnx_bytes = _sum_model(n)
    store = ArtifactStore(devnet.state.store_dir)
    modes = MODES["consensus"] | MODES["attested"]
    publish_model(owner, store, onnx_bytes, name=name, decimals=2, fee=0, modes=modes)
    for i in (1, 2, 3):
        devnet.client(f"operator-{i}").transact(
            "staking", "register", owner.contracts.model_id_of(name), bytes(32)
        )
    anvil_mine(int(owner.contracts.view("staking", "epochBlocks")))
    features = (np.random.default_rng(5).integers(-1000, 1000, (1, n)) / 100).astype(np.float32)
    version = dapp.model(name)
    encoded = encode_inputs(version.spec, {"x": features})
    assert len(encoded) > 1_000_000
    dapp.input_store = None
    with pytest.raises(InvalidArgument, match="over the hub's inline cap"):
        dapp.request(name, {"x": features})  # nowhere to put it: refused before anything is sent

    dapp.input_store = devnet.state.store_url
    pending = dapp.request(name, {"x": features}, mode="attested")
    (created,) = dapp.contracts.logs("hub", "RequestCreated", pending.block, requester=dapp.address)[-1:]
    reference = decode_reference(bytes(created.args.input))
    assert reference.sha256 == hashlib.sha256(encoded).digest() and reference.size == len(encoded)
    assert len(bytes(created.args.input)) < 512  # the chain carries the hash and a URI, not the tensors

    result = dapp.wait(pending, timeout=120)
    _, direct_bytes = direct_run(SampleModel(name, "", onnx_bytes, 2, "x", features), version, encoded)
    assert result.output_bytes == direct_bytes
    assert result.settlement.status == Status.FINALIZED and len(result.settlement.agreeing) >= 2


def test_request__external_input_missing_or_not_matching_its_hash__failed_input_unavailable(
    devnet: Devnet, dapp: Client
) -> None:
    store_url = devnet.state.store_url
    version = dapp.model("iris-mlp")
    encoded = encode_inputs(version.spec, {"features": np.array([[7.7, 2.6, 6.9, 2.3]], np.float32)})
    sha = hashlib.sha256(encoded).digest()
    missing = InputRef(sha, len(encoded), (f"{store_url}/inputs/{sha.hex()}",))  # never uploaded
    other = upload(store_url, encode_inputs(version.spec, {"features": np.ones((1, 4), np.float32)}))
    wrong = InputRef(sha, len(encoded), other.uris)  # serves bytes with another hash

    for reference in (missing, wrong):
        request_id = _raw_request(dapp, "iris-mlp", reference.encode())
        with pytest.raises(RequestFailed, match="INPUT_UNAVAILABLE") as caught:
            dapp.wait(request_id, timeout=90)
        assert caught.value.settlement.error_code == ErrorCode.INPUT_UNAVAILABLE
        assert len(caught.value.settlement.agreeing) == 3  # every member answered the same canonical error
