"""The one issuing path: build the to-be-signed certificate, check it, sign it with the real key.

Every way of asking for a certificate ends here. Checks (`LintHook`) see a draft signed with a
throwaway key of the same type, as Boulder lints its precertificates: a profile mistake stops
issuance before the CA key signs anything.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cryptography import x509

from certdesk.ca.keys import PublicKey, signature_hash
from certdesk.ca.profiles import (
    Ext,
    Extensions,
    Profile,
    PublicationUrls,
    authority_key_id,
    profile_extensions,
)
from certdesk.ca.signer import Signer, throwaway_key
from certdesk.domain.errors import CertdeskError


class LintHook(Protocol):
    def __call__(self, draft: x509.Certificate, profile: Profile) -> Sequence[str]:
        """Problems found in the draft (empty when it is fine)."""
        ...


@dataclass(frozen=True)
class CertificateOrder:
    """Everything the signer needs, decided before signing (serial already reserved)."""

    serial: int
    subject: x509.Name
    public_key: PublicKey
    profile: Profile
    not_before: dt.datetime
    not_after: dt.datetime
    extensions: Extensions = field(default_factory=Extensions)


@dataclass
class Authority:
    """A CA that signs: its certificate (None while self-signing the root) and its key."""

    signer: Signer
    certificate: x509.Certificate | None
    urls: PublicationUrls | None = None
    hooks: Sequence[LintHook] = ()

    @functools.cached_property
    def issuer_key_id(self) -> Ext:
        """The same in every certificate this CA signs."""
        return authority_key_id(self.signer.public_key)

    def build(self, order: CertificateOrder) -> x509.CertificateBuilder:
        issuer_name = order.subject if self.certificate is None else self.certificate.subject
        extensions = profile_extensions(
            order.profile,
            subject_key=order.public_key,
            issuer_key_id=self.issuer_key_id,
            urls=self.urls,
            extensions=order.extensions,
        )
        return (
            x509.CertificateBuilder(extensions=extensions)
            .serial_number(order.serial)
            .subject_name(order.subject)
            .issuer_name(issuer_name)
            .public_key(order.public_key)
            .not_valid_before(order.not_before)
            .not_valid_after(order.not_after)
        )

    def issue(self, order: CertificateOrder) -> x509.Certificate:
        builder = self.build(order)
        if self.hooks:
            draft = builder.sign(
                throwaway_key(self.signer.key_type), signature_hash(self.signer.key_type)
            )
            problems = [p for hook in self.hooks for p in hook(draft, order.profile)]
            if problems:
                raise CertdeskError("ca.lint_failed", detail="; ".join(problems))
        return self.signer.sign_certificate(builder)
