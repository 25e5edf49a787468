"""Used nonces, kept until they would be refused as expired anyway."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, delete, insert, select

from certdesk.store.tables import used_nonces


def record_use(conn: Connection, nonce: str, at: dt.datetime) -> bool:
    """Record `nonce` as used; False if it already was. A replay racing in from another process
    hits the primary key when the transactions commit."""
    used = conn.execute(select(used_nonces.c.nonce).where(used_nonces.c.nonce == nonce))
    if used.first() is not None:
        return False
    conn.execute(insert(used_nonces).values(nonce=nonce, used_at=at))
    return True


def forget_used_before(conn: Connection, cutoff: dt.datetime) -> int:
    """Drop the nonces used before `cutoff`; returns how many."""
    return conn.execute(delete(used_nonces).where(used_nonces.c.used_at < cutoff)).rowcount
