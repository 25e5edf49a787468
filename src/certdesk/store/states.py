"""The guarded write behind every state change: `UPDATE … SET state = <after> WHERE <key> = ?
AND state = <before>`, so a row that changed underneath a use case is never overwritten.
Called only by `services/lifecycle.py`, which checks the move is allowed and audits it."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Literal

from sqlalchemy import Column, Connection, Table, Update, and_, bindparam, update

from certdesk.store.db import execute_many
from certdesk.store.tables import authorities, certificates, office_requests, people, tokens

Kind = Literal["certificate", "token", "person", "authority", "request"]
_TABLES: dict[str, tuple[Table, Column[str]]] = {
    "certificate": (certificates, certificates.c.serial),
    "token": (tokens, tokens.c.serial),
    "person": (people, people.c.person_id),
    "authority": (authorities, authorities.c.name),
    "request": (office_requests, office_requests.c.request_id),
}


def move_rows(
    conn: Connection, kind: Kind, before: str, after: str, rows: Sequence[Mapping[str, object]]
) -> int:
    """Move rows (each `{"key": …, <other columns>}`, all with the same columns) from `before`
    to `after`; returns how many moved."""
    statement = _statement(kind, before, after, tuple(sorted(set(rows[0]) - {"key"})))
    params = [{f"b_{k}": v for k, v in row.items()} for row in rows]
    return execute_many(conn, statement, params)


@functools.cache
def _statement(kind: Kind, before: str, after: str, columns: tuple[str, ...]) -> Update:
    """Built once per shape: issuing runs this in every record transaction."""
    table, key = _TABLES[kind]
    return (
        update(table)
        .where(and_(key == bindparam("b_key"), table.c.state == before))
        .values(state=after, **{c: bindparam(f"b_{c}") for c in columns})
    )
