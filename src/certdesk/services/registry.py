"""The registration office's records: units, positions, roles, permissions and people."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlalchemy import Connection

from certdesk.domain.errors import CertdeskError
from certdesk.domain.identity import (
    UB_NAME,
    UB_PHONE,
    checked_code,
    checked_email,
    checked_key,
    checked_text,
)
from certdesk.domain.registry import Grants, Person, Position, Unit
from certdesk.domain.states import PersonState, RevocationReason
from certdesk.services.context import Context
from certdesk.services.lifecycle import Move, transition
from certdesk.services.revocation import revoke_in
from certdesk.store import certificates as cert_store
from certdesk.store import registry as registry_store
from certdesk.store import tokens as token_store


@dataclass(frozen=True)
class Departure:
    """What marking a person departed did: their certificates revoked, tokens still to return."""

    person: Person
    revoked: list[str]
    tokens_to_return: list[str]


def _checked_changes(name: str | None, email: str | None, phone: str | None) -> dict[str, str]:
    """The person fields given, each checked by the domain's rule for what goes into a
    certificate or a record (so console, API and CLI refuse alike)."""
    changes: dict[str, str] = {}
    if name is not None:
        changes["name"] = checked_text("name", name, UB_NAME)
    if email is not None:
        changes["email"] = checked_email(email)
    if phone is not None:
        changes["phone"] = checked_text("phone", phone, UB_PHONE, required=False)
    return changes


def get_unit(conn: Connection, code: str) -> Unit:
    unit = registry_store.get_unit(conn, code)
    if unit is None:
        raise CertdeskError("unit.not_found", code=code)
    return unit


def add_unit(
    ctx: Context,
    code: str,
    name: str,
    contact_name: str = "",
    contact_email: str = "",
    contact_phone: str = "",
) -> Unit:
    unit = Unit(
        checked_code("unit code", code),
        checked_text("unit name", name, UB_NAME),
        checked_text("contact name", contact_name, UB_NAME, required=False),
        checked_email(contact_email) if contact_email.strip() else "",
        checked_text("contact phone", contact_phone, UB_PHONE, required=False),
    )
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        if registry_store.get_unit(conn, code) is not None:
            raise CertdeskError("unit.duplicate", code=code)
        registry_store.insert_unit(conn, unit, now)
        ctx.record(
            conn,
            now,
            "unit.add",
            "unit",
            code,
            after=asdict(unit),
        )
    return unit


def list_units(ctx: Context) -> list[Unit]:
    with ctx.db.read() as conn:
        return registry_store.all_units(conn)


# Permissions somebody active must keep holding: without them nobody could run the CA or put
# the registry right again. A change that would leave none of them held is refused.
KEEP_HELD = ("ca.rollover", "ra.people.manage")


def _keep_held(conn: Connection, held_before: dict[str, list[str]]) -> None:
    for permission, before in held_before.items():
        if before and not registry_store.holders(conn, permission):
            raise CertdeskError(
                "position.last_holder", permission=permission, people=", ".join(before)
            )


def _holders(conn: Connection) -> dict[str, list[str]]:
    """Who holds each kept permission, with their grants locked until the change commits (so
    two changes at once are checked one after the other)."""
    registry_store.lock_grants_of(conn, KEEP_HELD)
    return {p: registry_store.holders(conn, p) for p in KEEP_HELD}


def _refuse_last_holder(conn: Connection, person_id: str) -> None:
    """Refused if `person_id` alone holds a kept permission (a departure, or its preview)."""
    for permission in KEEP_HELD:
        if registry_store.holders(conn, permission) == [person_id]:
            raise CertdeskError("position.last_holder", permission=permission, people=person_id)


@dataclass(frozen=True)
class PositionsOverview:
    """Positions with their roles and holders, roles with their permissions: the editing page."""

    positions: list[Grants]
    roles: list[Grants]
    holders: dict[str, list[str]]  # position code → people recorded in it
    permissions: list[str]  # every permission a role grants or certdesk checks, sorted

    @property
    def role_names(self) -> dict[str, str]:
        return {r.code: r.name for r in self.roles}


def positions_overview(ctx: Context, checked: tuple[str, ...] = ()) -> PositionsOverview:
    """Everything the office edits about positions; `checked` adds the permissions certdesk
    itself checks, so a role can be given one nobody holds yet."""
    with ctx.db.read() as conn:
        roles = registry_store.all_role_grants(conn)
        return PositionsOverview(
            registry_store.all_position_grants(conn),
            roles,
            registry_store.people_by_position(conn),
            sorted({p for r in roles for p in r.grants} | set(checked)),
        )


def define_role(ctx: Context, code: str, name: str, permissions: list[str]) -> Grants:
    """Create or replace a role and its permissions (audited before/after); it applies at the
    next request of everyone whose position carries it."""
    code, name = checked_key("role code", code), checked_text("name", name, UB_NAME)
    permissions = [checked_key("permission", p) for p in permissions]
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        held = _holders(conn)
        before = registry_store.role_grants(conn, code)
        registry_store.replace_role(conn, code, name, permissions)
        _keep_held(conn, held)
        ctx.record(
            conn,
            now,
            "role.define",
            "role",
            code,
            before=None if before is None else {"name": before[0], "permissions": before[1]},
            after={"name": name, "permissions": sorted(set(permissions))},
        )
    return Grants(code, name, tuple(sorted(set(permissions))))


def define_position(ctx: Context, code: str, name: str, role_codes: list[str]) -> Grants:
    """Create, rename or replace a position and the roles it brings (audited before/after)."""
    code, name = checked_key("position code", code), checked_text("name", name, UB_NAME)
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        missing = sorted(set(role_codes) - registry_store.role_codes(conn))
        if missing:
            raise CertdeskError("input.invalid", detail=f"unknown roles {missing}")
        held = _holders(conn)
        before = registry_store.position_grants(conn, code)
        registry_store.replace_position(conn, code, name, role_codes)
        _keep_held(conn, held)
        ctx.record(
            conn,
            now,
            "position.define",
            "position",
            code,
            before=None if before is None else {"name": before[0], "roles": before[1]},
            after={"name": name, "roles": sorted(set(role_codes))},
        )
    return Grants(code, name, tuple(sorted(set(role_codes))))


def _deletable(conn: Connection, code: str) -> tuple[str, list[str]]:
    """(name, roles) of a position nobody holds; refused with the holders, or as unknown."""
    before = registry_store.position_grants(conn, code)
    if before is None:
        raise _unknown_position(conn, code)
    holding = registry_store.people_in_position(conn, code)
    if holding:
        raise CertdeskError("position.in_use", code=code, people=", ".join(holding))
    return before


def preview_delete_position(ctx: Context, code: str) -> Grants:
    """The position `delete_position` would remove, or its refusal: the confirmation step."""
    with ctx.db.read() as conn:
        name, roles = _deletable(conn, code)
        return Grants(code, name, tuple(roles))


def delete_position(ctx: Context, code: str) -> None:
    """Remove a position nobody holds (refused with the people who hold it)."""
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        before = _deletable(conn, code)
        registry_store.delete_position(conn, code)
        ctx.record(
            conn,
            now,
            "position.delete",
            "position",
            code,
            before={"name": before[0], "roles": before[1]},
        )


def get_person(conn: Connection, person_id: str) -> Person:
    person = registry_store.get_person(conn, person_id)
    if person is None:
        raise CertdeskError("person.not_found", person_id=person_id)
    return person


def _unknown_position(conn: Connection, code: str) -> CertdeskError:
    """The refusal of an unknown position, naming the known ones (`certdesk position list`)."""
    known = ", ".join(p.code for p in registry_store.all_positions(conn)) or "-"
    return CertdeskError("position.not_found", code=code, known=known)


def require_position(conn: Connection, code: str) -> None:
    if registry_store.get_position(conn, code) is None:
        raise _unknown_position(conn, code)


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
    checked_code("person id", person_id)
    fields = _checked_changes(name, email, phone)
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        get_unit(conn, unit_code)
        if position_code is not None:
            require_position(conn, position_code)
        if registry_store.get_person(conn, person_id) is not None:
            raise CertdeskError("person.duplicate", person_id=person_id)
        values = {
            "person_id": person_id,
            "name": fields["name"],
            "unit_code": unit_code,
            "email": fields["email"],
            "phone": fields["phone"],
            "position_code": position_code,
            "state": PersonState.ACTIVE.value,
        }
        registry_store.insert_person(conn, values, now)
        ctx.record(
            conn,
            now,
            "person.add",
            "person",
            person_id,
            after=values,
        )
        return get_person(conn, person_id)


def list_people(
    ctx: Context,
    unit_code: str | None = None,
    search: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[Person]:
    """People, optionally of one unit and/or matching `search` (id, name or e-mail, any case);
    `limit` of them from `offset` for a page."""
    with ctx.db.read() as conn:
        return registry_store.search_people(conn, unit_code, search, limit, max(0, offset))


def set_position(ctx: Context, person_id: str, position_code: str) -> Person:
    """Change a person's position: their permissions follow at the next request, no reissue."""
    with ctx.db.write() as conn:
        return reposition_in(conn, ctx, person_id, position_code)


def reposition_in(conn: Connection, ctx: Context, person_id: str, position_code: str) -> Person:
    """`set_position` inside the caller's transaction (an approved position-change request).
    Refused if it leaves nobody active holding a kept permission."""
    now = ctx.clock.now()
    before = get_person(conn, person_id)
    require_position(conn, position_code)
    held = _holders(conn)
    registry_store.update_person(conn, person_id, {"position_code": position_code}, now)
    _keep_held(conn, held)
    ctx.record(
        conn,
        now,
        "person.reposition",
        "person",
        person_id,
        before={"position": before.position_code},
        after={"position": position_code},
    )
    return get_person(conn, person_id)


def set_locale(ctx: Context, person_id: str, locale: str) -> None:
    """The language of the holder's reminders (zh-CN or en), as the office records it."""
    if locale not in ("zh-CN", "en"):
        raise CertdeskError("input.invalid", detail=f"language {locale!r}: zh-CN or en")
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        get_person(conn, person_id)  # refuses an unknown person
        registry_store.update_person(conn, person_id, {"locale": locale}, now)
        ctx.record(conn, now, "person.locale", "person", person_id, after={"locale": locale})


def list_positions(ctx: Context) -> list[Position]:
    with ctx.db.read() as conn:
        return registry_store.all_positions(conn)


def update_person(
    ctx: Context,
    person_id: str,
    *,
    name: str | None = None,
    email: str | None = None,
    phone: str | None = None,
) -> Person:
    """Correct a person's name, e-mail or phone (the unit and position have their own steps)."""
    changes = _checked_changes(name, email, phone)
    if not changes:
        raise CertdeskError("input.invalid", detail="nothing to change")
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        before = get_person(conn, person_id)
        old = {key: getattr(before, key) for key in changes}
        registry_store.update_person(conn, person_id, changes, now)
        ctx.record(
            conn,
            now,
            "person.update",
            "person",
            person_id,
            before=old,
            after=changes,
        )
        return get_person(conn, person_id)


def preview_departure(ctx: Context, person_id: str) -> Departure:
    """What `mark_departed` would do (certificates to revoke, tokens to return), or its refusal,
    without doing it: for the console's confirmation step."""
    with ctx.db.read() as conn:
        person = get_person(conn, person_id)
        if person.state is PersonState.DEPARTED:
            raise CertdeskError("person.already_departed", person_id=person_id)
        _refuse_last_holder(conn, person_id)
        return Departure(
            person,
            cert_store.in_use_of_person(conn, person_id),
            token_store.kept_by(conn, person_id),
        )


def mark_departed(ctx: Context, person_id: str) -> Departure:
    """The person left (rule 10): account closed and their certificates revoked in one
    transaction (affiliationChanged); the tokens they keep are listed for return."""
    with ctx.db.write() as conn:
        return depart_in(conn, ctx, person_id)


def depart_in(conn: Connection, ctx: Context, person_id: str) -> Departure:
    """`mark_departed` inside the caller's transaction (an approved departure request).
    Refused if the person alone holds a kept permission (give it to someone else first)."""
    now = ctx.clock.now()
    before = get_person(conn, person_id)
    if before.state is PersonState.DEPARTED:
        raise CertdeskError("person.already_departed", person_id=person_id)
    registry_store.lock_grants_of(conn, KEEP_HELD)  # two departures at once: one at a time
    _refuse_last_holder(conn, person_id)
    kept = token_store.kept_by(conn, person_id)
    serials = cert_store.in_use_of_person(conn, person_id)
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
