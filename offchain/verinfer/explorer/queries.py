"""The explorer's reads: requests with filters and paging, one request's story, operators, models."""

import json
import sqlite3
from collections import defaultdict
from typing import Any

from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak

from verinfer.chain.contracts import MODE_ATTESTED, MODES, Fault, Status
from verinfer.explorer.records import (
    Challenge,
    Credit,
    FeeSplit,
    Member,
    ModelRecord,
    OperatorRecord,
    OperatorSummary,
    Overview,
    Page,
    Penalty,
    Pool,
    RequestStory,
    RequestSummary,
    Settlement,
    StakeChange,
    TimelineEntry,
    Version,
)
from verinfer.explorer.store import ExplorerStore

MAX_LIMIT = 500
PENDING = "pending"
STATUSES = tuple(s.name.lower() for s in Status if s not in (Status.NONE, Status.PENDING))
MODE_NAMES = {bit: name for name, bit in MODES.items()}
NOT_ACTIONS = ("MemberPenalized", "HeldFeePaid")


class QueryError(ValueError):
    """A filter the explorer cannot apply (an unknown status or mode, a malformed address)."""


def _hex(value: bytes | None) -> str | None:
    return None if value is None else "0x" + bytes(value).hex()


def _hexs(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def status_name(status: int | None) -> str:
    return PENDING if status is None else Status(status).name.lower()


def mode_name(mode: int) -> str:
    return MODE_NAMES.get(mode, f"mode-{mode:#x}")


def _mode_bits(modes: int) -> list[str]:
    return [name for name, bit in MODES.items() if modes & bit]


def _address(value: str, what: str) -> str:
    if not is_address(value):
        raise QueryError(f"{what} {value!r} is not an address")
    return to_checksum_address(value)


def _model_id(value: str) -> bytes:
    """A model by 0x id (32 bytes) or by name (its id is keccak256 of the name)."""
    if value.startswith("0x") and len(value) == 66:
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            pass
    return keccak(text=value)


# ------------------------------------------------------------------ requests

_SUMMARY_SQL = """
SELECT r.request_id, r.requester, r.model_id, m.name AS model_name, r.version, r.mode, r.k, r.fee,
       r.digest_only, r.block, r.tx_hash, s.status, s.block AS settled_block, s.tx_hash AS settled_tx,
       s.output_digest, s.error_code
FROM requests r
LEFT JOIN settlements s ON s.request_id = r.request_id
LEFT JOIN models m ON m.model_id = r.model_id
"""


def _summary(row: sqlite3.Row) -> RequestSummary:
    return RequestSummary(
        request_id=int(row["request_id"]),
        requester=str(row["requester"]),
        model_id=_hexs(row["model_id"]),
        model_name=row["model_name"],
        version=int(row["version"]),
        mode=mode_name(int(row["mode"])),
        k=int(row["k"]),
        fee=int(row["fee"]),
        status=status_name(row["status"]),
        digest_only=bool(row["digest_only"]),
        created_block=int(row["block"]),
        created_tx=_hexs(row["tx_hash"]),
        settled_block=row["settled_block"],
        settled_tx=_hex(row["settled_tx"]),
        output_digest=_hex(row["output_digest"]),
        error_code=row["error_code"],
    )


def list_requests(
    store: ExplorerStore,
    *,
    status: str | None = None,
    mode: str | None = None,
    model: str | None = None,
    version: int | None = None,
    requester: str | None = None,
    operator: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[RequestSummary]:
    """Requests newest first. `status`: pending, finalized, failed, disputed or expired; `mode`: a mode
    name; `model`: a name or 0x id; `operator`: requests it was drawn for."""
    where: list[str] = []
    params: list[Any] = []
    if status is not None:
        if status == PENDING:
            where.append("s.request_id IS NULL")
        elif status in STATUSES:
            where.append("s.status = ?")
            params.append(int(Status[status.upper()]))
        else:
            raise QueryError(f"status {status!r} is not one of {PENDING}, {', '.join(STATUSES)}")
    if mode is not None:
        if mode not in MODES:
            raise QueryError(f"mode {mode!r} is not one of {', '.join(MODES)}")
        where.append("r.mode = ?")
        params.append(MODES[mode])
    if model is not None:
        where.append("r.model_id = ?")
        params.append(_model_id(model))
    if version is not None:
        where.append("r.version = ?")
        params.append(version)
    if requester is not None:
        where.append("r.requester = ?")
        params.append(_address(requester, "requester"))
    if operator is not None:
        where.append("r.request_id IN (SELECT request_id FROM committees WHERE operator = ?)")
        params.append(_address(operator, "operator"))
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    limit = max(1, min(limit, MAX_LIMIT))
    offset = max(0, offset)
    total = store.row(
        f"SELECT COUNT(*) FROM requests r LEFT JOIN settlements s ON s.request_id = r.request_id{clause}",
        params,
    )
    rows = store.rows(
        f"{_SUMMARY_SQL}{clause} ORDER BY r.request_id DESC LIMIT ? OFFSET ?", [*params, limit, offset]
    )
    return Page([_summary(r) for r in rows], int(total[0]) if total else 0, limit, offset)


def _entry(row: sqlite3.Row) -> TimelineEntry:
    return TimelineEntry(
        kind=str(row["event"]),
        contract=str(row["contract"]),
        block=int(row["block"]),
        log_index=int(row["log_index"]),
        tx_hash=_hexs(row["tx_hash"]),
        operator=row["account"],
        details=json.loads(row["args"]),
    )


def _penalty(row: sqlite3.Row) -> Penalty:
    return Penalty(
        request_id=int(row["request_id"]),
        operator=str(row["operator"]),
        fault=Fault(int(row["fault"])).name.lower(),
        amount=int(row["amount"]),
        reward=int(row["reward"]),
        reporter=row["reporter"],
        jailed=bool(row["jailed"]),
        block=int(row["block"]),
        tx_hash=_hexs(row["tx_hash"]),
    )


def _credit(row: sqlite3.Row) -> Credit:
    return Credit(
        account=str(row["account"]),
        reason=str(row["reason"]),
        amount=int(row["amount"]),
        balance=int(row["balance"]),
        request_id=row["request_id"],
        block=int(row["block"]),
        log_index=int(row["log_index"]),
    )


def timeline(store: ExplorerStore, request_id: int) -> list[TimelineEntry]:
    """The request's events in chain order, with the staking events of its slashes (Slashed, Jailed in
    the same transactions as its MemberPenalized)."""
    rows = store.rows(
        "SELECT * FROM events WHERE request_id = ?"
        " UNION SELECT e.* FROM events e JOIN penalties p ON e.tx_hash = p.tx_hash AND e.account = p.operator"
        " WHERE p.request_id = ? AND e.contract = 'staking' AND e.event IN ('Slashed', 'Jailed')"
        " ORDER BY block, log_index",
        (request_id, request_id),
    )
    return [_entry(r) for r in rows]


def request_story(store: ExplorerStore, request_id: int) -> RequestStory | None:
    """The request's timeline, committee and what each member did, settlement, penalties and credits."""
    row = store.row(f"{_SUMMARY_SQL} WHERE r.request_id = ?", (request_id,))
    if row is None:
        return None
    request = store.row("SELECT * FROM requests WHERE request_id = ?", (request_id,))
    assert request is not None
    events = timeline(store, request_id)
    penalties = [
        _penalty(r)
        for r in store.rows(
            "SELECT * FROM penalties WHERE request_id = ? ORDER BY block, log_index", (request_id,)
        )
    ]
    credits = [
        _credit(r)
        for r in store.rows(
            "SELECT * FROM credits WHERE request_id = ? ORDER BY block, log_index, seq", (request_id,)
        )
    ]
    settled = store.row("SELECT * FROM settlements WHERE request_id = ?", (request_id,))
    settlement = None if settled is None else _settlement(settled, int(request["fee"]))
    members = store.rows(
        "SELECT member_index, operator FROM committees WHERE request_id = ? ORDER BY member_index",
        (request_id,),
    )
    committee = [
        _member(int(m[0]), str(m[1]), events, penalties, credits, int(request["mode"])) for m in members
    ]
    challenged = store.row("SELECT * FROM challenges WHERE request_id = ?", (request_id,))
    challenge = (
        None
        if challenged is None
        else Challenge(
            str(challenged["challenger"]),
            int(challenged["escalation_id"]),
            int(challenged["fee"]),
            int(challenged["block"]),
        )
    )
    parent = store.row("SELECT request_id FROM challenges WHERE escalation_id = ?", (request_id,))
    return RequestStory(
        summary=_summary(row),
        input=_hexs(request["input"]),
        input_hash=_hexs(request["input_hash"]),
        seed_block=int(request["seed_block"]),
        deadline=int(request["deadline"]),
        callback_gas_limit=int(request["callback_gas_limit"]),
        paid_from_credit=bool(request["paid_from_credit"]),
        timeline=events,
        committee=committee,
        settlement=settlement,
        penalties=penalties,
        credits=credits,
        challenge=challenge,
        escalation_of=None if parent is None else int(parent[0]),
    )


def _settlement(row: sqlite3.Row, fee: int) -> Settlement:
    fees = None
    if row["per_operator"] is not None:
        per_operator, paid = int(row["per_operator"]), int(row["paid"])
        owner, treasury, refund = int(row["model_owner_fee"]), int(row["treasury_fee"]), int(row["refund"])
        held = fee - paid * per_operator - owner - treasury - refund
        fees = FeeSplit(fee, per_operator, paid, owner, treasury, refund, held)
    callback = row["callback_success"]
    return Settlement(
        status=status_name(int(row["status"])),
        block=int(row["block"]),
        tx_hash=_hexs(row["tx_hash"]),
        output_digest=_hexs(row["output_digest"]),
        output=_hexs(row["output"]),
        error_code=int(row["error_code"]),
        fees=fees,
        callback_success=None if callback is None else bool(callback),
    )


def _member(
    index: int,
    operator: str,
    events: list[TimelineEntry],
    penalties: list[Penalty],
    credits: list[Credit],
    mode: int,
) -> Member:
    actions: list[TimelineEntry] = []
    for entry in events:
        # Its own events; penalties, slashes and fees are in `penalties` and `paid`.
        if entry.operator == operator and entry.contract != "staking" and entry.kind not in NOT_ACTIONS:
            actions.append(entry)
        elif mode == MODE_ATTESTED and entry.kind == "Attested":
            agree, dissent = int(entry.details["agreeMask"]), int(entry.details["dissentMask"])
            signed = "accepted" if agree >> index & 1 else "dissent" if dissent >> index & 1 else None
            if signed is not None:
                details = {**entry.details, "signed": signed}
                actions.append(
                    TimelineEntry(
                        entry.kind,
                        entry.contract,
                        entry.block,
                        entry.log_index,
                        entry.tx_hash,
                        operator,
                        details,
                    )
                )
    paid = sum(
        c.amount for c in credits if c.account == operator and c.reason in ("operator_fee", "held_fee")
    )
    return Member(index, operator, actions, paid, [p for p in penalties if p.operator == operator])


# ------------------------------------------------------------------ operators


def _operator_addresses(store: ExplorerStore) -> list[str]:
    rows = store.rows(
        "SELECT operator FROM operator_states UNION SELECT operator FROM pools"
        " UNION SELECT operator FROM committees ORDER BY operator"
    )
    return [str(r[0]) for r in rows]


def _credits_of(store: ExplorerStore, address: str) -> list[Credit]:
    return [
        _credit(r)
        for r in store.rows(
            "SELECT * FROM credits WHERE account = ? ORDER BY block, log_index, seq", (address,)
        )
    ]


def operator_summary(store: ExplorerStore, address: str) -> OperatorSummary:
    """An operator's stake, pools, counts, slashes and earnings (zeros for an address never seen)."""
    address = _address(address, "operator")
    state = store.row(
        "SELECT * FROM operator_states WHERE operator = ? ORDER BY block DESC, log_index DESC LIMIT 1",
        (address,),
    )
    endpoint = store.row(
        "SELECT url FROM endpoints WHERE operator = ? ORDER BY block DESC, log_index DESC LIMIT 1", (address,)
    )
    pools = []
    # A pool's latest row says whether the operator is in it now.
    for row in store.rows(
        "SELECT p.model_id, p.class_id, p.joined, m.name FROM pools p"
        " LEFT JOIN models m ON m.model_id = p.model_id WHERE p.operator = ? ORDER BY p.block, p.log_index",
        (address,),
    ):
        key = Pool(_hexs(row["model_id"]), row["name"], _hexs(row["class_id"]))
        if row["joined"]:
            if key not in pools:
                pools.append(key)
        elif key in pools:
            pools.remove(key)
    drawn = store.row("SELECT COUNT(*) FROM committees WHERE operator = ?", (address,))
    slashes = [int(r[0]) for r in store.rows("SELECT amount FROM penalties WHERE operator = ?", (address,))]
    credits = _credits_of(store, address)
    earned = [c for c in credits if c.reason in ("operator_fee", "held_fee")]
    return OperatorSummary(
        address=address,
        stake=int(state["stake"]) if state else 0,
        unbonding=int(state["unbonding"]) if state else 0,
        faults=int(state["faults"]) if state else 0,
        jailed=bool(state["jailed"]) if state else False,
        jailed_until=int(state["jailed_until"]) if state else 0,
        endpoint=str(endpoint[0]) if endpoint else "",
        pools=pools,
        drawn=int(drawn[0]) if drawn else 0,
        paid=len({c.request_id for c in earned}),
        penalized=len(slashes),
        slashed=sum(slashes),
        earned=sum(c.amount for c in earned),
        credit=credits[-1].balance if credits else 0,
    )


def list_operators(store: ExplorerStore) -> list[OperatorSummary]:
    """Every operator that staked, joined a pool or was drawn, by address."""
    return [operator_summary(store, a) for a in _operator_addresses(store)]


def operator_record(store: ExplorerStore, address: str, *, requests: int = 100) -> OperatorRecord:
    """An operator's summary, penalties with their requests, stake history, latest `requests` drawn for
    and credit changes."""
    summary = operator_summary(store, address)
    address = summary.address
    penalties = [
        _penalty(r)
        for r in store.rows(
            "SELECT * FROM penalties WHERE operator = ? ORDER BY block, log_index", (address,)
        )
    ]
    history = [
        StakeChange(
            int(r["block"]),
            str(r["event"]),
            int(r["amount"]),
            int(r["stake"]),
            int(r["unbonding"]),
            int(r["faults"]),
            bool(r["jailed"]),
        )
        for r in store.rows(
            "SELECT * FROM operator_states WHERE operator = ? ORDER BY block, log_index", (address,)
        )
    ]
    drawn = store.rows(
        "SELECT request_id FROM committees WHERE operator = ? ORDER BY request_id DESC LIMIT ?",
        (address, requests),
    )
    return OperatorRecord(
        summary, penalties, history, [int(r[0]) for r in drawn], _credits_of(store, address)
    )


def credit_balance(store: ExplorerStore, account: str) -> int:
    """An account's credit in the hub (claimable) by the ledger."""
    found = store.row(
        "SELECT balance FROM credits WHERE account = ? ORDER BY block DESC, log_index DESC, seq DESC LIMIT 1",
        (_address(account, "account"),),
    )
    return 0 if found is None else int(found[0])


# ------------------------------------------------------------------ models


def model_record(store: ExplorerStore, model: str) -> ModelRecord | None:
    """A model by name or 0x id: owner, versions, operators in its pools now, usage by status."""
    model_id = _model_id(model)
    row = store.row("SELECT * FROM models WHERE model_id = ?", (model_id,))
    if row is None:
        return None
    owner = store.row(
        "SELECT owner FROM model_owners WHERE model_id = ? ORDER BY block DESC, log_index DESC LIMIT 1",
        (model_id,),
    )
    deprecated = {
        int(r[0]) for r in store.rows("SELECT version FROM deprecations WHERE model_id = ?", (model_id,))
    }
    versions = [
        Version(
            version=int(v["version"]),
            artifact_sha256=_hexs(v["artifact_sha256"]),
            uris=list(json.loads(v["uris"])),
            tensor_spec=_hexs(v["tensor_spec"]),
            decimals=int(v["decimals"]),
            modes=_mode_bits(int(v["modes"])),
            fee=int(v["fee"]),
            max_output_bytes=int(v["max_output_bytes"]),
            verifier=str(v["verifier"]),
            execution_class=str(v["execution_class"]),
            class_id=_hexs(v["class_id"]),
            tolerance_units=int(v["tolerance_units"]),
            tolerance_ppm=int(v["tolerance_ppm"]),
            deprecated=int(v["version"]) in deprecated,
            published_block=int(v["block"]),
        )
        for v in store.rows("SELECT * FROM versions WHERE model_id = ? ORDER BY version", (model_id,))
    ]
    members: dict[tuple[str, bytes], bool] = {}
    for p in store.rows(
        "SELECT operator, class_id, joined FROM pools WHERE model_id = ? ORDER BY block, log_index",
        (model_id,),
    ):
        members[(str(p[0]), bytes(p[1]))] = bool(p[2])
    usage: dict[str, int] = defaultdict(int)
    by_version: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    by_mode: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    errors: dict[int, int] = defaultdict(int)
    for u in store.rows(
        "SELECT r.version, r.mode, s.status, s.error_code, COUNT(*) FROM requests r"
        " LEFT JOIN settlements s ON s.request_id = r.request_id WHERE r.model_id = ?"
        " GROUP BY r.version, r.mode, s.status, s.error_code",
        (model_id,),
    ):
        status, count = status_name(u[2]), int(u[4])
        usage[status] += count
        by_version[int(u[0])][status] += count
        by_mode[mode_name(int(u[1]))][status] += count
        if u[3]:
            errors[int(u[3])] += count
    return ModelRecord(
        model_id=_hexs(model_id),
        name=str(row["name"]),
        owner=str(owner[0]) if owner else "",
        registered_block=int(row["block"]),
        versions=versions,
        operators=sum(members.values()),
        usage=dict(usage),
        usage_by_version={v: dict(c) for v, c in by_version.items()},
        usage_by_mode={m: dict(c) for m, c in by_mode.items()},
        error_codes=dict(errors),
    )


def list_models(store: ExplorerStore) -> list[ModelRecord]:
    """Every registered model, by name."""
    rows = store.rows("SELECT model_id FROM models ORDER BY name")
    return [m for m in (model_record(store, _hexs(r[0])) for r in rows) if m is not None]


# ------------------------------------------------------------------ overview


def overview(store: ExplorerStore) -> Overview:
    """Requests by status and by mode, operators, models and all stake slashed."""
    checkpoint = store.checkpoint()
    by_status = {
        status_name(r[0]): int(r[1])
        for r in store.rows(
            "SELECT s.status, COUNT(*) FROM requests r LEFT JOIN settlements s ON s.request_id = r.request_id"
            " GROUP BY s.status"
        )
    }
    by_mode = {
        mode_name(int(r[0])): int(r[1])
        for r in store.rows("SELECT mode, COUNT(*) FROM requests GROUP BY mode")
    }
    models = store.row("SELECT COUNT(*) FROM models")
    return Overview(
        checkpoint=checkpoint[0] if checkpoint else -1,
        requests=sum(by_status.values()),
        by_status=by_status,
        by_mode=by_mode,
        operators=len(_operator_addresses(store)),
        models=int(models[0]) if models else 0,
        slashed=sum(int(r[0]) for r in store.rows("SELECT amount FROM penalties")),
    )
