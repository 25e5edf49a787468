"""The record of the CRLs each CA has published."""

from __future__ import annotations

from sqlalchemy import Connection, select

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
