"""One signer interface for certificates and CRLs, whatever holds the key.

`FileSigner` signs with a key in memory through pyca/cryptography. `ExternalSigner` is for keys
that cryptography cannot use (PKCS#11): the certificate or CRL is built by cryptography with a
throwaway key of the same type, its to-be-signed bytes are signed by the external key, and
asn1crypto puts tbs + algorithm + signature back together. Both paths produce the same structure
(same tbs, same signatureAlgorithm encoding), which the tests check.
"""

from __future__ import annotations

import abc
import functools
from typing import Protocol

from asn1crypto import algos as asn1_algos
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certdesk.ca.keys import (
    KeyType,
    PublicKey,
    SigningKey,
    generate_key,
    key_type_of,
    signature_hash,
)


class Signer(Protocol):
    """What the issuing path needs of a CA key."""

    @property
    def key_type(self) -> KeyType: ...

    @property
    def public_key(self) -> PublicKey: ...

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate: ...

    def sign_crl(
        self, builder: x509.CertificateRevocationListBuilder
    ) -> x509.CertificateRevocationList: ...


@functools.cache
def throwaway_key(key_type: KeyType) -> SigningKey:
    """A per-process key used to build (and lint) the to-be-signed part; never trusted."""
    return generate_key(key_type)


class FileSigner:
    """A CA key held in memory (loaded from a passphrase-encrypted PKCS#8 file)."""

    def __init__(self, key: SigningKey) -> None:
        self._key = key
        self._key_type = key_type_of(key)
        self._hash = signature_hash(self._key_type)
        self._public_key: PublicKey = key.public_key()  # asked for in every certificate built

    @property
    def key_type(self) -> KeyType:
        return self._key_type

    @property
    def public_key(self) -> PublicKey:
        return self._public_key

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        return builder.sign(self._key, self._hash)

    def sign_crl(
        self, builder: x509.CertificateRevocationListBuilder
    ) -> x509.CertificateRevocationList:
        return builder.sign(self._key, self._hash)


class ExternalSigner(abc.ABC):
    """Base for signers whose key lives outside the process (HSM, token)."""

    @property
    @abc.abstractmethod
    def key_type(self) -> KeyType: ...

    @property
    @abc.abstractmethod
    def public_key(self) -> PublicKey: ...

    @abc.abstractmethod
    def sign_tbs(self, tbs: bytes) -> bytes:
        """Signature over `tbs` in X.509's encoding (DER ECDSA-Sig-Value, or PKCS#1 v1.5 bytes)."""

    def _prebuild_key(self) -> SigningKey:
        return throwaway_key(self.key_type)

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        draft = builder.sign(self._prebuild_key(), signature_hash(self.key_type))
        signature = self.sign_tbs(draft.tbs_certificate_bytes)
        parsed = asn1_x509.Certificate.load(draft.public_bytes(Encoding.DER))
        assembled = asn1_x509.Certificate(
            {
                "tbs_certificate": asn1_x509.TbsCertificate.load(draft.tbs_certificate_bytes),
                "signature_algorithm": _copy_algorithm(parsed["signature_algorithm"]),
                "signature_value": signature,
            }
        )
        return x509.load_der_x509_certificate(assembled.dump())

    def sign_crl(
        self, builder: x509.CertificateRevocationListBuilder
    ) -> x509.CertificateRevocationList:
        draft = builder.sign(self._prebuild_key(), signature_hash(self.key_type))
        signature = self.sign_tbs(draft.tbs_certlist_bytes)
        parsed = asn1_crl.CertificateList.load(draft.public_bytes(Encoding.DER))
        assembled = asn1_crl.CertificateList(
            {
                "tbs_cert_list": asn1_crl.TbsCertList.load(draft.tbs_certlist_bytes),
                "signature_algorithm": _copy_algorithm(parsed["signature_algorithm"]),
                "signature": signature,
            }
        )
        return x509.load_der_x509_crl(assembled.dump())


def _copy_algorithm(alg: asn1_algos.SignedDigestAlgorithm) -> asn1_algos.SignedDigestAlgorithm:
    """The draft's AlgorithmIdentifier, byte for byte (keeps RSA's NULL parameters as they are)."""
    return asn1_algos.SignedDigestAlgorithm.load(alg.dump())
