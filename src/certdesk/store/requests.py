"""The office_requests table as the request desk asks it. A request's state changes only
through `services/lifecycle.py` (`store/states.py`); the rest of its row is written here."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping

from sqlalchemy import Connection, insert, select, update

from certdesk.domain.requests import OfficeRequest, RequestKind
from certdesk.domain.states import PersonState, RequestState, TokenState
from certdesk.store.db import AnyRow
from certdesk.store.tables import office_requests, people, tokens

_LISTED = [c for c in office_requests.c if c.name != "attachment"]


def _request(row: AnyRow) -> OfficeRequest:
    return OfficeRequest(
        row.request_id,
        RequestKind(row.kind),
        row.person_id,
        row.unit_code,
        RequestState(row.state),
        row.filed_by,
        row.filed_at,
        json.loads(row.details or "{}"),
        row.remark,
        row.decided_by,
        row.decided_at,
        row.reason,
        json.loads(row.outcome or "{}"),
        row.attachment_name,
        row.attachment_type,
    )


def insert_request(conn: Connection, values: Mapping[str, object]) -> None:
    """A new request's row; `details` is a mapping, kept as JSON text."""
    row = dict(values)
    row["details"] = json.dumps(row.get("details") or {}, sort_keys=True)
    conn.execute(insert(office_requests).values(**row))


def get(conn: Connection, request_id: str) -> OfficeRequest | None:
    query = select(*_LISTED).where(office_requests.c.request_id == request_id)
    row = conn.execute(query).first()
    return None if row is None else _request(row)


def attachment(conn: Connection, request_id: str) -> bytes | None:
    query = select(office_requests.c.attachment).where(office_requests.c.request_id == request_id)
    return conn.execute(query).scalar()


def search(
    conn: Connection,
    *,
    kind: str | None = None,
    unit_code: str | None = None,
    state: str | None = None,
    person_id: str | None = None,
    filed_before: dt.datetime | None = None,
    limit: int = 500,
) -> list[OfficeRequest]:
    """Matching requests, oldest first (the office's queue order)."""
    query = select(*_LISTED).order_by(office_requests.c.filed_at, office_requests.c.request_id)
    for column, value in (
        (office_requests.c.kind, kind),
        (office_requests.c.unit_code, unit_code),
        (office_requests.c.state, state),
        (office_requests.c.person_id, person_id),
    ):
        if value:
            query = query.where(column == value)
    if filed_before is not None:
        query = query.where(office_requests.c.filed_at <= filed_before)
    return [_request(row) for row in conn.execute(query.limit(limit))]


def set_outcome(conn: Connection, request_id: str, outcome: Mapping[str, object]) -> None:
    """What carrying the request out did (revoked serials, tokens due back, code expiry…)."""
    text = json.dumps(dict(outcome), sort_keys=True, default=str)
    conn.execute(
        update(office_requests)
        .where(office_requests.c.request_id == request_id)
        .values(outcome=text)
    )


def set_attachment(
    conn: Connection, request_id: str, name: str, media_type: str, data: bytes
) -> None:
    conn.execute(
        update(office_requests)
        .where(office_requests.c.request_id == request_id)
        .values(attachment_name=name, attachment_type=media_type, attachment=data)
    )


def due_back(conn: Connection) -> list[tuple[str, str, str, str, dt.datetime]]:
    """Tokens still issued to someone who left: (token, person, name, unit, left at)."""
    query = (
        select(
            tokens.c.serial,
            people.c.person_id,
            people.c.name,
            people.c.unit_code,
            people.c.updated_at,
        )
        .join(people, people.c.person_id == tokens.c.keeper_id)
        .where(tokens.c.state == TokenState.ISSUED.value)
        .where(people.c.state == PersonState.DEPARTED.value)
        .order_by(people.c.updated_at, tokens.c.serial)
    )
    return [(r[0], r[1], r[2], r[3], r[4]) for r in conn.execute(query)]
