"""`verinfer relayer ...`: one error line and a meaningful exit code; status summarises the journal."""

import json
from pathlib import Path

from click.testing import CliRunner
from pytest import MonkeyPatch
from verinfer.chain.deployment import CONTRACTS
from verinfer.cli.main import cli
from verinfer.relayer.journal import Journal, RequestRow, State

CONFIG = """
[chain]
rpc_url = "{rpc}"
deployment = "{deployment}"
[operator]
keystore = "missing.json"
password_env = "NOPE_PASSWORD"
[journal]
path = "journal.db"
"""


def config(tmp_path: Path, rpc: str = "http://127.0.0.1:9", deployment: str = "local.json") -> Path:
    path = tmp_path / "relayer.toml"
    path.write_text(CONFIG.format(rpc=rpc, deployment=deployment))
    return path


def test_run__bad_config__one_line_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "relayer.toml"
    path.write_text('[chain]\nrpc_url = "nope"\n')
    result = CliRunner().invoke(cli, ["relayer", "run", "--config", str(path)])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and "chain.rpc_url 'nope'" in result.output
    assert "Traceback" not in result.output


def test_run__missing_deployment_record__one_line_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["relayer", "run", "--config", str(config(tmp_path))])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: deployment record {tmp_path / 'local.json'} not found (run `ape run deploy`)"
    ]


def test_run__unreachable_rpc__exit_3(tmp_path: Path) -> None:
    (tmp_path / "local.json").write_text(json.dumps(_record()))
    result = CliRunner().invoke(cli, ["relayer", "run", "--config", str(config(tmp_path))])
    assert result.exit_code == 3
    assert result.output.strip() == "error: eth_chainId: http://127.0.0.1:9 unreachable (ConnectionError)"


def test_status__summarises_the_journal(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.db")
    journal.bind({"operator": "0xabc", "chain_id": "31337", "hub": "0xdef"})
    journal.advance(42, b"\x11" * 32, [], 256)
    for request_id, state in ((1, State.SETTLED), (2, State.COMMITTED)):
        journal.add_request(_row(request_id))
        journal.update(request_id, state, status=2 if state == State.SETTLED else None)
    journal.close()
    result = CliRunner().invoke(cli, ["relayer", "status", "--config", str(config(tmp_path)), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["checkpoint"] == 42 and summary["operator"] == "0xabc"
    assert summary["requests"] == {"settled": 1, "committed": 1}
    assert summary["active"] == [2]


def _record() -> dict[str, object]:
    contract = {"address": "0x" + "11" * 20, "abi": []}
    return {"chain_id": 31337, "deploy_block": 1, "contracts": dict.fromkeys(CONTRACTS, contract)}


def _row(request_id: int) -> RequestRow:
    return RequestRow(
        request_id=request_id,
        state=State.SEEN,
        model_id=b"\x01" * 32,
        version=1,
        input=b"x",
        input_hash=b"h",
        k=1,
        committee=("0xabc",),
        member=0,
        created_block=1,
        commit_deadline=10,
        reveal_deadline=20,
        callback_gas=0,
        seen_at=0.0,
        updated_at=0.0,
    )


def test_run__x86_cpu_without_fma3__refuses_before_any_rpc(tmp_path: Path, monkeypatch: MonkeyPatch) -> None:
    from verinfer.models import execution

    monkeypatch.setattr(execution, "cpuid_flags", lambda: frozenset({"avx"}))  # what CPUID would report
    monkeypatch.setattr(execution.platform, "machine", lambda: "x86_64")
    (tmp_path / "local.json").write_text(json.dumps(_record()))
    # The RPC URL is unreachable: reaching it would exit 3, so exit 2 shows the CPU was checked first.
    result = CliRunner().invoke(cli, ["relayer", "run", "--config", str(config(tmp_path))])
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: ") and "FMA3" in line
