"""What the renewal campaign counts: personal certificates ending in a period, per unit, and the
active people who hold no active certificate."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, and_, exists, not_, select

from certdesk.domain.states import CertState, PersonState
from certdesk.store.certificates import PERSONAL
from certdesk.store.db import AnyRow, in_sql
from certdesk.store.tables import certificates, people

# Certificates that were in use: a renewal of them, or the certificate itself, counts.
_USED = [CertState.ACTIVE.value, CertState.SUPERSEDED.value]


def ending_between(
    conn: Connection, start: dt.datetime, end: dt.datetime, unit_code: str | None
) -> list[AnyRow]:
    """Personal certificates in use (active, or superseded by a renewal) ending in [start, end)
    of active people: unit_code, person_id, name, serial, not_after, renewed."""
    successor = certificates.alias("successor")
    renewed = exists().where(
        successor.c.replaces == certificates.c.serial,
        successor.c.state.in_([in_sql(s) for s in (CertState.PENDING_INSTALL.value, *_USED)]),
    )
    query = (
        select(
            people.c.unit_code,
            people.c.person_id,
            people.c.name,
            certificates.c.serial,
            certificates.c.not_after,
            renewed.label("renewed"),
        )
        .join(people, people.c.person_id == certificates.c.person_id)
        .where(
            certificates.c.profile == in_sql(PERSONAL),
            certificates.c.state.in_([in_sql(s) for s in _USED]),
            people.c.state == PersonState.ACTIVE.value,
            certificates.c.not_after >= start,
            certificates.c.not_after < end,
        )
        .order_by(people.c.unit_code, certificates.c.not_after, people.c.person_id)
    )
    if unit_code is not None:
        query = query.where(people.c.unit_code == unit_code)
    return list(conn.execute(query))


def without_active_certificate(conn: Connection, unit_code: str | None) -> list[AnyRow]:
    """Active people with no active personal certificate: unit_code, person_id, name."""
    has_one = exists().where(
        and_(
            certificates.c.person_id == people.c.person_id,
            certificates.c.profile == in_sql(PERSONAL),
            certificates.c.state == in_sql(CertState.ACTIVE.value),
        )
    )
    query = (
        select(people.c.unit_code, people.c.person_id, people.c.name)
        .where(people.c.state == PersonState.ACTIVE.value, not_(has_one))
        .order_by(people.c.unit_code, people.c.person_id)
    )
    if unit_code is not None:
        query = query.where(people.c.unit_code == unit_code)
    return list(conn.execute(query))
