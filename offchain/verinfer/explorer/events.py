"""Decodes the logs of verinfer's contracts into events: name, arguments by ABI name, and a JSON form."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3.contract.contract import ContractEvent
from web3.types import LogReceipt

from verinfer.chain.contracts import Contracts

# The contracts the explorer follows, by deployment name (the token's Transfer and Approval are not
# verinfer's story: fees are in RequestCreated and FeesDistributed, payouts in Claimed).
FOLLOWED = ("hub", "consensus", "attested", "optimistic", "registry", "staking")

# The argument naming the account an event is about, most specific first.
ACCOUNT_ARGS = (
    "operator",
    "member",
    "poster",
    "challenger",
    "account",
    "requester",
    "newOwner",
    "pendingOwner",
    "owner",
)


@dataclass(frozen=True)
class Event:
    """One decoded log. `args` keeps web3's values (bytes, ints, checksummed addresses, tuples for
    structs); `json` is the same by ABI name with bytes as 0x-hex and structs as objects."""

    contract: str
    name: str
    block: int
    log_index: int
    tx_hash: bytes
    args: Mapping[str, Any]
    json: dict[str, Any]

    @property
    def request_id(self) -> int | None:
        value = self.args.get("requestId")
        return None if value is None else int(value)

    @property
    def account(self) -> str | None:
        for name in ACCOUNT_ARGS:
            if name in self.args:
                return str(self.args[name])
        return None


def jsonable(param: Mapping[str, Any], value: Any) -> Any:
    """`value` of the ABI parameter `param` as JSON: 0x-hex bytes, objects for structs, lists for arrays."""
    kind = str(param["type"])
    if kind.endswith("]"):
        item = {**param, "type": kind[: kind.rindex("[")]}
        return [jsonable(item, v) for v in value]
    if kind == "tuple":
        components = param["components"]
        if isinstance(value, Mapping):
            return {c["name"]: jsonable(c, value[c["name"]]) for c in components}
        return {c["name"]: jsonable(c, v) for c, v in zip(components, value, strict=True)}
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if kind == "address":
        return to_checksum_address(value)
    return value


class Decoder:
    """Decodes logs of the followed contracts; logs of anything else are None."""

    def __init__(self, contracts: Contracts) -> None:
        self._events: dict[tuple[str, bytes], tuple[str, type[ContractEvent], dict[str, Any]]] = {}
        for name in FOLLOWED:
            contract = getattr(contracts, name)
            for entry in contract.abi:
                if entry.get("type") != "event" or entry.get("anonymous"):
                    continue
                event = contract.events[entry["name"]]
                self._events[(contract.address, bytes(HexBytes(event.topic)))] = (name, event, dict(entry))
        self.addresses = [getattr(contracts, name).address for name in FOLLOWED]

    def decode(self, log: LogReceipt) -> Event | None:
        topics = log["topics"]
        if not topics:
            return None
        found = self._events.get((to_checksum_address(log["address"]), bytes(topics[0])))
        if found is None:
            return None
        contract, event, abi = found
        args = dict(event().process_log(log)["args"])
        return Event(
            contract=contract,
            name=str(abi["name"]),
            block=int(log["blockNumber"]),
            log_index=int(log["logIndex"]),
            tx_hash=bytes(log["transactionHash"]),
            args=args,
            json={p["name"]: jsonable(p, args[p["name"]]) for p in abi["inputs"]},
        )

    def decode_all(self, logs: Iterable[LogReceipt]) -> list[Event]:
        """The decodable logs in chain order."""
        events = [e for e in (self.decode(log) for log in logs) if e is not None]
        return sorted(events, key=lambda e: (e.block, e.log_index))

    def kinds(self) -> set[tuple[str, str]]:
        """(contract, event) of every event the followed contracts declare."""
        return {(contract, str(abi["name"])) for contract, _, abi in self._events.values()}
