"""The log follower on real anvil: confirmation depth, a persisted checkpoint and reorg detection."""

from pathlib import Path
from typing import Any

import ape
from verinfer.chain.follower import LogFollower
from verinfer.chain.rpc import Rpc
from verinfer.relayer.journal import Journal


def follower(token: Any, journal: Journal, confirmations: int) -> LogFollower:
    rpc = Rpc(str(ape.chain.provider.uri))
    start = ape.chain.blocks.head.number + 1
    return LogFollower(
        rpc, journal, addresses=[token.address], start_block=start, confirmations=confirmations
    )


def drain(f: LogFollower) -> tuple[list[Any], list[Any]]:
    """Polls until caught up; returns (logs, reorgs) seen on the way."""
    logs, reorgs = [], []
    while True:
        batch = f.poll()
        logs += batch.logs
        if batch.reorg:
            reorgs.append(batch.reorg)
        f.commit(batch)
        if not batch.to_hash and not batch.reorg:
            return logs, reorgs


def test_confirmations__logs_wait_for_depth__checkpoint_survives_restart(
    tmp_path: Path, token: Any, deployer: Any, dapp: Any
) -> None:
    journal = Journal(tmp_path / "j.db")
    f = follower(token, journal, confirmations=2)
    token.mint(dapp, 1, sender=deployer)
    assert drain(f)[0] == []  # one block deep is not deep enough
    ape.chain.mine(2)
    (log,) = drain(f)[0]
    assert log["address"] == token.address

    restarted = LogFollower(f.rpc, Journal(tmp_path / "j.db"), addresses=[token.address], start_block=0)
    assert restarted.position() == f.position()  # resumes from the journal, not from block 0
    assert drain(restarted)[0] == []


def fork_after_two_mints(f: LogFollower, token: Any, deployer: Any, dapp: Any, *replacement: int) -> int:
    """Mints twice, lets `f` read both, then replaces them with a branch minting `replacement` from the
    block before; returns that fork block."""
    snapshot = ape.chain.snapshot()
    fork = ape.chain.blocks.head.number
    token.mint(dapp, 1, sender=deployer)
    token.mint(dapp, 2, sender=deployer)
    assert len(drain(f)[0]) == 2
    ape.chain.restore(snapshot)
    for amount in replacement:
        token.mint(dapp, amount, sender=deployer)
    return fork


def amounts(logs: list[Any]) -> list[int]:
    return [int(log["data"].hex(), 16) for log in logs]


def test_reorg__detected_by_block_hash__rewinds_and_reads_the_new_branch(
    tmp_path: Path, token: Any, deployer: Any, dapp: Any
) -> None:
    f = follower(token, Journal(tmp_path / "j.db"), confirmations=0)
    fork = fork_after_two_mints(f, token, deployer, dapp, 3)
    logs, reorgs = drain(f)
    assert [r.fork_block for r in reorgs] == [fork]
    assert amounts(logs) == [3]


def test_reorg__kept_until_handled__a_failed_round_cannot_lose_it(
    tmp_path: Path, token: Any, deployer: Any, dapp: Any
) -> None:
    journal = Journal(tmp_path / "j.db")
    f = follower(token, journal, confirmations=0)
    fork = fork_after_two_mints(f, token, deployer, dapp, 3)
    first = f.poll()  # the checkpoint moves back now; the round then fails before handling it
    assert first.reorg is not None and first.reorg.fork_block == fork and first.logs == []
    again = LogFollower(f.rpc, Journal(tmp_path / "j.db"), addresses=[token.address], start_block=0).poll()
    assert again.reorg == first.reorg  # still reported, even after a restart
    f.commit(again)
    logs, reorgs = drain(f)
    assert reorgs == [] and len(logs) == 1


def test_reorg__new_branch_of_the_same_height__detected_from_the_head_hash(
    tmp_path: Path, token: Any, deployer: Any, dapp: Any
) -> None:
    f = follower(token, Journal(tmp_path / "j.db"), confirmations=0)
    height = ape.chain.blocks.head.number + 2
    fork = fork_after_two_mints(f, token, deployer, dapp, 5, 6)
    assert ape.chain.blocks.head.number == height  # the checkpoint's number is the head's again
    logs, reorgs = drain(f)
    assert [r.fork_block for r in reorgs] == [fork]
    assert amounts(logs) == [5, 6]
