"""Shared fixtures: role accounts, the deployed stack on real anvil, and factories."""

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ape
import numpy as np
import pytest
from eth_abi import encode
from eth_utils import keccak
from hypothesis import settings
from verinfer.models.codec import DType, IOSpec, Tensor, TensorSpec, commitment, encode_tensors, output_digest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.deploy import deploy_stack, load_params  # noqa: E402

settings.register_profile("ci", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

E18 = 10**18
TEST_PARAMS = {
    "commit_window": 25,
    "reveal_window": 25,
    "min_stake": 100 * E18,
    "epoch_blocks": 8,
    "unbonding_period": 400,
    "jail_threshold": 2,
    "jail_period": 20,
    "fault_decay": 100,
    "slash_bps_dissent": 1_000,
    "slash_bps_silence": 100,
    "attested_window": 40,
    "attested_late_window": 30,
    "equivocation_reward_pct": 50,
    "optimistic_post_window": 20,
    "optimistic_challenge_window": 20,
    "optimistic_escalation_blocks": 60,
    "max_k": 9,
    "operator_fee": E18,
    "protocol_fee": E18 // 10,
    "max_input_bytes": 8_192,
    "max_output_bytes": 65_536,
    "max_callback_gas": 1_000_000,
}
MODEL_FEE = 2 * E18
SPEC = TensorSpec(
    inputs=(IOSpec("features", DType.FLOAT, (1, 4)),),
    outputs=(IOSpec("probabilities", DType.FLOAT, (1, 2)),),
)


@pytest.fixture(scope="session")
def deployer(accounts: Any) -> Any:
    return accounts[0]


@pytest.fixture(scope="session")
def treasury(accounts: Any) -> Any:
    return accounts[1]


@pytest.fixture(scope="session")
def dapp(accounts: Any) -> Any:
    return accounts[2]


@pytest.fixture(scope="session")
def challenger(accounts: Any) -> Any:
    return accounts[3]


@pytest.fixture(scope="session")
def model_owner(accounts: Any) -> Any:
    return accounts[4]


@pytest.fixture(scope="session")
def operators(accounts: Any) -> list[Any]:
    return [accounts[i] for i in range(5, 10)]


@pytest.fixture(scope="session")
def stack(deployer: Any, treasury: Any) -> Any:
    params = load_params(overrides={**TEST_PARAMS, "treasury": treasury.address})
    return deploy_stack(deployer, params)


@pytest.fixture(scope="session")
def token(stack: Any) -> Any:
    return stack.token


@pytest.fixture(scope="session")
def registry(stack: Any) -> Any:
    return stack.registry


@pytest.fixture(scope="session")
def staking(stack: Any) -> Any:
    return stack.staking


@pytest.fixture(scope="session")
def hub(stack: Any) -> Any:
    return stack.hub


@pytest.fixture(scope="session")
def consensus(stack: Any) -> Any:
    return stack.consensus


@pytest.fixture(scope="session")
def attested(stack: Any) -> Any:
    return stack.attested


@pytest.fixture(scope="session")
def optimistic(stack: Any) -> Any:
    return stack.optimistic


@pytest.fixture(scope="session")
def fund(token: Any, deployer: Any) -> Callable[..., None]:
    """Mints tokens to an account and approves spenders."""

    def _fund(account: Any, amount: int, *spenders: Any) -> None:
        token.mint(account, amount, sender=deployer)
        for spender in spenders:
            token.approve(spender, 2**256 - 1, sender=account)

    return _fund


@pytest.fixture(scope="session")
def make_model(registry: Any, model_owner: Any) -> Callable[..., tuple[bytes, int]]:
    """Registers a model (if new) and publishes a version; returns (model_id, version)."""
    counter = iter(range(1, 10**6))

    def _make(
        name: str = "risk",
        fee: int = MODEL_FEE,
        modes: int = 1,
        decimals: int = 6,
        max_output_bytes: int = 65_536,
        execution_class: str = "",
        tolerance: tuple[int, int] = (0, 0),
    ) -> tuple[bytes, int]:
        model_id = registry.modelIdOf(name)
        if not registry.exists(model_id):
            registry.registerModel(name, sender=model_owner)
        sha = next(counter).to_bytes(32, "big")
        params = (
            sha,
            [f"file:///models/{name}.onnx"],
            SPEC.encode(),
            decimals,
            modes,
            fee,
            max_output_bytes,
            ape.utils.ZERO_ADDRESS,
            execution_class,
            *tolerance,
        )
        receipt = registry.publishVersion(model_id, params, sender=model_owner)
        return model_id, receipt.return_value

    return _make


def next_epoch(staking: Any) -> None:
    """Mines to the start of the next epoch: pool changes made so far count for draws from then on."""
    blocks = staking.epochBlocks()
    ape.chain.mine(blocks - ape.chain.blocks.height % blocks)


@pytest.fixture(scope="session")
def join(staking: Any, fund: Callable[..., None]) -> Callable[..., None]:
    """Funds, stakes and registers operators for a model (portable versions unless `class_id` is given);
    they are drawable once it returns."""

    def _join(
        ops: list[Any], model_id: bytes, amount: int = 1_000 * E18, class_id: bytes = bytes(32)
    ) -> None:
        for op in ops:
            fund(op, amount, staking)
            staking.stake(amount, sender=op)
            staking.register(model_id, class_id, sender=op)
        next_epoch(staking)

    return _join


@pytest.fixture(scope="session")
def model(
    make_model: Callable[..., tuple[bytes, int]], join: Callable[..., None], operators: list[Any]
) -> tuple[bytes, int]:
    """The default model with all five operators staked and registered."""
    model_id, version = make_model("risk")
    join(operators, model_id)
    return model_id, version


def sample_input(values: list[float] | None = None) -> bytes:
    array = np.asarray([values or [0.1, 0.2, 0.3, 0.4]], dtype=np.float32)
    return encode_tensors([Tensor.from_array("features", array, 6)])


def sample_output(p: float = 0.25) -> bytes:
    array = np.asarray([[1 - p, p]], dtype=np.float32)
    return encode_tensors([Tensor.from_array("probabilities", array, 6)])


@pytest.fixture(scope="session")
def make_request(
    hub: Any, dapp: Any, fund: Callable[..., None], request: pytest.FixtureRequest
) -> Callable[..., Any]:
    """Requests an inference from `requester` (the dapp by default); returns the receipt.

    Without `model_ref` it uses the session's default model, set up only when first needed. With
    `consumer` the request is made through that test consumer contract (it becomes the requester
    and gets the callback). Unless `seed=False`, a block is mined after the request so its seed
    block exists and the committee can be drawn.
    """

    def _request(
        k: int = 3,
        requester: Any = None,
        model_ref: tuple[bytes, int] | None = None,
        consumer: Any = None,
        callback_gas: int = 0,
        digest_only: bool = False,
        input_bytes: bytes | None = None,
        mode: int = 1,
        max_fee: int | None = None,
        seed: bool = True,
    ) -> Any:
        sender = requester or dapp
        model_id, version = model_ref or request.getfixturevalue("model")
        fee = hub.quote(model_id, version, k)
        req = (
            model_id,
            version,
            mode,
            k,
            callback_gas,
            digest_only,
            fee if max_fee is None else max_fee,
            input_bytes or sample_input(),
        )
        if consumer is None:
            fund(sender, fee, hub)
            receipt = hub.requestInference(req, sender=sender)
        else:
            fund(consumer, fee)
            receipt = consumer.request(hub.token(), req, sender=sender)
        if seed:
            ape.chain.mine(1)
        return receipt

    return _request


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Polls `predicate` until it returns something truthy; fails with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def request_id_of(receipt: Any) -> int:
    return int(receipt.return_value)


def seed_of(request_id: int, seed_block_hash: bytes) -> int:
    """The draw seed the hub derives from the seed block's hash."""
    return int.from_bytes(keccak(encode(["bytes32", "uint256"], [seed_block_hash, request_id])), "big")


def committee_of(hub: Any, accounts_by_address: dict[str, Any], request_id: int) -> list[Any]:
    """The committee the request has or will have once drawn, computed as a relayer does: from the
    seed block's hash, as soon as that block exists (previewCommittee needs one block more)."""
    r = hub.getRequest(request_id)
    mode = ape.project.ConsensusMode.at(hub.modeContract(r.mode))
    seed_block = mode.getRound(request_id).seedBlock
    seed_hash = bytes(ape.chain.blocks[seed_block].hash)
    staking = ape.project.OperatorStaking.at(hub.staking())
    drawn = staking.drawCommittee(hub.poolOf(request_id), r.k, seed_of(request_id, seed_hash), seed_block)
    return [accounts_by_address[a] for a in drawn]


@pytest.fixture(scope="session")
def by_address(accounts: Any) -> dict[str, Any]:
    return {a.address: a for a in accounts}


@pytest.fixture(scope="session")
def act(consensus: Any) -> Any:
    """Commit/reveal helpers acting as committee members."""

    class Act:
        def salt(self, op: Any, request_id: int) -> bytes:
            return output_digest(f"{op.address}:{request_id}".encode())

        def commit(self, op: Any, request_id: int, output: bytes) -> Any:
            c = commitment(request_id, op.address, output_digest(output), self.salt(op, request_id))
            return consensus.commit(request_id, c, sender=op)

        def reveal(self, op: Any, request_id: int, output: bytes) -> Any:
            return consensus.reveal(request_id, output, self.salt(op, request_id), sender=op)

    return Act()
