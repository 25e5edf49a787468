"""Revoking a certificate with an RFC 5280 reason: one transaction, one audit record.

`revoke` is the request of an officer, whichever face it comes through (console, API, CLI), so
the rules of such a request are checked there; workflows that revoke as one step of their own
(departure, lost token, renewal) call `revoke_in`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from certdesk.ca.profiles import Profile
from certdesk.domain.errors import CertdeskError
from certdesk.domain.lifecycle import REVOCABLE
from certdesk.domain.revocation import END_ENTITY_REASONS
from certdesk.domain.states import CertState, RevocationReason
from certdesk.services.context import Context
from certdesk.services.lifecycle import Move, transition
from certdesk.services.serials import normalise_serial, resolve_serial
from certdesk.store import certificates as cert_store
from certdesk.store import registry as registry_store
from certdesk.store.db import AnyRow

__all__ = [
    "RevocationPreview",
    "Revoked",
    "normalise_serial",
    "parse_reason",
    "preview",
    "revoke",
]

_ALLOWED = ", ".join(r.value for r in END_ENTITY_REASONS)


@dataclass(frozen=True)
class Revoked:
    serial: str
    reason: RevocationReason
    previous_state: CertState


def parse_reason(value: str) -> RevocationReason:
    """Accept the RFC 5280 name in any case, with or without dashes/underscores."""
    wanted = value.replace("-", "").replace("_", "").lower()
    for reason in RevocationReason:
        if reason.value.lower() == wanted:
            return reason
    raise CertdeskError("revocation.bad_reason", reason=value, allowed=_ALLOWED)


def _revocable(conn: Connection, serial: str, *, lock: bool = False) -> AnyRow:
    """The certificate's row, if it exists and can still be revoked."""
    row = cert_store.get(conn, serial, lock=lock)
    if row is None:
        raise CertdeskError("cert.not_found", serial=serial)
    state = CertState(row.state)
    if state is CertState.REVOKED:
        raise CertdeskError(
            "cert.already_revoked",
            serial=serial,
            reason=row.revocation_reason,
            revoked_at=row.revoked_at.isoformat(),
        )
    if state not in REVOCABLE:
        raise CertdeskError("cert.not_revocable", serial=serial, state=state.value)
    return row


def revoke_in(conn: Connection, ctx: Context, serial: str, reason: RevocationReason) -> Revoked:
    """Revoke inside the caller's transaction (so workflows can revoke as one step of theirs)."""
    if reason is RevocationReason.CERTIFICATE_HOLD:
        raise CertdeskError("revocation.bad_reason", reason=reason.value, allowed="not on hold")
    state = CertState(_revocable(conn, serial, lock=True).state)
    now = ctx.clock.now()
    move = Move(
        serial,
        state,
        CertState.REVOKED,
        values={"revoked_at": now, "revocation_reason": reason.value},
        note={"reason": reason.value},
    )
    transition(conn, now, ctx.actor, "certificate.revoke", [move])
    return Revoked(serial, reason, state)


@dataclass(frozen=True)
class RevocationPreview:
    """What `revoke` would do, for the console's confirmation step and the CLI's question."""

    serial: str
    person_id: str | None
    holder: str  # the person's name ("" for a certificate of no person)
    subject: str
    reason: RevocationReason
    state: CertState


def _request(conn: Connection, serial: str, reason: RevocationReason | str) -> RevocationPreview:
    """The rules of an officer's request: an end-entity reason only, never a CA's own
    certificate, and a certificate that can still be revoked."""
    parsed = reason if isinstance(reason, RevocationReason) else parse_reason(reason)
    if parsed not in END_ENTITY_REASONS:
        raise CertdeskError("revocation.bad_reason", reason=str(reason), allowed=_ALLOWED)
    row = _revocable(conn, serial)
    if Profile(row.profile).is_ca:
        raise CertdeskError("cert.ca_certificate", serial=serial, profile=row.profile)
    person = registry_store.get_person(conn, row.person_id) if row.person_id else None
    holder = person.name if person else ""
    return RevocationPreview(
        serial, row.person_id, holder, row.subject, parsed, CertState(row.state)
    )


def preview(ctx: Context, serial: str, reason: RevocationReason | str) -> RevocationPreview:
    """What `revoke` would do and whether it would refuse, without doing it (the console's
    confirmation step, the CLI's question). `serial` may be a unique prefix
    (`services/serials.py`); the answer names the full serial, which `revoke` is then given."""
    with ctx.db.read() as conn:
        return _request(conn, resolve_serial(conn, serial), reason)


def revoke(ctx: Context, serial: str, reason: RevocationReason | str) -> Revoked:
    """An officer's request: an end-entity reason only, and never a CA's own certificate (a CA
    is not revoked by a request to it; the console, the API and the CLI refuse alike)."""
    hexserial = normalise_serial(serial)
    with ctx.db.write() as conn:
        request = _request(conn, hexserial, reason)
        return revoke_in(conn, ctx, hexserial, request.reason)
