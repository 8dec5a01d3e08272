"""ViewCall, the relayer's cheap eth_call path, against web3's contract calls on the same deployment."""

from pathlib import Path
from typing import Any

import ape
import pytest
from verinfer.chain.contracts import Contracts
from verinfer.chain.deployment import Deployment
from verinfer.chain.rpc import Rpc
from web3.exceptions import ContractLogicError

from scripts.deploy import write_record
from tests.conftest import request_id_of


@pytest.fixture(scope="module")
def contracts(stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Contracts:
    path: Path = tmp_path_factory.mktemp("calls") / "local.json"
    write_record(path, stack, {})
    return Contracts(Rpc(str(ape.chain.provider.uri)), Deployment.load(path))


def both(contracts: Contracts, contract: str, function: str, *args: Any) -> tuple[Any, Any]:
    return contracts.fast(contract, function)(contracts.rpc, *args), contracts.view(contract, function, *args)


def reverts(call: Any) -> str:
    with pytest.raises(ContractLogicError) as raised:
        call()
    return str(raised.value.data)


def test_view_call__structs_arrays_addresses_and_several_outputs__as_web3_returns_them(
    contracts: Contracts, make_request: Any, model: Any
) -> None:
    rid = request_id_of(make_request())
    ape.chain.mine(1)
    for contract, function, args in [
        ("hub", "getRequest", (rid,)),  # a struct with an address, bytes32 and small integers
        ("consensus", "getRound", (rid,)),
        ("consensus", "previewCommittee", (rid,)),  # address[]
        ("consensus", "getCommittee", (rid,)),  # empty until drawn
        ("registry", "getModel", (model[0],)),  # three outputs
        ("hub", "params", ()),
    ]:
        fast, web3 = both(contracts, contract, function, *args)
        assert fast == web3, (contract, function)
        assert type(fast) is type(web3), (contract, function)


def test_view_call__reverts__contract_logic_error_with_the_same_data(
    contracts: Contracts, make_request: Any
) -> None:
    unknown = 10**9
    fast = reverts(lambda: contracts.fast("hub", "getRequest")(contracts.rpc, unknown))
    assert fast == reverts(lambda: contracts.view("hub", "getRequest", unknown))
    assert fast.startswith("0x") and len(fast) > 10  # UnknownRequest(uint256), with its argument

    rid = request_id_of(make_request(seed=False))  # its seed block is not mined: SeedNotReady
    fast = reverts(lambda: contracts.fast("consensus", "previewCommittee")(contracts.rpc, rid))
    assert fast == reverts(lambda: contracts.view("consensus", "previewCommittee", rid))
