"""Reading certificate requests: format, signature and key are checked before anything else."""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from certdesk.ca.keys import key_type_of
from certdesk.domain.errors import CertdeskError

# An RSA-4096 CSR in PEM is under 2 KiB; a bigger one carries what no personal certificate
# takes (thousands of names), so it is refused before it is parsed, on every path
MAX_CSR_BYTES = 16 * 1024


def load_csr(data: bytes) -> x509.CertificateSigningRequest:
    """Parse a PEM or DER CSR and verify its self-signature; refuse unsupported keys."""
    if not data.strip():
        raise CertdeskError("input.malformed_csr", detail="empty input")
    if len(data) > MAX_CSR_BYTES:
        raise CertdeskError("input.csr_too_large", size=len(data), limit=MAX_CSR_BYTES)
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            csr = x509.load_pem_x509_csr(data)
        else:
            csr = x509.load_der_x509_csr(data)
        # the subject and extensions are parsed lazily: read them now, so a malformed one is
        # refused here and not met later by whoever looks at them
        csr.subject.rfc4514_string()
        list(csr.extensions)
    except (ValueError, x509.InvalidVersion) as exc:
        raise CertdeskError("input.malformed_csr", detail=str(exc)[:200]) from None
    try:
        key: CertificatePublicKeyTypes = csr.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        # a curve or algorithm the library cannot load (SM2, secp112r1…) is a refusal, not a crash
        raise CertdeskError("input.unsupported_key", detail=str(exc)[:200]) from None
    key_type_of(key)
    try:
        signed = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm):
        signed = False
    if not signed:
        raise CertdeskError("input.csr_bad_signature")
    return csr


_SHORT_NAMES = {
    x509.NameOID.COUNTRY_NAME: "C",
    x509.NameOID.ORGANIZATION_NAME: "O",
    x509.NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    x509.NameOID.COMMON_NAME: "CN",
    x509.NameOID.SERIAL_NUMBER: "serialNumber",
    x509.NameOID.EMAIL_ADDRESS: "emailAddress",
}


def requested_identity(
    csr: x509.CertificateSigningRequest,
) -> tuple[list[tuple[str, str]], list[str]]:
    """What a CSR asks to be named: subject attributes and e-mail SANs (other SANs as-is)."""
    attributes = [(_SHORT_NAMES.get(a.oid, a.oid.dotted_string), str(a.value)) for a in csr.subject]
    emails: list[str] = []
    try:
        sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return attributes, emails
    for name in sans:
        if isinstance(name, x509.RFC822Name):
            emails.append(name.value)
        else:
            attributes.append(("subjectAltName", str(name.value)))
    return attributes, emails
