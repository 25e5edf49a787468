"""What the office publishes on the portal: announcements and downloadable forms."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, delete, insert, select

from certdesk.store.db import AnyRow
from certdesk.store.tables import announcements, forms


def insert_announcement(
    conn: Connection, title: str, body: str, author: str, at: dt.datetime
) -> int:
    """The new announcement's id."""
    new_id = conn.execute(
        insert(announcements)
        .values(title=title, body=body, author=author, published_at=at)
        .returning(announcements.c.id)
    ).scalar_one()
    return int(new_id)


def recent_announcements(conn: Connection, limit: int) -> list[AnyRow]:
    query = select(announcements).order_by(announcements.c.published_at.desc()).limit(limit)
    return list(conn.execute(query))


def get_announcement(conn: Connection, announcement_id: int) -> AnyRow:
    """The announcement (NoResultFound if there is none: callers know the id exists)."""
    return conn.execute(select(announcements).where(announcements.c.id == announcement_id)).one()


def replace_form(
    conn: Connection,
    name: str,
    title: str,
    media_type: str,
    data: bytes,
    uploaded_by: str,
    at: dt.datetime,
) -> None:
    """Store the form under `name`, in place of any form of that name."""
    conn.execute(delete(forms).where(forms.c.name == name))
    conn.execute(
        insert(forms).values(
            name=name,
            title=title,
            media_type=media_type,
            data=data,
            uploaded_by=uploaded_by,
            uploaded_at=at,
        )
    )


def all_forms(conn: Connection) -> list[AnyRow]:
    query = select(
        forms.c.name, forms.c.title, forms.c.media_type, forms.c.data, forms.c.uploaded_at
    ).order_by(forms.c.name)
    return list(conn.execute(query))


def get_form(conn: Connection, name: str) -> AnyRow | None:
    return conn.execute(select(forms).where(forms.c.name == name)).first()
