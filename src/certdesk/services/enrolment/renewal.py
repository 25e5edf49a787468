"""Renewal by the holder, the heart of the notice: in the last month, with the current
certificate's key, the new key on the same token, the identity the registry says.

Two ways of asking share these rules: a JWS signed on the token (`method="renewal"`, with a
one-time nonce) and EST `simplereenroll`, where the TLS handshake proved the key
(`method="est_reenrol"`). Either way, asking again while a renewal is in flight is refused with
`renewal.in_progress`, which the renewal service answers with the one in flight.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import Connection

from certdesk.ca.csr import requested_identity
from certdesk.ca.keys import PublicKey, as_public_key
from certdesk.domain.errors import CertdeskError
from certdesk.domain.registry import Person
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
from certdesk.services.revocation import revoke_in
from certdesk.store import certificates as cert_store
from certdesk.store import registry as registry_store


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


def _still_in_flight(
    conn: Connection, ctx: Context, renewals: list[Any], withdrawn: set[str]
) -> bool:
    """Whether one of the in-flight `renewals` still blocks a new one, after withdrawing those
    never confirmed in time (added to `withdrawn`; those already in it are no longer in flight)."""
    cutoff = ctx.clock.now() - pending_ttl(ctx)
    in_flight = False
    for row in renewals:
        if row.serial in withdrawn:
            continue
        if row.state == CertState.PENDING_INSTALL.value and row.issued_at <= cutoff:
            revoke_in(conn, ctx, row.serial, RevocationReason.CESSATION_OF_OPERATION)
            withdrawn.add(row.serial)
        else:
            in_flight = True
    return in_flight


def _spend_nonces(
    conn: Connection, requests: Sequence[RenewalEnrolment]
) -> list[CertdeskError | None]:
    """Each request's nonce spent (EST's have none), one statement per `Nonces` (one per
    process): the refusal of each request in its place, None where it may go on."""
    refusals: list[CertdeskError | None] = [None] * len(requests)
    keepers: dict[int, tuple[Nonces, list[int]]] = {}
    for i, request in enumerate(requests):
        if request.nonce is not None and request.nonces is not None:
            keepers.setdefault(id(request.nonces), (request.nonces, []))[1].append(i)
    for keeper, indices in keepers.values():
        spent = keeper.consume_many(conn, [str(requests[i].nonce) for i in indices])
        for i, refusal in zip(indices, spent, strict=True):
            refusals[i] = refusal
    return refusals


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
        (outcome,) = self.authorise_many(conn, [self])
        if isinstance(outcome, CertdeskError):
            raise outcome
        return outcome

    @classmethod
    def authorise_many(
        cls, conn: Connection, requests: Sequence[RenewalEnrolment]
    ) -> list[Intent | CertdeskError]:
        """`authorise` for each of `requests`, in order, each refusal in its place, reading what
        they all need in a constant number of statements (nonces spent in one, certificates
        with their renewals in flight in one, locked in one, their people in one) instead of
        three or four per request. Locks go renewals withdrawn first, then the current rows in
        serial order (as confirming locks the renewal, then the certificate it replaces), so
        processes queue rather than deadlock. The rules run per request in batch order, as if
        each came alone: a nonce given twice is used the second time, a renewal withdrawn for an
        earlier request is no longer in flight for a later one; two requests for one certificate
        both pass here and the batch's claim answers the second with the first's renewal. A
        spent nonce and a withdrawn renewal stay even if their request is refused later (as for
        one request)."""
        refusals = _spend_nonces(conn, requests)
        found = cert_store.with_renewals_in_flight(
            conn, (r.current.serial for r, no in zip(requests, refusals, strict=True) if no is None)
        )
        withdrawn: set[str] = set()
        for i, request in enumerate(requests):
            serial = request.current.serial
            if refusals[i] is not None:
                continue
            try:
                if _still_in_flight(conn, request.ctx, found[serial][1], withdrawn):
                    refusals[i] = CertdeskError("renewal.in_progress", serial=serial)
            except CertdeskError as exc:
                refusals[i] = exc
        going_on = [r for r, no in zip(requests, refusals, strict=True) if no is None]
        rows = cert_store.locked(
            conn,
            {r.current.serial: found[r.current.serial][0] for r in going_on},
            stale=bool(withdrawn),
        )
        people = registry_store.people_by_id(conn, (r.current.person_id for r in going_on))
        outcomes: list[Intent | CertdeskError] = []
        for request, refusal in zip(requests, refusals, strict=True):
            if refusal is not None:
                outcomes.append(refusal)
                continue
            try:
                serial = request.current.serial
                outcomes.append(
                    request._decide(conn, rows[serial], people.get(request.current.person_id))
                )
            except CertdeskError as exc:
                outcomes.append(exc)
        return outcomes

    def _decide(self, conn: Connection, row: Any, person: Person | None) -> Intent:
        """The rules on the current certificate's locked `row` and the registry's `person`."""
        ctx, serial = self.ctx, self.current.serial
        refuse_unless_allowed(ctx, conn, row, ctx.clock.now())
        if person is None:
            raise CertdeskError("person.not_found", person_id=self.current.person_id)
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
