"""The devnet's block keeper on real anvil: the block after a transaction at once, idle blocks, and
hands off a chain that is not on automine."""

import time
from collections.abc import Iterator
from typing import Any

import ape
import pytest
from verinfer.chain.rpc import Rpc
from verinfer.devnet.blocks import BlockKeeper, mine_to_next_epoch

from tests.conftest import wait_for


def head() -> int:
    return int(ape.chain.blocks.head.number)


@pytest.fixture
def url() -> str:
    return str(ape.chain.provider.uri)


@pytest.fixture
def automine_off() -> Iterator[None]:
    provider = ape.chain.provider
    provider.make_request("evm_setAutomine", [False])
    yield
    provider.make_request("evm_setAutomine", [True])


def test_keeper__block_with_a_transaction__gets_one_successor_and_no_more(
    url: str, deployer: Any, dapp: Any
) -> None:
    with BlockKeeper(url, idle_interval=None) as keeper:
        mined_in = deployer.transfer(dapp, 1).block_number
        wait_for(lambda: head() == mined_in + 1, 2, "the block after the transaction's")
        time.sleep(0.5)  # the empty block it mined does not call for another
        assert head() == mined_in + 1 and keeper.mined == 1
        assert len(ape.chain.blocks[mined_in + 1].transactions) == 0


def test_keeper__idle_chain__one_block_per_idle_interval(url: str) -> None:
    start = head()
    with BlockKeeper(url, idle_interval=0.1):
        wait_for(lambda: head() >= start + 3, 3, "three idle blocks")


def test_keeper__automine_off__leaves_the_chain_alone(url: str, automine_off: None) -> None:
    start = head()
    with BlockKeeper(url, idle_interval=0.05) as keeper:
        time.sleep(0.5)
    assert head() == start and keeper.mined == 0


@pytest.mark.parametrize("epoch", [8, 13])
def test_mine_to_next_epoch__a_request_sent_next_seeds_in_a_later_epoch(url: str, epoch: int) -> None:
    rpc = Rpc(url)
    for _ in range(epoch):  # from every position within an epoch
        before = head()
        mine_to_next_epoch(rpc, epoch)
        after = head()
        seed = after + 2  # the request lands in the next block; its seed block is the one after
        assert seed // epoch > before // epoch
        assert after == before or (after + 1) // epoch <= before // epoch  # one block fewer would not do
        ape.chain.mine(1)
