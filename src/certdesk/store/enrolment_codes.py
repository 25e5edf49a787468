"""One-time enrolment codes, kept as hashes of the codes."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, insert, select, update

from certdesk.store.db import AnyRow
from certdesk.store.tables import enrolment_codes, people


def insert_code(
    conn: Connection,
    code_hash: str,
    person_id: str,
    created_by: str,
    at: dt.datetime,
    expires_at: dt.datetime,
) -> None:
    conn.execute(
        insert(enrolment_codes).values(
            code_hash=code_hash,
            person_id=person_id,
            created_by=created_by,
            created_at=at,
            expires_at=expires_at,
        )
    )


def get_locked(conn: Connection, code_hash: str) -> AnyRow | None:
    """The code's row, locked for the caller's transaction so that it is spent at most once."""
    query = select(enrolment_codes).where(enrolment_codes.c.code_hash == code_hash)
    return conn.execute(query.with_for_update()).first()


def mark_used(conn: Connection, code_hash: str, at: dt.datetime, key_sha256: str) -> None:
    """Spent at `at` for the key whose SubjectPublicKeyInfo hashes to `key_sha256`."""
    conn.execute(
        update(enrolment_codes)
        .where(enrolment_codes.c.code_hash == code_hash)
        .values(used_at=at, key_sha256=key_sha256)
    )


def newest(conn: Connection, limit: int) -> list[AnyRow]:
    """The newest codes without their hash: `person_id`, `name` (the person's), `created_by`,
    `created_at`, `expires_at`, `used_at`, `certificate_serial`."""
    query = (
        select(
            enrolment_codes.c.person_id,
            people.c.name,
            enrolment_codes.c.created_by,
            enrolment_codes.c.created_at,
            enrolment_codes.c.expires_at,
            enrolment_codes.c.used_at,
            enrolment_codes.c.certificate_serial,
        )
        .join(people, people.c.person_id == enrolment_codes.c.person_id)
        .order_by(enrolment_codes.c.created_at.desc(), enrolment_codes.c.code_hash)
        .limit(limit)
    )
    return list(conn.execute(query))
