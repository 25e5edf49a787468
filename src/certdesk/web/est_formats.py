"""The DER structures EST (RFC 7030) answers with, built by libraries, never by hand."""

from __future__ import annotations

from collections.abc import Sequence

from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7


def certs_only(certificates: Sequence[x509.Certificate]) -> bytes:
    """A degenerate PKCS#7 SignedData holding certificates (RFC 7030 §4.1.3, §4.2.3)."""
    return pkcs7.serialize_certificates(list(certificates), Encoding.DER)


class _CsrAttrs(core.SequenceOf):  # type: ignore[misc]
    """CsrAttrs ::= SEQUENCE SIZE (0..MAX) OF AttrOrOID; certdesk only names OIDs."""

    _child_spec = core.ObjectIdentifier


def csr_attributes(oids: Sequence[str]) -> bytes:
    """What certdesk wants in a CSR (RFC 7030 §4.5.2): e.g. ecdsa-with-SHA256."""
    return bytes(_CsrAttrs([core.ObjectIdentifier(oid) for oid in oids]).dump())
