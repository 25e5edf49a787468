"""Signing bytes with a private key on a token, in the encodings X.509 and JWS want.

The one place that knows the mechanics: SoftHSM 2.6 has no CKM_ECDSA_SHA256, so ECDSA hashes
here and signs the digest with CKM_ECDSA (raw r||s); RSA uses CKM_SHA256_RSA_PKCS.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pkcs11
from pkcs11 import KeyType, Mechanism
from pkcs11.util.ec import encode_ecdsa_signature, encode_named_curve_parameters

from certdesk.domain.errors import CertdeskError

_EC_HASH = {256: hashlib.sha256, 384: hashlib.sha384}


_P384 = encode_named_curve_parameters("secp384r1")


def ec_field_bits(private_key: Any) -> int:
    """384 for a P-384 key, else 256 (certdesk makes P-256 and P-384 keys only)."""
    return 384 if bytes(private_key[pkcs11.Attribute.EC_PARAMS]) == _P384 else 256


def sign_raw(private_key: Any, data: bytes) -> bytes:
    """ECDSA: raw r||s over SHA-256/384(data) (what JWS ES256 wants); RSA: PKCS#1 v1.5 SHA-256."""
    try:
        if private_key.key_type == KeyType.EC:
            digest = _EC_HASH[ec_field_bits(private_key)](data).digest()
            return bytes(private_key.sign(digest, mechanism=Mechanism.ECDSA))
        return bytes(private_key.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS))
    except pkcs11.PKCS11Error as exc:
        raise CertdeskError("pkcs11.error", detail=f"signing: {type(exc).__name__}") from None


def sign_x509(private_key: Any, data: bytes) -> bytes:
    """The signature value X.509 certificates, CRLs and CSRs carry (ECDSA as DER SEQUENCE)."""
    raw = sign_raw(private_key, data)
    return encode_ecdsa_signature(raw) if private_key.key_type == KeyType.EC else raw
