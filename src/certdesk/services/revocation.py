"""Revoking a certificate with an RFC 5280 reason: one transaction, one audit record."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from certdesk.domain.errors import CertdeskError
from certdesk.domain.lifecycle import REVOCABLE
from certdesk.domain.states import CertState, RevocationReason
from certdesk.services.context import Context
from certdesk.services.lifecycle import Move, transition
from certdesk.store import certificates as cert_store


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
    allowed = ", ".join(
        r.value for r in RevocationReason if r is not RevocationReason.CERTIFICATE_HOLD
    )
    raise CertdeskError("revocation.bad_reason", reason=value, allowed=allowed)


def normalise_serial(serial: str) -> str:
    """Serials are accepted as hex with or without colons/0x; stored lowercase without zeros."""
    cleaned = serial.strip().lower().removeprefix("0x").replace(":", "")
    try:
        return format(int(cleaned, 16), "x")
    except ValueError:
        raise CertdeskError(
            "input.invalid", detail=f"serial {serial!r} is not hexadecimal"
        ) from None


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
    parsed = reason if isinstance(reason, RevocationReason) else parse_reason(reason)
    with ctx.db.write() as conn:
        return revoke_in(conn, ctx, normalise_serial(serial), parsed)
