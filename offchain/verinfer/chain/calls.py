"""eth_call without web3's contract layer, for the reads a relayer makes on every request.

web3 builds a transaction, runs formatter and normalizer chains and matches the ABI on each call; for a
relayer that reads a committee and a request for every request it sees, that was a third of its CPU.
Here the selector and the eth_abi types are worked out once per function and the answer is decoded
straight from the node's JSON. Results match web3's: addresses checksummed, structs as tuples,
arrays and several outputs as lists.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode, encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3.exceptions import ContractLogicError, Web3RPCError
from web3.types import RPCEndpoint

from verinfer.chain.rpc import Rpc


def abi_type(entry: dict[str, Any]) -> str:
    """The eth_abi type string of an ABI parameter (tuples spelled out, array suffixes kept)."""
    kind = str(entry["type"])
    if not kind.startswith("tuple"):
        return kind
    inner = ",".join(abi_type(c) for c in entry["components"])
    return f"({inner}){kind[len('tuple') :]}"


def normalized(entry: dict[str, Any], value: Any) -> Any:
    """`value` as web3 returns it for the ABI parameter `entry`: checksummed addresses, tuples."""
    kind = str(entry["type"])
    if kind.endswith("]"):
        item = {**entry, "type": kind[: kind.rindex("[")]}
        return [normalized(item, v) for v in value]
    if kind == "tuple":
        return tuple(normalized(c, v) for c, v in zip(entry["components"], value, strict=True))
    if kind == "address":
        return to_checksum_address(value)
    return value


@dataclass(frozen=True)
class ViewCall:
    """One view function of one deployed contract."""

    address: str
    name: str
    selector: bytes
    inputs: tuple[str, ...]
    outputs: tuple[dict[str, Any], ...]

    @classmethod
    def of(cls, address: str, abi: Sequence[dict[str, Any]], name: str) -> "ViewCall":
        (fn,) = [e for e in abi if e.get("type") == "function" and e.get("name") == name]
        inputs = tuple(abi_type(p) for p in fn["inputs"])
        selector = keccak(text=f"{name}({','.join(inputs)})")[:4]
        return cls(address, name, selector, inputs, tuple(fn["outputs"]))

    def __call__(self, rpc: Rpc, *args: Any, block: str = "latest") -> Any:
        """The decoded result (the value itself for one output). A revert raises ContractLogicError
        with its data, as web3 does; any other error answer Web3RPCError."""
        data = "0x" + (self.selector + encode(list(self.inputs), list(args))).hex()
        params = [{"to": self.address, "data": data}, block]
        answer = rpc.call(lambda w3: w3.provider.make_request(RPCEndpoint("eth_call"), params), self.name)
        error = answer.get("error")
        if error:
            message, revert = str(error.get("message", "")), error.get("data")
            if (isinstance(revert, str) and revert.startswith("0x")) or "revert" in message.lower():
                raise ContractLogicError(message, data=revert if isinstance(revert, str) else "0x")
            raise Web3RPCError(message, rpc_response=answer)
        types = [abi_type(o) for o in self.outputs]
        values = decode(types, bytes.fromhex(str(answer["result"])[2:]))
        out = [normalized(o, v) for o, v in zip(self.outputs, values, strict=True)]
        return out[0] if len(out) == 1 else out
