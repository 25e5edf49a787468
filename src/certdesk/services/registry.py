"""The registration office's records: units, positions, roles, permissions and people."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, Row, Select, bindparam, func, insert, or_, select, update

from certdesk.domain.errors import CertdeskError
from certdesk.domain.states import CertState, PersonState, RevocationReason
from certdesk.services.context import Context
from certdesk.services.lifecycle import Move, transition
from certdesk.services.revocation import revoke_in
from certdesk.store import audit
from certdesk.store.tables import (
    certificates,
    people,
    position_roles,
    positions,
    role_permissions,
    roles,
    tokens,
    units,
)


@dataclass(frozen=True)
class Unit:
    code: str
    name: str
    contact_name: str
    contact_email: str
    contact_phone: str


@dataclass(frozen=True)
class Person:
    person_id: str
    name: str
    unit_code: str
    unit_name: str
    position_code: str | None
    email: str
    phone: str
    state: PersonState


@dataclass(frozen=True)
class Position:
    code: str
    name: str


@dataclass(frozen=True)
class Departure:
    """What marking a person departed did: their certificates revoked, tokens still to return."""

    person: Person
    revoked: list[str]
    tokens_to_return: list[str]


def _require_text(**values: str) -> None:
    for key, value in values.items():
        if not value or not value.strip():
            raise CertdeskError("input.invalid", detail=f"{key} must not be empty")


def get_unit(conn: Connection, code: str) -> Unit:
    row = conn.execute(select(units).where(units.c.code == code)).first()
    if row is None:
        raise CertdeskError("unit.not_found", code=code)
    return Unit(row.code, row.name, row.contact_name, row.contact_email, row.contact_phone)


def add_unit(
    ctx: Context,
    code: str,
    name: str,
    contact_name: str = "",
    contact_email: str = "",
    contact_phone: str = "",
) -> Unit:
    _require_text(code=code, name=name)
    unit = Unit(code, name, contact_name, contact_email, contact_phone)
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        if conn.execute(select(units.c.code).where(units.c.code == code)).first():
            raise CertdeskError("unit.duplicate", code=code)
        conn.execute(insert(units).values(**asdict(unit), created_at=now))
        audit.append(
            conn,
            at=now,
            actor=ctx.actor,
            action="unit.add",
            object_type="unit",
            object_id=code,
            after=asdict(unit),
        )
    return unit


def list_units(ctx: Context) -> list[Unit]:
    with ctx.db.read() as conn:
        rows = conn.execute(select(units).order_by(units.c.code)).all()
    return [Unit(r.code, r.name, r.contact_name, r.contact_email, r.contact_phone) for r in rows]


def define_role(ctx: Context, code: str, name: str, permissions: list[str]) -> None:
    """Create or replace a role and its permissions."""
    _require_text(code=code, name=name)
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        exists = conn.execute(select(roles.c.code).where(roles.c.code == code)).first()
        if exists:
            conn.execute(update(roles).where(roles.c.code == code).values(name=name))
            conn.execute(role_permissions.delete().where(role_permissions.c.role_code == code))
        else:
            conn.execute(insert(roles).values(code=code, name=name))
        for perm in sorted(set(permissions)):
            conn.execute(insert(role_permissions).values(role_code=code, permission=perm))
        audit.append(
            conn,
            at=now,
            actor=ctx.actor,
            action="role.define",
            object_type="role",
            object_id=code,
            after={"name": name, "permissions": sorted(set(permissions))},
        )


def define_position(ctx: Context, code: str, name: str, role_codes: list[str]) -> None:
    """Create or replace a position and the roles it brings."""
    _require_text(code=code, name=name)
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        known = set(conn.execute(select(roles.c.code)).scalars())
        missing = sorted(set(role_codes) - known)
        if missing:
            raise CertdeskError("input.invalid", detail=f"unknown roles {missing}")
        exists = conn.execute(select(positions.c.code).where(positions.c.code == code)).first()
        if exists:
            conn.execute(update(positions).where(positions.c.code == code).values(name=name))
            conn.execute(position_roles.delete().where(position_roles.c.position_code == code))
        else:
            conn.execute(insert(positions).values(code=code, name=name))
        for role in sorted(set(role_codes)):
            conn.execute(insert(position_roles).values(position_code=code, role_code=role))
        audit.append(
            conn,
            at=now,
            actor=ctx.actor,
            action="position.define",
            object_type="position",
            object_id=code,
            after={"name": name, "roles": sorted(set(role_codes))},
        )


def person_query() -> Select[Any]:
    """People joined with their unit's name; use cases add columns or conditions to it."""
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


def get_person(conn: Connection, person_id: str) -> Person:
    row = conn.execute(_PERSON_BY_ID, {"pid": person_id}).first()
    if row is None:
        raise CertdeskError("person.not_found", person_id=person_id)
    return person_from_row(row)


def find_person(ctx: Context, person_id: str) -> Person:
    with ctx.db.read() as conn:
        return get_person(conn, person_id)


def add_person(
    ctx: Context,
    person_id: str,
    name: str,
    unit_code: str,
    email: str,
    phone: str = "",
    position_code: str | None = None,
) -> Person:
    _require_text(person_id=person_id, name=name, email=email)
    if "@" not in email:
        raise CertdeskError("input.invalid", detail=f"e-mail address {email!r}")
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        get_unit(conn, unit_code)
        if (
            position_code is not None
            and not conn.execute(
                select(positions.c.code).where(positions.c.code == position_code)
            ).first()
        ):
            raise CertdeskError("position.not_found", code=position_code)
        if conn.execute(select(people.c.person_id).where(people.c.person_id == person_id)).first():
            raise CertdeskError("person.duplicate", person_id=person_id)
        values = {
            "person_id": person_id,
            "name": name,
            "unit_code": unit_code,
            "email": email,
            "phone": phone,
            "position_code": position_code,
            "state": PersonState.ACTIVE.value,
        }
        conn.execute(insert(people).values(**values, created_at=now, updated_at=now))
        audit.append(
            conn,
            at=now,
            actor=ctx.actor,
            action="person.add",
            object_type="person",
            object_id=person_id,
            after=values,
        )
        return get_person(conn, person_id)


def list_people(
    ctx: Context, unit_code: str | None = None, search: str | None = None
) -> list[Person]:
    """People, optionally of one unit and/or matching `search` (id, name or e-mail, any case)."""
    query = person_query().order_by(people.c.person_id)
    if unit_code:
        query = query.where(people.c.unit_code == unit_code)
    if search and search.strip():
        needle = search.strip().lower()
        query = query.where(
            or_(
                *(
                    func.lower(col).contains(needle, autoescape=True)
                    for col in (people.c.person_id, people.c.name, people.c.email)
                )
            )
        )
    with ctx.db.read() as conn:
        return [person_from_row(r) for r in conn.execute(query)]


def set_position(ctx: Context, person_id: str, position_code: str) -> Person:
    """Change a person's position: their permissions follow at the next request, no reissue."""
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        before = get_person(conn, person_id)
        if not conn.execute(
            select(positions.c.code).where(positions.c.code == position_code)
        ).first():
            raise CertdeskError("position.not_found", code=position_code)
        conn.execute(
            update(people)
            .where(people.c.person_id == person_id)
            .values(position_code=position_code, updated_at=now)
        )
        audit.append(
            conn,
            at=now,
            actor=ctx.actor,
            action="person.reposition",
            object_type="person",
            object_id=person_id,
            before={"position": before.position_code},
            after={"position": position_code},
        )
        return get_person(conn, person_id)


def list_positions(ctx: Context) -> list[Position]:
    with ctx.db.read() as conn:
        rows = conn.execute(select(positions.c.code, positions.c.name).order_by(positions.c.code))
        return [Position(r.code, r.name) for r in rows]


def update_person(
    ctx: Context,
    person_id: str,
    *,
    name: str | None = None,
    email: str | None = None,
    phone: str | None = None,
) -> Person:
    """Correct a person's name, e-mail or phone (the unit and position have their own steps)."""
    changes = {
        key: value.strip()
        for key, value in (("name", name), ("email", email), ("phone", phone))
        if value is not None
    }
    if not changes:
        raise CertdeskError("input.invalid", detail="nothing to change")
    if "name" in changes:
        _require_text(name=changes["name"])
    if "email" in changes and "@" not in changes["email"]:
        raise CertdeskError("input.invalid", detail=f"e-mail address {changes['email']!r}")
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        before = get_person(conn, person_id)
        old = {key: getattr(before, key) for key in changes}
        conn.execute(
            update(people).where(people.c.person_id == person_id).values(**changes, updated_at=now)
        )
        audit.append(
            conn,
            at=now,
            actor=ctx.actor,
            action="person.update",
            object_type="person",
            object_id=person_id,
            before=old,
            after=changes,
        )
        return get_person(conn, person_id)


_REVOCABLE_OF_PERSON = select(certificates.c.serial).where(
    certificates.c.person_id == bindparam("pid"),
    certificates.c.state.in_([CertState.ACTIVE.value, CertState.PENDING_INSTALL.value]),
)


def mark_departed(ctx: Context, person_id: str) -> Departure:
    """The person left (rule 10): account closed and their certificates revoked in one
    transaction (affiliationChanged); the tokens they keep are listed for return."""
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        before = get_person(conn, person_id)
        if before.state is PersonState.DEPARTED:
            raise CertdeskError("person.already_departed", person_id=person_id)
        kept = sorted(
            conn.execute(select(tokens.c.serial).where(tokens.c.keeper_id == person_id)).scalars()
        )
        serials = sorted(conn.execute(_REVOCABLE_OF_PERSON, {"pid": person_id}).scalars())
        move = Move(
            person_id,
            PersonState.ACTIVE,
            PersonState.DEPARTED,
            values={"updated_at": now},
            note={"revoke": serials, "tokens": kept},
            kind="person",
        )
        transition(conn, now, ctx.actor, "person.depart", [move])
        for serial in serials:
            revoke_in(conn, ctx, serial, RevocationReason.AFFILIATION_CHANGED)
        return Departure(get_person(conn, person_id), serials, kept)
