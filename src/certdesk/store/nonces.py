"""Used nonces, kept until they would be refused as expired anyway."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

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


def record_uses(conn: Connection, nonces: Sequence[str], at: dt.datetime) -> set[str]:
    """Record each of `nonces` as used; the answer is those that were not yet. One statement
    whatever their number (SQLAlchemy sends the rows as one multi-row INSERT … RETURNING). A
    replay racing in from another process waits for that transaction (PostgreSQL) or the write
    lock (SQLite), then inserts nothing."""
    if not nonces:
        return set()
    rows = [{"nonce": nonce, "used_at": at} for nonce in dict.fromkeys(nonces)]
    return {str(n) for n in conn.execute(_RECORD[conn.dialect.name], rows).scalars()}


def forget_used_before(conn: Connection, cutoff: dt.datetime) -> int:
    """Drop the nonces used before `cutoff`; returns how many."""
    return conn.execute(delete(used_nonces).where(used_nonces.c.used_at < cutoff)).rowcount
