"""Certificates and keys on the token: write, list, delete — always paired by CKA_ID."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pkcs11
from asn1crypto import core as asn1_core
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pkcs11 import Attribute, CertificateType, ObjectClass

from certdesk.domain.errors import CertdeskError


@dataclass(frozen=True)
class TokenCertificate:
    key_id: bytes
    label: str
    certificate: x509.Certificate


def write_certificate(session: Any, cert: x509.Certificate, key_id: bytes, label: str) -> None:
    """Store the certificate next to its key: same CKA_ID, readable label."""
    try:
        session.create_object(
            {
                Attribute.CLASS: ObjectClass.CERTIFICATE,
                Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
                Attribute.TOKEN: True,
                Attribute.PRIVATE: False,
                Attribute.LABEL: label,
                Attribute.ID: key_id,
                Attribute.SUBJECT: cert.subject.public_bytes(),
                Attribute.ISSUER: cert.issuer.public_bytes(),
                Attribute.SERIAL_NUMBER: asn1_core.Integer(cert.serial_number).dump(),
                Attribute.VALUE: cert.public_bytes(Encoding.DER),
            }
        )
    except pkcs11.PKCS11Error as exc:
        raise CertdeskError(
            "pkcs11.error", detail=f"writing the certificate: {type(exc).__name__}"
        ) from None


def list_certificates(session: Any) -> list[TokenCertificate]:
    out = []
    for obj in session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE}):
        try:
            cert = x509.load_der_x509_certificate(bytes(obj[Attribute.VALUE]))
        except ValueError:
            continue  # not an X.509 certificate certdesk can read; leave it alone
        out.append(TokenCertificate(bytes(obj[Attribute.ID]), str(obj[Attribute.LABEL]), cert))
    return out


def delete_pair(session: Any, key_id: bytes) -> int:
    """Remove the private key, public key and certificate with this CKA_ID; returns the count."""
    removed = 0
    for cls in (ObjectClass.CERTIFICATE, ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
        for obj in list(session.get_objects({Attribute.CLASS: cls, Attribute.ID: key_id})):
            obj.destroy()
            removed += 1
    return removed
