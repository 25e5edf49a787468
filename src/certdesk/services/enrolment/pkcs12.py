"""Enrolment without a token: the key is made here and handed over in a PKCS#12 file, for
holders who cannot use a USB key yet. The officer's rules apply unchanged."""

from __future__ import annotations

from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

from certdesk.ca.keys import KeyType, generate_key
from certdesk.domain.errors import CertdeskError
from certdesk.services.context import Context
from certdesk.services.enrolment import Issue, IssuedCertificate
from certdesk.services.enrolment.officer import OfficerEnrolment

MIN_PASSPHRASE = 8


def enroll_pkcs12(
    issue: Issue,
    ctx: Context,
    person_id: str,
    passphrase: str,
    key_type: KeyType = KeyType.EC_P256,
) -> tuple[IssuedCertificate, bytes]:
    """Issue to `person_id` with a fresh software key; returns the certificate and .p12 bytes."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise CertdeskError(
            "input.invalid",
            detail=f"the PKCS#12 passphrase needs {MIN_PASSPHRASE} characters or more",
        )
    key = generate_key(key_type)
    issued = issue(OfficerEnrolment(ctx, person_id, key.public_key(), method="pkcs12"))
    p12 = pkcs12.serialize_key_and_certificates(
        person_id.encode(),
        key,
        issued.certificate,
        [issued.issuer_certificate],
        BestAvailableEncryption(passphrase.encode()),
    )
    return issued, p12
