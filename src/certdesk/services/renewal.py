"""Self-service renewal, the heart of the notice: in the last month, on the holder's own token.

Who may renew is decided here and only here: the request is signed by the current certificate's
key (or, for EST re-enrolment, the TLS layer proved possession of it), the certificate is ours,
active, unexpired, in its window, and the new certificate names whoever the registry says.

Renewal is two-phase. `renew` issues the new certificate as *pending install*; `confirm`, signed
with the new key on the token, activates it and supersedes the old one (which then appears in
the CRL with reason superseded). Asking again while one is pending returns that one, never a
second; `pickup` fetches it when the first answer was lost; `expire_pending` withdraws those
never confirmed.
"""

from __future__ import annotations

import base64
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import Connection, and_, select, update

from certdesk.ca.csr import load_csr, requested_identity
from certdesk.ca.keys import as_public_key
from certdesk.ca.profiles import Extensions, Profile, SubjectAltNames, make_name
from certdesk.domain.errors import CertdeskError
from certdesk.domain.identity import identity_mismatch
from certdesk.domain.renewal import RenewalDecision, RenewalPolicy, RenewalRefusal
from certdesk.domain.states import CertState, PersonState, RevocationReason
from certdesk.services.authorities import ROOT, require_authority
from certdesk.services.context import Context
from certdesk.services.issuance import Intent, Issuance, IssuedCertificate, Prepare
from certdesk.services.nonces import Nonces
from certdesk.services.registry import get_person
from certdesk.services.revocation import normalise_serial, revoke_in
from certdesk.services.signed_requests import (
    SignedRequest,
    parse_signed_request,
    verify_signed_request,
)
from certdesk.store import audit
from certdesk.store.tables import certificates, positions, tokens, units

Issuer = Callable[[Prepare], IssuedCertificate]

IN_FLIGHT = (CertState.RESERVED.value, CertState.PENDING_INSTALL.value)
_AWAIT_SECONDS = 15.0


@dataclass(frozen=True)
class Current:
    """The certificate a request is made with, as the database knows it."""

    serial: str
    certificate: x509.Certificate
    state: CertState
    person_id: str
    token_serial: str | None
    replaces: str | None


@dataclass(frozen=True)
class Renewed:
    serial: str
    certificate: x509.Certificate
    state: CertState
    replaces: str
    created: bool  # False: an earlier renewal's certificate was returned

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(Encoding.PEM)


@dataclass(frozen=True)
class Confirmed:
    serial: str
    superseded: str


@dataclass(frozen=True)
class HolderProfile:
    """What the holder's tool shows read-only before renewing (rule 6 of the notice)."""

    person_id: str
    name: str
    unit: str
    position: str
    email: str
    phone: str
    unit_contact: str
    support: str
    serial: str
    state: CertState
    not_before: dt.datetime
    not_after: dt.datetime
    decision: RenewalDecision
    refusal: CertdeskError | None
    pending: str | None
    pin_changed: bool | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "person_id": self.person_id,
            "name": self.name,
            "unit": self.unit,
            "position": self.position,
            "email": self.email,
            "phone": self.phone,
            "unit_contact": self.unit_contact,
            "support": self.support,
            "certificate": {
                "serial": self.serial,
                "state": self.state.value,
                "not_before": self.not_before.isoformat(),
                "not_after": self.not_after.isoformat(),
            },
            "renewal": {
                "allowed": self.decision.allowed,
                "opens_at": self.decision.opens_at.isoformat(),
                "closes_at": self.decision.closes_at.isoformat(),
                "refusal": None if self.refusal is None else self.refusal.code,
                "messages": None if self.refusal is None else self.refusal.messages(),
                "pending": self.pending,
            },
            "token": {"pin_changed": self.pin_changed},
        }


def _when(moment: dt.datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


_CURRENT = select(
    certificates.c.serial,
    certificates.c.der,
    certificates.c.state,
    certificates.c.profile,
    certificates.c.person_id,
    certificates.c.token_serial,
    certificates.c.replaces,
    certificates.c.not_after,
    certificates.c.issued_at,
    certificates.c.revocation_reason,
)


class Renewals:
    """Renewal use cases; keep one per process (it holds the issuing CA and the nonce key)."""

    def __init__(
        self,
        ctx: Context,
        issuance: Issuance | None = None,
        issue: Issuer | None = None,
        nonces: Nonces | None = None,
    ) -> None:
        self.ctx = ctx
        self.issuance = issuance or Issuance(ctx)
        self.issue = issue or self.issuance.issue
        self.nonces = nonces or Nonces(ctx)
        self.policy = RenewalPolicy(dt.timedelta(days=ctx.config.policy.renewal_window_days))
        ca_certificate = self.issuance.authority.certificate
        assert ca_certificate is not None, "the issuing CA has a certificate"
        self.ca_certificate = ca_certificate

    def new_nonce(self) -> str:
        return self.nonces.new()

    def trust_chain(self) -> list[x509.Certificate]:
        """The issuing CA and the root, as EST `cacerts` hands them out."""
        with self.ctx.db.read() as conn:
            root = require_authority(conn, ROOT).certificate
        return [self.ca_certificate, root]

    # -- who is asking ---------------------------------------------------------------------

    def current(self, serial: str) -> Current:
        """A certificate of ours by serial (its DER re-verified against the issuing CA)."""
        with self.ctx.db.read() as conn:
            row = conn.execute(_CURRENT.where(certificates.c.serial == serial)).first()
        if row is None or row.der is None or row.profile != Profile.PERSONAL.value:
            raise CertdeskError("renewal.unknown_certificate", serial=serial)
        certificate = x509.load_der_x509_certificate(row.der)
        try:
            certificate.verify_directly_issued_by(self.ca_certificate)
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
        request = parse_signed_request(token)
        current = self.current(normalise_serial(request.serial))
        payload = verify_signed_request(request, current.certificate, action, current.serial)
        return current, request, payload

    # -- the use cases -----------------------------------------------------------------------

    def renew(self, token: str) -> Renewed:
        current, request, payload = self.authenticate(token, "renew")
        encoded = payload.get("csr")
        if not isinstance(encoded, str):
            raise CertdeskError("jws.malformed", detail="payload lacks 'csr'")
        try:
            der = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except ValueError as exc:
            raise CertdeskError("input.malformed_csr", detail=str(exc)) from None
        return self.renew_with(current, load_csr(der), request.nonce)

    def renew_with(
        self, current: Current, csr: x509.CertificateSigningRequest, nonce: str | None
    ) -> Renewed:
        """Issue the renewal (pending install) or return the one already in flight."""
        new_key = as_public_key(csr.public_key())
        if _key_bytes(new_key) == _key_bytes(current.certificate.public_key()):
            raise CertdeskError("renewal.same_key")
        attributes, emails = requested_identity(csr)

        def prepare(conn: Connection) -> Intent:
            if nonce is not None:
                self.nonces.consume(conn, nonce)
            self._clear_expired_pending(conn, current.serial)
            if self._in_flight(conn, current.serial) is not None:
                raise CertdeskError("renewal.in_progress", serial=current.serial)
            row = conn.execute(
                _CURRENT.where(certificates.c.serial == current.serial).with_for_update()
            ).one()
            self._refuse_unless_allowed(conn, row)
            person = get_person(conn, current.person_id)
            if person.state is not PersonState.ACTIVE:
                raise CertdeskError("person.departed", person_id=person.person_id)
            identity = self.issuance.identity(person)
            mismatch = identity_mismatch(identity, attributes, emails)
            if mismatch is not None:
                raise CertdeskError(
                    "renewal.identity_change",
                    field=mismatch.field,
                    asked=mismatch.asked,
                    registered=mismatch.registered,
                    contacts=self.ctx.config.support.contacts(),
                )
            return Intent(
                Profile.PERSONAL,
                new_key,
                make_name(identity.subject_attributes()),
                Extensions(SubjectAltNames(emails=(identity.email,))),
                person_id=person.person_id,
                token_serial=current.token_serial,
                method="renewal",
                replaces=current.serial,
                state_after=CertState.PENDING_INSTALL,
            )

        try:
            issued = self.issue(prepare)
        except CertdeskError as exc:
            if exc.code != "renewal.in_progress":
                raise
            return self._await_pending(current.serial)
        return Renewed(
            issued.serial, issued.certificate, CertState.PENDING_INSTALL, current.serial, True
        )

    def pickup(self, token: str) -> Renewed:
        """The certificate a renewal issued for this one (pending or already confirmed)."""
        current, request, _payload = self.authenticate(token, "pickup")
        with self.ctx.db.write() as conn:
            self.nonces.consume(conn, request.nonce)
            row = conn.execute(
                select(certificates.c.serial, certificates.c.state, certificates.c.der)
                .where(
                    and_(
                        certificates.c.replaces == current.serial,
                        certificates.c.state.in_(
                            [CertState.PENDING_INSTALL.value, CertState.ACTIVE.value]
                        ),
                    )
                )
                .order_by(certificates.c.reserved_at.desc())
                .limit(1)
            ).first()
            reserved = self._in_flight(conn, current.serial)
        if row is None:
            code = "renewal.in_progress" if reserved else "renewal.nothing_pending"
            raise CertdeskError(code, serial=current.serial)
        return Renewed(
            row.serial,
            x509.load_der_x509_certificate(row.der),
            CertState(row.state),
            current.serial,
            False,
        )

    def confirm(self, token: str) -> Confirmed:
        """Signed with the new key: it is installed. New active, old superseded (and in the CRL)."""
        new, request, _payload = self.authenticate(token, "confirm")
        return self.activate(new, request.nonce)

    def reenroll(self, client_cert_der: bytes, csr_data: bytes) -> Renewed:
        """EST simplereenroll: the TLS handshake proved the key; the answer is the certificate,
        so it is activated at once (asking again returns it, as with a pending renewal)."""
        current = self.current_from_tls(client_cert_der)
        renewed = self.renew_with(current, load_csr(csr_data), nonce=None)
        if renewed.state is CertState.PENDING_INSTALL:
            self.activate(self.current(renewed.serial), nonce=None)
        return Renewed(renewed.serial, renewed.certificate, CertState.ACTIVE, current.serial, True)

    def activate(self, new: Current, nonce: str | None) -> Confirmed:
        now = self.ctx.clock.now()
        with self.ctx.db.write() as conn:
            if nonce is not None:
                self.nonces.consume(conn, nonce)
            row = conn.execute(
                _CURRENT.where(certificates.c.serial == new.serial).with_for_update()
            ).one()
            state = CertState(row.state)
            if state is CertState.ACTIVE and row.replaces is not None:
                return Confirmed(new.serial, row.replaces)  # a retried confirmation
            if state is not CertState.PENDING_INSTALL or row.replaces is None:
                raise CertdeskError("renewal.not_pending", serial=new.serial, state=state.value)
            if row.issued_at + self._pending_ttl < now:
                raise CertdeskError(
                    "renewal.pending_expired",
                    serial=new.serial,
                    hours=self.ctx.config.renewal.pending_hours,
                )
            old = conn.execute(
                _CURRENT.where(certificates.c.serial == row.replaces).with_for_update()
            ).one()
            if old.state != CertState.ACTIVE.value:
                raise CertdeskError("renewal.not_active", state=old.state)
            conn.execute(
                update(certificates)
                .where(certificates.c.serial == old.serial)
                .values(
                    state=CertState.SUPERSEDED.value,
                    revoked_at=now,
                    revocation_reason=RevocationReason.SUPERSEDED.value,
                )
            )
            conn.execute(
                update(certificates)
                .where(certificates.c.serial == new.serial)
                .values(state=CertState.ACTIVE.value)
            )
            audit.append(
                conn,
                at=now,
                actor=f"holder:{new.person_id}",
                action="certificate.renewal_confirm",
                object_type="certificate",
                object_id=new.serial,
                before={"state": state.value, "replaces": old.serial, "old_state": old.state},
                after={
                    "state": CertState.ACTIVE.value,
                    "old_state": CertState.SUPERSEDED.value,
                    "old_reason": RevocationReason.SUPERSEDED.value,
                },
            )
        return Confirmed(new.serial, old.serial)

    def profile(self, token: str) -> HolderProfile:
        current, request, _payload = self.authenticate(token, "profile")
        now = self.ctx.clock.now()
        with self.ctx.db.write() as conn:
            self.nonces.consume(conn, request.nonce)
            row = conn.execute(_CURRENT.where(certificates.c.serial == current.serial)).one()
            person = get_person(conn, current.person_id)
            unit = conn.execute(select(units).where(units.c.code == person.unit_code)).one()
            position = conn.execute(
                select(positions.c.name).where(positions.c.code == person.position_code)
            ).scalar()
            pin_changed = conn.execute(
                select(tokens.c.pin_changed).where(tokens.c.serial == current.token_serial)
            ).scalar()
            pending = self._in_flight(conn, current.serial)
            refusal: CertdeskError | None = None
            try:
                decision = self._refuse_unless_allowed(conn, row, now)
            except CertdeskError as exc:
                refusal = exc
                decision = self._decide(row, now)
        return HolderProfile(
            person.person_id,
            person.name,
            person.unit_name,
            position or "",
            person.email,
            person.phone,
            ", ".join(x for x in (unit.contact_name, unit.contact_phone, unit.contact_email) if x),
            self.ctx.config.support.contacts(),
            current.serial,
            current.state,
            current.certificate.not_valid_before_utc,
            current.certificate.not_valid_after_utc,
            decision,
            refusal,
            pending,
            pin_changed,
        )

    def report_pin_changed(self, token: str) -> str:
        """The holder changed the token's initial PIN (reported signed with the token's key)."""
        current, request, _payload = self.authenticate(token, "pin-changed")
        if current.token_serial is None:
            raise CertdeskError("token.no_token_recorded", serial=current.serial)
        now = self.ctx.clock.now()
        with self.ctx.db.write() as conn:
            self.nonces.consume(conn, request.nonce)
            conn.execute(
                update(tokens)
                .where(tokens.c.serial == current.token_serial)
                .values(pin_changed=True, updated_at=now)
            )
            audit.append(
                conn,
                at=now,
                actor=f"holder:{current.person_id}",
                action="token.pin_changed",
                object_type="token",
                object_id=current.token_serial,
                after={"pin_changed": True},
            )
        return current.token_serial

    # -- policy ------------------------------------------------------------------------------

    @property
    def _pending_ttl(self) -> dt.timedelta:
        return dt.timedelta(hours=self.ctx.config.renewal.pending_hours)

    def _decide(self, row: Any, now: dt.datetime) -> RenewalDecision:
        return self.policy.decide(CertState(row.state), row.not_after, now)

    def _refuse_unless_allowed(
        self, conn: Connection, row: Any, now: dt.datetime | None = None
    ) -> RenewalDecision:
        decision = self._decide(row, now or self.ctx.clock.now())
        refusal = decision.refusal
        if refusal is None:
            return decision
        contacts = self.ctx.config.support.contacts()
        if refusal is RenewalRefusal.TOO_EARLY:
            raise CertdeskError(
                refusal.value,
                days=self.ctx.config.policy.renewal_window_days,
                not_after=_when(row.not_after),
                opens_at=_when(decision.opens_at),
            )
        if refusal is RenewalRefusal.EXPIRED:
            raise CertdeskError(refusal.value, not_after=_when(row.not_after), contacts=contacts)
        if refusal is RenewalRefusal.REVOKED:
            raise CertdeskError(refusal.value, reason=row.revocation_reason, contacts=contacts)
        if refusal is RenewalRefusal.SUPERSEDED:
            by = conn.execute(
                select(certificates.c.serial).where(
                    and_(
                        certificates.c.replaces == row.serial,
                        certificates.c.state == CertState.ACTIVE.value,
                    )
                )
            ).scalar()
            raise CertdeskError(refusal.value, by=by or "?")
        raise CertdeskError(refusal.value, state=row.state)

    # -- in-flight renewals ------------------------------------------------------------------

    def _in_flight(self, conn: Connection, serial: str) -> str | None:
        return conn.execute(
            select(certificates.c.serial).where(
                and_(certificates.c.replaces == serial, certificates.c.state.in_(IN_FLIGHT))
            )
        ).scalar()

    def _clear_expired_pending(self, conn: Connection, serial: str) -> None:
        cutoff = self.ctx.clock.now() - self._pending_ttl
        stale = conn.execute(
            select(certificates.c.serial).where(
                and_(
                    certificates.c.replaces == serial,
                    certificates.c.state == CertState.PENDING_INSTALL.value,
                    certificates.c.issued_at <= cutoff,
                )
            )
        ).scalar()
        if stale is not None:
            revoke_in(conn, self.ctx, stale, RevocationReason.CESSATION_OF_OPERATION)

    def _await_pending(self, serial: str) -> Renewed:
        """A renewal for `serial` is in flight (maybe in another process): wait for its result."""
        deadline = time.monotonic() + _AWAIT_SECONDS
        while time.monotonic() < deadline:
            with self.ctx.db.read() as conn:
                row = conn.execute(
                    select(certificates.c.serial, certificates.c.state, certificates.c.der).where(
                        and_(
                            certificates.c.replaces == serial,
                            certificates.c.state.in_(IN_FLIGHT),
                        )
                    )
                ).first()
            if row is None:
                break  # its signing failed and was abandoned: the holder may try again
            if row.state == CertState.PENDING_INSTALL.value:
                return Renewed(
                    row.serial,
                    x509.load_der_x509_certificate(row.der),
                    CertState.PENDING_INSTALL,
                    serial,
                    False,
                )
            time.sleep(0.02)  # another worker is between reserving and recording
        raise CertdeskError("renewal.in_progress", serial=serial)


def expire_pending(ctx: Context) -> list[str]:
    """Revoke renewals never confirmed within `renewal.pending_hours` (each its own transaction)."""
    cutoff = ctx.clock.now() - dt.timedelta(hours=ctx.config.renewal.pending_hours)
    pending = and_(
        certificates.c.state == CertState.PENDING_INSTALL.value,
        certificates.c.issued_at <= cutoff,
    )
    with ctx.db.read() as conn:
        stale = list(conn.execute(select(certificates.c.serial).where(pending)).scalars())
    done: list[str] = []
    for serial in stale:
        with ctx.db.write() as conn:
            still = conn.execute(
                select(certificates.c.serial)
                .where(and_(certificates.c.serial == serial, pending))
                .with_for_update()
            ).scalar()
            if still is not None:  # not confirmed in the meantime
                revoke_in(conn, ctx, serial, RevocationReason.CESSATION_OF_OPERATION)
                done.append(serial)
    return done


def _key_bytes(key: Any) -> bytes:
    data: bytes = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return data
