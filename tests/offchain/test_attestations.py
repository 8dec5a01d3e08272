"""EIP-712 result attestations: the digest against eth-account's encoder, domain binding, malleability."""

from dataclasses import replace

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from verinfer.chain.attestations import (
    SECP256K1_N,
    Attestation,
    BadSignature,
    Domain,
    domain_separator,
    recover,
    sign,
    struct_hash,
    typed_digest,
    verify,
)

HUB = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
OTHER = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
DOMAIN = Domain(chain_id=31337, verifying_contract=HUB)
DIGEST = keccak(b"output")


@pytest.fixture(scope="module")
def operator() -> LocalAccount:
    account: LocalAccount = Account.from_key(b"\x01" * 32)
    return account


def typed_data(domain: Domain, request_id: int, digest: bytes) -> dict[str, object]:
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "ResultAttestation": [
                {"name": "requestId", "type": "uint256"},
                {"name": "outputDigest", "type": "bytes32"},
            ],
        },
        "primaryType": "ResultAttestation",
        "domain": {
            "name": "verinfer AttestedMode",
            "version": "1",
            "chainId": domain.chain_id,
            "verifyingContract": domain.verifying_contract,
        },
        "message": {"requestId": request_id, "outputDigest": digest},
    }


@pytest.mark.parametrize("request_id", [0, 1, 2**64 + 7, 2**256 - 1])
def test_digest__equals_eth_account_encode_typed_data(request_id: int) -> None:
    signable = encode_typed_data(full_message=typed_data(DOMAIN, request_id, DIGEST))

    assert domain_separator(DOMAIN) == signable.header
    assert struct_hash(request_id, DIGEST) == signable.body
    assert typed_digest(DOMAIN, request_id, DIGEST) == keccak(
        b"\x19" + signable.version + signable.header + signable.body
    )


def test_sign__same_signature_as_eth_account_sign_typed_data__recovers_to_signer(
    operator: LocalAccount,
) -> None:
    attestation = sign(operator, DOMAIN, 9, DIGEST)

    assert (
        attestation.signature
        == operator.sign_typed_data(full_message=typed_data(DOMAIN, 9, DIGEST)).signature
    )
    assert recover(DOMAIN, attestation) == operator.address
    verify(DOMAIN, attestation)


@pytest.mark.parametrize(
    "domain",
    [Domain(chain_id=1, verifying_contract=HUB), Domain(chain_id=31337, verifying_contract=OTHER)],
    ids=["other_chain", "other_contract"],
)
def test_verify__signature_for_another_domain__refused(operator: LocalAccount, domain: Domain) -> None:
    foreign = sign(operator, domain, 9, DIGEST)

    with pytest.raises(BadSignature, match="not by the claimed signer"):
        verify(DOMAIN, foreign)


def test_verify__signature_moved_to_another_request_or_digest__refused(operator: LocalAccount) -> None:
    attestation = sign(operator, DOMAIN, 9, DIGEST)

    for moved in (replace(attestation, request_id=10), replace(attestation, output_digest=keccak(b"other"))):
        with pytest.raises(BadSignature, match="not by the claimed signer"):
            verify(DOMAIN, moved)


def test_verify__claimed_by_another_signer__refused(operator: LocalAccount) -> None:
    attestation = sign(operator, DOMAIN, 9, DIGEST)

    with pytest.raises(BadSignature, match="not by the claimed signer"):
        verify(DOMAIN, replace(attestation, signer=OTHER))


def test_verify__malleated_high_s_signature__refused(operator: LocalAccount) -> None:
    attestation = sign(operator, DOMAIN, 9, DIGEST)
    sig = attestation.signature
    # The twin (r, n - s, v flipped) is a valid secp256k1 signature by the same key; ECDSA.recover refuses it.
    s = int.from_bytes(sig[32:64])
    twin = sig[:32] + (SECP256K1_N - s).to_bytes(32) + bytes([55 - sig[64]])

    with pytest.raises(BadSignature, match="malleable"):
        verify(DOMAIN, replace(attestation, signature=twin))


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda sig: sig[:64], "64 bytes, not 65"),
        (lambda sig: sig + b"\x00", "66 bytes, not 65"),
        (lambda sig: sig[:64] + bytes([sig[64] - 27]), "not 27 or 28"),
        (lambda sig: bytes(32) + sig[32:], "r is out of range"),
        (lambda sig: sig[:32] + bytes(32) + sig[64:], "s is zero"),
    ],
    ids=["short", "long", "v_0_or_1", "r_zero", "s_zero"],
)
def test_verify__malformed_signature__refused(operator: LocalAccount, mangle, message: str) -> None:  # type: ignore[no-untyped-def]
    attestation = sign(operator, DOMAIN, 9, DIGEST)

    with pytest.raises(BadSignature, match=message):
        verify(DOMAIN, replace(attestation, signature=mangle(attestation.signature)))


def test_attestation__checksums_the_signer__refuses_a_short_digest() -> None:
    lower = Attestation(1, DIGEST, HUB.lower(), b"")
    assert lower.signer == HUB and lower == Attestation(1, DIGEST, HUB, b"")
    with pytest.raises(ValueError, match="not 32"):
        Attestation(1, DIGEST[:31], HUB, b"")
