"""relayer.toml: parsing, environment overrides and one clear line per mistake."""

from pathlib import Path

import pytest
from verinfer.chain.keys import (
    DEV_KEY_ENV,
    KeyLoadError,
    load_dev_key,
    load_keystore,
    read_password,
    write_keystore,
)
from verinfer.relayer.config import ConfigError, RelayerConfig

GOOD = """
[chain]
rpc_url = "http://127.0.0.1:8545"
deployment = "deployments/local.json"
confirmations = 2

[operator]
keystore = "keys/operator.json"
password_env = "OP_PASSWORD"

[tx]
max_batch = 8
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "relayer.toml"
    path.write_text(text)
    return path


def test_load__good_file__values_and_paths_relative_to_the_file(tmp_path: Path) -> None:
    config = RelayerConfig.load(write(tmp_path, GOOD), environ={})
    assert config.chain.confirmations == 2
    assert config.tx.max_batch == 8
    assert config.chain.deployment == (tmp_path / "deployments/local.json").resolve()
    assert config.operator.keystore == (tmp_path / "keys/operator.json").resolve()
    assert config.journal.path == (tmp_path / "relayer.db").resolve()  # defaults resolve too


def test_load__environment_overrides_the_file(tmp_path: Path) -> None:
    env = {
        "VERINFER_CHAIN_CONFIRMATIONS": "5",
        "VERINFER_TESTING_LIE": "true",
        "VERINFER_TX_PRIORITY_FEE_GWEI": "2.5",
    }
    config = RelayerConfig.load(write(tmp_path, GOOD), environ=env)
    assert config.chain.confirmations == 5
    assert config.testing.lie is True
    assert config.tx.priority_fee_gwei == 2.5


def test_load__every_mistake__one_line_each(tmp_path: Path) -> None:
    text = GOOD.replace('rpc_url = "http://127.0.0.1:8545"', 'rpc_url = "ftp://x"\nconfirmaton = 1')
    text += '\n[log]\nformat = "xml"\n[bogus]\n'
    with pytest.raises(ConfigError) as info:
        RelayerConfig.load(write(tmp_path, text), environ={"VERINFER_TX_MAX_BATCH": "many"})
    lines = str(info.value).splitlines()
    assert len(lines) == 3, lines  # the type errors stop before cross-field checks
    assert any("unknown section [bogus]" in line for line in lines)
    assert any("unknown key chain.confirmaton" in line for line in lines)
    assert any("tx.max_batch (from $VERINFER_TX_MAX_BATCH): expected an integer" in line for line in lines)


def test_load__semantic_mistakes__reported_together(tmp_path: Path) -> None:
    text = GOOD.replace("http://127.0.0.1:8545", "ftp://x") + '\n[log]\nformat = "xml"\n'
    text = text.replace('keystore = "keys/operator.json"\n', "")
    with pytest.raises(ConfigError) as info:
        RelayerConfig.load(write(tmp_path, text), environ={})
    message = str(info.value)
    assert "chain.rpc_url 'ftp://x' must be an http(s):// or ws(s):// URL" in message
    assert "operator: set exactly one of keystore or ape_account" in message
    assert "log.format 'xml' must be json or text" in message


def test_load__missing_or_broken_file__one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        RelayerConfig.load(tmp_path / "nope.toml", environ={})
    with pytest.raises(ConfigError, match=r"relayer\.toml"):
        RelayerConfig.load(write(tmp_path, "[chain\n"), environ={})


def test_load__dev_key__no_keystore_needed(tmp_path: Path) -> None:
    text = GOOD.replace('keystore = "keys/operator.json"\n', "")
    assert (
        RelayerConfig.load(write(tmp_path, text), environ={}, require_keystore=False).operator.keystore
        is None
    )


KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")


def test_keystore__round_trip__and_wrong_password_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    address = write_keystore(path, KEY, "pw", iterations=2**10)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_keystore(path, "pw").address == address
    with pytest.raises(KeyLoadError, match="wrong password"):
        load_keystore(path, "nope")
    with pytest.raises(KeyLoadError, match="not found"):
        load_keystore(tmp_path / "missing.json", "pw")


def test_password__from_env_or_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OP_PASSWORD", "secret")
    assert read_password("OP_PASSWORD", None) == "secret"
    (tmp_path / "pw").write_text("from-file\n")
    assert read_password(None, tmp_path / "pw") == "from-file"
    with pytest.raises(KeyLoadError, match="NOT_SET is not set"):
        read_password("NOT_SET", None)


def test_dev_key__only_on_dev_chains(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEV_KEY_ENV, "0x" + KEY.hex())
    assert load_dev_key(31337).key == KEY
    with pytest.raises(KeyLoadError, match="only allowed on dev chains, not chain id 1"):
        load_dev_key(1)


def test_example_config__parses() -> None:
    example = Path(__file__).resolve().parents[2] / "offchain" / "relayer.example.toml"
    config = RelayerConfig.load(example, environ={})
    assert config.operator.password_env == "VERINFER_KEYSTORE_PASSWORD"
    assert config.chain.deployment.name == "local.json"


def test_watch__models_list__env_comma_separated__off_by_default(tmp_path: Path) -> None:
    assert RelayerConfig.load(write(tmp_path, GOOD), environ={}).watch.enabled is False
    text = GOOD + '\n[watch]\nmodels = ["iris-mlp", "*"]\nsample_rate = 0.25\nbond_budget = "12.5"\n'
    config = RelayerConfig.load(write(tmp_path, text), environ={})
    assert config.watch.models == ("iris-mlp", "*") and config.watch.enabled
    assert (config.watch.sample_rate, config.watch.bond_budget) == (0.25, "12.5")
    env = {"VERINFER_WATCH_MODELS": "iris-mlp, digits-attention", "VERINFER_WATCH_BOND_BUDGET": "40"}
    config = RelayerConfig.load(write(tmp_path, text), environ=env)
    assert config.watch.models == ("iris-mlp", "digits-attention") and config.watch.bond_budget == "40"


def test_watch__mistakes__one_line_each(tmp_path: Path) -> None:
    text = GOOD + '\n[watch]\nmodels = ["iris-mlp", 3]\nsample_rate = 1.5\nbond_budget = "lots"\n'
    with pytest.raises(ConfigError) as caught:
        RelayerConfig.load(write(tmp_path, text), environ={})
    lines = str(caught.value).splitlines()
    assert len(lines) == 1 and "watch.models: expected a list of strings" in lines[0]
    text = GOOD + '\n[watch]\nmodels = ["iris-mlp"]\nsample_rate = 1.5\nbond_budget = "lots"\n'
    with pytest.raises(ConfigError) as caught:
        RelayerConfig.load(write(tmp_path, text), environ={})
    lines = str(caught.value).splitlines()
    assert len(lines) == 2
    assert "watch.sample_rate must be in (0, 1], not 1.5" in lines[0]
    assert "watch.bond_budget 'lots' must be a number of tokens" in lines[1]
    text = GOOD + '\n[watch]\nmodels = ["iris-mlp"]\n'
    with pytest.raises(ConfigError, match=r"watch\.bond_budget must be above 0 when watch\.models is set"):
        RelayerConfig.load(write(tmp_path, text), environ={})
