"""A PKCS#10 request signed by the key on the token (asn1crypto assembles, the token signs)."""

from __future__ import annotations

from typing import Any

from asn1crypto import algos as asn1_algos
from asn1crypto import csr as asn1_csr
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from certdesk.token.keys import TokenPublicKey
from certdesk.token.signing import sign_x509


def _algorithm(public_key: TokenPublicKey) -> str:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return "sha384_ecdsa" if public_key.curve.name == "secp384r1" else "sha256_ecdsa"
    return "sha256_rsa"


def make_csr(
    private_key: Any, public_key: TokenPublicKey, subject: x509.Name
) -> x509.CertificateSigningRequest:
    """CSR for `public_key` signed on the token by `private_key` (the server re-verifies it)."""
    info = asn1_csr.CertificationRequestInfo(
        {
            "version": "v1",
            "subject": asn1_x509.Name.load(subject.public_bytes()),
            "subject_pk_info": asn1_keys.PublicKeyInfo.load(
                public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
            ),
            "attributes": [],
        }
    )
    request = asn1_csr.CertificationRequest(
        {
            "certification_request_info": info,
            "signature_algorithm": asn1_algos.SignedDigestAlgorithm(
                {"algorithm": _algorithm(public_key)}
            ),
            "signature": sign_x509(private_key, info.dump()),
        }
    )
    return x509.load_der_x509_csr(request.dump())
