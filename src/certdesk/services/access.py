"""Who is asking, from the certificate alone (rule 1 of the notice), and what they may do.

`identify` turns the certificate the TLS layer (or a trusted proxy) passed on into a
`Principal`, or into a `LoginRefusal` that says exactly what is wrong and what to do — the
handshake lets expired, revoked and superseded certificates of ours through precisely so that
this can be said on a page instead of as a TLS error. Nothing here trusts the TLS layer's
checks: chain, dates and state are checked again on every request.

Permissions come from person → position → roles → permissions at every request, so a change of
position takes effect at the next click, without reissuing anything (rule 11).
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from certdesk.domain.errors import CertdeskError
from certdesk.domain.lifecycle import Status, certificate_status
from certdesk.domain.registry import Person
from certdesk.domain.states import CertState, PersonState
from certdesk.services.authorities import Issuers
from certdesk.services.context import Context
from certdesk.services.server_secrets import shared_secret
from certdesk.store import audit, logins
from certdesk.store.registry import person_from_row


class LoginProblem(enum.StrEnum):
    NO_CERTIFICATE = "login.no_certificate"
    NOT_OURS = "login.not_ours"
    NOT_YET_VALID = "login.not_yet_valid"
    EXPIRED = "login.expired"
    REVOKED = "login.revoked"
    SUPERSEDED = "login.superseded"
    NOT_INSTALLED = "login.not_installed"
    DEPARTED = "login.departed"


@dataclass(frozen=True)
class LoginRefusal:
    """Why a certificate does not log in, with what the page needs to explain it."""

    problem: LoginProblem
    serial: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def error(self) -> CertdeskError:
        return CertdeskError(self.problem.value, serial=self.serial, **self.details)


@dataclass(frozen=True)
class Principal:
    person: Person
    serial: str
    fingerprint: str
    not_before: dt.datetime
    not_after: dt.datetime
    position_name: str
    roles: frozenset[str]
    permissions: frozenset[str]
    role_names: tuple[str, ...] = ()  # the roles' display names, from the registry
    announcements: int = 0  # how many were published, read with the login (content.Recent)
    # a renewal issued for this certificate and not yet installed: the portal offers "Get
    # certificate" (the helper's pickup installs that one; it never issues a second)
    pending_renewal: str | None = None

    @property
    def actor(self) -> str:
        return f"person:{self.person.person_id}"

    def can(self, permission: str) -> bool:
        return permission in self.permissions


# Certificates that were in use: for a departed person, their departure is the answer.
_ONCE_VALID = frozenset({Status.ACTIVE, Status.REVOKED, Status.EXPIRED, Status.SUPERSEDED})

# Officer permissions that see every unit; the `unit.*` ones see the officer's own unit only.
GLOBAL_PREFIXES = ("ra.", "ca.", "audit.")


@dataclass(frozen=True)
class _Presented:
    """A certificate whose signature by our issuing CA has been checked."""

    cert: x509.Certificate
    serial: str
    fingerprint: str


class Access:
    """Identification and authorisation for the portal; one per process (keeps the CA cert)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.issuers = Issuers.load(ctx)
        self._csrf_key = shared_secret(ctx, "csrf-hmac")
        self._csrf_of = functools.lru_cache(maxsize=4096)(self._csrf_token)  # one HMAC a holder
        # The same bytes verify the same way against the same CA: parse and check the signature
        # once per certificate, not at every request (dates and state are checked every time).
        # Only successes are kept (lru_cache does not keep exceptions): certificates we signed.
        self._presented = functools.lru_cache(maxsize=4096)(self._verify)

    def _verify(self, der: bytes) -> _Presented:
        cert = x509.load_der_x509_certificate(der)
        self.issuers.issuer_of(cert)
        return _Presented(cert, format(cert.serial_number, "x"), hashlib.sha256(der).hexdigest())

    def identify(self, der: bytes | None) -> Principal | LoginRefusal:
        """The person behind the certificate `der`, or why they may not log in."""
        presented = self._check(der)
        if isinstance(presented, LoginRefusal):
            return presented
        return self._decide(presented, logins.login_view(self.ctx.db, presented.serial))

    async def identify_async(self, der: bytes | None) -> Principal | LoginRefusal:
        """`identify` on the event loop: the portal's login without a thread hand-off."""
        presented = self._check(der)
        if isinstance(presented, LoginRefusal):
            return presented
        return self._decide(presented, await logins.login_view_async(self.ctx.db, presented.serial))

    def _check(self, der: bytes | None) -> _Presented | LoginRefusal:
        """A certificate of our issuing CA (checked once per certificate), or a refusal."""
        if not der:
            return LoginRefusal(LoginProblem.NO_CERTIFICATE)
        try:
            return self._presented(der)
        except (ValueError, TypeError, InvalidSignature):
            return LoginRefusal(LoginProblem.NOT_OURS)

    def _decide(
        self, presented: _Presented, found: tuple[Any, logins.Grants] | None
    ) -> Principal | LoginRefusal:
        """The login's answer from the certificate's row as `logins.login_view` read it."""
        cert, serial = presented.cert, presented.serial
        now = self.ctx.clock.now()
        if found is None or found[0].cert_fingerprint != presented.fingerprint:
            return LoginRefusal(LoginProblem.NOT_OURS, serial)
        row, grants = found
        status = certificate_status(
            CertState(row.cert_state), cert.not_valid_before_utc, cert.not_valid_after_utc, now
        )
        person = person_from_row(row)
        contact = (row.contact_name, row.contact_phone, row.contact_email)
        help_ = {
            "contacts": self.ctx.config.support.contacts(),
            "unit_contact": ", ".join(x for x in contact if x),
            "name": person.name,
        }
        # a departed person's certificates were revoked on departure: say why in full
        if person.state is not PersonState.ACTIVE and status in _ONCE_VALID:
            return LoginRefusal(LoginProblem.DEPARTED, serial, help_)
        if status is Status.SUPERSEDED:
            return LoginRefusal(
                LoginProblem.SUPERSEDED, serial, {**help_, "by": row.successor or "?"}
            )
        if status is Status.REVOKED:
            return LoginRefusal(
                LoginProblem.REVOKED,
                serial,
                {
                    **help_,
                    "reason": row.cert_revocation_reason,
                    "revoked_at": f"{row.cert_revoked_at:%Y-%m-%d %H:%M} UTC",
                },
            )
        if status is Status.PENDING:
            return LoginRefusal(LoginProblem.NOT_INSTALLED, serial, help_)
        if status is Status.EXPIRED:
            return LoginRefusal(
                LoginProblem.EXPIRED,
                serial,
                {
                    **help_,
                    "not_after": f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
                },
            )
        if status is Status.NOT_YET_VALID:
            return LoginRefusal(LoginProblem.NOT_YET_VALID, serial, help_)
        if status is not Status.ACTIVE:
            return LoginRefusal(LoginProblem.NOT_OURS, serial)
        return Principal(
            person,
            serial,
            presented.fingerprint,
            cert.not_valid_before_utc,
            cert.not_valid_after_utc,
            row.position_name or "",
            frozenset(r for r, _, _ in grants),
            frozenset(p for _, _, p in grants if p),
            tuple(sorted({n for _, n, _ in grants})),
            int(row.announcements),
            row.pending_renewal,
        )

    def require(self, who: Principal, permission: str, unit_code: str | None = None) -> None:
        """Allow, or record the attempt in the audit log and refuse (403) with what was missing."""
        allowed = who.can(permission)
        if allowed and unit_code is not None and not permission.startswith(GLOBAL_PREFIXES):
            allowed = unit_code == who.person.unit_code
        if allowed:
            return
        now = self.ctx.clock.now()
        with self.ctx.db.write() as conn:
            audit.append(
                conn,
                at=now,
                actor=who.actor,
                action="access.denied",
                object_type="permission",
                object_id=permission,
                after={"unit": unit_code, "position": who.person.position_code},
            )
        if unit_code is not None and who.can(permission):
            raise CertdeskError("access.other_unit", unit=unit_code, permission=permission)
        raise CertdeskError("access.denied", permission=permission)

    def csrf_token(self, who: Principal) -> str:
        """A token bound to the certificate: forms and API calls that change state carry it."""
        return self._csrf_of(who.fingerprint)

    def _csrf_token(self, fingerprint: str) -> str:
        return hmac.new(self._csrf_key, fingerprint.encode(), "sha256").hexdigest()

    def check_csrf(self, who: Principal, token: str | None) -> None:
        if not token or not hmac.compare_digest(token, self.csrf_token(who)):
            raise CertdeskError("access.csrf")
