"""Issuing a certificate, crash-safe: reserve, sign, record.

1. *Reserve*: one committed transaction checks the request against the registry, reserves a
   fresh random serial (the primary key makes reuse impossible) and records the intent, with an
   audit record.
2. *Sign* through the one issuing path (`certdesk.ca.issuer.Authority.issue`).
3. *Record*: one transaction stores the DER and makes the certificate active, with an audit record.

A crash between 1 and 3 leaves a `reserved` row and no certificate anywhere: the signed bytes only
ever leave this module after step 3 has committed. `abandon_stale_reservations` closes such rows;
their serials are never handed out again.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Connection, and_, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from certdesk.ca.csr import load_csr
from certdesk.ca.issuer import Authority, CertificateOrder, LintHook
from certdesk.ca.keys import PublicKey, as_public_key
from certdesk.ca.profiles import Extensions, Profile, SubjectAltNames, make_name
from certdesk.domain.errors import CertdeskError
from certdesk.domain.identity import PersonIdentity
from certdesk.domain.states import CertState, PersonState
from certdesk.domain.validity import CLOCK_SKEW, validity_from
from certdesk.services.authorities import ISSUING, load_authority
from certdesk.services.context import Context
from certdesk.services.registry import Person, person_from_row, person_query
from certdesk.services.tokens import check_assignable, hand_over
from certdesk.store import audit
from certdesk.store.tables import certificates, people

# Decides, inside the reservation's transaction, what to issue (or raises a refusal).
Prepare = Callable[[Connection], "Intent"]


@dataclass(frozen=True)
class IssuedCertificate:
    serial: str
    certificate: x509.Certificate
    profile: Profile
    person_id: str | None
    token_serial: str | None

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(Encoding.PEM)

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(Encoding.DER)


@dataclass(frozen=True)
class Intent:
    """What an enrolment method decided: who, which key, which profile; the rest is policy."""

    profile: Profile
    public_key: PublicKey
    subject: x509.Name
    extensions: Extensions
    person_id: str | None = None
    token_serial: str | None = None
    method: str = "officer"
    replaces: str | None = None
    state_after: CertState = CertState.ACTIVE
    backdate: dt.timedelta = dt.timedelta(0)  # CLOCK_SKEW for server certificates


def serial_hex(serial: int) -> str:
    return format(serial, "x")


@dataclass(frozen=True)
class _Reserved:
    index: int
    serial: int
    intent: Intent

    def row(self, now: dt.datetime) -> dict[str, object]:
        i = self.intent
        return {
            "serial": serial_hex(self.serial),
            "issuer": ISSUING,
            "profile": i.profile.value,
            "state": CertState.RESERVED.value,
            "person_id": i.person_id,
            "token_serial": i.token_serial,
            "subject": i.subject.rfc4514_string(),
            "reserved_at": now,
            "replaces": i.replaces,
        }

    def entry(self, now: dt.datetime, actor: str) -> audit.Entry:
        i = self.intent
        return audit.Entry(
            now,
            actor,
            "certificate.reserve",
            "certificate",
            serial_hex(self.serial),
            after={
                "state": CertState.RESERVED.value,
                "profile": i.profile.value,
                "person": i.person_id,
                "token": i.token_serial,
                "method": i.method,
            },
        )


@dataclass(frozen=True)
class _Signed:
    reserved: _Reserved
    certificate: x509.Certificate

    @functools.cached_property
    def der(self) -> bytes:
        return self.certificate.public_bytes(Encoding.DER)

    def row(self, now: dt.datetime) -> dict[str, object]:
        return {
            "hexserial": serial_hex(self.reserved.serial),
            "state": self.reserved.intent.state_after.value,
            "der": self.der,
            "fingerprint": hashlib.sha256(self.der).hexdigest(),
            "not_before": self.certificate.not_valid_before_utc,
            "not_after": self.certificate.not_valid_after_utc,
            "issued_at": now,
        }

    def entry(self, now: dt.datetime, actor: str) -> audit.Entry:
        return audit.Entry(
            now,
            actor,
            "certificate.issue",
            "certificate",
            serial_hex(self.reserved.serial),
            before={"state": CertState.RESERVED.value},
            after={
                "state": self.reserved.intent.state_after.value,
                "not_before": self.certificate.not_valid_before_utc.isoformat(),
                "not_after": self.certificate.not_valid_after_utc.isoformat(),
                "fingerprint": hashlib.sha256(self.der).hexdigest(),
            },
        )

    def issued(self) -> IssuedCertificate:
        i = self.reserved.intent
        return IssuedCertificate(
            serial_hex(self.reserved.serial),
            self.certificate,
            i.profile,
            i.person_id,
            i.token_serial,
        )


Outcome = IssuedCertificate | CertdeskError


def _same_person(intent: Intent, reserved: list[_Reserved]) -> _Reserved | None:
    """A batch must not hold two would-be active personal certificates for one person."""
    if intent.profile is not Profile.PERSONAL or intent.person_id is None:
        return None
    return next((r for r in reserved if r.intent.person_id == intent.person_id), None)


_ACTIVE_PERSONAL = select(certificates.c.serial).where(
    and_(
        certificates.c.profile == Profile.PERSONAL.value,
        certificates.c.state == CertState.ACTIVE.value,
    )
)
_RESERVE = insert(certificates)
# Only a reservation still open may be recorded: one closed by `abandon_stale_reservations`
# while this process was signing stays closed (its serial is never handed out).
_SIGNED = update(certificates).where(
    and_(
        certificates.c.serial == bindparam("hexserial"),
        certificates.c.state == CertState.RESERVED.value,
    )
)


class _ReservationClosed(Exception):
    """A reservation of the batch was closed while it was being signed."""


# One round trip for enrolment: the person, their unit's name and their active certificate.
_ENROLMENT_VIEW = (
    person_query()
    .add_columns(
        _ACTIVE_PERSONAL.where(certificates.c.person_id == people.c.person_id)
        .scalar_subquery()
        .label("active_serial")
    )
    .where(people.c.person_id == bindparam("pid"))
)


def active_personal_serial(conn: Connection, person_id: str) -> str | None:
    row = conn.execute(
        _ACTIVE_PERSONAL.where(certificates.c.person_id == person_id).limit(1)
    ).first()
    return None if row is None else str(row.serial)


class Issuance:
    """Issues certificates with the issuing CA; keep one per process (loading a key is costly)."""

    def __init__(self, ctx: Context, authority: Authority | None = None) -> None:
        self.ctx = ctx
        self.authority = authority or load_authority(ctx, ISSUING, hooks=_hooks(ctx))

    # -- enrolment methods -------------------------------------------------------------------

    def enroll(
        self, person_id: str, csr_data: bytes, token_serial: str | None = None
    ) -> IssuedCertificate:
        """Officer enrolment from a CSR; the subject comes from the registry, not the CSR."""
        csr = load_csr(csr_data)
        return self.enroll_key(person_id, as_public_key(csr.public_key()), token_serial)

    def enroll_key(
        self,
        person_id: str,
        public_key: PublicKey,
        token_serial: str | None = None,
    ) -> IssuedCertificate:
        return self.issue(self.enrolment(person_id, public_key, token_serial))

    def enrolment(
        self, person_id: str, public_key: PublicKey, token_serial: str | None = None
    ) -> Prepare:
        """The officer-enrolment decision for `issue`/`issue_batch` (checked at reservation)."""
        as_public_key(public_key)

        def prepare(conn: Connection) -> Intent:
            identity = self._check_enrolment(conn, person_id, token_serial)
            return Intent(
                Profile.PERSONAL,
                public_key,
                make_name(identity.subject_attributes()),
                Extensions(SubjectAltNames(emails=(identity.email,))),
                person_id=person_id,
                token_serial=token_serial,
            )

        return prepare

    def issue_tls_server(self, public_key: PublicKey, hostnames: list[str]) -> IssuedCertificate:
        """A TLS server certificate for the portal (names are IP addresses or DNS names)."""
        ips = tuple(h for h in hostnames if _is_ip(h))
        dns = tuple(h for h in hostnames if not _is_ip(h))
        cfg = self.ctx.config.ca
        subject = make_name((("C", cfg.country), ("O", cfg.organisation), ("CN", hostnames[0])))
        sans = SubjectAltNames(dns_names=dns, ip_addresses=ips)
        intent = Intent(
            Profile.TLS_SERVER, public_key, subject, Extensions(sans), backdate=CLOCK_SKEW
        )
        return self.issue(lambda _conn: intent)

    # -- policy checks -----------------------------------------------------------------------

    def identity(self, person: Person) -> PersonIdentity:
        """The certificate's identity, from the registry only."""
        cfg = self.ctx.config.ca
        return PersonIdentity(
            person.person_id,
            person.name,
            person.unit_name,
            cfg.organisation,
            cfg.country,
            person.email,
        )

    def precheck(self, person_id: str, token_serial: str | None = None) -> PersonIdentity:
        """The enrolment checks without reserving: run before making a key on a token."""
        with self.ctx.db.read() as conn:
            return self._check_enrolment(conn, person_id, token_serial)

    def _check_enrolment(
        self, conn: Connection, person_id: str, token_serial: str | None
    ) -> PersonIdentity:
        row = conn.execute(_ENROLMENT_VIEW, {"pid": person_id}).first()
        if row is None:
            raise CertdeskError("person.not_found", person_id=person_id)
        person = person_from_row(row)
        if person.state is not PersonState.ACTIVE:
            raise CertdeskError("person.departed", person_id=person.person_id)
        existing = row.active_serial
        if existing is not None:
            raise CertdeskError(
                "person.has_active_certificate", person_id=person.person_id, serial=existing
            )
        if token_serial is not None:
            check_assignable(conn, token_serial, person.person_id)
        return self.identity(person)

    # -- the three steps ---------------------------------------------------------------------

    def issue(self, prepare: Prepare) -> IssuedCertificate:
        """Reserve (deciding the intent in that transaction), sign, record."""
        (result,) = self.issue_batch([prepare])
        if isinstance(result, CertdeskError):
            raise result
        return result

    def issue_batch(self, prepares: Sequence[Prepare]) -> list[Outcome]:
        """Group commit: one reservation and one record transaction for the whole batch.

        Each request still gets its own serial, audit records and answer; a refusal of one does
        not affect the others. Results come back in the order of `prepares`.
        """
        now = self.ctx.clock.now()
        validity = validity_from(now, self.ctx.config.policy.validity_years)
        results: list[Outcome | None] = [None] * len(prepares)
        signed: list[_Signed] = []
        for item in self._reserve(prepares, now, results):
            order = CertificateOrder(
                item.serial,
                item.intent.subject,
                item.intent.public_key,
                item.intent.profile,
                validity.not_before - item.intent.backdate,
                validity.not_after,
                item.intent.extensions,
            )
            try:
                signed.append(_Signed(item, self.authority.issue(order)))
            except Exception as exc:
                self._abandon(serial_hex(item.serial), f"signing failed: {exc}")
                results[item.index] = (
                    exc
                    if isinstance(exc, CertdeskError)
                    else CertdeskError("ca.signing_failed", detail=str(exc))
                )
        self._record(signed, results)
        assert all(r is not None for r in results)
        return [r for r in results if r is not None]

    def _reserve(
        self, prepares: Sequence[Prepare], now: dt.datetime, results: list[Outcome | None]
    ) -> list[_Reserved]:
        for _attempt in range(3):
            refused: dict[int, CertdeskError] = {}
            reserved: list[_Reserved] = []
            try:
                with self.ctx.db.write() as conn:
                    for index, prepare in enumerate(prepares):
                        try:
                            intent = prepare(conn)
                        except CertdeskError as exc:
                            refused[index] = exc
                            continue
                        twin = _same_person(intent, reserved)
                        if twin is not None:
                            refused[index] = CertdeskError(
                                "person.has_active_certificate",
                                person_id=intent.person_id,
                                serial=serial_hex(twin.serial),
                            )
                            continue
                        reserved.append(_Reserved(index, x509.random_serial_number(), intent))
                    if reserved:
                        conn.execute(_RESERVE, [r.row(now) for r in reserved])
                        audit.append_many(conn, [r.entry(now, self.ctx.actor) for r in reserved])
            except IntegrityError:
                continue  # a serial collision (2^-159): draw again
            for index, refusal in refused.items():
                results[index] = refusal
            return reserved
        raise CertdeskError("input.invalid", detail="could not reserve unique serials")

    def _record(self, signed: list[_Signed], results: list[Outcome | None]) -> None:
        if not signed:
            return
        now = self.ctx.clock.now()
        try:
            with self.ctx.db.write() as conn:
                for s in signed:
                    intent = s.reserved.intent
                    if intent.token_serial is not None and intent.person_id is not None:
                        hand_over(conn, self.ctx, intent.token_serial, intent.person_id)
                recorded = conn.execute(_SIGNED, [s.row(now) for s in signed]).rowcount
                if recorded != len(signed):
                    raise _ReservationClosed
                audit.append_many(conn, [s.entry(now, self.ctx.actor) for s in signed])
        except (IntegrityError, CertdeskError, _ReservationClosed) as exc:
            if len(signed) > 1:  # find out which one is refused: record them one by one
                for s in signed:
                    self._record([s], results)
                return
            results[signed[0].reserved.index] = self._refused_at_record(signed[0], exc)
            return
        for s in signed:
            results[s.reserved.index] = s.issued()

    def _refused_at_record(self, s: _Signed, exc: Exception) -> CertdeskError:
        hexserial = serial_hex(s.reserved.serial)
        if isinstance(exc, _ReservationClosed):
            return CertdeskError("issuance.reservation_closed", serial=hexserial)
        if isinstance(exc, CertdeskError):
            self._abandon(hexserial, f"refused while recording: {exc.code}")
            return exc
        # Another enrolment for the same person won the race: this one is dropped unseen.
        self._abandon(hexserial, "lost a race for the person's one active certificate")
        person_id = s.reserved.intent.person_id or "?"
        with self.ctx.db.read() as conn:
            return CertdeskError(
                "person.has_active_certificate",
                person_id=person_id,
                serial=active_personal_serial(conn, person_id),
            )

    def _abandon(self, hexserial: str, why: str) -> None:
        abandon(self.ctx, hexserial, why)


def abandon(ctx: Context, hexserial: str, why: str) -> bool:
    """Close a reservation that will never be signed; its serial stays burnt."""
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        done = conn.execute(
            update(certificates)
            .where(
                and_(
                    certificates.c.serial == hexserial,
                    certificates.c.state == CertState.RESERVED.value,
                )
            )
            .values(state=CertState.ABANDONED.value)
        ).rowcount
        if done:
            audit.append(
                conn,
                at=now,
                actor=ctx.actor,
                action="certificate.abandon",
                object_type="certificate",
                object_id=hexserial,
                before={"state": CertState.RESERVED.value},
                after={"state": CertState.ABANDONED.value, "why": why},
            )
    return bool(done)


def abandon_stale_reservations(ctx: Context, older_than: dt.timedelta) -> list[str]:
    """After a crash: reservations older than `older_than` are closed (each audited)."""
    cutoff = ctx.clock.now() - older_than
    with ctx.db.read() as conn:
        stale = list(
            conn.execute(
                select(certificates.c.serial).where(
                    and_(
                        certificates.c.state == CertState.RESERVED.value,
                        certificates.c.reserved_at <= cutoff,
                    )
                )
            ).scalars()
        )
    return [s for s in stale if abandon(ctx, s, "stale reservation (interrupted issuance)")]


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _hooks(ctx: Context) -> tuple[LintHook, ...]:
    if not ctx.config.issuance.lint:
        return ()
    from certdesk.ca.lint import PkilintHook

    return (PkilintHook(),)
