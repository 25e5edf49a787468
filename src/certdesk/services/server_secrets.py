"""Secrets every server process of one installation shares, kept in the database."""

from __future__ import annotations

import secrets

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from certdesk.services.context import Context
from certdesk.store.tables import server_secrets


def shared_secret(ctx: Context, name: str) -> bytes:
    """The 32-byte secret called `name`, made on first use (the first process to ask wins)."""
    query = select(server_secrets.c.value).where(server_secrets.c.name == name)
    with ctx.db.read() as conn:
        found = conn.execute(query).scalar()
    if found is not None:
        return bytes(found)
    try:
        with ctx.db.write() as conn:
            conn.execute(
                insert(server_secrets).values(
                    name=name, value=secrets.token_bytes(32), created_at=ctx.clock.now()
                )
            )
    except IntegrityError:
        pass  # another process made it first: use theirs
    with ctx.db.read() as conn:
        return bytes(conn.execute(query).scalar_one())
