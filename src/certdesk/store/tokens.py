"""The tokens table as custody asks it. A token's state and keeper change only through
`services/lifecycle.py` (`store/states.py`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from sqlalchemy import Connection, insert, select, update

from certdesk.domain.registry import Token
from certdesk.domain.states import TokenState
from certdesk.store.db import AnyRow
from certdesk.store.tables import tokens


def _token(row: AnyRow) -> Token:
    return Token(row.serial, row.model, TokenState(row.state), row.keeper_id, row.pin_changed)


def get(conn: Connection, serial: str) -> Token | None:
    row = conn.execute(select(tokens).where(tokens.c.serial == serial)).first()
    return None if row is None else _token(row)


def all_tokens(conn: Connection, keeper_id: str | None = None) -> list[Token]:
    """Every token by serial, or only those `keeper_id` keeps."""
    query = select(tokens).order_by(tokens.c.serial)
    if keeper_id is not None:
        query = query.where(tokens.c.keeper_id == keeper_id)
    return [_token(row) for row in conn.execute(query)]


def kept_by(conn: Connection, person_id: str) -> list[str]:
    """Serials of the tokens `person_id` keeps, sorted."""
    query = select(tokens.c.serial).where(tokens.c.keeper_id == person_id)
    return sorted(conn.execute(query).scalars())


def insert_token(conn: Connection, values: Mapping[str, object], at: dt.datetime) -> None:
    """A new token's row from `values` (serial, model, state); its PIN is still the initial one."""
    conn.execute(insert(tokens).values(**values, pin_changed=False, updated_at=at))


def mark_pin_changed(conn: Connection, serial: str, at: dt.datetime) -> None:
    conn.execute(
        update(tokens).where(tokens.c.serial == serial).values(pin_changed=True, updated_at=at)
    )
