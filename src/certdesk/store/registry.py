"""The registry's tables as the use cases ask them: units, positions, roles and their
permissions, people. A person's state is not written here (`store/states.py` does, for
`services/lifecycle.py`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Row,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from certdesk.domain.registry import Grants, Person, Position, Unit
from certdesk.domain.states import CertState, PersonState
from certdesk.store.certificates import PERSONAL, active_personal_serial_of
from certdesk.store.db import AnyRow, in_sql, rows_in
from certdesk.store.tables import (
    certificates,
    people,
    position_roles,
    positions,
    role_permissions,
    roles,
    units,
)


def _unit(row: AnyRow) -> Unit:
    return Unit(row.code, row.name, row.contact_name, row.contact_email, row.contact_phone)


def get_unit(conn: Connection, code: str) -> Unit | None:
    row = conn.execute(select(units).where(units.c.code == code)).first()
    return None if row is None else _unit(row)


def all_units(conn: Connection) -> list[Unit]:
    return [_unit(row) for row in conn.execute(select(units).order_by(units.c.code))]


def insert_unit(conn: Connection, unit: Unit, at: dt.datetime) -> None:
    conn.execute(insert(units).values(**asdict(unit), created_at=at))


def get_position(conn: Connection, code: str) -> Position | None:
    row = conn.execute(select(positions).where(positions.c.code == code)).first()
    return None if row is None else Position(row.code, row.name)


def all_positions(conn: Connection) -> list[Position]:
    rows = conn.execute(select(positions.c.code, positions.c.name).order_by(positions.c.code))
    return [Position(row.code, row.name) for row in rows]


def role_codes(conn: Connection) -> set[str]:
    return set(conn.execute(select(roles.c.code)).scalars())


def _replace(
    conn: Connection,
    table: Table,
    code: str,
    name: str,
    links: Table,
    owner: Column[str],
    linked: Column[str],
    values: Iterable[str],
) -> None:
    """Create or rename `table`'s row `code` and make its links exactly `values`."""
    if conn.execute(select(table.c.code).where(table.c.code == code)).first():
        conn.execute(update(table).where(table.c.code == code).values(name=name))
        conn.execute(delete(links).where(owner == code))
    else:
        conn.execute(insert(table).values(code=code, name=name))
    for value in sorted(set(values)):
        conn.execute(insert(links).values({owner: code, linked: value}))


def replace_role(conn: Connection, code: str, name: str, permissions: Iterable[str]) -> None:
    """Create or replace a role with exactly `permissions`."""
    _replace(
        conn,
        roles,
        code,
        name,
        role_permissions,
        role_permissions.c.role_code,
        role_permissions.c.permission,
        permissions,
    )


def replace_position(conn: Connection, code: str, name: str, role_codes: Iterable[str]) -> None:
    """Create or replace a position bringing exactly the roles `role_codes`."""
    _replace(
        conn,
        positions,
        code,
        name,
        position_roles,
        position_roles.c.position_code,
        position_roles.c.role_code,
        role_codes,
    )


def _grants(
    conn: Connection, table: Table, owner: Column[str], linked: Column[str], code: str
) -> tuple[str, list[str]] | None:
    """(name, linked codes) of a role or a position, or None when there is no such row."""
    name = conn.execute(select(table.c.name).where(table.c.code == code)).scalar()
    if name is None:
        return None
    return str(name), sorted(conn.execute(select(linked).where(owner == code)).scalars())


def role_grants(conn: Connection, code: str) -> tuple[str, list[str]] | None:
    """(name, permissions) of a role."""
    c = role_permissions.c
    return _grants(conn, roles, c.role_code, c.permission, code)


def position_grants(conn: Connection, code: str) -> tuple[str, list[str]] | None:
    """(name, roles) of a position."""
    c = position_roles.c
    return _grants(conn, positions, c.position_code, c.role_code, code)


def _every_grant(
    conn: Connection, table: Table, links: Table, owner: Column[str], linked: Column[str]
) -> list[Grants]:
    """Every role or position by code, with what it links to (one query)."""
    rows = conn.execute(
        select(table.c.code, table.c.name, linked)
        .outerjoin_from(table, links, owner == table.c.code)
        .order_by(table.c.code, linked)
    )
    found: dict[str, tuple[str, list[str]]] = {}
    for code, name, value in rows:
        found.setdefault(code, (name, []))[1].extend([value] if value is not None else [])
    return [Grants(code, name, tuple(values)) for code, (name, values) in found.items()]


def all_role_grants(conn: Connection) -> list[Grants]:
    """Every role with the permissions it grants."""
    c = role_permissions.c
    return _every_grant(conn, roles, role_permissions, c.role_code, c.permission)


def all_position_grants(conn: Connection) -> list[Grants]:
    """Every position with the roles it carries."""
    c = position_roles.c
    return _every_grant(conn, positions, position_roles, c.position_code, c.role_code)


def people_by_position(conn: Connection) -> dict[str, list[str]]:
    """Position code → the people (any state) recorded in it, by id."""
    query = (
        select(people.c.position_code, people.c.person_id)
        .where(people.c.position_code.is_not(None))
        .order_by(people.c.person_id)
    )
    found: dict[str, list[str]] = {}
    for code, person_id in conn.execute(query):
        found.setdefault(code, []).append(person_id)
    return found


def lock_grants_of(conn: Connection, permissions: Iterable[str]) -> None:
    """Lock the grants of `permissions` until the transaction ends (PostgreSQL; SQLite's write
    transaction holds the whole database already): two changes that each leave somebody
    holding a permission, checked at once, could together leave nobody."""
    query = (
        select(role_permissions.c.role_code)
        .where(role_permissions.c.permission.in_(list(permissions)))
        .with_for_update()
    )
    conn.execute(query).all()


def holders(conn: Connection, permission: str) -> list[str]:
    """Active people whose position grants `permission`."""
    query = (
        select(people.c.person_id)
        .join(position_roles, position_roles.c.position_code == people.c.position_code)
        .join(role_permissions, role_permissions.c.role_code == position_roles.c.role_code)
        .where(role_permissions.c.permission == permission)
        .where(people.c.state == PersonState.ACTIVE.value)
        .distinct()
    )
    return sorted(conn.execute(query).scalars())


def people_in_position(conn: Connection, code: str) -> list[str]:
    query = select(people.c.person_id).where(people.c.position_code == code)
    return sorted(conn.execute(query).scalars())


def delete_position(conn: Connection, code: str) -> None:
    conn.execute(delete(position_roles).where(position_roles.c.position_code == code))
    conn.execute(delete(positions).where(positions.c.code == code))


def person_query() -> Select[Any]:
    """People joined with their unit's name; use cases add columns or conditions to it and read
    the rows with `person_from_row`."""
    return select(people, units.c.name.label("unit_name")).join(
        units, units.c.code == people.c.unit_code
    )


def person_from_row(row: Row[Any]) -> Person:
    r = row._mapping
    return Person(
        r["person_id"],
        r["name"],
        r["unit_code"],
        r["unit_name"],
        r["position_code"],
        r["email"],
        r["phone"],
        PersonState(r["state"]),
    )


_PERSON_BY_ID = person_query().where(people.c.person_id == bindparam("pid"))
_PEOPLE_BY_ID = person_query().where(people.c.person_id.in_(bindparam("pids", expanding=True)))


# One round trip for enrolment: the person, their unit's name and their active certificate.
_PEOPLE_WITH_ACTIVE_SERIAL = person_query().add_columns(
    active_personal_serial_of(people.c.person_id).label("active_serial")
)
_WITH_ACTIVE_SERIAL = _PEOPLE_WITH_ACTIVE_SERIAL.where(people.c.person_id == bindparam("pid"))
_MANY_WITH_ACTIVE_SERIAL = _PEOPLE_WITH_ACTIVE_SERIAL.where(
    people.c.person_id.in_(bindparam("pids", expanding=True))
)


def person_with_active_serial(conn: Connection, person_id: str) -> tuple[Person, str | None] | None:
    """The person and the serial of their active personal certificate (None if they have none)."""
    row = conn.execute(_WITH_ACTIVE_SERIAL, {"pid": person_id}).first()
    return None if row is None else (person_from_row(row), row.active_serial)


def people_with_active_serial(
    conn: Connection, person_ids: Iterable[str]
) -> dict[str, tuple[Person, str | None]]:
    """`person_with_active_serial` for many people in one query (per 500): a batch of
    enrolments reads its people in one round trip; the unknown ones are not in the answer."""
    return {
        row.person_id: (person_from_row(row), row.active_serial)
        for row in rows_in(conn, _MANY_WITH_ACTIVE_SERIAL, "pids", person_ids)
    }


def people_by_id(conn: Connection, person_ids: Iterable[str]) -> dict[str, Person]:
    """People by id in one query (per 500); the unknown ones are not in the answer."""
    return {
        row.person_id: person_from_row(row)
        for row in rows_in(conn, _PEOPLE_BY_ID, "pids", person_ids)
    }


def get_person(conn: Connection, person_id: str) -> Person | None:
    row = conn.execute(_PERSON_BY_ID, {"pid": person_id}).first()
    return None if row is None else person_from_row(row)


def search_people(
    conn: Connection,
    unit_code: str | None = None,
    text: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[Person]:
    """People by id, optionally of one unit and/or with `text` in their id, name or e-mail
    (any case, on both databases: both sides lowered, LIKE's wildcards escaped); `limit` from
    `offset` for a page (the id orders them, so pages are stable)."""
    query = person_query().order_by(people.c.person_id).limit(limit).offset(offset)
    if unit_code:
        query = query.where(people.c.unit_code == unit_code)
    if text and text.strip():
        needle = text.strip().lower()
        query = query.where(
            or_(
                *(
                    func.lower(column).contains(needle, autoescape=True)
                    for column in (people.c.person_id, people.c.name, people.c.email)
                )
            )
        )
    return [person_from_row(row) for row in conn.execute(query)]


def insert_person(conn: Connection, values: Mapping[str, object], at: dt.datetime) -> None:
    """A new person's row from `values` (its columns, state included)."""
    conn.execute(insert(people).values(**values, created_at=at, updated_at=at))


def update_person(
    conn: Connection, person_id: str, changes: Mapping[str, object], at: dt.datetime
) -> None:
    """Write a person's details; their state changes only through the lifecycle."""
    if "state" in changes:
        raise ValueError("a person's state changes through services/lifecycle.py")
    conn.execute(
        update(people).where(people.c.person_id == person_id).values(**changes, updated_at=at)
    )


def active_members(conn: Connection, unit_code: str) -> list[AnyRow]:
    """The unit's active people (`person_id`, `name`), each with their active personal
    certificate's `serial` and `not_after` (None without one), soonest end first."""
    return list(
        conn.execute(
            select(
                people.c.person_id, people.c.name, certificates.c.serial, certificates.c.not_after
            )
            .outerjoin(
                certificates,
                and_(
                    certificates.c.person_id == people.c.person_id,
                    certificates.c.state == in_sql(CertState.ACTIVE.value),
                    certificates.c.profile == in_sql(PERSONAL),
                ),
            )
            .where(people.c.unit_code == unit_code, people.c.state == PersonState.ACTIVE.value)
            .order_by(certificates.c.not_after, people.c.person_id)
        )
    )
