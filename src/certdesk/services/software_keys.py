"""Enrolment without a token: the key is made here and handed over in a PKCS#12 file."""

from __future__ import annotations

from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

from certdesk.ca.keys import KeyType, generate_key
from certdesk.domain.errors import CertdeskError
from certdesk.services.issuance import Issuance, IssuedCertificate


def enroll_pkcs12(
    issuance: Issuance, person_id: str, passphrase: str, key_type: KeyType = KeyType.EC_P256
) -> tuple[IssuedCertificate, bytes]:
    """Issue to `person_id` with a fresh software key; returns the certificate and .p12 bytes."""
    if len(passphrase) < 8:
        raise CertdeskError(
            "input.invalid", detail="the PKCS#12 passphrase needs 8 characters or more"
        )
    key = generate_key(key_type)
    issued = issuance.enroll_key(person_id, key.public_key())
    chain = [issuance.authority.certificate] if issuance.authority.certificate else None
    p12 = pkcs12.serialize_key_and_certificates(
        person_id.encode(),
        key,
        issued.certificate,
        chain,
        BestAvailableEncryption(passphrase.encode()),
    )
    return issued, p12
