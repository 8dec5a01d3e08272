"""What the explorer's reads return: plain frozen dataclasses (bytes as 0x-hex, token amounts as ints in
base units), and `to_json` for an API (ints beyond JavaScript's safe range become decimal strings)."""

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
JS_SAFE = 2**53 - 1


def to_json(value: Any) -> Any:
    """`value` (records, lists, dicts) as JSON-ready data; big ints (token amounts) as decimal strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > JS_SAFE:
        return str(value)
    return value


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, newest first; `total` counts every match."""

    items: list[T]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class RequestSummary:
    """A request as a list shows it. `status` is "pending" until settled."""

    request_id: int
    requester: str
    model_id: str
    model_name: str | None
    version: int
    mode: str
    k: int
    fee: int
    status: str
    digest_only: bool
    created_block: int
    created_tx: str
    settled_block: int | None
    settled_tx: str | None
    output_digest: str | None
    error_code: int | None


@dataclass(frozen=True)
class TimelineEntry:
    """One event in a request's (or operator's) story, in chain order; `details` are its arguments."""

    kind: str
    contract: str
    block: int
    log_index: int
    tx_hash: str
    operator: str | None
    details: dict[str, Any]


@dataclass(frozen=True)
class Penalty:
    """A slash for one request: `amount` is all it took (a reporter's `reward` included)."""

    request_id: int
    operator: str
    fault: str
    amount: int
    reward: int
    reporter: str | None
    jailed: bool
    block: int
    tx_hash: str


@dataclass(frozen=True)
class Credit:
    """A change of an account's credit in the hub (`balance` after it). Reasons: request (a fee paid
    from credit), operator_fee, model_fee, protocol_fee, refund, held_fee, held_refund, deposit, bond
    (optimistic bonds and shares paid back), claim (withdrawn)."""

    account: str
    reason: str
    amount: int
    balance: int
    request_id: int | None
    block: int
    log_index: int


@dataclass(frozen=True)
class Member:
    """A committee member and what it did: its own events (commit, reveal, post, late attestation, ...;
    in attested mode the settlement's Attested, marked `signed` accepted or dissent), what it was paid
    for the request and its penalties."""

    index: int
    operator: str
    actions: list[TimelineEntry]
    paid: int
    penalties: list[Penalty]


@dataclass(frozen=True)
class FeeSplit:
    """FeesDistributed: `held` is what the hub kept for members whose agreement may still be shown."""

    total: int
    per_operator: int
    paid_members: int
    model_owner: int
    treasury: int
    refund: int
    held: int


@dataclass(frozen=True)
class Settlement:
    """RequestSettled and what came with it."""

    status: str
    block: int
    tx_hash: str
    output_digest: str
    output: str
    error_code: int
    fees: FeeSplit | None
    callback_success: bool | None


@dataclass(frozen=True)
class Challenge:
    """An optimistic post challenged: the consensus request (escalation) that decides it."""

    challenger: str
    escalation_id: int
    fee: int
    block: int


@dataclass(frozen=True)
class RequestStory:
    """Everything the explorer knows of one request."""

    summary: RequestSummary
    input: str
    input_hash: str
    seed_block: int
    deadline: int
    callback_gas_limit: int
    paid_from_credit: bool
    timeline: list[TimelineEntry]
    committee: list[Member]
    settlement: Settlement | None
    penalties: list[Penalty]
    credits: list[Credit]
    challenge: Challenge | None
    escalation_of: int | None


@dataclass(frozen=True)
class Pool:
    """A pool an operator is in: a model and an execution class (zero: portable)."""

    model_id: str
    model_name: str | None
    class_id: str


@dataclass(frozen=True)
class OperatorSummary:
    """An operator's standing. `faults` is the count at its last fault (it decays with time);
    `earned` is operator fees and held fees credited; `credit` its unclaimed credit in the hub."""

    address: str
    stake: int
    unbonding: int
    faults: int
    jailed: bool
    jailed_until: int
    endpoint: str
    pools: list[Pool]
    drawn: int
    paid: int
    penalized: int
    slashed: int
    earned: int
    credit: int


@dataclass(frozen=True)
class StakeChange:
    """An operator's state after one staking event."""

    block: int
    event: str
    amount: int
    stake: int
    unbonding: int
    faults: int
    jailed: bool


@dataclass(frozen=True)
class OperatorRecord:
    """An operator's whole record: its penalties with their requests, stake history and requests drawn."""

    summary: OperatorSummary
    penalties: list[Penalty]
    stake_history: list[StakeChange]
    requests: list[int]
    credits: list[Credit]


@dataclass(frozen=True)
class Version:
    """A published model version (VersionPublished's parameters)."""

    version: int
    artifact_sha256: str
    uris: list[str]
    tensor_spec: str
    decimals: int
    modes: list[str]
    fee: int
    max_output_bytes: int
    verifier: str
    execution_class: str
    class_id: str
    tolerance_units: int
    tolerance_ppm: int
    deprecated: bool
    published_block: int


@dataclass(frozen=True)
class ModelRecord:
    """A model: owner, versions, operators in its pools now, and requests by status (all versions and
    modes in `usage`; `usage_by_version` and `usage_by_mode` split it)."""

    model_id: str
    name: str
    owner: str
    registered_block: int
    versions: list[Version]
    operators: int
    usage: dict[str, int] = field(default_factory=dict)
    usage_by_version: dict[int, dict[str, int]] = field(default_factory=dict)
    usage_by_mode: dict[str, dict[str, int]] = field(default_factory=dict)
    error_codes: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Overview:
    """Counts for a front page."""

    checkpoint: int
    requests: int
    by_status: dict[str, int]
    by_mode: dict[str, int]
    operators: int
    models: int
    slashed: int
