"""Renewal by the holder, the heart of the notice: in the last month, with the current
certificate's key, the new key on the same token, the identity the registry says.

Two ways of asking share these rules: a JWS signed on the token (`method="renewal"`, with a
one-time nonce) and EST `simplereenroll`, where the TLS handshake proved the key
(`method="est_reenrol"`). Either way, asking again while a renewal is in flight is refused with
`renewal.in_progress`, which the renewal service answers with the one in flight.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import Connection

from certdesk.ca.csr import requested_identity
from certdesk.ca.keys import PublicKey, as_public_key
from certdesk.domain.errors import CertdeskError
from certdesk.domain.renewal import RenewalDecision, RenewalRefusal
from certdesk.domain.states import CertState, RevocationReason
from certdesk.services.context import Context
from certdesk.services.enrolment import Claim, Intent
from certdesk.services.enrolment.personal import (
    personal_intent,
    refuse_identity_change,
    registered_identity,
    require_active,
)
from certdesk.services.holder_auth import Current
from certdesk.services.nonces import Nonces
from certdesk.services.policy import renewal_policy
from certdesk.services.registry import get_person
from certdesk.services.revocation import revoke_in
from certdesk.store import certificates as cert_store


def _when(moment: dt.datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def refuse_unless_allowed(
    ctx: Context, conn: Connection, row: Any, now: dt.datetime
) -> RenewalDecision:
    """The window rule for the certificate in `row`, refused with what the holder can do."""
    decision = renewal_policy(ctx.config).decide(CertState(row.state), row.not_after, now)
    refusal = decision.refusal
    if refusal is None:
        return decision
    contacts = ctx.config.support.contacts()
    if refusal is RenewalRefusal.TOO_EARLY:
        raise CertdeskError(
            refusal.value,
            days=ctx.config.policy.renewal_window_days,
            not_after=_when(row.not_after),
            opens_at=_when(decision.opens_at),
        )
    if refusal is RenewalRefusal.EXPIRED:
        raise CertdeskError(refusal.value, not_after=_when(row.not_after), contacts=contacts)
    if refusal is RenewalRefusal.REVOKED:
        raise CertdeskError(refusal.value, reason=row.revocation_reason, contacts=contacts)
    if refusal is RenewalRefusal.SUPERSEDED:
        raise CertdeskError(refusal.value, by=cert_store.active_successor(conn, row.serial) or "?")
    raise CertdeskError(refusal.value, state=row.state)


def pending_ttl(ctx: Context) -> dt.timedelta:
    return dt.timedelta(hours=ctx.config.renewal.pending_hours)


def _still_in_flight(conn: Connection, ctx: Context, renewals: list[Any]) -> bool:
    """Whether one of the in-flight `renewals` still blocks a new one, after withdrawing those
    never confirmed in time."""
    cutoff = ctx.clock.now() - pending_ttl(ctx)
    in_flight = False
    for row in renewals:
        if row.state == CertState.PENDING_INSTALL.value and row.issued_at <= cutoff:
            revoke_in(conn, ctx, row.serial, RevocationReason.CESSATION_OF_OPERATION)
        else:
            in_flight = True
    return in_flight


def _key_bytes(key: Any) -> bytes:
    data: bytes = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return data


def _one_renewal_in_flight(serial: str) -> Claim:
    return Claim(
        f"renews:{serial}", lambda _twin: CertdeskError("renewal.in_progress", serial=serial)
    )


@dataclass(frozen=True)
class RenewalEnrolment:
    """The holder of `current` asks for a certificate for a new key (pending install)."""

    ctx: Context
    current: Current
    public_key: PublicKey
    attributes: tuple[tuple[str, str], ...]
    emails: tuple[str, ...]
    nonce: str | None
    nonces: Nonces | None
    method: str = "renewal"

    @classmethod
    def from_csr(
        cls,
        ctx: Context,
        current: Current,
        csr: x509.CertificateSigningRequest,
        nonce: str | None = None,
        nonces: Nonces | None = None,
        method: str = "renewal",
    ) -> RenewalEnrolment:
        new_key = as_public_key(csr.public_key())
        if _key_bytes(new_key) == _key_bytes(current.certificate.public_key()):
            raise CertdeskError("renewal.same_key")
        attributes, emails = requested_identity(csr)
        return cls(ctx, current, new_key, tuple(attributes), tuple(emails), nonce, nonces, method)

    def authorise(self, conn: Connection) -> Intent:
        ctx, serial = self.ctx, self.current.serial
        if self.nonce is not None and self.nonces is not None:
            self.nonces.consume(conn, self.nonce)
        row, renewals = cert_store.with_renewals_in_flight(conn, serial)
        if _still_in_flight(conn, ctx, renewals):
            raise CertdeskError("renewal.in_progress", serial=serial)
        row = cert_store.locked(conn, serial, row)
        refuse_unless_allowed(ctx, conn, row, ctx.clock.now())
        person = get_person(conn, self.current.person_id)
        require_active(person)
        identity = registered_identity(ctx.config, person)
        refuse_identity_change(ctx.config, identity, self.attributes, self.emails)
        return personal_intent(
            identity,
            self.public_key,
            self.method,
            _one_renewal_in_flight(serial),
            token_serial=self.current.token_serial,
            replaces=serial,
            state_after=CertState.PENDING_INSTALL,
        )
