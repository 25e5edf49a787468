"""Key types certdesk accepts and makes, and passphrase-encrypted PKCS#8 key files."""

from __future__ import annotations

import enum
import os
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
)

from certdesk.domain.errors import CertdeskError

SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
SignatureHash = hashes.SHA256 | hashes.SHA384


class KeyType(enum.StrEnum):
    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"

    @property
    def is_ec(self) -> bool:
        return self.value.startswith("ec-")

    @property
    def curve(self) -> ec.EllipticCurve:
        return ec.SECP384R1() if self is KeyType.EC_P384 else ec.SECP256R1()

    @property
    def curve_name(self) -> str:
        return self.curve.name

    @property
    def rsa_bits(self) -> int:
        return int(self.value.split("-")[1])

    @classmethod
    def parse(cls, value: str) -> KeyType:
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(k.value for k in cls)
            raise CertdeskError(
                "input.unsupported_key", detail=f"{value!r} (use {allowed})"
            ) from None


def key_type_of(key: CertificatePublicKeyTypes | PrivateKeyTypes) -> KeyType:
    """The KeyType of a public or private key; refuses anything certdesk does not issue for."""
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        names = {"secp256r1": KeyType.EC_P256, "secp384r1": KeyType.EC_P384}
        if key.curve.name in names:
            return names[key.curve.name]
        raise CertdeskError("input.unsupported_key", detail=f"curve {key.curve.name}")
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        if key.key_size in (2048, 3072, 4096):
            return KeyType(f"rsa-{key.key_size}")
        raise CertdeskError("input.unsupported_key", detail=f"RSA {key.key_size} bits")
    raise CertdeskError("input.unsupported_key", detail=type(key).__name__)


def signature_hash(key_type: KeyType) -> SignatureHash:
    """Hash paired with a key for X.509 signatures (P-384 -> SHA-384, else SHA-256)."""
    return hashes.SHA384() if key_type is KeyType.EC_P384 else hashes.SHA256()


def as_public_key(key: CertificatePublicKeyTypes) -> PublicKey:
    """Narrow a parsed public key to the kinds certdesk issues for (refusing the others)."""
    key_type_of(key)
    assert isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
    return key


def generate_key(key_type: KeyType) -> SigningKey:
    if key_type.is_ec:
        return ec.generate_private_key(key_type.curve)
    return rsa.generate_private_key(public_exponent=65537, key_size=key_type.rsa_bits)


def encrypt_key(key: SigningKey, passphrase: bytes) -> bytes:
    """`key` as PKCS#8 PEM encrypted with `passphrase` (what a key file holds, or a column)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )


def decrypt_key(pem: bytes, passphrase: bytes, where: str) -> SigningKey:
    """The key in passphrase-encrypted PKCS#8 `pem`; `where` names it in the error."""
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase)
    except (ValueError, TypeError):
        raise CertdeskError("ca.wrong_passphrase", path=where) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CertdeskError("input.unsupported_key", detail=type(key).__name__)
    return key


def write_encrypted_key(key: SigningKey, path: Path, passphrase: bytes) -> None:
    """Write a PKCS#8 key encrypted with `passphrase`; created 0600, never overwritten."""
    pem = encrypt_key(key, passphrase)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())


def read_key_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CertdeskError("ca.key_missing", where=str(path)) from None


def read_encrypted_key(path: Path, passphrase: bytes) -> SigningKey:
    return decrypt_key(read_key_file(path), passphrase, str(path))
