"""What a new user gets wrong, caught before anything connects or pays: one `error:` line, exit code 2."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from verinfer.chain.keys import CLI_KEY_OPTIONS, KeyLoadError, load_account, write_keystore
from verinfer.cli.main import cli
from verinfer.client.client import parse_model_ref
from verinfer.client.errors import InputMismatch, InvalidModelName
from verinfer.client.inputs import encode_inputs
from verinfer.models.codec import DType, IOSpec, TensorSpec
from verinfer.models.names import NAME_RULE, model_name_problem

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
SPEC = TensorSpec((IOSpec("features", DType.FLOAT, (0, 4)),), ())


def one_error_line(args: list[str], code: int = 2) -> str:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


# ------------------------------------------------------------ model names


@pytest.mark.parametrize("name", ["iris-mlp", "a", "0day", "v1.2_b-c", "x" * 64])
def test_model_name__valid(name: str) -> None:
    assert model_name_problem(name) is None


@pytest.mark.parametrize(
    "name", ["", "vad@2", "Bad Name!!", "Iris", "-lead", ".hidden", "_x", "x" * 65, "é", "a\n"]
)
def test_model_name__invalid__says_the_rule(name: str) -> None:
    problem = model_name_problem(name)
    assert problem is not None and NAME_RULE in problem


def test_parse_model_ref__invalid_name__invalid_model_name() -> None:
    with pytest.raises(InvalidModelName, match="lowercase ASCII"):
        parse_model_ref("Bad Name!!@1")
    assert parse_model_ref("iris-mlp@2") == ("iris-mlp", 2)


@pytest.mark.parametrize("name", ["vad@2", "Bad Name!!"])
def test_models_publish__invalid_name__refused_before_anything(tmp_path: Path, name: str) -> None:
    artifact = tmp_path / "m.onnx"
    artifact.write_bytes(b"not even onnx")
    line = one_error_line(["models", "publish", str(artifact), "--name", name, "--decimals", "2"])
    assert f"model name {name!r} is not valid" in line and NAME_RULE in line


# ------------------------------------------------------------ inputs


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ([[5.1, "a", 1.4, 0.2]], "must hold only numbers, found 'a'"),
        ([[5.1, None, 1.4, 0.2]], "must hold only numbers, found None"),
        ([[5.1, 3.5, 1.4, 0.2], [1.0]], "not a rectangular array"),
    ],
)
def test_encode_inputs__non_numeric__input_mismatch(value: object, says: str) -> None:
    with pytest.raises(InputMismatch, match=says.replace("(", r"\(")):
        encode_inputs(SPEC, value)


# ------------------------------------------------------------ options checked at parse time


@pytest.mark.parametrize(
    "args",
    [
        ["models", "list", "--rpc-url", "notaurl"],
        ["operators", "list", "--rpc-url", "localhost:8545"],
        ["requests", "show", "1", "--rpc-url", "notaurl"],
        ["requests", "wait", "1", "--rpc-url", "notaurl"],
        ["requests", "finalize", "1", "--rpc-url", "notaurl"],
        ["infer", "--model", "iris-mlp", "--input", "[[1,2,3,4]]", "--rpc-url", "notaurl"],
        ["operator", "stake", "1", "--rpc-url", "notaurl"],
        ["devnet", "up", "--rpc-url", "notaurl"],
    ],
)
def test_rpc_url__not_a_url__one_line_exit_2(args: list[str]) -> None:
    assert "is not a node URL: it must start with http://" in one_error_line(args)


def test_rpc_url__from_the_environment__checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERINFER_RPC_URL", "notaurl")
    assert "'--rpc-url'" in one_error_line(["models", "list"])


@pytest.mark.parametrize("timeout", ["-1", "0"])
def test_infer__timeout_not_positive__refused_before_paying(timeout: str) -> None:
    line = one_error_line(["infer", "--model", "m", "--input", "[[1]]", "--timeout", timeout])
    assert "'--timeout'" in line


@pytest.mark.parametrize("timeout", ["-1", "0"])
def test_requests_wait__timeout_not_positive__refused(timeout: str) -> None:
    assert "'--timeout'" in one_error_line(["requests", "wait", "1", "--timeout", timeout])


def test_infer__unknown_mode__refused() -> None:
    assert "'--mode'" in one_error_line(["infer", "--model", "m", "--input", "[[1]]", "--mode", "oracle"])


def test_devnet_up__block_time_not_positive__refused() -> None:
    assert "'--block-time'" in one_error_line(["devnet", "up", "--block-time", "0"])


def test_store_serve__missing_directory__refused_and_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    line = one_error_line(["store", "serve", "--dir", str(missing), "--listen", "127.0.0.1:0"])
    assert "does not exist" in line and not missing.exists()


def test_relayer_status__no_journal__exit_2(tmp_path: Path) -> None:
    config = tmp_path / "relayer.toml"
    config.write_text('[chain]\nrpc_url = "http://127.0.0.1:9"\ndeployment = "d.json"\n')
    assert "no journal at" in one_error_line(["relayer", "status", "--config", str(config)])


# ------------------------------------------------------------ keys: each mistake its own message


@pytest.fixture
def ape_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("APE_DATA_FOLDER", str(tmp_path / "ape"))
    return tmp_path / "ape"


def test_load_account__missing_keystore__says_not_found_before_asking_for_a_password(tmp_path: Path) -> None:
    with pytest.raises(KeyLoadError) as caught:
        load_account(tmp_path / "missing.json", None, None, None, CLI_KEY_OPTIONS)
    assert str(caught.value) == f"--keystore {tmp_path / 'missing.json'} not found"


@pytest.mark.parametrize("content", ['{"a": 1}', "[1, 2]", "not json", '{"crypto": "x"}'])
def test_load_account__file_that_is_not_a_keystore__says_so(tmp_path: Path, content: str) -> None:
    path = tmp_path / "k.json"
    path.write_text(content)
    with pytest.raises(KeyLoadError, match=r"^--keystore .*k\.json is not a keystore"):
        load_account(path, None, "SOME_PASSWORD", None, CLI_KEY_OPTIONS)


def test_load_account__unknown_ape_account__names_the_alias(ape_folder: Path) -> None:
    with pytest.raises(KeyLoadError, match=r"^--account 'nobody': no such ape account .*ape accounts list"):
        load_account(None, "nobody", None, None, CLI_KEY_OPTIONS)


def test_load_account__no_password_source__cli_terms_for_the_cli_config_keys_for_the_relayer(
    tmp_path: Path, ape_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "k.json"
    write_keystore(path, KEY, "pw", iterations=2**10)
    with pytest.raises(KeyLoadError, match="pass --password-env VAR or --password-file FILE"):
        load_account(path, None, None, None, CLI_KEY_OPTIONS)
    with pytest.raises(KeyLoadError, match=r"set operator\.password_env or operator\.password_file"):
        load_account(path, None, None, None)  # the relayer's wording: its settings are config keys
    write_keystore(ape_folder / "accounts" / "op.json", KEY, "pw", iterations=2**10)
    monkeypatch.setenv("WRONG_PW", "not-pw")
    with pytest.raises(KeyLoadError, match=r"^operator.ape_account 'op'.*wrong password"):
        load_account(None, "op", "WRONG_PW", None)


def test_load_account__relayer_missing_keystore__names_the_config_key(tmp_path: Path) -> None:
    with pytest.raises(KeyLoadError, match=r"^operator.keystore .*missing\.json not found$"):
        load_account(tmp_path / "missing.json", None, None, None)


def test_load_account__good_keystore_and_password__loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "k.json"
    address = write_keystore(path, KEY, "pw", iterations=2**10)
    monkeypatch.setenv("K_PW", "pw")
    assert load_account(path, None, "K_PW", None, CLI_KEY_OPTIONS).address == address
    assert json.loads(path.read_text())["crypto"]
