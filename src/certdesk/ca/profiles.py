"""Certificate profiles: which extensions each kind of certificate carries.

A profile only shapes the to-be-signed certificate; *whether* and *for whom* to issue is decided
by the services before they call the issuing path.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
)
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from certdesk.ca.crl import freshest_crl
from certdesk.ca.keys import PublicKey

_ATTRS = {
    "C": NameOID.COUNTRY_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "CN": NameOID.COMMON_NAME,
    "serialNumber": NameOID.SERIAL_NUMBER,
}


def make_name(attributes: Sequence[tuple[str, str]]) -> x509.Name:
    """An X.509 name from (attribute, value) pairs; empty values are left out."""
    return x509.Name([x509.NameAttribute(_ATTRS[k], v) for k, v in attributes if v])


class Profile(enum.StrEnum):
    ROOT_CA = "root_ca"
    ISSUING_CA = "issuing_ca"
    PERSONAL = "personal"
    TLS_SERVER = "tls_server"
    OCSP_SIGNING = "ocsp_signing"

    @property
    def is_ca(self) -> bool:
        return self in (Profile.ROOT_CA, Profile.ISSUING_CA)


@dataclass(frozen=True)
class PublicationUrls:
    """URLs every end-entity certificate points to (from [urls] in the configuration)."""

    crl: str
    ocsp: str
    ca_issuers: str
    delta_crl: str | None = None  # Freshest CRL in end-entity certificates while deltas are on


@dataclass(frozen=True)
class SubjectAltNames:
    emails: tuple[str, ...] = ()
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()

    def general_names(self) -> list[x509.GeneralName]:
        names: list[x509.GeneralName] = [x509.RFC822Name(e) for e in self.emails]
        names += [x509.DNSName(d) for d in self.dns_names]
        names += [x509.IPAddress(ipaddress.ip_address(i)) for i in self.ip_addresses]
        return names


@dataclass(frozen=True)
class Extensions:
    """The profile-specific inputs beyond subject and key."""

    sans: SubjectAltNames = field(default_factory=SubjectAltNames)


def _key_usage(
    *, digital_signature: bool = False, key_cert_sign: bool = False, key_encipherment: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _spki(key: PublicKey) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


@functools.lru_cache(maxsize=16)
def _authority_key_id(issuer_spki: bytes) -> x509.AuthorityKeyIdentifier:
    """Cached per CA key: it is the same in every certificate the CA signs."""
    key = load_der_public_key(issuer_spki)
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(key)  # type: ignore[arg-type]


@functools.lru_cache(maxsize=16)
def _publication_extensions(
    urls: PublicationUrls,
) -> tuple[x509.CRLDistributionPoints, x509.AuthorityInformationAccess]:
    """CRL Distribution Points and Authority Information Access, built once per URL set."""
    uri = x509.UniformResourceIdentifier
    crl_dp = x509.CRLDistributionPoints([x509.DistributionPoint([uri(urls.crl)], None, None, None)])
    aia = x509.AuthorityInformationAccess(
        [
            x509.AccessDescription(AuthorityInformationAccessOID.OCSP, uri(urls.ocsp)),
            x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS, uri(urls.ca_issuers)),
        ]
    )
    return crl_dp, aia


def apply_profile(
    builder: x509.CertificateBuilder,
    profile: Profile,
    *,
    subject_key: PublicKey,
    issuer_key: PublicKey,
    urls: PublicationUrls | None,
    extensions: Extensions,
) -> x509.CertificateBuilder:
    """Add the profile's extensions to a builder that already has names, key, serial and dates."""
    b = builder.add_extension(
        x509.SubjectKeyIdentifier.from_public_key(subject_key), critical=False
    )
    if profile is not Profile.ROOT_CA:
        b = b.add_extension(_authority_key_id(_spki(issuer_key)), critical=False)
    if profile.is_ca:
        path_len = None if profile is Profile.ROOT_CA else 0
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=path_len), critical=True)
        b = b.add_extension(_key_usage(key_cert_sign=True, digital_signature=True), critical=True)
    else:
        b = b.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        rsa_key = isinstance(subject_key, rsa.RSAPublicKey)
        if profile is Profile.PERSONAL:
            b = b.add_extension(_key_usage(digital_signature=True), critical=True)
            ekus = [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION]
        elif profile is Profile.TLS_SERVER:
            ku = _key_usage(digital_signature=True, key_encipherment=rsa_key)
            b = b.add_extension(ku, critical=True)
            ekus = [ExtendedKeyUsageOID.SERVER_AUTH]
        else:  # OCSP signing (RFC 6960 4.2.2.2)
            b = b.add_extension(_key_usage(digital_signature=True), critical=True)
            ekus = [ExtendedKeyUsageOID.OCSP_SIGNING]
            b = b.add_extension(x509.OCSPNoCheck(), critical=False)
        b = b.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
        general_names = extensions.sans.general_names()
        if general_names:
            b = b.add_extension(x509.SubjectAlternativeName(general_names), critical=False)
    if urls is not None and profile is not Profile.ROOT_CA:
        crl_dp, aia = _publication_extensions(urls)
        b = b.add_extension(crl_dp, critical=False).add_extension(aia, critical=False)
        if urls.delta_crl is not None and not profile.is_ca:
            b = b.add_extension(freshest_crl(urls.delta_crl), critical=False)
    return b
