"""Secrets every server process of one installation shares, kept in the database."""

from __future__ import annotations

import secrets

from sqlalchemy.exc import IntegrityError

from certdesk.services.context import Context
from certdesk.store import server_secrets as secret_store


def shared_secret(ctx: Context, name: str) -> bytes:
    """The 32-byte secret called `name`, made on first use (the first process to ask wins)."""
    with ctx.db.read() as conn:
        found = secret_store.get(conn, name)
    if found is not None:
        return found
    try:
        with ctx.db.write() as conn:
            secret_store.insert_secret(conn, name, secrets.token_bytes(32), ctx.clock.now())
    except IntegrityError:
        pass  # another process made it first: use theirs
    with ctx.db.read() as conn:
        found = secret_store.get(conn, name)
    assert found is not None, "made above or by another process"
    return found
