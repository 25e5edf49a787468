"""The second phase of a renewal: the new certificate waits (`pending_install`) until the
holder's tool proves, with the new key, that it is on the token; then it becomes active and the
old one is superseded (and listed on the CRL). One never confirmed in time is withdrawn."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certdesk.domain.errors import CertdeskError
from certdesk.domain.states import CertState, RevocationReason
from certdesk.services.context import Context
from certdesk.services.enrolment.renewal import pending_ttl
from certdesk.services.issuance import abandon
from certdesk.services.lifecycle import Move, transition
from certdesk.services.nonces import Nonces
from certdesk.services.revocation import revoke_in
from certdesk.store import certificates as cert_store

_AWAIT_SECONDS = 15.0
# A reservation this old was made by a process that died between reserving and recording (a
# batch signs in well under a second, even on an HSM): closing it lets the holder renew through
# another process at once instead of after maintenance's `STALE_RESERVATION`. Safe even if the
# process lives: its record step then finds the row moved and hands nothing out.
STALE_IN_FLIGHT = dt.timedelta(seconds=20)


@dataclass(frozen=True)
class Renewed:
    serial: str
    certificate: x509.Certificate
    state: CertState
    replaces: str
    created: bool  # False: an earlier renewal's certificate was returned
    issuer: str  # the authority that signed it (its certificate completes the chain)

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(Encoding.PEM)


@dataclass(frozen=True)
class Confirmed:
    serial: str
    superseded: str


def activate(
    ctx: Context, serial: str, actor: str, nonce: str | None = None, nonces: Nonces | None = None
) -> Confirmed:
    """One transaction: `serial` (pending) active, the certificate it replaces superseded.

    Confirming again is answered as the first time; a renewal past `renewal.pending_hours` or
    whose predecessor is no longer active is refused.
    """
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        if nonce is not None and nonces is not None:
            nonces.consume(conn, nonce)
        row = cert_store.get(conn, serial, lock=True)
        if row is None:
            raise CertdeskError("cert.not_found", serial=serial)
        state = CertState(row.state)
        if state is CertState.ACTIVE and row.replaces is not None:
            return Confirmed(serial, row.replaces)  # a retried confirmation
        if state is not CertState.PENDING_INSTALL or row.replaces is None:
            raise CertdeskError("renewal.not_pending", serial=serial, state=state.value)
        if row.issued_at + pending_ttl(ctx) < now:
            raise CertdeskError(
                "renewal.pending_expired", serial=serial, hours=ctx.config.renewal.pending_hours
            )
        old = cert_store.get(conn, row.replaces, lock=True)
        if old is None or old.state != CertState.ACTIVE.value:
            raise CertdeskError("renewal.not_active", state=None if old is None else old.state)
        superseded = RevocationReason.SUPERSEDED.value
        old_out = Move(
            old.serial,
            CertState.ACTIVE,
            CertState.SUPERSEDED,
            values={"revoked_at": now, "revocation_reason": superseded},
            note={"reason": superseded, "by": serial},
        )
        new_in = Move(
            serial, CertState.PENDING_INSTALL, CertState.ACTIVE, note={"replaces": old.serial}
        )
        transition(conn, now, actor, "certificate.supersede", [old_out])
        transition(conn, now, actor, "certificate.activate", [new_in])
    return Confirmed(serial, old.serial)


def await_pending(ctx: Context, serial: str) -> Renewed:
    """A renewal of `serial` is in flight (maybe in another process): wait for its result."""
    deadline = time.monotonic() + _AWAIT_SECONDS
    while time.monotonic() < deadline:
        with ctx.db.read() as conn:
            row = cert_store.in_flight_renewal(conn, serial)
        if row is None:
            break  # its signing failed and was abandoned: the holder may try again
        if row.state == CertState.PENDING_INSTALL.value:
            certificate = x509.load_der_x509_certificate(row.der)
            state = CertState.PENDING_INSTALL
            return Renewed(row.serial, certificate, state, serial, False, row.issuer)
        if _abandon_orphans(ctx, serial):
            break  # its process died: the holder may try again now
        time.sleep(0.02)  # another worker is between reserving and recording
    raise CertdeskError("renewal.in_progress", serial=serial)


def _abandon_orphans(ctx: Context, replaces: str) -> bool:
    """Close the renewals of `replaces` reserved longer ago than `STALE_IN_FLIGHT` (audited)."""
    cutoff = ctx.clock.now() - STALE_IN_FLIGHT
    with ctx.db.read() as conn:
        stale = cert_store.in_state_since(conn, CertState.RESERVED, "reserved_at", cutoff, replaces)
    why = "reservation of a process that ended before recording it"
    return any([abandon(ctx, s, why) for s in stale])


def expire_pending(ctx: Context) -> list[str]:
    """Revoke renewals never confirmed within `renewal.pending_hours` (each its own transaction)."""
    cutoff = ctx.clock.now() - pending_ttl(ctx)
    with ctx.db.read() as conn:
        stale = cert_store.in_state_since(conn, CertState.PENDING_INSTALL, "issued_at", cutoff)
    done: list[str] = []
    for serial in stale:
        with ctx.db.write() as conn:
            row = cert_store.get(conn, serial, lock=True)
            if row is not None and row.state == CertState.PENDING_INSTALL.value:
                revoke_in(conn, ctx, serial, RevocationReason.CESSATION_OF_OPERATION)
                done.append(serial)  # else: confirmed in the meantime
    return done
