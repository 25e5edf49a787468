"""Secrets every server process of one installation shares."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, insert, select

from certdesk.store.tables import server_secrets


def get(conn: Connection, name: str) -> bytes | None:
    found = conn.execute(
        select(server_secrets.c.value).where(server_secrets.c.name == name)
    ).scalar()
    return None if found is None else bytes(found)


def insert_secret(conn: Connection, name: str, value: bytes, at: dt.datetime) -> None:
    """IntegrityError if a secret of that name exists."""
    conn.execute(insert(server_secrets).values(name=name, value=value, created_at=at))
