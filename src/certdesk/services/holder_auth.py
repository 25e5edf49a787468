"""Who is asking, for the holder's requests: the certificate a request is signed with (a JWS
from the holder's token) or presented with (EST over mutual TLS), as the database knows it."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from certdesk.ca.profiles import Profile
from certdesk.domain.errors import CertdeskError
from certdesk.domain.states import CertState
from certdesk.services.authorities import Issuers
from certdesk.services.context import Context
from certdesk.services.revocation import normalise_serial
from certdesk.services.signed_requests import (
    SignedRequest,
    parse_signed_request,
    verify_signed_request,
)
from certdesk.store import certificates as cert_store


@dataclass(frozen=True)
class Current:
    """The certificate a request is made with, as the database knows it."""

    serial: str
    certificate: x509.Certificate
    state: CertState
    person_id: str
    token_serial: str | None
    replaces: str | None


class HolderAuth:
    """Finds and checks the certificate behind a holder's request; one per process."""

    def __init__(self, ctx: Context, issuers: Issuers) -> None:
        self.ctx = ctx
        self.issuers = issuers
        # The same bytes verify the same way against the same CA: parse and check the signature
        # once per certificate (only successes are kept), as `Access` does for logins.
        self._verified = functools.lru_cache(maxsize=4096)(self._verify)

    def _verify(self, der: bytes) -> x509.Certificate:
        certificate = x509.load_der_x509_certificate(der)
        self.issuers.issuer_of(certificate)
        return certificate

    def current(self, serial: str) -> Current:
        """A personal certificate of ours by serial (its DER re-verified against its CA)."""
        return self._current(serial, cert_store.read(self.ctx.db, serial))

    def _current(self, serial: str, row: Any | None) -> Current:
        if row is None or row.der is None or row.profile != Profile.PERSONAL.value:
            raise CertdeskError("renewal.unknown_certificate", serial=serial)
        try:
            certificate = self._verified(row.der)
        except (ValueError, TypeError, InvalidSignature):
            raise CertdeskError("renewal.unknown_certificate", serial=serial) from None
        return Current(
            row.serial,
            certificate,
            CertState(row.state),
            row.person_id,
            row.token_serial,
            row.replaces,
        )

    def current_from_tls(self, der: bytes) -> Current:
        """The certificate a TLS client presented: it must be exactly the one we hold."""
        presented = x509.load_der_x509_certificate(der)
        current = self.current(format(presented.serial_number, "x"))
        if current.certificate != presented:
            raise CertdeskError("renewal.unknown_certificate", serial=current.serial)
        return current

    def authenticate(
        self, token: str, action: str
    ) -> tuple[Current, SignedRequest, dict[str, Any]]:
        """A JWS signed for `action` by the key of the certificate its header names."""
        request = parse_signed_request(token)
        serial = normalise_serial(request.serial)
        return self._checked(request, serial, cert_store.read(self.ctx.db, serial), action)

    async def authenticate_async(
        self, token: str, action: str
    ) -> tuple[Current, SignedRequest, dict[str, Any]]:
        """`authenticate` on the event loop: the certificate read on the loop's connections
        (`Database.fetch_async`), the checks (signatures: ~0.3 ms) on the loop itself."""
        request = parse_signed_request(token)
        serial = normalise_serial(request.serial)
        row = await cert_store.read_async(self.ctx.db, serial)
        return self._checked(request, serial, row, action)

    def _checked(
        self, request: SignedRequest, serial: str, row: Any | None, action: str
    ) -> tuple[Current, SignedRequest, dict[str, Any]]:
        current = self._current(serial, row)
        payload = verify_signed_request(request, current.certificate, action, current.serial)
        return current, request, payload
