"""What the portal reads at every request, in as few round trips as possible: the presented
certificate's row with its holder, unit contact and position, and the position's grants; and
how many announcements there are, so the home page reads them again only after a new one."""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, func, select

from certdesk.store.db import AnyRow
from certdesk.store.registry import person_query
from certdesk.store.tables import (
    announcements,
    certificates,
    people,
    position_roles,
    positions,
    role_permissions,
    roles,
    units,
)

# One prepared query for the certificate's row, its holder, their unit (contact) and position.
_IDENTIFY = (
    person_query()
    .add_columns(
        certificates.c.state.label("cert_state"),
        certificates.c.fingerprint.label("cert_fingerprint"),
        certificates.c.revocation_reason.label("cert_revocation_reason"),
        certificates.c.revoked_at.label("cert_revoked_at"),
        positions.c.name.label("position_name"),
        units.c.contact_name,
        units.c.contact_phone,
        units.c.contact_email,
        # announcements are only ever added: their number changes with every one committed
        select(func.count()).select_from(announcements).scalar_subquery().label("announcements"),
    )
    .join(certificates, certificates.c.person_id == people.c.person_id)
    .outerjoin(positions, positions.c.code == people.c.position_code)
    .where(certificates.c.serial == bindparam("serial"))
)
_SUCCESSOR = select(certificates.c.serial).where(certificates.c.replaces == bindparam("serial"))
_GRANTS = (
    select(position_roles.c.role_code, roles.c.name, role_permissions.c.permission)
    .join(roles, roles.c.code == position_roles.c.role_code)
    .outerjoin(role_permissions, role_permissions.c.role_code == position_roles.c.role_code)
    .where(position_roles.c.position_code == bindparam("position"))
)


def login_view(conn: Connection, serial: str) -> AnyRow | None:
    """The certificate `serial` with its holder (a person row plus `cert_*`, `position_name`,
    the unit's contact columns and the number of `announcements`), or None if it is no
    person's."""
    return conn.execute(_IDENTIFY, {"serial": serial}).first()


def successor(conn: Connection, serial: str) -> str | None:
    """The certificate that renewed `serial`."""
    found = conn.execute(_SUCCESSOR, {"serial": serial}).scalar()
    return None if found is None else str(found)


def grants(conn: Connection, position_code: str | None) -> list[tuple[str, str, str | None]]:
    """(role, role name, permission) the position gives; a role without permissions gives
    None."""
    return [(r, n, p) for r, n, p in conn.execute(_GRANTS, {"position": position_code})]
