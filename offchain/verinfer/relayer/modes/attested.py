"""Attested mode (its on-chain strategy comes with the AttestedMode contract). Its one signing rule: this
operator never signs two output digests for one request."""

from eth_account.signers.local import LocalAccount

from verinfer.chain import attestations
from verinfer.chain.attestations import Attestation, Domain
from verinfer.relayer.journal import Journal


class Equivocation(RuntimeError):
    """Signing would put this operator's key on a second output digest for one request (slashable)."""


def sign_once(
    journal: Journal, account: LocalAccount, domain: Domain, request_id: int, output_digest: bytes
) -> Attestation:
    """This operator's attestation for `request_id`: signed and journaled the first time, the journaled
    one again for the same digest (after a restart too), Equivocation for another digest.

    The check, the signature and the write are one journal transaction and the signature is returned
    only once it is durable, so neither a crash nor a second thread can leak a second signature. Any
    journaled signature by this key counts, also one a peer handed back, in case the own row was lost.
    """
    with journal.transaction():
        for held in journal.attestations(request_id):
            if held.signer != account.address:
                continue
            if held.output_digest != output_digest:
                raise Equivocation(
                    f"request {request_id}: already signed output digest 0x{held.output_digest.hex()},"
                    f" refusing to sign 0x{output_digest.hex()}"
                )
            journal.add_attestation(held, own=True)
            return held
        attestation = attestations.sign(account, domain, request_id, output_digest)
        journal.add_attestation(attestation, own=True)
        return attestation
