"""Reorgs: the indexer rewinds to the fork block and re-indexes the new branch, leaving no ghost row (its
store then equals a fresh index of the chain as it is)."""

from collections.abc import Callable
from typing import Any

import ape
from verinfer.explorer import queries
from verinfer.explorer.indexer import Indexer

from tests.conftest import committee_of, request_id_of, sample_output
from tests.explorer.conftest import dump

OUT, OTHER = sample_output(0.25), sample_output(0.75)


def settle_with_a_dissenter(act: Any, hub: Any, by_address: dict[str, Any], rid: int) -> None:
    members = committee_of(hub, by_address, rid)
    for member, output in zip(members, [OUT, OUT, OTHER], strict=True):
        act.commit(member, rid, output)
    for member, output in zip(members, [OUT, OUT, OTHER], strict=True):
        act.reveal(member, rid, output)


def test_reorg__settlement_penalty_and_credits_on_the_old_branch__no_ghost_rows(
    make_indexer: Callable[..., Indexer],
    model: tuple[bytes, int],
    make_request: Callable[..., Any],
    act: Any,
    hub: Any,
    by_address: dict[str, Any],
    dapp: Any,
    fund: Callable[..., None],
) -> None:
    indexer = make_indexer()
    indexer.sync()
    snapshot = ape.chain.snapshot()
    fork = ape.chain.blocks.head.number

    # The old branch: a request settled with a penalty and credits, and a deposit.
    rid = request_id_of(make_request(k=3))
    settle_with_a_dissenter(act, hub, by_address, rid)
    fund(dapp, 5, hub)
    hub.deposit(dapp, 5, sender=dapp)
    indexer.sync()
    old = queries.request_story(indexer.store, rid)
    assert old is not None and old.summary.status == "finalized" and old.penalties
    assert queries.credit_balance(indexer.store, dapp.address) == hub.claimable(dapp)

    # The new branch, shorter: the same request id, another request (k=1), never settled.
    ape.chain.restore(snapshot)
    assert request_id_of(make_request(k=1)) == rid
    assert indexer.step().reorg_fork == fork
    progress = indexer.sync()
    assert progress.caught_up and progress.checkpoint == ape.chain.blocks.head.number
    assert indexer.store.pending_reorg() is None

    new = queries.request_story(indexer.store, rid)
    assert new is not None and (new.summary.status, new.summary.k) == ("pending", 1)
    assert new.settlement is None and new.penalties == [] and new.credits == []
    assert queries.credit_balance(indexer.store, dapp.address) == hub.claimable(dapp)
    fresh = make_indexer("fresh.db")
    fresh.sync()
    assert dump(indexer.store) == dump(fresh.store)
    assert indexer.store.rows("SELECT MAX(block) FROM events")[0][0] > fork


def test_reorg__same_height_other_blocks__detected_and_rewound(
    make_indexer: Callable[..., Indexer],
    make_request: Callable[..., Any],
    dapp: Any,
    fund: Callable[..., None],
    hub: Any,
) -> None:
    indexer = make_indexer()
    indexer.sync()
    snapshot = ape.chain.snapshot()
    fork = ape.chain.blocks.head.number
    rid = request_id_of(make_request(k=3))
    indexer.sync()
    height = ape.chain.blocks.head.number
    ape.chain.restore(snapshot)
    fund(dapp, 7, hub)
    hub.deposit(dapp, 7, sender=dapp)
    ape.chain.mine(height - ape.chain.blocks.head.number)
    assert ape.chain.blocks.head.number == height  # the checkpoint's number, another hash
    assert indexer.step().reorg_fork == fork
    progress = indexer.sync()
    assert progress.checkpoint == height
    assert queries.request_story(indexer.store, rid) is None
    fresh = make_indexer("fresh.db")
    fresh.sync()
    assert dump(indexer.store) == dump(fresh.store)
