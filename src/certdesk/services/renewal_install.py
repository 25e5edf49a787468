"""The second phase of a renewal: the new certificate waits (`pending_install`) until the
holder's tool proves, with the new key, that it is on the token; then it becomes active and the
old one is superseded (and listed on the CRL). One never confirmed in time is withdrawn."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certdesk.ca.ocsp import Answer
from certdesk.domain.errors import CertdeskError
from certdesk.domain.lifecycle import RevocationStatus
from certdesk.domain.states import CertState, RevocationReason
from certdesk.services.context import Context
from certdesk.services.enrolment.renewal import pending_ttl
from certdesk.services.issuance import IN_FLIGHT_GRACE, SignAnswers, abandon, signed_answers
from certdesk.services.lifecycle import Change, Move, transitions
from certdesk.services.nonces import Nonces
from certdesk.services.revocation import revoke_in
from certdesk.store import certificates as cert_store

_AWAIT_SECONDS = 15.0


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


@dataclass(frozen=True)
class Activation:
    """One confirmation to record: `serial` (pending install) by `actor`, spending `nonce` (None:
    the caller proved the key otherwise, as EST's TLS handshake)."""

    serial: str
    actor: str
    nonce: str | None = None


def activate(
    ctx: Context,
    request: Activation,
    nonces: Nonces | None = None,
    answers: SignAnswers | None = None,
) -> Confirmed:
    """One transaction: the pending certificate active, the certificate it replaces superseded.

    Confirming again is answered as the first time; a renewal past `renewal.pending_hours` or
    whose predecessor is no longer active is refused.
    """
    (outcome,) = activate_many(ctx, nonces, [request], answers)
    if isinstance(outcome, CertdeskError):
        raise outcome
    return outcome


def activate_many(
    ctx: Context,
    nonces: Nonces | None,
    requests: Sequence[Activation],
    answers: SignAnswers | None = None,
) -> list[Confirmed | CertdeskError]:
    """`activate` for a batch in one transaction (the group committer's: concurrent holders
    confirming share one commit, one journal fsync and one audit append instead of one each);
    each refusal in its place. A batch that loses a race (a state changed under it) is done
    again one by one, so one confirmation never refuses another. With `answers` (the server's
    OCSP responder) each superseded certificate's "revoked" is saved with the change."""
    try:
        return _activate(ctx, nonces, requests, answers)
    except CertdeskError as exc:
        if len(requests) == 1:
            return [exc]
        if not exc.code.endswith("state_changed"):
            raise
    return [activate_many(ctx, nonces, [one], answers)[0] for one in requests]


def _activate(
    ctx: Context,
    nonces: Nonces | None,
    requests: Sequence[Activation],
    answers: SignAnswers | None,
) -> list[Confirmed | CertdeskError]:
    now = ctx.clock.now()
    outcomes: list[Confirmed | CertdeskError | None] = [None] * len(requests)
    with ctx.db.write() as conn:
        spent = [i for i, r in enumerate(requests) if r.nonce is not None]
        if spent and nonces is not None:
            refusals = nonces.consume_many(conn, [requests[i].nonce or "" for i in spent])
            for i, refusal in zip(spent, refusals, strict=True):
                outcomes[i] = refusal
        rows = cert_store.locked(conn, dict.fromkeys(r.serial for r in requests), stale=True)
        going: dict[int, Any] = {}
        for i, r in enumerate(requests):
            if outcomes[i] is None:
                outcomes[i] = _check(ctx, r.serial, rows[r.serial], now)
                if outcomes[i] is None:
                    going[i] = rows[r.serial]
        olds = cert_store.locked(conn, {row.replaces: None for row in going.values()}, stale=True)
        changes: list[Change] = []
        revoked: list[tuple[str, int, Answer]] = []
        superseded = RevocationReason.SUPERSEDED.value
        for i, row in going.items():
            old = olds[row.replaces]
            if old is None or old.state != CertState.ACTIVE.value:
                state = None if old is None else old.state
                outcomes[i] = CertdeskError("renewal.not_active", state=state)
                continue
            outcomes[i] = Confirmed(row.serial, old.serial)
            values = {"revoked_at": now, "revocation_reason": superseded}
            note = {"reason": superseded, "by": row.serial}
            out = Move(old.serial, CertState.ACTIVE, CertState.SUPERSEDED, values, note)
            into = Move(
                row.serial,
                CertState.PENDING_INSTALL,
                CertState.ACTIVE,
                note={"replaces": old.serial},
            )
            actor = requests[i].actor
            changes += [
                (actor, "certificate.supersede", out),
                (actor, "certificate.activate", into),
            ]
            revoked.append(
                (
                    old.issuer,
                    int(old.serial, 16),
                    Answer(RevocationStatus.REVOKED, now, RevocationReason.SUPERSEDED),
                )
            )
        signed = signed_answers(answers, revoked)
        if signed is not None:
            signed.save(conn)
        transitions(conn, now, changes)
    if signed is not None:
        signed.publish()
    assert all(o is not None for o in outcomes)
    return [o for o in outcomes if o is not None]


def _check(
    ctx: Context, serial: str, row: Any, now: dt.datetime
) -> Confirmed | CertdeskError | None:
    """What a confirmation of `serial` gets without changing anything (a retried one: as the
    first time; a refusal), or None: it may go ahead."""
    if row is None:
        return CertdeskError("cert.not_found", serial=serial)
    state = CertState(row.state)
    if state is CertState.ACTIVE and row.replaces is not None:
        return Confirmed(serial, row.replaces)  # a retried confirmation
    if state is not CertState.PENDING_INSTALL or row.replaces is None:
        return CertdeskError("renewal.not_pending", serial=serial, state=state.value)
    if row.issued_at + pending_ttl(ctx) < now:
        hours = ctx.config.renewal.pending_hours
        return CertdeskError("renewal.pending_expired", serial=serial, hours=hours)
    return None


def await_pending(ctx: Context, serial: str) -> Renewed:
    """A renewal of `serial` is in flight (maybe in another process): wait for its result."""
    deadline = time.monotonic() + _AWAIT_SECONDS
    while time.monotonic() < deadline:
        with ctx.db.read() as conn:
            row = cert_store.in_flight_renewal(conn, serial)
        if row is None:
            break  # its signing failed and was abandoned: the holder may try again
        if row.state == CertState.RESERVED.value and ctx.clock.now() - row.reserved_at > (
            IN_FLIGHT_GRACE
        ):  # left by a process that died: closed, so the holder's next attempt issues
            abandon(ctx, row.serial, "renewal retried after an interruption")
            break
        if row.state == CertState.PENDING_INSTALL.value:
            certificate = x509.load_der_x509_certificate(row.der)
            state = CertState.PENDING_INSTALL
            return Renewed(row.serial, certificate, state, serial, False, row.issuer)
        time.sleep(0.02)  # another worker is between reserving and recording
    raise CertdeskError("renewal.in_progress", serial=serial)


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
