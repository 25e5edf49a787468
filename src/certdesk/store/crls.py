"""The record of the CRLs each CA has published (complete and delta, one number sequence)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, insert, select, update

from certdesk.domain.crl_schedule import PublishedRecord
from certdesk.store.tables import crls


def latest(conn: Connection, issuer: str, *, delta: bool = False) -> PublishedRecord | None:
    """`issuer`'s newest complete CRL (or delta CRL), None before the first."""
    kind = crls.c.base.is_not(None) if delta else crls.c.base.is_(None)
    row = conn.execute(
        select(crls.c.number, crls.c.this_update, crls.c.next_update, crls.c.entries, crls.c.base)
        .where(crls.c.issuer == issuer, kind)
        .order_by(crls.c.number.desc())
        .limit(1)
    ).first()
    return None if row is None else PublishedRecord(*row)


def record(
    conn: Connection,
    issuer: str,
    number: int,
    this_update: dt.datetime,
    next_update: dt.datetime,
    entries: int,
    base: int | None = None,
) -> None:
    """A published CRL: its number, dates, how many certificates it lists and, for a delta
    CRL, the number of its base complete CRL. `this_update` is when it was published, to the
    microsecond (the CRL itself says it to the second), so that what went on the CRL later in
    the same second is told apart from what it lists."""
    conn.execute(
        insert(crls).values(
            issuer=issuer,
            number=number,
            this_update=this_update,
            next_update=next_update,
            entries=entries,
            base=base,
        )
    )


def keep_der(conn: Connection, issuer: str, number: int, der: bytes) -> None:
    """The signed CRL, kept with its record so that every machine serves it."""
    conn.execute(
        update(crls).where(crls.c.issuer == issuer, crls.c.number == number).values(der=der)
    )


def newest_der(conn: Connection, issuer: str, *, delta: bool = False) -> bytes | None:
    """The newest kept complete CRL (or delta CRL) of `issuer`, None if none is kept."""
    kind = crls.c.base.is_not(None) if delta else crls.c.base.is_(None)
    found = conn.execute(
        select(crls.c.der)
        .where(crls.c.issuer == issuer, kind, crls.c.der.is_not(None))
        .order_by(crls.c.number.desc())
        .limit(1)
    ).scalar()
    return None if found is None else bytes(found)
