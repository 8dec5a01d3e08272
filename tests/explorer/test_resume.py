"""The indexer as a process (`verinfer explorer index`): killed with SIGKILL part-way, restarted, it ends
with exactly what one uninterrupted pass indexes: nothing twice, nothing missing."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import ape
from verinfer.explorer.indexer import Indexer
from verinfer.explorer.store import ExplorerStore

from tests.conftest import ROOT, wait_for
from tests.explorer.conftest import dump
from tests.explorer.scenario import Played


def checkpoint(db: Path) -> int:
    """The indexer's checkpoint block, read-only (-1 before it has one)."""
    if not db.exists():
        return -1
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'checkpoint'").fetchone()
        except sqlite3.OperationalError:  # tables not created yet
            return -1
    return -1 if row is None else int(str(row[0]).partition(":")[0])


def start(db: Path, rpc_url: str, deployment_file: Path, log: Path, chunk: int) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "verinfer", "explorer", "index", "--rpc-url", rpc_url]
    argv += [
        "--deployment",
        str(deployment_file),
        "--db",
        str(db),
        "--chunk",
        str(chunk),
        "--interval",
        "0.05",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "offchain")}
    with open(log, "ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)


def test_kill_9_part_way__restart__same_rows_as_one_pass(
    played: Played,
    make_indexer: Callable[..., Indexer],
    rpc_url: str,
    deployment_file: Path,
    tmp_path: Path,
) -> None:
    head = ape.chain.blocks.head.number
    db, log = tmp_path / "killed.db", tmp_path / "indexer.log"
    # Small chunks: hundreds of transactions, so the kill lands part-way through the history.
    proc = start(db, rpc_url, deployment_file, log, chunk=2)
    try:
        reached = wait_for(lambda: checkpoint(db) >= head // 3 or proc.poll() is not None, 60, "a third")
        assert reached and proc.poll() is None, log.read_text()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        killed_at = checkpoint(db)
        assert 0 <= killed_at < head
        proc = start(db, rpc_url, deployment_file, log, chunk=7)
        wait_for(lambda: checkpoint(db) >= head or proc.poll() is not None, 60, "the head")
        assert proc.poll() is None, log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    argv = ["explorer", "index", "--once", "--rpc-url", rpc_url, "--deployment", str(deployment_file)]
    once = subprocess.run(
        [sys.executable, "-m", "verinfer", *argv, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT / "offchain")},
        check=False,
    )
    assert once.returncode == 0, once.stderr
    assert json.loads(once.stdout) == {"checkpoint": head, "head": head}

    reference = make_indexer("one-pass.db")
    assert reference.sync().checkpoint == head
    resumed = ExplorerStore(db, readonly=True)
    try:
        assert dump(resumed) == dump(reference.store)
        assert resumed.rows("SELECT COUNT(*) FROM events")[0][0] > 100
    finally:
        resumed.close()
