"""One-time enrolment codes: an officer gives a person a code, the person's EST client uses it
once to enrol (RFC 7030 simpleenroll with HTTP Basic authentication). Only a hash is stored."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection

from certdesk.domain.errors import CertdeskError
from certdesk.domain.states import PersonState
from certdesk.services.context import Context
from certdesk.services.registry import get_person
from certdesk.store import audit
from certdesk.store import enrolment_codes as code_store

# How long an enrolment code may be valid, in hours (API schema and service alike).
CODE_HOURS_MIN = 1
CODE_HOURS_MAX = 24 * 30


@dataclass(frozen=True)
class CodeRecord:
    """A code as the office may see it again: for whom, when, until when, used or not. Never
    the code (only its hash is kept, and that is not shown either)."""

    person_id: str
    name: str
    created_by: str
    created_at: dt.datetime
    expires_at: dt.datetime
    used_at: dt.datetime | None
    certificate_serial: str | None

    def status(self, now: dt.datetime) -> str:
        if self.used_at is not None:
            return "used"
        return "expired" if self.expires_at <= now else "unused"


def list_codes(ctx: Context, limit: int = 100) -> list[CodeRecord]:
    """The newest codes, newest first."""
    with ctx.db.read() as conn:
        rows = code_store.newest(conn, max(1, min(limit, 1000)))
    return [
        CodeRecord(
            r.person_id,
            r.name,
            r.created_by,
            r.created_at,
            r.expires_at,
            r.used_at,
            r.certificate_serial,
        )
        for r in rows
    ]


def default_hours(ctx: Context) -> int:
    """How long a code is valid when the officer gives no number of hours."""
    return ctx.config.renewal.enrolment_code_hours


def _hash(code: str) -> str:
    return hashlib.sha256(code.strip().encode()).hexdigest()


def create_code(ctx: Context, person_id: str, hours: int | None = None) -> tuple[str, dt.datetime]:
    """A fresh code for `person_id` (shown once), valid `hours` (default from config): 1 hour to
    30 days, whoever asks (console, API or CLI), so no code outlives a month."""
    with ctx.db.write() as conn:
        return create_code_in(conn, ctx, person_id, hours)


def create_code_in(
    conn: Connection, ctx: Context, person_id: str, hours: int | None = None
) -> tuple[str, dt.datetime]:
    """`create_code` inside the caller's transaction (an approved re-enrolment request)."""
    if hours is not None and not CODE_HOURS_MIN <= hours <= CODE_HOURS_MAX:
        raise CertdeskError(
            "input.invalid", detail=f"hours must be {CODE_HOURS_MIN} to {CODE_HOURS_MAX}"
        )
    now = ctx.clock.now()
    if hours is None:
        hours = ctx.config.renewal.enrolment_code_hours
    expires = now + dt.timedelta(hours=hours)
    code = secrets.token_urlsafe(12)
    person = get_person(conn, person_id)
    if person.state is not PersonState.ACTIVE:
        raise CertdeskError("person.departed", person_id=person_id)
    code_store.insert_code(conn, _hash(code), person_id, ctx.actor, now, expires)
    ctx.record(
        conn,
        now,
        "enrolment_code.create",
        "person",
        person_id,
        after={"expires_at": expires.isoformat()},
    )
    return code, expires


@dataclass(frozen=True)
class CodeUse:
    """A code checked for a key: fresh, or spent before for this very key (`resumed`: the
    enrolment it started may have been cut off, and this retry finishes it)."""

    code_hash: str
    resumed: bool


def check_code(
    conn: Connection, ctx: Context, person_id: str, code: str, key_sha256: str
) -> CodeUse:
    """Whether `code` is `person_id`'s and may be used for the key hashing to `key_sha256`
    (row locked): unused and unexpired, or already spent for the same key."""
    now = ctx.clock.now()
    row = code_store.get_locked(conn, _hash(code))
    if row is None or not hmac.compare_digest(row.person_id, person_id):
        raise CertdeskError("enrolcode.invalid")
    if row.used_at is not None:
        used_at = f"{row.used_at:%Y-%m-%d %H:%M} UTC"
        if row.key_sha256 is None:  # spent before codes remembered their key
            raise CertdeskError("enrolcode.used", used_at=used_at)
        if not hmac.compare_digest(row.key_sha256, key_sha256):
            raise CertdeskError("enrolcode.other_key", used_at=used_at)
        return CodeUse(str(row.code_hash), resumed=True)
    if row.expires_at <= now:
        raise CertdeskError("enrolcode.expired", expires_at=f"{row.expires_at:%Y-%m-%d %H:%M} UTC")
    return CodeUse(str(row.code_hash), resumed=False)


def spend_code(
    conn: Connection, ctx: Context, person_id: str, code_hash: str, key_sha256: str
) -> None:
    """Mark a checked code used for that key, audited, in the caller's transaction."""
    now = ctx.clock.now()
    code_store.mark_used(conn, code_hash, now, key_sha256)
    audit.append(
        conn,
        at=now,
        actor=f"est:{person_id}",
        action="enrolment_code.use",
        object_type="person",
        object_id=person_id,
        after={"key_sha256": key_sha256},
    )
