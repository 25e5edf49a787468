"""Used nonces, kept until they would be refused as expired anyway."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, delete
from sqlalchemy.dialects import postgresql, sqlite

from certdesk.store.tables import used_nonces

# One statement that records the nonce only if it is new (both engines speak ON CONFLICT).
# (RETURNING says whether it did: the drivers' row counts do not, for every engine.)
_RECORD = {
    name: dialect.insert(used_nonces)
    .on_conflict_do_nothing(index_elements=["nonce"])
    .returning(used_nonces.c.nonce)
    for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))
}


def record_use(conn: Connection, nonce: str, at: dt.datetime) -> bool:
    """Record `nonce` as used; False if it already was. A replay racing in from another process
    waits for that transaction (PostgreSQL) or the write lock (SQLite), then inserts nothing."""
    recorded = conn.execute(_RECORD[conn.dialect.name], {"nonce": nonce, "used_at": at})
    return recorded.first() is not None


def forget_used_before(conn: Connection, cutoff: dt.datetime) -> int:
    """Drop the nonces used before `cutoff`; returns how many."""
    return conn.execute(delete(used_nonces).where(used_nonces.c.used_at < cutoff)).rowcount
