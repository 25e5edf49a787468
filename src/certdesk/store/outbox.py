"""The outbox: messages decided in a use case's transaction, delivered by a job.

Queueing ignores a (topic, channel) already there (`ON CONFLICT DO NOTHING` on both databases),
so two jobs deciding the same reminder at once queue it once. Claiming takes due rows with
`FOR UPDATE SKIP LOCKED` on PostgreSQL (SQLite's writer lock serialises the jobs) and leases them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, and_, exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from certdesk.domain.reminders import OutboxState
from certdesk.domain.states import CertState, PersonState
from certdesk.store.certificates import PERSONAL
from certdesk.store.db import AnyRow, in_sql
from certdesk.store.tables import certificates, outbox, people, units

_CHUNK = 500


def queued_topics(conn: Connection, channel: str, topics: Sequence[str]) -> set[str]:
    """Which of `topics` are already in the outbox for `channel`."""
    found: set[str] = set()
    for i in range(0, len(topics), _CHUNK):
        part = topics[i : i + _CHUNK]
        found.update(
            conn.execute(
                select(outbox.c.topic).where(outbox.c.channel == channel, outbox.c.topic.in_(part))
            ).scalars()
        )
    return found


def queue(conn: Connection, rows: Sequence[Mapping[str, Any]], at: dt.datetime) -> int:
    """Insert messages (topic, channel, recipient, locale, payload) as pending, skipping any
    (topic, channel) already queued (e.g. by a job that committed first); how many went in."""
    if not rows:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    values = [
        {
            **r,
            "state": OutboxState.PENDING.value,
            "attempts": 0,
            "next_attempt_at": at,
            "created_at": at,
        }
        for r in rows
    ]
    stmt = (
        dialect.insert(outbox)
        .on_conflict_do_nothing(index_elements=["topic", "channel"])
        .returning(outbox.c.id)
    )
    added = 0
    for i in range(0, len(values), _CHUNK):
        added += len(conn.execute(stmt, values[i : i + _CHUNK]).all())
    return added


def claim(
    conn: Connection,
    channels: Iterable[str],
    now: dt.datetime,
    lease_until: dt.datetime,
    limit: int,
) -> list[AnyRow]:
    """Due messages of `channels` (pending, or sending with an ended lease), marked `sending`
    until `lease_until` with one more attempt counted; the rows as they were before."""
    due = (
        select(outbox)
        .where(
            outbox.c.channel.in_(list(channels)),
            outbox.c.state.in_([OutboxState.PENDING.value, OutboxState.SENDING.value]),
            outbox.c.next_attempt_at <= now,
        )
        .order_by(outbox.c.next_attempt_at, outbox.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = list(conn.execute(due))
    if rows:
        conn.execute(
            update(outbox)
            .where(outbox.c.id.in_([r.id for r in rows]))
            .values(
                state=OutboxState.SENDING.value,
                attempts=outbox.c.attempts + 1,
                next_attempt_at=lease_until,
            )
        )
    return rows


def mark_sent(conn: Connection, message_id: int, at: dt.datetime) -> None:
    conn.execute(
        update(outbox)
        .where(outbox.c.id == message_id)
        .values(state=OutboxState.SENT.value, sent_at=at, last_error=None)
    )


def mark_failed_attempt(
    conn: Connection, message_id: int, error: str, retry_at: dt.datetime | None
) -> None:
    """Record a failed attempt: pending again from `retry_at`, or `failed` for good (None)."""
    values: dict[str, Any] = {"last_error": error[:2000]}
    if retry_at is None:
        values["state"] = OutboxState.FAILED.value
    else:
        values |= {"state": OutboxState.PENDING.value, "next_attempt_at": retry_at}
    conn.execute(
        update(outbox)
        .where(and_(outbox.c.id == message_id, outbox.c.state == OutboxState.SENDING.value))
        .values(**values)
    )


def recent(conn: Connection, limit: int = 100, state: str | None = None) -> list[AnyRow]:
    """The delivery log, newest first (officers see what failed and why)."""
    query = select(outbox).order_by(outbox.c.id.desc()).limit(limit)
    if state:
        query = query.where(outbox.c.state == state)
    return list(conn.execute(query))


def counts(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(outbox.c.state, func.count()).group_by(outbox.c.state))
    return {str(state): int(n) for state, n in rows}


def reminder_candidates(
    conn: Connection, not_after_from: dt.datetime, not_after_to: dt.datetime
) -> list[AnyRow]:
    """Active personal certificates ending between the two times, with their holder (id, name,
    e-mail, language, state, unit) and whether a renewal of them is pending or installed."""
    successor = certificates.alias("successor")
    renewed = exists().where(
        successor.c.replaces == certificates.c.serial,
        successor.c.state.in_(
            [in_sql(CertState.PENDING_INSTALL.value), in_sql(CertState.ACTIVE.value)]
        ),
    )
    query = (
        select(
            certificates.c.serial,
            certificates.c.not_after,
            certificates.c.state,
            people.c.person_id,
            people.c.name,
            people.c.email,
            people.c.locale,
            people.c.state.label("holder_state"),
            people.c.unit_code,
            units.c.name.label("unit_name"),
            renewed.label("renewed"),
        )
        .join(people, people.c.person_id == certificates.c.person_id)
        .join(units, units.c.code == people.c.unit_code)
        .where(
            certificates.c.profile == in_sql(PERSONAL),
            certificates.c.state == in_sql(CertState.ACTIVE.value),
            people.c.state == PersonState.ACTIVE.value,
            certificates.c.not_after >= not_after_from,
            certificates.c.not_after < not_after_to,
        )
        .order_by(certificates.c.not_after, certificates.c.serial)
    )
    return list(conn.execute(query))
