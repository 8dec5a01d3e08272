"""The relayer's journal: requests awaiting their committee draw, and journals of older relayers."""

import sqlite3
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from verinfer.chain.attestations import Domain, sign
from verinfer.relayer.journal import SCHEMA_VERSION, Journal, RequestRow, State
from verinfer.relayer.modes.attested import Equivocation, sign_once

# The requests table as schema version 1 wrote it (committees were drawn in the request itself).
V1_REQUESTS = """
CREATE TABLE requests (
    request_id INTEGER PRIMARY KEY, state TEXT NOT NULL, model_id BLOB NOT NULL, version INTEGER NOT NULL,
    input BLOB NOT NULL, input_hash BLOB NOT NULL, k INTEGER NOT NULL, committee TEXT NOT NULL,
    member INTEGER NOT NULL, created_block INTEGER NOT NULL, commit_deadline INTEGER NOT NULL,
    reveal_deadline INTEGER NOT NULL, callback_gas INTEGER NOT NULL DEFAULT 0,
    committed_mask INTEGER NOT NULL DEFAULT 0, output BLOB, digest BLOB, salt BLOB, error_code INTEGER,
    status INTEGER, reason TEXT, seen_at REAL NOT NULL, updated_at REAL NOT NULL
);
INSERT INTO requests (request_id, state, model_id, version, input, input_hash, k, committee, member,
    created_block, commit_deadline, reveal_deadline, seen_at, updated_at)
VALUES (7, 'committed', x'01', 1, x'02', x'03', 1, '["0xabc"]', 0, 5, 25, 45, 0, 0);
"""


def row(request_id: int, state: State, created: int, seed: int) -> RequestRow:
    return RequestRow(
        request_id=request_id,
        state=state,
        model_id=b"\x01" * 32,
        version=1,
        input=b"x",
        input_hash=b"h",
        k=3,
        committee=(),
        member=-1,
        created_block=created,
        seed_block=seed,
        commit_deadline=seed + 20,
        reveal_deadline=seed + 40,
        callback_gas=0,
        digest_only=True,
        seen_at=0.0,
        updated_at=0.0,
    )


def test_version_1_journal__gains_the_new_columns__rows_load(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    with sqlite3.connect(path) as db:
        db.executescript(V1_REQUESTS)

    journal = Journal(path)
    journal.bind({"operator": "0xabc"})

    old = journal.get(7)
    assert old is not None and old.state == State.COMMITTED and old.committee == ("0xabc",)
    assert (old.seed_block, old.digest_only, old.max_output_bytes, old.mode) == (0, False, 0, 1)
    assert journal.get_meta("schema_version") == str(SCHEMA_VERSION) == "4"
    assert [r.request_id for r in journal.active()] == [7]


def test_awaiting_draw__active__then_not_member__terminal_and_not_watched(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.db")
    journal.add_request(row(1, State.AWAITING_DRAW, 10, 11))
    assert [r.state for r in journal.active()] == [State.AWAITING_DRAW]

    journal.update(1, State.NOT_MEMBER, detail="previewed", committee=("0xdef",), member=-1)

    stored = journal.get(1)
    assert stored is not None and stored.committee == ("0xdef",) and stored.digest_only
    assert State.NOT_MEMBER.terminal and journal.active() == []
    assert [t[0] for t in journal.transitions(1)] == ["awaiting_draw", "not_member"]


def test_reorg_reach__created_after_the_fork__or_seeded_at_or_after_it(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.db")
    for request_id, created in ((1, 8), (2, 9), (3, 10), (4, 11)):
        journal.add_request(row(request_id, State.SEEN, created, created + 1))

    assert [r.request_id for r in journal.since_block(10)] == [4]
    assert [r.request_id for r in journal.seeded_since(10)] == [2, 3]


# ------------------------------------------------------------------ attestations (schema version 3)

HUB = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
DOMAIN = Domain(chain_id=31337, verifying_contract=HUB)
OPERATOR: LocalAccount = Account.from_key(b"\x01" * 32)
PEER: LocalAccount = Account.from_key(b"\x02" * 32)


def test_version_2_journal__gains_the_attestations_table__rows_kept(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    journal = Journal(path)
    journal.bind({"operator": "0xabc"})
    journal.add_request(row(1, State.SEEN, 10, 11))
    journal.close()
    with sqlite3.connect(path) as db:  # what a version-2 relayer left behind
        db.executescript(
            "DROP TABLE attestations; ALTER TABLE requests DROP COLUMN mode;"
            " UPDATE meta SET value = '2' WHERE key = 'schema_version';"
        )

    journal = Journal(path)
    journal.bind({"operator": "0xabc"})

    assert journal.get_meta("schema_version") == "4" and journal.get(1) is not None
    assert journal.get(1).mode == 1  # type: ignore[union-attr]  # every version-2 request was consensus
    attestation = sign(OPERATOR, DOMAIN, 1, keccak(b"out"))
    assert journal.add_attestation(attestation, own=True) and journal.attestations(1) == [attestation]


def test_add_attestation__false_when_already_there__per_request_and_digest(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.db")
    mine, theirs = sign(OPERATOR, DOMAIN, 1, keccak(b"out")), sign(PEER, DOMAIN, 1, keccak(b"out"))
    dissent = sign(PEER, DOMAIN, 1, keccak(b"other"))

    assert journal.add_attestation(mine, own=True)
    assert journal.add_attestation(theirs, own=False)
    assert not journal.add_attestation(theirs, own=False)
    assert journal.add_attestation(dissent, own=False)  # a peer's equivocation is evidence, kept

    assert journal.attestations(1) == [mine, theirs, dissent] and journal.attestations(2) == []
    assert journal.own_attestation(1) == mine and journal.own_attestation(2) is None


def test_add_attestation__a_second_own_digest__refused_by_the_journal_itself(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.db")
    journal.add_attestation(sign(OPERATOR, DOMAIN, 1, keccak(b"out")), own=True)

    with pytest.raises(sqlite3.IntegrityError):
        journal.add_attestation(sign(OPERATOR, DOMAIN, 1, keccak(b"other")), own=True)


def test_sign_once__same_digest__the_journaled_attestation__across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    journal = Journal(path)
    first = sign_once(journal, OPERATOR, DOMAIN, 1, keccak(b"out"))
    assert journal.own_attestation(1) == first
    journal.close()

    journal = Journal(path)
    assert sign_once(journal, OPERATOR, DOMAIN, 1, keccak(b"out")) == first
    assert journal.attestations(1) == [first]


def test_sign_once__another_digest__equivocation__across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    journal = Journal(path)
    first = sign_once(journal, OPERATOR, DOMAIN, 1, keccak(b"out"))
    with pytest.raises(Equivocation, match="already signed"):
        sign_once(journal, OPERATOR, DOMAIN, 1, keccak(b"other"))
    journal.close()

    journal = Journal(path)
    with pytest.raises(Equivocation, match="already signed"):
        sign_once(journal, OPERATOR, DOMAIN, 1, keccak(b"other"))
    assert journal.attestations(1) == [first]
    assert (
        sign_once(journal, OPERATOR, DOMAIN, 2, keccak(b"other")).request_id == 2
    )  # other requests are free


def test_sign_once__own_signature_only_received_from_a_peer__still_binds(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.db")
    mine = sign(OPERATOR, DOMAIN, 1, keccak(b"out"))
    journal.add_attestation(mine, own=False)  # e.g. pulled back from a peer after the own row was lost

    with pytest.raises(Equivocation):
        sign_once(journal, OPERATOR, DOMAIN, 1, keccak(b"other"))
    assert sign_once(journal, OPERATOR, DOMAIN, 1, keccak(b"out")) == mine
    assert journal.own_attestation(1) == mine
