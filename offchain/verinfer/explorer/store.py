"""The explorer's SQLite database: append-only rows, each tagged with the block of the log that made it.

Nothing is ever updated across blocks: a settlement, a deprecation or a stake change is a new row, and
what is current is the latest row. A reorg rewind is then one DELETE per table of the rows above the
fork block, done in the same transaction that moves the follower's checkpoint back, so no crash between
the two can leave a ghost row. Token amounts exceed SQLite's 64-bit integers and are kept as decimal
TEXT.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from verinfer.chain.blockstore import SqliteBlockStore

SCHEMA_VERSION = 1

# Beside the follower's `meta` and `blocks` tables (verinfer.chain.blockstore).
SCHEMA = """
-- Every log of the followed contracts, decoded (args as JSON); a request's timeline is its rows in
-- (block, log_index) order. `account` is the operator, member or account the event is about.
CREATE TABLE IF NOT EXISTS events (
    block INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    tx_hash BLOB NOT NULL,
    contract TEXT NOT NULL,
    event TEXT NOT NULL,
    request_id INTEGER,
    account TEXT,
    args TEXT NOT NULL,
    PRIMARY KEY (block, log_index)
);
CREATE INDEX IF NOT EXISTS events_request ON events (request_id) WHERE request_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_account ON events (account) WHERE account IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_tx ON events (tx_hash);
CREATE INDEX IF NOT EXISTS events_kind ON events (event);

-- RequestCreated. paid_from_credit: the hub took the fee from the requester's credit (its rule, replayed
-- on the credit ledger below: no event says which).
CREATE TABLE IF NOT EXISTS requests (
    request_id INTEGER PRIMARY KEY,
    block INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    tx_hash BLOB NOT NULL,
    requester TEXT NOT NULL,
    model_id BLOB NOT NULL,
    version INTEGER NOT NULL,
    mode INTEGER NOT NULL,
    k INTEGER NOT NULL,
    fee TEXT NOT NULL,
    input BLOB NOT NULL,
    input_hash BLOB NOT NULL,
    seed_block INTEGER NOT NULL,
    deadline INTEGER NOT NULL,
    callback_gas_limit INTEGER NOT NULL,
    digest_only INTEGER NOT NULL,
    paid_from_credit INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_model ON requests (model_id, version);
CREATE INDEX IF NOT EXISTS requests_requester ON requests (requester);
CREATE INDEX IF NOT EXISTS requests_mode ON requests (mode);

-- RequestSettled, with FeesDistributed and CallbackExecuted of the same transaction (so of the same block).
CREATE TABLE IF NOT EXISTS settlements (
    request_id INTEGER PRIMARY KEY,
    block INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    tx_hash BLOB NOT NULL,
    status INTEGER NOT NULL,
    output_digest BLOB NOT NULL,
    error_code INTEGER NOT NULL,
    output BLOB NOT NULL,
    per_operator TEXT,
    paid INTEGER,
    model_owner_fee TEXT,
    treasury_fee TEXT,
    refund TEXT,
    callback_success INTEGER
);
CREATE INDEX IF NOT EXISTS settlements_status ON settlements (status);

-- CommitteeDrawn, one row per member in member-index order.
CREATE TABLE IF NOT EXISTS committees (
    request_id INTEGER NOT NULL,
    member_index INTEGER NOT NULL,
    operator TEXT NOT NULL,
    block INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    PRIMARY KEY (request_id, member_index)
);
CREATE INDEX IF NOT EXISTS committees_operator ON committees (operator);

-- MemberPenalized, with the Slashed (reward, reporter) and Jailed of the same slash.
CREATE TABLE IF NOT EXISTS penalties (
    block INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    tx_hash BLOB NOT NULL,
    request_id INTEGER NOT NULL,
    operator TEXT NOT NULL,
    fault INTEGER NOT NULL,
    amount TEXT NOT NULL,
    reward TEXT NOT NULL,
    reporter TEXT,
    jailed INTEGER NOT NULL,
    PRIMARY KEY (block, log_index)
);
CREATE INDEX IF NOT EXISTS penalties_operator ON penalties (operator);
CREATE INDEX IF NOT EXISTS penalties_request ON penalties (request_id);

-- The hub's credit (claimable) ledger: one row per change, `balance` the account's credit after it.
-- seq orders the several rows one log makes (a fee split credits many accounts).
CREATE TABLE IF NOT EXISTS credits (
    block INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    account TEXT NOT NULL,
    request_id INTEGER,
    reason TEXT NOT NULL,
    amount TEXT NOT NULL,
    balance TEXT NOT NULL,
    PRIMARY KEY (block, log_index, seq)
);
CREATE INDEX IF NOT EXISTS credits_account ON credits (account, block, log_index, seq);
CREATE INDEX IF NOT EXISTS credits_request ON credits (request_id) WHERE request_id IS NOT NULL;

-- An operator's staking state after each staking event (Staked, UnbondingRequested, Withdrawn, Slashed,
-- Jailed, Unjailed): its stake history; the latest row is the state now.
CREATE TABLE IF NOT EXISTS operator_states (
    block INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    operator TEXT NOT NULL,
    event TEXT NOT NULL,
    amount TEXT NOT NULL,
    stake TEXT NOT NULL,
    unbonding TEXT NOT NULL,
    faults INTEGER NOT NULL,
    jailed INTEGER NOT NULL,
    jailed_until INTEGER NOT NULL,
    PRIMARY KEY (block, log_index)
);
CREATE INDEX IF NOT EXISTS operator_states_operator ON operator_states (operator, block, log_index);

-- ModelJoined (joined 1) and ModelLeft (joined 0).
CREATE TABLE IF NOT EXISTS pools (
    block INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    operator TEXT NOT NULL,
    model_id BLOB NOT NULL,
    class_id BLOB NOT NULL,
    joined INTEGER NOT NULL,
    PRIMARY KEY (block, log_index)
);
CREATE INDEX IF NOT EXISTS pools_operator ON pools (operator);
CREATE INDEX IF NOT EXISTS pools_model ON pools (model_id);

-- EndpointSet ('' withdraws).
CREATE TABLE IF NOT EXISTS endpoints (
    block INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    operator TEXT NOT NULL,
    url TEXT NOT NULL,
    PRIMARY KEY (block, log_index)
);
CREATE INDEX IF NOT EXISTS endpoints_operator ON endpoints (operator);

-- ModelRegistered; owners from it and ModelOwnershipTransferred.
CREATE TABLE IF NOT EXISTS models (
    model_id BLOB PRIMARY KEY,
    name TEXT NOT NULL,
    block INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    tx_hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS model_owners (
    block INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    model_id BLOB NOT NULL,
    owner TEXT NOT NULL,
    PRIMARY KEY (block, log_index)
);
CREATE INDEX IF NOT EXISTS model_owners_model ON model_owners (model_id);

-- VersionPublished (the whole VersionParams) and VersionDeprecated.
CREATE TABLE IF NOT EXISTS versions (
    model_id BLOB NOT NULL,
    version INTEGER NOT NULL,
    block INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    tx_hash BLOB NOT NULL,
    artifact_sha256 BLOB NOT NULL,
    uris TEXT NOT NULL,
    tensor_spec BLOB NOT NULL,
    decimals INTEGER NOT NULL,
    modes INTEGER NOT NULL,
    fee TEXT NOT NULL,
    max_output_bytes INTEGER NOT NULL,
    verifier TEXT NOT NULL,
    execution_class TEXT NOT NULL,
    class_id BLOB NOT NULL,
    tolerance_units INTEGER NOT NULL,
    tolerance_ppm INTEGER NOT NULL,
    PRIMARY KEY (model_id, version)
);
CREATE TABLE IF NOT EXISTS deprecations (
    block INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    model_id BLOB NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (block, log_index)
);

-- OptimisticMode's Challenged: the escalation (a consensus request) that decides a post.
CREATE TABLE IF NOT EXISTS challenges (
    request_id INTEGER PRIMARY KEY,
    block INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    challenger TEXT NOT NULL,
    escalation_id INTEGER NOT NULL,
    fee TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS challenges_escalation ON challenges (escalation_id);

-- The hub's treasury: TreasuryUpdated, and the constructor's (which emits nothing) read from the chain
-- when first needed (log_index -1).
CREATE TABLE IF NOT EXISTS treasuries (
    block INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    address TEXT NOT NULL,
    PRIMARY KEY (block, log_index)
);
"""

# Tables of indexed rows (every one has `block`), in the order a rewind deletes from them.
DATA_TABLES = (
    "events",
    "requests",
    "settlements",
    "committees",
    "penalties",
    "credits",
    "operator_states",
    "pools",
    "endpoints",
    "models",
    "model_owners",
    "versions",
    "deprecations",
    "challenges",
    "treasuries",
)


class ExplorerStore(SqliteBlockStore):
    """The explorer database: the follower's BlockStore, whose `rewind` also deletes the indexed rows above
    the fork block; every write method is one transaction (they nest)."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        # A process crash loses nothing committed in WAL mode at NORMAL; the index is re-derivable from
        # the chain, so the last transactions before a power cut need not be.
        super().__init__(path, SCHEMA, synchronous="NORMAL", readonly=readonly)

    def bind(self, identity: Mapping[str, str]) -> None:
        """Ties the database to one chain and hub; refuses to mix them (IdentityMismatch)."""
        with self.transaction():
            super().bind(identity)
            self.set_meta("schema_version", str(SCHEMA_VERSION))

    def insert(self, table: str, values: Mapping[str, Any]) -> None:
        """INSERT of one row given by column (names come from the code, never from the chain)."""
        names = ", ".join(values)
        marks = ", ".join(f":{name}" for name in values)
        with self.transaction() as db:
            db.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", dict(values))

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> None:
        with self.transaction() as db:
            db.execute(sql, params)

    def delete_above(self, block: int) -> None:
        """Forgets every indexed row made in a block after `block`."""
        with self.transaction() as db:
            for table in DATA_TABLES:
                db.execute(f"DELETE FROM {table} WHERE block > ?", (block,))

    def _forget_after(self, number: int) -> None:
        self.delete_above(number)
