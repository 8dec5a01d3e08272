"""The relayer's durable memory: SQLite in WAL mode, one row per request and an append-only transition log."""

import json
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from verinfer.chain.attestations import Attestation
from verinfer.chain.blockstore import IdentityMismatch, SqliteBlockStore
from verinfer.chain.txmanager import TxRow, TxState

SCHEMA_VERSION = 4

# Besides the `meta` and `blocks` tables every SqliteBlockStore has.
SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    request_id INTEGER PRIMARY KEY,
    state TEXT NOT NULL,
    model_id BLOB NOT NULL,
    version INTEGER NOT NULL,
    input BLOB NOT NULL,
    input_hash BLOB NOT NULL,
    k INTEGER NOT NULL,
    committee TEXT NOT NULL,
    member INTEGER NOT NULL,
    created_block INTEGER NOT NULL,
    seed_block INTEGER NOT NULL DEFAULT 0,
    commit_deadline INTEGER NOT NULL,
    reveal_deadline INTEGER NOT NULL,
    callback_gas INTEGER NOT NULL DEFAULT 0,
    digest_only INTEGER NOT NULL DEFAULT 0,
    max_output_bytes INTEGER NOT NULL DEFAULT 0,
    mode INTEGER NOT NULL DEFAULT 1,
    committed_mask INTEGER NOT NULL DEFAULT 0,
    output BLOB,
    digest BLOB,
    salt BLOB,
    error_code INTEGER,
    status INTEGER,
    reason TEXT,
    seen_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_state ON requests (state);
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id INTEGER NOT NULL,
    state TEXT NOT NULL,
    at REAL NOT NULL,
    detail TEXT
);
CREATE TABLE IF NOT EXISTS txs (
    hash BLOB PRIMARY KEY,
    nonce INTEGER NOT NULL,
    kind TEXT NOT NULL,
    request_ids TEXT NOT NULL,
    to_address TEXT NOT NULL,
    data BLOB NOT NULL,
    raw BLOB NOT NULL,
    max_fee INTEGER NOT NULL,
    priority_fee INTEGER NOT NULL,
    gas INTEGER NOT NULL,
    state TEXT NOT NULL,
    sent_at REAL NOT NULL,
    block INTEGER,
    gas_used INTEGER
);
CREATE INDEX IF NOT EXISTS txs_state ON txs (state);
-- Attested mode (schema version 3): signatures on output digests; sent = 1 marks this operator's own,
-- the one it signed and sends to its peers, 0 one received from a peer.
CREATE TABLE IF NOT EXISTS attestations (
    request_id INTEGER NOT NULL,
    signer TEXT NOT NULL,
    output_digest BLOB NOT NULL,
    signature BLOB NOT NULL,
    sent INTEGER NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (request_id, signer, output_digest)
);
-- Two own signatures on different digests for one request are slashable: refused here as well.
CREATE UNIQUE INDEX IF NOT EXISTS attestations_own_once ON attestations (request_id) WHERE sent = 1;
"""

# Columns added since schema version 1, with the values version-1 rows get (their committees were
# drawn in the request itself, so no seed block is pending).
MIGRATIONS = {
    "seed_block": "INTEGER NOT NULL DEFAULT 0",
    "digest_only": "INTEGER NOT NULL DEFAULT 0",
    "max_output_bytes": "INTEGER NOT NULL DEFAULT 0",
    "mode": "INTEGER NOT NULL DEFAULT 1",  # version 4: requests of every mode; before, consensus only
}


class State(StrEnum):
    """Where one request stands for this operator."""

    AWAITING_DRAW = "awaiting_draw"  # for a model this operator serves; the committee is not known yet
    SEEN = "seen"  # member of the committee (or watching its post), not executed yet
    EXECUTED = "executed"  # output, digest and salt journaled; nothing sent
    SIGNED = "signed"  # attested mode: own attestation journaled, exchanged with peers until settled
    COMMIT_SENT = "commit_sent"
    COMMITTED = "committed"
    REVEAL_SENT = "reveal_sent"
    REVEALED = "revealed"
    POST_SENT = "post_sent"  # optimistic mode, the poster
    POSTED = "posted"  # optimistic mode: finalized after the challenge window, resolved if challenged
    CHALLENGE_SENT = "challenge_sent"  # optimistic mode, a watcher that computed another output
    CHALLENGED = "challenged"  # optimistic mode: this watcher's challenge stands until its escalation ends
    CHECKED = "checked"  # terminal: a watcher compared the post with its own output (detail: how it ended)
    SETTLED = "settled"  # terminal: the hub settled it (status recorded)
    REFUSED = "refused"  # terminal: the artifact failed its hash check or the model is unusable
    MISSED = "missed"  # terminal: a window closed before this operator could act
    REORGED = "reorged"  # its block left the chain; waiting to see the request again
    NOT_MEMBER = "not_member"  # terminal, not an error: drawn without this operator

    @property
    def terminal(self) -> bool:
        return self in (State.SETTLED, State.REFUSED, State.MISSED, State.NOT_MEMBER, State.CHECKED)


ACTIVE = tuple(s.value for s in State if not s.terminal)
# Terminal states whose settlement is still watched (refused and missed requests are counted in
# the metrics when they settle); a request that is not this operator's is not watched at all.
WATCHED = tuple(
    s.value for s in State if s.terminal and s not in (State.SETTLED, State.NOT_MEMBER, State.CHECKED)
)


@dataclass
class RequestRow:
    """One request for a model this operator serves; `committee` is empty and `member` -1 until the
    committee is known."""

    request_id: int
    state: State
    model_id: bytes
    version: int
    input: bytes
    input_hash: bytes
    k: int
    committee: tuple[str, ...]
    member: int
    created_block: int
    commit_deadline: int
    reveal_deadline: int
    callback_gas: int
    seen_at: float
    updated_at: float
    seed_block: int = 0
    digest_only: bool = False
    max_output_bytes: int = 0  # 0: not known (no check)
    mode: int = 1  # the verification mode bit (1 consensus, 8 attested)
    committed_mask: int = 0
    output: bytes | None = None
    digest: bytes | None = None
    salt: bytes | None = None
    error_code: int | None = None
    status: int | None = None
    reason: str | None = None


class JournalError(RuntimeError):
    """The journal belongs to another operator, chain or hub."""


class Journal(SqliteBlockStore):
    """Thread-safe access to the journal; every method is one transaction."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Brings a journal written by an older relayer up to SCHEMA_VERSION (adds missing columns; tables
        added since, like attestations in version 3, are created by SCHEMA)."""
        with self._lock:
            have = {str(r[1]) for r in self._db.execute("PRAGMA table_info(requests)").fetchall()}
            for column, declaration in MIGRATIONS.items():
                if column not in have:
                    self._db.execute(f"ALTER TABLE requests ADD COLUMN {column} {declaration}")

    def bind(self, identity: Mapping[str, str]) -> None:
        """Ties the journal to one operator, chain and hub; refuses to mix them."""
        try:
            with self.transaction():
                super().bind(identity)
                self.set_meta("schema_version", str(SCHEMA_VERSION))
        except IdentityMismatch as exc:
            raise JournalError(f"journal {exc}") from None

    # ------------------------------------------------------------ requests

    def add_request(self, row: RequestRow, detail: str | None = None) -> bool:
        """Inserts a newly seen request; False if it is already journaled."""
        values = {**vars(row), "state": row.state.value, "committee": json.dumps(list(row.committee))}
        with self.transaction():
            if not self._insert("requests", values, or_ignore=True):
                return False
            self._log(row.request_id, row.state, detail)
            return True

    def replace_request(self, row: RequestRow, detail: str) -> None:
        """Drops what was known about a request (a reorg changed it) and starts it again."""
        with self.transaction() as db:
            db.execute("DELETE FROM requests WHERE request_id = ?", (row.request_id,))
            self.add_request(row, detail)

    def get(self, request_id: int) -> RequestRow | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM requests WHERE request_id = ?", (request_id,)).fetchone()
        return None if row is None else _request(row)

    def active(self) -> list[RequestRow]:
        """Requests still needing work, or (refused, missed) whose settlement is not yet seen."""
        active, watched = ",".join("?" * len(ACTIVE)), ",".join("?" * len(WATCHED))
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM requests WHERE state IN ({active})"
                f" OR (state IN ({watched}) AND status IS NULL) ORDER BY request_id",
                (*ACTIVE, *WATCHED),
            ).fetchall()
        return [_request(r) for r in rows]

    def since_block(self, block: int) -> list[RequestRow]:
        """Requests created after `block`."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM requests WHERE created_block > ?", (block,)).fetchall()
        return [_request(r) for r in rows]

    def seeded_since(self, block: int) -> list[RequestRow]:
        """Requests created at or before `block` whose seed block is `block` or later: a reorg from
        there may have changed their committee."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM requests WHERE created_block <= ? AND seed_block >= ?", (block, block)
            ).fetchall()
        return [_request(r) for r in rows]

    def update(
        self, request_id: int, state: State | None = None, detail: str | None = None, **fields: Any
    ) -> None:
        """Sets columns and, with `state`, records the transition."""
        sets = dict(fields)
        if "committee" in sets:
            sets["committee"] = json.dumps(list(sets["committee"]))
        if state is not None:
            sets["state"] = state.value
        sets["updated_at"] = time.time()
        assignments = ", ".join(f"{name} = ?" for name in sets)
        with self.transaction() as db:
            db.execute(
                f"UPDATE requests SET {assignments} WHERE request_id = ?", (*sets.values(), request_id)
            )
            if state is not None:
                self._log(request_id, state, detail)

    def _insert(self, table: str, values: dict[str, Any], or_ignore: bool = False) -> bool:
        """INSERT of a row given by column; True if a row was written."""
        names = ", ".join(values)
        marks = ", ".join(f":{name}" for name in values)
        verb = "INSERT OR IGNORE" if or_ignore else "INSERT"
        return bool(self._db.execute(f"{verb} INTO {table} ({names}) VALUES ({marks})", values).rowcount)

    def _log(self, request_id: int, state: State, detail: str | None) -> None:
        self._db.execute(
            "INSERT INTO transitions (request_id, state, at, detail) VALUES (?, ?, ?, ?)",
            (request_id, state.value, time.time(), detail),
        )

    def transitions(self, request_id: int) -> list[tuple[str, float, str | None]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT state, at, detail FROM transitions WHERE request_id = ? ORDER BY id", (request_id,)
            ).fetchall()
        return [(str(r[0]), float(r[1]), r[2]) for r in rows]

    def state_counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM requests GROUP BY state").fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    # ------------------------------------------------------------ transactions

    def add_tx(self, tx: TxRow) -> None:
        values = {**vars(tx), "state": tx.state.value, "request_ids": json.dumps(list(tx.request_ids))}
        with self.transaction():
            self._insert("txs", values)

    def set_tx(
        self, tx_hash: bytes, state: TxState, block: int | None = None, gas_used: int | None = None
    ) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE txs SET state = ?, block = ?, gas_used = ? WHERE hash = ?",
                (state.value, block, gas_used, tx_hash),
            )

    def txs(self, *states: TxState) -> list[TxRow]:
        marks = ",".join("?" * len(states))
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM txs WHERE state IN ({marks}) ORDER BY nonce, sent_at",
                [s.value for s in states],
            ).fetchall()
        return [_tx(r) for r in rows]

    def txs_mined_after(self, block: int) -> list[TxRow]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM txs WHERE state IN ('mined', 'failed') AND block > ? ORDER BY nonce", (block,)
            ).fetchall()
        return [_tx(r) for r in rows]

    def tx_counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM txs GROUP BY state").fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    # ------------------------------------------------------------ attestations

    def add_attestation(self, att: Attestation, own: bool) -> bool:
        """Stores a verified attestation; False if it is already journaled (a received copy of an own
        attestation becomes own). An own attestation on a second digest raises sqlite3.IntegrityError."""
        values = {
            "request_id": att.request_id,
            "signer": att.signer,
            "output_digest": att.output_digest,
            "signature": att.signature,
            "sent": int(own),
            "received_at": time.time(),
        }
        with self.transaction() as db:
            # Not INSERT OR IGNORE: that would also silence attestations_own_once.
            inserted = db.execute(
                "INSERT INTO attestations (request_id, signer, output_digest, signature, sent, received_at)"
                " VALUES (:request_id, :signer, :output_digest, :signature, :sent, :received_at)"
                " ON CONFLICT (request_id, signer, output_digest) DO NOTHING",
                values,
            ).rowcount
            if inserted:
                return True
            if own:
                db.execute(
                    "UPDATE attestations SET sent = 1"
                    " WHERE request_id = ? AND signer = ? AND output_digest = ?",
                    (att.request_id, att.signer, att.output_digest),
                )
            return False

    def attestations(self, request_id: int) -> list[Attestation]:
        """The attestations journaled for a request, in the order they arrived."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM attestations WHERE request_id = ? ORDER BY received_at, signer", (request_id,)
            ).fetchall()
        return [_attestation(r) for r in rows]

    def own_attestation(self, request_id: int) -> Attestation | None:
        """What this operator signed for a request, if it did."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM attestations WHERE request_id = ? AND sent = 1", (request_id,)
            ).fetchone()
        return None if row is None else _attestation(row)


def _request(row: sqlite3.Row) -> RequestRow:
    values = dict(row)
    values["state"] = State(values["state"])
    values["committee"] = tuple(json.loads(values["committee"]))
    values["digest_only"] = bool(values["digest_only"])
    for key in ("model_id", "input", "input_hash", "output", "digest", "salt"):
        if values[key] is not None:
            values[key] = bytes(values[key])
    return RequestRow(**values)


def _tx(row: sqlite3.Row) -> TxRow:
    values = dict(row)
    values["state"] = TxState(values["state"])
    values["request_ids"] = tuple(json.loads(values["request_ids"]))
    for key in ("hash", "raw", "data"):
        values[key] = bytes(values[key])
    return TxRow(**values)


def _attestation(row: sqlite3.Row) -> Attestation:
    return Attestation(
        int(row["request_id"]), bytes(row["output_digest"]), str(row["signer"]), bytes(row["signature"])
    )
