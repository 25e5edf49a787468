"""Building a CRL (RFC 5280) from revoked entries, at the scale of a million entries.

cryptography's builders are immutable: `add_revoked_certificate` copies the list each time
(quadratic), so the entries go to the builder's constructor in one list, and each entry is made
through `RevokedCertificateBuilder`'s constructor with a shared reasonCode extension object.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable

from cryptography import x509

from certdesk.ca.signer import Signer
from certdesk.domain.revocation import RevokedEntry
from certdesk.domain.states import RevocationReason


def _reason_extensions() -> dict[RevocationReason, list[x509.Extension[x509.ExtensionType]]]:
    """One shared extension list per reason; `unspecified` carries none (RFC 5280 5.3.1)."""
    out: dict[RevocationReason, list[x509.Extension[x509.ExtensionType]]] = {}
    for reason in RevocationReason:
        if reason is RevocationReason.UNSPECIFIED:
            out[reason] = []
            continue
        flag = x509.ReasonFlags(reason.value)
        value = x509.CRLReason(flag)
        out[reason] = [x509.Extension(value.oid, False, value)]
    return out


_REASONS = _reason_extensions()


def revoked_certificates(entries: Iterable[RevokedEntry]) -> list[x509.RevokedCertificate]:
    build = x509.RevokedCertificateBuilder
    return [build(e.serial, e.revoked_at, _REASONS[e.reason]).build() for e in entries]


@functools.lru_cache(maxsize=16)
def freshest_crl(url: str) -> x509.FreshestCRL:
    """Where the delta CRLs are (RFC 5280 5.2.6), in complete CRLs and end-entity certificates."""
    uri = x509.UniformResourceIdentifier(url)
    return x509.FreshestCRL([x509.DistributionPoint([uri], None, None, None)])


def build_crl(
    signer: Signer,
    issuer: x509.Certificate,
    number: int,
    this_update: dt.datetime,
    next_update: dt.datetime,
    entries: Iterable[RevokedEntry],
    *,
    base: int | None = None,
    delta_url: str | None = None,
) -> x509.CertificateRevocationList:
    """A CRL with CRL Number and Authority Key Identifier, signed by `signer`. With `base`, a
    delta CRL (RFC 5280 5.2.4): the critical Delta CRL Indicator names the complete CRL whose
    changes `entries` are; with `delta_url`, a complete CRL that says where its deltas are
    (Freshest CRL, which must not appear in a delta CRL)."""
    if base is not None and delta_url is not None:
        raise ValueError("a delta CRL carries no Freshest CRL extension (RFC 5280 5.2.6)")
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    crl_number = x509.CRLNumber(number)
    extensions: list[x509.Extension[x509.ExtensionType]] = [
        x509.Extension(aki.oid, False, aki),
        x509.Extension(crl_number.oid, False, crl_number),
    ]
    if base is not None:
        indicator = x509.DeltaCRLIndicator(base)
        extensions.append(x509.Extension(indicator.oid, True, indicator))
    if delta_url is not None:
        freshest = freshest_crl(delta_url)
        extensions.append(x509.Extension(freshest.oid, False, freshest))
    builder = x509.CertificateRevocationListBuilder(
        issuer_name=issuer.subject,
        last_update=this_update,
        next_update=next_update,
        extensions=extensions,
        revoked_certificates=revoked_certificates(entries),
    )
    return signer.sign_crl(builder)
