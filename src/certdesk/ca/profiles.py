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


Ext = x509.Extension[x509.ExtensionType]


def _ext(value: x509.ExtensionType, critical: bool) -> Ext:
    return x509.Extension(value.oid, critical, value)


def _encoded(value: x509.ExtensionType, critical: bool) -> Ext:
    """An extension that is the same in many certificates, encoded once (by cryptography,
    `public_bytes`) and handed to the builder as its DER value, which it copies instead of
    encoding the extension again for every certificate (~10 of the ~60 µs that building and
    signing a personal certificate take). The bytes are the same either way; parsed back, it is
    the typed extension (tests/test_issuance.py)."""
    return x509.Extension(
        value.oid, critical, x509.UnrecognizedExtension(value.oid, value.public_bytes())
    )


def authority_key_id(issuer_key: PublicKey) -> Ext:
    """The Authority Key Identifier of every certificate `issuer_key` signs: worked out once
    per CA (`Authority`), not once per certificate."""
    return _encoded(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key), False)


@functools.lru_cache(maxsize=16)
def _publication_extensions(urls: PublicationUrls, with_delta: bool) -> tuple[Ext, ...]:
    """CRL Distribution Points, Authority Information Access (and Freshest CRL, `with_delta`),
    built once per URL set."""
    uri = x509.UniformResourceIdentifier
    crl_dp = x509.CRLDistributionPoints([x509.DistributionPoint([uri(urls.crl)], None, None, None)])
    aia = x509.AuthorityInformationAccess(
        [
            x509.AccessDescription(AuthorityInformationAccessOID.OCSP, uri(urls.ocsp)),
            x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS, uri(urls.ca_issuers)),
        ]
    )
    found: tuple[Ext, ...] = (_encoded(crl_dp, False), _encoded(aia, False))
    if with_delta and urls.delta_crl is not None:
        found += (_encoded(freshest_crl(urls.delta_crl), False),)
    return found


@functools.cache
def _usage_extensions(profile: Profile, rsa_key: bool) -> tuple[Ext, ...]:
    """Basic constraints, key usage and extended key usage: fixed per profile (and, for a TLS
    server, whether its key is RSA), so built once."""
    if profile.is_ca:
        path_len = None if profile is Profile.ROOT_CA else 0
        return (
            _encoded(x509.BasicConstraints(ca=True, path_length=path_len), True),
            _encoded(_key_usage(key_cert_sign=True, digital_signature=True), True),
        )
    found = [_encoded(x509.BasicConstraints(ca=False, path_length=None), True)]
    if profile is Profile.PERSONAL:
        found.append(_encoded(_key_usage(digital_signature=True), True))
        ekus = [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION]
    elif profile is Profile.TLS_SERVER:
        found.append(_encoded(_key_usage(digital_signature=True, key_encipherment=rsa_key), True))
        ekus = [ExtendedKeyUsageOID.SERVER_AUTH]
    else:  # OCSP signing (RFC 6960 4.2.2.2)
        found.append(_encoded(_key_usage(digital_signature=True), True))
        ekus = [ExtendedKeyUsageOID.OCSP_SIGNING]
        found.append(_encoded(x509.OCSPNoCheck(), False))
    found.append(_encoded(x509.ExtendedKeyUsage(ekus), False))
    return tuple(found)


def profile_extensions(
    profile: Profile,
    *,
    subject_key: PublicKey,
    issuer_key_id: Ext,
    urls: PublicationUrls | None,
    extensions: Extensions,
) -> list[Ext]:
    """The profile's extensions, in the order they are encoded, for a certificate of
    `subject_key` signed by the CA whose `authority_key_id` is `issuer_key_id`.

    A list for `x509.CertificateBuilder(extensions=…)`: only the key identifier and the names
    differ from one certificate to the next, the rest is built once per profile, CA and URL set
    (adding them one by one checks each against all before it, per certificate).
    """
    found = [_ext(x509.SubjectKeyIdentifier.from_public_key(subject_key), False)]
    if profile is not Profile.ROOT_CA:
        found.append(issuer_key_id)
    found += _usage_extensions(profile, isinstance(subject_key, rsa.RSAPublicKey))
    if not profile.is_ca:
        general_names = extensions.sans.general_names()
        if general_names:
            found.append(_ext(x509.SubjectAlternativeName(general_names), False))
    if urls is not None and profile is not Profile.ROOT_CA:
        found += _publication_extensions(urls, not profile.is_ca)
    return found
