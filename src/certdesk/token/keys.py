"""Key pairs generated on the token: the private key is sensitive and never leaves it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pkcs11
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters
from pkcs11.util.rsa import encode_rsa_public_key

from certdesk.domain.errors import CertdeskError

TokenPublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
CURVES = {"ec-p256": "secp256r1", "ec-p384": "secp384r1"}
RSA_BITS = {"rsa-2048": 2048, "rsa-3072": 3072}


@dataclass(frozen=True)
class TokenKeyPair:
    key_id: bytes
    label: str
    public_key: TokenPublicKey


def _private_template() -> dict[Attribute, Any]:
    return {
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
        Attribute.SIGN: True,
    }


def generate_keypair(session: Any, key_type: str, label: str) -> TokenKeyPair:
    """Generate a key pair on the token; its CKA_ID is the certificate's Subject Key Identifier."""
    public_template = {Attribute.TOKEN: True, Attribute.VERIFY: True}
    try:
        if key_type in CURVES:
            params = session.create_domain_parameters(
                KeyType.EC,
                {Attribute.EC_PARAMS: encode_named_curve_parameters(CURVES[key_type])},
                local=True,
            )
            pub, priv = params.generate_keypair(
                store=True,
                label=label,
                public_template=public_template,
                private_template=_private_template(),
            )
        elif key_type in RSA_BITS:
            pub, priv = session.generate_keypair(
                KeyType.RSA,
                RSA_BITS[key_type],
                store=True,
                label=label,
                public_template=public_template,
                private_template=_private_template(),
            )
        else:
            raise CertdeskError("input.unsupported_key", detail=f"{key_type!r} on a token")
    except pkcs11.PKCS11Error as exc:
        raise CertdeskError(
            "pkcs11.error", detail=f"key generation: {type(exc).__name__}"
        ) from None
    public_key = public_key_of(pub)
    key_id = x509.SubjectKeyIdentifier.from_public_key(public_key).digest
    pub[Attribute.ID] = key_id
    priv[Attribute.ID] = key_id
    return TokenKeyPair(key_id, label, public_key)


def public_key_of(pub: Any) -> TokenPublicKey:
    """A token public key object as a cryptography key (via SubjectPublicKeyInfo DER)."""
    der = encode_ec_public_key(pub) if pub.key_type == KeyType.EC else encode_rsa_public_key(pub)
    key = load_der_public_key(der)
    assert isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
    return key


def private_key_by_id(session: Any, key_id: bytes) -> Any:
    try:
        return session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=key_id)
    except (pkcs11.NoSuchKey, pkcs11.MultipleObjectsReturned):
        raise CertdeskError("pkcs11.object_missing", uri=f"id={key_id.hex()}") from None
