"""SQLite databases that follow the chain: nested transactions, a `meta` table tied to one chain, and the
follower's BlockStore (block hashes in `blocks`, checkpoint and pending reorg in `meta`).

A database class gets all of it by inheriting `SqliteBlockStore`; `_forget_after` lets it drop what it
derived from blocks a rewind abandons, in the same transaction that moves the checkpoint back.
"""

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

BASE_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (number INTEGER PRIMARY KEY, hash BLOB NOT NULL);
"""


class IdentityMismatch(RuntimeError):
    """The database was written for another chain, contract or account."""


class SqliteBlockStore:
    """One SQLite connection in WAL mode shared by threads, with `schema` created on open (`readonly`
    opens an existing file without writing). Every method is one transaction; they nest."""

    def __init__(self, path: Path, schema: str, *, synchronous: str = "FULL", readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly:
            self._db = sqlite3.connect(
                f"file:{self.path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
            )
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.executescript(BASE_SCHEMA + schema)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._depth = 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Groups writes atomically; nests (only the outermost commits)."""
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self._db
            except BaseException:
                self._depth -= 1
                if outer:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._db.execute("COMMIT")

    def rows(self, sql: str, params: Sequence[object] | Mapping[str, object] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def row(self, sql: str, params: Sequence[object] | Mapping[str, object] = ()) -> sqlite3.Row | None:
        with self._lock:
            found: sqlite3.Row | None = self._db.execute(sql, params).fetchone()
            return found

    # ------------------------------------------------------------ meta and identity

    def get_meta(self, key: str) -> str | None:
        found = self.row("SELECT value FROM meta WHERE key = ?", (key,))
        return None if found is None else str(found[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def bind(self, identity: Mapping[str, str]) -> None:
        """Ties the database to one chain, contract or account; IdentityMismatch if it has another."""
        with self.transaction():
            for key, value in identity.items():
                stored = self.get_meta(key)
                if stored is None:
                    self.set_meta(key, value)
                elif stored.lower() != value.lower():
                    raise IdentityMismatch(f"{self.path} belongs to {key} {stored}, not {value}")

    # ------------------------------------------------------------ the follower's BlockStore

    def _forget_after(self, number: int) -> None:
        """Drops what was derived from blocks after `number` (called inside `rewind`'s transaction)."""
        return None

    def checkpoint(self) -> tuple[int, bytes | None] | None:
        value = self.get_meta("checkpoint")
        if value is None:
            return None
        number, _, digest = value.partition(":")
        return int(number), bytes.fromhex(digest) if digest else None

    def advance(self, number: int, block_hash: bytes, seen: Sequence[tuple[int, bytes]], window: int) -> None:
        """Moves the checkpoint to `number`, remembering the hashes of the blocks read (within `window`)."""
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO blocks VALUES (?, ?)", [*seen, (number, block_hash)])
            db.execute("DELETE FROM blocks WHERE number <= ?", (number - window,))
            self.set_meta("checkpoint", f"{number}:{block_hash.hex()}")

    def known_blocks(self) -> list[tuple[int, bytes]]:
        """Remembered (number, hash) pairs, newest first."""
        return [
            (int(r[0]), bytes(r[1]))
            for r in self.rows("SELECT number, hash FROM blocks ORDER BY number DESC")
        ]

    def rewind(self, number: int, block_hash: bytes | None, old_checkpoint: int) -> None:
        """Moves the checkpoint back to `number`, forgetting what came after it, and records the reorg
        until `reorg_handled` (one still pending widens to cover both)."""
        fork, old = number, old_checkpoint
        pending = self.pending_reorg()
        if pending is not None:
            fork, old = min(fork, pending[0]), max(old, pending[1])
        with self.transaction() as db:
            db.execute("DELETE FROM blocks WHERE number > ?", (number,))
            self._forget_after(number)
            self.set_meta("checkpoint", f"{number}:{block_hash.hex() if block_hash else ''}")
            self.set_meta("reorg", f"{fork}:{old}")

    def pending_reorg(self) -> tuple[int, int] | None:
        """(fork block, old checkpoint) of a reorg not handled yet."""
        value = self.get_meta("reorg")
        if not value:
            return None
        fork, _, old = value.partition(":")
        return int(fork), int(old)

    def reorg_handled(self) -> None:
        self.set_meta("reorg", "")
