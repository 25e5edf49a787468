"""The lives of certificates, tokens, people and CAs: which moves are allowed, and what status a
certificate has at a given time. Every state change (issuing, renewing, revoking, abandoning a
reservation, departure, custody) is checked against these tables by `services/lifecycle.py`;
login, the CRL and OCSP all read `certificate_status`."""

from __future__ import annotations

import datetime as dt
import enum

from certdesk.domain.errors import CertdeskError
from certdesk.domain.states import (
    AuthorityState,
    CertState,
    PersonState,
    RequestState,
    TokenState,
)

C = CertState
CERTIFICATE_MOVES: frozenset[tuple[CertState, CertState]] = frozenset(
    {
        (C.RESERVED, C.ACTIVE),  # signed and recorded
        (C.RESERVED, C.PENDING_INSTALL),  # a renewal, signed, waiting for the holder's token
        (C.RESERVED, C.ABANDONED),  # signing failed or crashed: the serial stays burnt
        (C.PENDING_INSTALL, C.ACTIVE),  # the holder confirmed it is on the token
        (C.PENDING_INSTALL, C.REVOKED),  # never confirmed, or its holder left
        (C.ACTIVE, C.SUPERSEDED),  # its renewal was confirmed
        (C.ACTIVE, C.REVOKED),
        (C.SUPERSEDED, C.REVOKED),  # superseded, then compromised
    }
)
T = TokenState
TOKEN_MOVES: frozenset[tuple[TokenState, TokenState]] = frozenset(
    {
        (T.IN_STOCK, T.ISSUED),
        (T.RETURNED, T.ISSUED),
        (T.IN_STOCK, T.RETURNED),  # recorded as back at the office: harmless, kept as before
        (T.ISSUED, T.RETURNED),
        (T.RETURNED, T.RETURNED),
        (T.LOST, T.RETURNED),  # a lost token found and handed back (its certificates stay revoked)
        (T.IN_STOCK, T.LOST),
        (T.ISSUED, T.LOST),
        (T.RETURNED, T.LOST),
    }
)
PERSON_MOVES: frozenset[tuple[PersonState, PersonState]] = frozenset(
    {(PersonState.ACTIVE, PersonState.DEPARTED)}
)
A = AuthorityState
AUTHORITY_MOVES: frozenset[tuple[AuthorityState, AuthorityState]] = frozenset(
    {(A.ACTIVE, A.RETIRING), (A.RETIRING, A.RETIRED)}  # a CA's key is never brought back
)
R = RequestState
REQUEST_MOVES: frozenset[tuple[RequestState, RequestState]] = frozenset(
    {
        (R.SUBMITTED, R.APPROVED),
        (R.SUBMITTED, R.REJECTED),
        (R.SUBMITTED, R.WITHDRAWN),  # by its filer only, while nobody has decided
        (R.SUBMITTED, R.CARRIED_OUT),  # a lost token: revoked at once, no approval to wait for
        (R.APPROVED, R.CARRIED_OUT),
        (R.APPROVED, R.FAILED),  # carrying it out was refused (say, the person already left)
    }
)

# States from which a certificate can still be revoked.
REVOCABLE: frozenset[CertState] = frozenset(b for b, a in CERTIFICATE_MOVES if a is C.REVOKED)
# Rows in these states are listed on the CRL until they expire (superseded: reason superseded).
ON_CRL: tuple[CertState, ...] = (C.REVOKED, C.SUPERSEDED)
IN_FLIGHT: tuple[CertState, ...] = (C.RESERVED, C.PENDING_INSTALL)
# Certificates in these states are (or may become) valid until they expire: a retiring issuing
# CA is retired only when none of its own is left (reserved: signing may still complete).
MAY_BE_VALID: tuple[CertState, ...] = (*IN_FLIGHT, C.ACTIVE)


def require_move(kind: str, before: enum.StrEnum, after: enum.StrEnum) -> None:
    """Refuse a move the tables above do not allow (a bug or a race, never a user's choice)."""
    table: frozenset[tuple[enum.StrEnum, enum.StrEnum]] = {
        "certificate": CERTIFICATE_MOVES,
        "token": TOKEN_MOVES,
        "person": PERSON_MOVES,
        "authority": AUTHORITY_MOVES,
        "request": REQUEST_MOVES,
    }[kind]
    if (before, after) not in table:
        raise CertdeskError(
            "lifecycle.not_allowed", kind=kind, before=before.value, after=after.value
        )


class Status(enum.StrEnum):
    """What a certificate is at a moment, as a relying party or the login page sees it."""

    RESERVED = "reserved"
    ABANDONED = "abandoned"
    PENDING = "pending_install"
    NOT_YET_VALID = "not_yet_valid"
    ACTIVE = "active"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"
    REVOKED = "revoked"


def certificate_status(
    state: CertState,
    not_before: dt.datetime | None,
    not_after: dt.datetime | None,
    now: dt.datetime,
) -> Status:
    """Revocation and superseding win over dates; an active certificate is judged by its dates."""
    if state is not C.ACTIVE:
        return Status(state.value)
    if not_before is not None and now < not_before:
        return Status.NOT_YET_VALID
    if not_after is not None and now > not_after:
        return Status.EXPIRED
    return Status.ACTIVE


class RevocationStatus(enum.StrEnum):
    """What a relying party is told (OCSP's CertStatus): revoked exactly when the CRL lists it."""

    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


def revocation_status(status: Status) -> RevocationStatus:
    """Revoked and superseded certificates are revoked (as on the CRL); a certificate that was
    signed and is neither is good, whatever its dates (OCSP says nothing of validity); a serial
    never signed (reserved, abandoned) is unknown."""
    if status.value in {s.value for s in ON_CRL}:
        return RevocationStatus.REVOKED
    if status in (Status.RESERVED, Status.ABANDONED):
        return RevocationStatus.UNKNOWN
    return RevocationStatus.GOOD
