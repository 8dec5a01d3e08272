"""Custom-error revert data decoded against the deployment's ABIs, so a failure reads as its name."""

from collections.abc import Iterable
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

ERROR_STRING = bytes.fromhex("08c379a0")  # Error(string)
PANIC = bytes.fromhex("4e487b71")  # Panic(uint256)


def _type(entry: dict[str, Any]) -> str:
    if entry["type"].startswith("tuple"):
        inner = ",".join(_type(c) for c in entry["components"])
        return f"({inner}){entry['type'][5:]}"
    return str(entry["type"])


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return to_checksum_address(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


class RevertDecoder:
    """Maps 4-byte selectors of every `error` in the given ABIs to a readable `Name(arg=value, ...)`."""

    def __init__(self, abis: Iterable[list[dict[str, Any]]]) -> None:
        self._errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        for abi in abis:
            for entry in abi:
                if entry.get("type") != "error":
                    continue
                types = [_type(i) for i in entry.get("inputs", [])]
                names = [i.get("name") or f"arg{n}" for n, i in enumerate(entry.get("inputs", []))]
                selector = keccak(text=f"{entry['name']}({','.join(types)})")[:4]
                self._errors[selector] = (entry["name"], types, names)

    def name(self, data: bytes) -> str | None:
        """The error's name, or None if the data is not one of ours."""
        found = self._errors.get(bytes(data[:4]))
        return found[0] if found else None

    def decode(self, data: bytes) -> str | None:
        """`Name(arg=value, ...)` for known custom errors, Error(string) and Panic; None otherwise."""
        selector, body = bytes(data[:4]), bytes(data[4:])
        try:
            if selector == ERROR_STRING:
                return str(abi_decode(["string"], body)[0])
            if selector == PANIC:
                return f"panic 0x{abi_decode(['uint256'], body)[0]:02x}"
            if selector not in self._errors:
                return None
            name, types, names = self._errors[selector]
            values = abi_decode(types, body)
        except (DecodingError, ValueError, OverflowError):
            return None
        args = ", ".join(f"{n}={_show(v)}" for n, v in zip(names, values, strict=True))
        return f"{name}({args})"
