"""The indexer over a history with every event kind: what it stores and what its reads answer agree with
the contracts' own views (getRequest, getResult, claimable, operatorInfo, registrationsOf)."""

import json
from collections.abc import Iterator
from typing import Any

import ape
import pytest
from verinfer.chain.contracts import MODES, Status
from verinfer.chain.deployment import Deployment
from verinfer.chain.rpc import Rpc
from verinfer.explorer import queries
from verinfer.explorer.events import FOLLOWED
from verinfer.explorer.indexer import Indexer
from verinfer.explorer.records import to_json
from verinfer.explorer.store import ExplorerStore

from tests.explorer.scenario import NEVER_EMITTED, Played


@pytest.fixture(scope="module")
def indexed(
    played: Played, rpc_url: str, deployment: Deployment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Indexer]:
    store = ExplorerStore(tmp_path_factory.mktemp("explorer") / "index.db")
    indexer = Indexer(Rpc(rpc_url), deployment, store, chunk=500)
    progress = indexer.sync()
    assert progress.caught_up and progress.checkpoint == ape.chain.blocks.head.number
    yield indexer
    store.close()


@pytest.fixture
def store(indexed: Indexer) -> ExplorerStore:
    return indexed.store


def test_every_event_kind__indexed__as_many_as_the_chain_has(
    indexed: Indexer, store: ExplorerStore, deployment: Deployment
) -> None:
    declared = {name for _, name in indexed.decoder.kinds()} - NEVER_EMITTED
    assert declared - {str(r[0]) for r in store.rows("SELECT DISTINCT event FROM events")} == set()
    logs = indexed.rpc.w3.eth.get_logs(
        {
            "fromBlock": deployment.deploy_block,
            "toBlock": ape.chain.blocks.head.number,
            "address": [deployment[name].address for name in FOLLOWED],
        }
    )
    stored = {(int(r[0]), int(r[1])) for r in store.rows("SELECT block, log_index FROM events")}
    assert stored == {(int(log["blockNumber"]), int(log["logIndex"])) for log in logs}


def test_requests__every_status__agrees_with_get_request_and_get_result(
    played: Played, store: ExplorerStore, hub: Any
) -> None:
    statuses = {name: queries.request_story(store, rid) for name, rid in played.ids.items()}
    assert {name: story.summary.status for name, story in statuses.items() if story} == {
        "silent": "expired",
        "finalized": "finalized",
        "failed": "failed",
        "disputed": "disputed",
        "expired": "expired",
        "posted": "finalized",
        "overturned": "finalized",
        "escalation": "finalized",
        "attested": "finalized",
        "attested_dissent": "finalized",
        "pending_from_credit": "pending",
    }
    page = queries.list_requests(store, limit=500)
    assert page.total == int(hub.requestCount()) == len(page.items)
    for summary in page.items:
        rid = summary.request_id
        onchain = hub.getRequest(rid)
        assert (summary.requester, summary.model_id, summary.version, summary.k, summary.digest_only) == (
            onchain.requester,
            "0x" + bytes(onchain.modelId).hex(),
            onchain.version,
            onchain.k,
            onchain.digestOnly,
        )
        assert MODES[summary.mode] == onchain.mode
        assert summary.status == Status(onchain.status).name.lower()
        if onchain.status == Status.PENDING:
            assert summary.settled_block is None
            continue
        result = hub.getResult(rid)
        story = queries.request_story(store, rid)
        assert story is not None and story.settlement is not None
        settlement = story.settlement
        assert (settlement.block, settlement.error_code) == (result.settledBlock, result.errorCode)
        assert settlement.output_digest == "0x" + bytes(result.outputDigest).hex()
        if not onchain.digestOnly:
            assert settlement.output == "0x" + bytes(result.output).hex()
        paid = [m.operator for m in story.committee if m.paid]
        assert sorted(paid) == sorted(result.agreeing)
        assert (settlement.callback_success is not None) == (rid == played.ids["finalized"])
        assert settlement.fees is not None and settlement.fees.total == summary.fee


def test_filters_and_paging__match_the_summaries(played: Played, store: ExplorerStore) -> None:
    everything = queries.list_requests(store, limit=500).items
    for status in ("pending", "finalized", "failed", "disputed", "expired"):
        page = queries.list_requests(store, status=status, limit=500)
        assert [r.request_id for r in page.items] == [r.request_id for r in everything if r.status == status]
    attested = queries.list_requests(store, mode="attested", model="explorer-suite")
    assert {r.request_id for r in attested.items} == {played.ids["attested"], played.ids["attested_dissent"]}
    consumer = queries.list_requests(store, requester=played.consumer.lower())
    assert [r.request_id for r in consumer.items] == [played.ids["finalized"]]
    first, second = (queries.list_requests(store, limit=3, offset=o) for o in (0, 3))
    assert [r.request_id for r in first.items + second.items] == [r.request_id for r in everything[:6]]
    assert first.total == len(everything)
    dissenter = queries.list_requests(store, operator=played.dissenter, limit=500)
    assert played.ids["finalized"] in [r.request_id for r in dissenter.items]
    assert dissenter.total == queries.operator_summary(store, played.dissenter).drawn
    with pytest.raises(queries.QueryError):
        queries.list_requests(store, status="lost")
    front = queries.overview(store)
    assert front.requests == len(everything) and sum(front.by_mode.values()) == len(everything)
    assert front.by_status == {
        s: sum(r.status == s for r in everything) for s in {r.status for r in everything}
    }


def test_story__timeline_in_chain_order__committee_and_fee_split(
    played: Played, store: ExplorerStore, hub: Any
) -> None:
    story = queries.request_story(store, played.ids["finalized"])
    assert story is not None and story.settlement is not None
    kinds = [e.kind for e in story.timeline]
    assert kinds[:2] == ["RequestCreated", "CommitteeDrawn"] or kinds[0] == "RequestCreated"
    assert kinds.count("Committed") == kinds.count("Revealed") == 3
    assert kinds.index("RequestSettled") > max(i for i, k in enumerate(kinds) if k == "Revealed")
    assert {"FeesDistributed", "MemberPenalized", "Slashed", "Jailed", "CallbackExecuted"} <= set(kinds)
    assert [(e.block, e.log_index) for e in story.timeline] == sorted(
        (e.block, e.log_index) for e in story.timeline
    )
    by_member = {m.operator: m for m in story.committee}
    dissenter = by_member[played.dissenter]
    assert [p.fault for p in dissenter.penalties] == ["dissent"] and dissenter.paid == 0
    assert dissenter.penalties[0].jailed
    assert {a.kind for a in dissenter.actions} == {"Committed", "Revealed"}
    fees = story.settlement.fees
    assert fees is not None and (fees.paid_members, fees.held) == (2, 0)
    assert fees.per_operator + fees.model_owner + fees.treasury + fees.refund > 0
    assert fees.total == 2 * fees.per_operator + fees.model_owner + fees.treasury + fees.refund
    json.dumps(to_json(story))  # what an API serves

    attested = queries.request_story(store, played.ids["attested"])
    assert attested is not None and attested.settlement is not None and attested.settlement.fees is not None
    assert attested.settlement.fees.held == attested.settlement.fees.per_operator  # one left out
    late = [m for m in attested.committee if any(a.kind == "LateAttestation" for a in m.actions)]
    assert len(late) == 1 and late[0].paid == attested.settlement.fees.per_operator
    signed = [a.details["signed"] for m in attested.committee for a in m.actions if a.kind == "Attested"]
    assert signed == ["accepted", "accepted"]

    overturned = queries.request_story(store, played.ids["overturned"])
    assert overturned is not None and overturned.challenge is not None
    assert overturned.challenge.escalation_id == played.ids["escalation"]
    assert overturned.settlement is not None and overturned.settlement.output_digest == "0x" + (
        hub.getResult(played.ids["escalation"]).outputDigest.hex()
    ).removeprefix("0x")
    [penalty] = overturned.penalties
    assert penalty.fault == "dissent" and penalty.reward > 0 and penalty.reporter is not None
    escalation = queries.request_story(store, played.ids["escalation"])
    assert escalation is not None and escalation.escalation_of == played.ids["overturned"]
    assert "ExcludedFromDraw" in [e.kind for e in escalation.timeline]


def test_penalties__agree_with_member_penalized_logs(
    store: ExplorerStore, hub: Any, deployment: Deployment
) -> None:
    logs = list(hub.MemberPenalized.range(deployment.deploy_block, ape.chain.blocks.head.number + 1))
    indexed = [
        (p.request_id, p.operator, p.amount)
        for o in queries.list_operators(store)
        for p in queries.operator_record(store, o.address).penalties
    ]
    assert sorted(indexed) == sorted((log.requestId, log.operator, log.amount) for log in logs)
    assert {
        p.fault
        for o in queries.list_operators(store)
        for p in queries.operator_record(store, o.address).penalties
    } >= {
        "silent",
        "dissent",
        "equivocation",
    }
    assert queries.overview(store).slashed == sum(log.amount for log in logs)


def test_operators__agree_with_staking_views(
    played: Played, store: ExplorerStore, staking: Any, operators: list[Any]
) -> None:
    listed = {o.address: o for o in queries.list_operators(store)}
    for op in operators:
        summary = listed[op.address]
        info = staking.operatorInfo(op)
        assert (summary.stake, summary.unbonding, summary.jailed, summary.jailed_until) == (
            info.stake,
            info.unbonding,
            info.jailed,
            info.jailedUntil,
        )
        assert summary.endpoint == staking.endpointOf(op)
        assert sorted((p.model_id, p.class_id) for p in summary.pools) == sorted(
            ("0x" + bytes(m).hex(), "0x" + bytes(c).hex()) for m, c in staking.registrationsOf(op)
        )
        assert summary.drawn > 0
    record = queries.operator_record(store, played.jailed)
    assert [c.event for c in record.stake_history].count("Jailed") >= 1
    assert "Unjailed" in [c.event for c in record.stake_history]
    assert {p.request_id for p in record.penalties} >= {played.ids["silent"], played.ids["finalized"]}


def test_credits__ledger_balance_is_claimable(played: Played, store: ExplorerStore, hub: Any) -> None:
    ledger_accounts = {str(r[0]) for r in store.rows("SELECT DISTINCT account FROM credits")}
    for account in ledger_accounts | played.accounts:
        assert queries.credit_balance(store, account) == hub.claimable(account), account
    reasons = {str(r[0]) for r in store.rows("SELECT DISTINCT reason FROM credits")}
    assert reasons >= {
        "request",
        "operator_fee",
        "model_fee",
        "protocol_fee",
        "refund",
        "held_fee",
        "held_refund",
        "deposit",
        "bond",
        "claim",
    }
    story = queries.request_story(store, played.ids["pending_from_credit"])
    assert story is not None and story.paid_from_credit


def test_models__versions_owner_usage__agree_with_registry(
    played: Played, store: ExplorerStore, registry: Any
) -> None:
    model = queries.model_record(store, "explorer-suite")
    assert model is not None and model == queries.model_record(store, "0x" + played.model_id.hex())
    assert model.owner == registry.ownerOf(played.model_id)
    assert [v.version for v in model.versions] == list(
        range(1, int(registry.getModel(played.model_id)[2]) + 1)
    )
    for v in model.versions:
        onchain = registry.getVersion(played.model_id, v.version)
        assert (v.deprecated, v.fee, v.modes) == (
            onchain.deprecated,
            onchain.fee,
            [name for name, bit in MODES.items() if onchain.modes & bit],
        )
    assert model.usage == {"finalized": 6, "failed": 1, "disputed": 1, "expired": 2, "pending": 1}
    assert model.usage_by_mode["attested"] == {"finalized": 2}
    assert model.operators == 4  # one left the pool
    assert any(m.name == "explorer-suite" for m in queries.list_models(store))
