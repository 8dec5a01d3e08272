"""EIP-712 result attestations of attested mode: the digest AttestedMode checks, signing and recovery."""

from dataclasses import dataclass

from eth_abi.abi import encode
from eth_account.signers.local import LocalAccount
from eth_keys.datatypes import Signature
from eth_keys.exceptions import BadSignature as EthKeysBadSignature
from eth_typing import Hash32
from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak
from eth_utils.exceptions import ValidationError

DOMAIN_NAME = "verinfer AttestedMode"
DOMAIN_VERSION = "1"
DOMAIN_TYPEHASH = keccak(
    b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
ATTESTATION_TYPEHASH = keccak(b"ResultAttestation(uint256 requestId,bytes32 outputDigest)")

# secp256k1 group order; OpenZeppelin's ECDSA refuses s above half of it (the malleable twin of a
# signature), v other than 27/28 and signatures that are not 65 bytes, and so does `recover`.
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
MAX_S = SECP256K1_N // 2


class BadSignature(ValueError):
    """A signature that is malformed, malleable, or not the claimed signer's."""


@dataclass(frozen=True)
class Domain:
    """The EIP-712 domain of one AttestedMode contract on one chain."""

    chain_id: int
    verifying_contract: str

    def __post_init__(self) -> None:
        if not 0 < self.chain_id < 2**256:
            raise ValueError(f"chain id {self.chain_id} out of range")
        if not is_address(self.verifying_contract):
            raise ValueError(f"verifying contract {self.verifying_contract!r} is not an address")
        object.__setattr__(self, "verifying_contract", to_checksum_address(self.verifying_contract))


@dataclass(frozen=True)
class Attestation:
    """One committee member's signature on the output digest of one request; the signer is kept
    checksummed so that equal attestations compare equal."""

    request_id: int
    output_digest: bytes
    signer: str
    signature: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.request_id < 2**256:
            raise ValueError(f"request id {self.request_id} out of range")
        if len(self.output_digest) != 32:
            raise ValueError(f"output digest is {len(self.output_digest)} bytes, not 32")
        if not is_address(self.signer):
            raise ValueError(f"signer {self.signer!r} is not an address")
        object.__setattr__(self, "output_digest", bytes(self.output_digest))
        object.__setattr__(self, "signature", bytes(self.signature))
        object.__setattr__(self, "signer", to_checksum_address(self.signer))


def domain_separator(domain: Domain) -> bytes:
    """OpenZeppelin's EIP712._domainSeparatorV4() for `domain`."""
    return keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                DOMAIN_TYPEHASH,
                keccak(text=DOMAIN_NAME),
                keccak(text=DOMAIN_VERSION),
                domain.chain_id,
                domain.verifying_contract,
            ],
        )
    )


def struct_hash(request_id: int, output_digest: bytes) -> bytes:
    """keccak256(abi.encode(RESULT_ATTESTATION_TYPEHASH, requestId, outputDigest))."""
    return keccak(
        encode(["bytes32", "uint256", "bytes32"], [ATTESTATION_TYPEHASH, request_id, output_digest])
    )


def typed_digest(domain: Domain, request_id: int, output_digest: bytes) -> bytes:
    """The hash that is signed: OpenZeppelin's _hashTypedDataV4(structHash)."""
    return keccak(b"\x19\x01" + domain_separator(domain) + struct_hash(request_id, output_digest))


def sign(account: LocalAccount, domain: Domain, request_id: int, output_digest: bytes) -> Attestation:
    """Signs the attestation as `account`. Signing twice for one request with different digests is
    slashable; the relayer signs through `verinfer.relayer.modes.attested.sign_once`, which prevents it."""
    signed = account.unsafe_sign_hash(Hash32(typed_digest(domain, request_id, output_digest)))
    return Attestation(request_id, output_digest, account.address, bytes(signed.signature))


def recover(domain: Domain, attestation: Attestation) -> str:
    """The checksummed address that signed `attestation`; BadSignature for what ECDSA.recover refuses."""
    signature = attestation.signature
    if len(signature) != 65:
        raise BadSignature(f"signature is {len(signature)} bytes, not 65")
    r, s, v = int.from_bytes(signature[:32]), int.from_bytes(signature[32:64]), signature[64]
    if v not in (27, 28):
        raise BadSignature(f"signature v is {v}, not 27 or 28")
    if not 0 < r < SECP256K1_N:
        raise BadSignature("signature r is out of range")
    if not 0 < s <= MAX_S:
        raise BadSignature("signature s is zero or in the upper half of the curve order (malleable)")
    message = typed_digest(domain, attestation.request_id, attestation.output_digest)
    try:
        public_key = Signature(vrs=(v - 27, r, s)).recover_public_key_from_msg_hash(message)
    except (EthKeysBadSignature, ValidationError) as exc:
        raise BadSignature(f"signature does not recover: {exc}") from None
    return to_checksum_address(public_key.to_canonical_address())


def verify(domain: Domain, attestation: Attestation) -> None:
    """Raises BadSignature unless `attestation` was signed by its signer for this domain."""
    signer = recover(domain, attestation)
    if signer != attestation.signer:
        raise BadSignature(f"signature is by {signer}, not by the claimed signer {attestation.signer}")
