"""The record of the CRLs each CA has published."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, insert, select

from certdesk.store.db import AnyRow
from certdesk.store.tables import crls


def latest(conn: Connection, issuer: str) -> AnyRow | None:
    """`this_update` and `next_update` of `issuer`'s newest CRL (None before the first)."""
    return conn.execute(
        select(crls.c.this_update, crls.c.next_update)
        .where(crls.c.issuer == issuer)
        .order_by(crls.c.number.desc())
        .limit(1)
    ).first()


def record(
    conn: Connection,
    issuer: str,
    number: int,
    this_update: dt.datetime,
    next_update: dt.datetime,
    entries: int,
) -> None:
    """A published CRL: its number, dates and how many certificates it lists."""
    conn.execute(
        insert(crls).values(
            issuer=issuer,
            number=number,
            this_update=this_update,
            next_update=next_update,
            entries=entries,
        )
    )
