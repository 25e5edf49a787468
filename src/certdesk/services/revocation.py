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
from certdesk.store.db import AnyRow

__all__ = ["Revocation", "Revoked", "normalise_serial", "parse_reason", "preview", "revoke"]

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


@dataclass(frozen=True)
class Revocation:
    """What a revocation request would revoke, checked but not done (for a confirmation)."""

    serial: str
    reason: RevocationReason
    state: CertState
    person_id: str | None
    subject: str


def _refuse_unrevocable(conn: Connection, hexserial: str, reason: RevocationReason) -> AnyRow:
    """The rules of an officer's request: an end-entity reason, not a CA, a revocable state."""
    if reason not in END_ENTITY_REASONS:
        raise CertdeskError("revocation.bad_reason", reason=reason.value, allowed=_ALLOWED)
    row = cert_store.get(conn, hexserial)
    if row is None:
        raise CertdeskError("cert.not_found", serial=hexserial)
    if Profile(row.profile).is_ca:
        raise CertdeskError("cert.ca_certificate", serial=hexserial, profile=row.profile)
    state = CertState(row.state)
    if state is CertState.REVOKED:
        raise CertdeskError(
            "cert.already_revoked",
            serial=hexserial,
            reason=row.revocation_reason,
            revoked_at=row.revoked_at.isoformat(),
        )
    if state not in REVOCABLE:
        raise CertdeskError("cert.not_revocable", serial=hexserial, state=state.value)
    return row


def preview(ctx: Context, serial: str, reason: RevocationReason | str) -> Revocation:
    """Check a request without changing anything, so the CLI can show it before asking.

    `serial` may be a unique prefix (`services/serials.py`); the answer names the full serial,
    which is what `revoke` is then given.
    """
    parsed = _parsed(reason)
    with ctx.db.read() as conn:
        hexserial = resolve_serial(conn, serial)
        row = _refuse_unrevocable(conn, hexserial, parsed)
    return Revocation(hexserial, parsed, CertState(row.state), row.person_id, row.subject)


def _parsed(reason: RevocationReason | str) -> RevocationReason:
    parsed = reason if isinstance(reason, RevocationReason) else parse_reason(reason)
    if parsed not in END_ENTITY_REASONS:
        raise CertdeskError("revocation.bad_reason", reason=str(reason), allowed=_ALLOWED)
    return parsed


def revoke_in(conn: Connection, ctx: Context, serial: str, reason: RevocationReason) -> Revoked:
    """Revoke inside the caller's transaction (so workflows can revoke as one step of theirs)."""
    if reason is RevocationReason.CERTIFICATE_HOLD:
        raise CertdeskError("revocation.bad_reason", reason=reason.value, allowed="not on hold")
    row = cert_store.get(conn, serial, lock=True)
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


def revoke(ctx: Context, serial: str, reason: RevocationReason | str) -> Revoked:
    """An officer's request: an end-entity reason only, and never a CA's own certificate (a CA
    is not revoked by a request to it; the console, the API and the CLI refuse alike)."""
    parsed = _parsed(reason)
    hexserial = normalise_serial(serial)
    with ctx.db.write() as conn:
        row = cert_store.get(conn, hexserial)
        if row is None:
            raise CertdeskError("cert.not_found", serial=hexserial)
        if Profile(row.profile).is_ca:
            raise CertdeskError("cert.ca_certificate", serial=hexserial, profile=row.profile)
        return revoke_in(conn, ctx, hexserial, parsed)
