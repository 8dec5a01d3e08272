"""The README's consumer contract, exactly as printed: it compiles with the project's compiler and
settings, and a request made through it reaches its callback.

The block is compiled in memory as `contracts/<Name>.sol` (where the README says to put it) by the
solc shim over standard JSON, with the OpenZeppelin remapping ape uses; nothing is written to disk.
"""

import json
import re
import subprocess
from collections.abc import Callable
from typing import Any

import ape
import pytest
from ethpm_types import ContractType

from tests.conftest import ROOT, committee_of, request_id_of, sample_input, sample_output

SHIM = ROOT / "tools" / "solc-shim.sh"
SECTION = "### A consumer contract"


def readme_consumer() -> tuple[str, str]:
    """(contract name, source) of the first ```solidity block under SECTION."""
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION)
    match = re.search(r"```solidity\n(.*?)```", text[start:], re.DOTALL)
    assert match, f"no solidity block under {SECTION!r}"
    source = match.group(1)
    names = re.findall(r"^contract (\w+) is InferenceConsumer", source, re.MULTILINE)
    assert len(names) == 1, "the block must define one contract deriving InferenceConsumer"
    return names[0], source


def compile_standard_json(unit: str, source: str, name: str) -> dict[str, Any]:
    """solc's standard-JSON output for one source, with ape-config.yaml's settings."""
    request = {
        "language": "Solidity",
        "sources": {unit: {"content": source}},
        "settings": {
            "viaIR": True,
            "optimizer": {"enabled": True, "runs": 200},
            "evmVersion": "cancun",
            "remappings": ["@openzeppelin/contracts/=node_modules/@openzeppelin/contracts/"],
            "outputSelection": {unit: {name: ["abi", "evm.bytecode.object"]}},
        },
    }
    done = subprocess.run(
        [str(SHIM), "--standard-json", "--base-path", str(ROOT)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    output: dict[str, Any] = json.loads(done.stdout)
    return output


@pytest.fixture(scope="module")
def compiled() -> tuple[str, dict[str, Any]]:
    name, source = readme_consumer()
    return name, compile_standard_json(f"contracts/{name}.sol", source, name)


def test_readme_consumer__compiles_as_printed(compiled: tuple[str, dict[str, Any]]) -> None:
    name, output = compiled
    problems = [e["formattedMessage"] for e in output.get("errors", [])]
    assert problems == [], "\n".join(problems)  # no errors, and no warnings either
    artifact = output["contracts"][f"contracts/{name}.sol"][name]
    assert artifact["evm"]["bytecode"]["object"]
    functions = {item["name"] for item in artifact["abi"] if item["type"] == "function"}
    assert {"onInferenceResult", "claimRefunds", "hub"} <= functions


def test_readme_consumer__request_reaches_its_callback(
    compiled: tuple[str, dict[str, Any]],
    hub: Any,
    token: Any,
    model: tuple[bytes, int],
    deployer: Any,
    dapp: Any,
    fund: Callable[..., None],
    by_address: dict[str, Any],
    act: Any,
) -> None:
    name, output = compiled
    artifact = output["contracts"][f"contracts/{name}.sol"][name]
    contract_type = ContractType.model_validate(
        {
            "contractName": name,
            "abi": artifact["abi"],
            "deploymentBytecode": {"bytecode": "0x" + artifact["evm"]["bytecode"]["object"]},
        }
    )
    model_id, version = model
    consumer = deployer.deploy(ape.contracts.ContractContainer(contract_type), hub, token, model_id, version)
    fee = hub.quote(model_id, version, 3)
    fund(consumer, fee)

    with ape.reverts():
        consumer.ask(sample_input(), sender=dapp)  # only its owner spends its tokens
    request_id = request_id_of(consumer.ask(sample_input(), sender=deployer))
    ape.chain.mine(1)  # the seed block
    members = committee_of(hub, by_address, request_id)
    for member in members:
        act.commit(member, request_id, sample_output(0.25))
    for member in members:
        act.reveal(member, request_id, sample_output(0.25))

    result = hub.getResult(request_id)
    assert result.status == 2 and result.callbackResult == 1  # Finalized, callback succeeded
    assert hub.getRequest(request_id).requester == consumer.address
    assert consumer.lastScore() == 250_000  # probabilities[1] = 0.25 at 6 decimals
    assert token.balanceOf(consumer) == 0 and hub.claimable(consumer) == 0
