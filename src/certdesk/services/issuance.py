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
import hashlib
import ipaddress
from collections.abc import Callable
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
from certdesk.domain.validity import validity_from
from certdesk.services.authorities import ISSUING, load_authority
from certdesk.services.context import Context
from certdesk.services.registry import Person, get_person
from certdesk.services.tokens import check_assignable, hand_over
from certdesk.store import audit
from certdesk.store.tables import certificates

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


def serial_hex(serial: int) -> str:
    return format(serial, "x")


_ACTIVE_PERSONAL = select(certificates.c.serial).where(
    and_(
        certificates.c.person_id == bindparam("pid"),
        certificates.c.profile == Profile.PERSONAL.value,
        certificates.c.state == CertState.ACTIVE.value,
    )
)
_RESERVE = insert(certificates)
_SIGNED = update(certificates).where(certificates.c.serial == bindparam("hexserial"))


def active_personal_serial(conn: Connection, person_id: str) -> str | None:
    row = conn.execute(_ACTIVE_PERSONAL, {"pid": person_id}).first()
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

        return self.issue(prepare)

    def issue_tls_server(self, public_key: PublicKey, hostnames: list[str]) -> IssuedCertificate:
        """A TLS server certificate for the portal (names are IP addresses or DNS names)."""
        ips = tuple(h for h in hostnames if _is_ip(h))
        dns = tuple(h for h in hostnames if not _is_ip(h))
        cfg = self.ctx.config.ca
        subject = make_name((("C", cfg.country), ("O", cfg.organisation), ("CN", hostnames[0])))
        sans = SubjectAltNames(dns_names=dns, ip_addresses=ips)
        intent = Intent(Profile.TLS_SERVER, public_key, subject, Extensions(sans))
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

    def _check_enrolment(
        self, conn: Connection, person_id: str, token_serial: str | None
    ) -> PersonIdentity:
        person = get_person(conn, person_id)
        if person.state is not PersonState.ACTIVE:
            raise CertdeskError("person.departed", person_id=person.person_id)
        existing = active_personal_serial(conn, person.person_id)
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
        now = self.ctx.clock.now()
        validity = validity_from(now, self.ctx.config.policy.validity_years)
        serial, intent = self._reserve(prepare, now)
        try:
            cert = self.authority.issue(
                CertificateOrder(
                    serial,
                    intent.subject,
                    intent.public_key,
                    intent.profile,
                    validity.not_before,
                    validity.not_after,
                    intent.extensions,
                )
            )
        except BaseException as exc:
            self._abandon(serial_hex(serial), f"signing failed: {exc}")
            raise
        return self._record(intent, serial, cert)

    def _reserve(self, prepare: Prepare, now: dt.datetime) -> tuple[int, Intent]:
        for _attempt in range(3):
            serial = x509.random_serial_number()
            hexserial = serial_hex(serial)
            try:
                with self.ctx.db.write() as conn:
                    intent = prepare(conn)
                    row = {
                        "serial": hexserial,
                        "issuer": ISSUING,
                        "profile": intent.profile.value,
                        "state": CertState.RESERVED.value,
                        "person_id": intent.person_id,
                        "token_serial": intent.token_serial,
                        "subject": intent.subject.rfc4514_string(),
                        "reserved_at": now,
                        "replaces": intent.replaces,
                    }
                    conn.execute(_RESERVE, row)
                    audit.append(
                        conn,
                        at=now,
                        actor=self.ctx.actor,
                        action="certificate.reserve",
                        object_type="certificate",
                        object_id=hexserial,
                        after={
                            "state": CertState.RESERVED.value,
                            "profile": intent.profile.value,
                            "person": intent.person_id,
                            "token": intent.token_serial,
                            "method": intent.method,
                        },
                    )
                return serial, intent
            except IntegrityError:
                continue  # a serial collision (2^-159): draw again
        raise CertdeskError("input.invalid", detail="could not reserve a unique serial")

    def _record(self, intent: Intent, serial: int, cert: x509.Certificate) -> IssuedCertificate:
        der = cert.public_bytes(Encoding.DER)
        hexserial = serial_hex(serial)
        now = self.ctx.clock.now()
        after = {
            "state": intent.state_after.value,
            "not_before": cert.not_valid_before_utc.isoformat(),
            "not_after": cert.not_valid_after_utc.isoformat(),
            "fingerprint": hashlib.sha256(der).hexdigest(),
        }
        try:
            with self.ctx.db.write() as conn:
                if intent.token_serial is not None and intent.person_id is not None:
                    hand_over(conn, self.ctx, intent.token_serial, intent.person_id)
                conn.execute(
                    _SIGNED,
                    {
                        "hexserial": hexserial,
                        "state": intent.state_after.value,
                        "der": der,
                        "fingerprint": after["fingerprint"],
                        "not_before": cert.not_valid_before_utc,
                        "not_after": cert.not_valid_after_utc,
                        "issued_at": now,
                    },
                )
                audit.append(
                    conn,
                    at=now,
                    actor=self.ctx.actor,
                    action="certificate.issue",
                    object_type="certificate",
                    object_id=hexserial,
                    before={"state": CertState.RESERVED.value},
                    after=after,
                )
        except IntegrityError:
            # Another enrolment for the same person won the race: this one is dropped unseen.
            self._abandon(hexserial, "lost a race for the person's one active certificate")
            assert intent.person_id is not None
            with self.ctx.db.read() as conn:
                raise CertdeskError(
                    "person.has_active_certificate",
                    person_id=intent.person_id,
                    serial=active_personal_serial(conn, intent.person_id),
                ) from None
        except CertdeskError:
            self._abandon(hexserial, "refused while recording")
            raise
        return IssuedCertificate(
            hexserial, cert, intent.profile, intent.person_id, intent.token_serial
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
