"""What the portal reads at every request, in one statement: the presented certificate's row
with its holder, unit contact and position, the position's grants, how many announcements
there are (the home page reads them again only after a new one), the certificate that
renewed it (a refused login names it) and a renewal waiting to be installed (the home page
offers it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, func, select

from certdesk.domain.states import CertState
from certdesk.store.db import Database, FixedRead, in_sql
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

_renewed = certificates.alias("renewed")
# One prepared query for the certificate's row, its holder, their unit (contact) and position,
# and the position's grants: a row per (role, permission), or one row without any. Run on the
# driver's cursor: it is the statement of every page.
_IDENTIFY = FixedRead(
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
        select(_renewed.c.serial)
        .where(_renewed.c.replaces == certificates.c.serial)
        .limit(1)
        .scalar_subquery()
        .label("successor"),
        # a renewal issued and not yet installed: at most one (the pickup never issues another)
        select(_renewed.c.serial)
        .where(
            _renewed.c.replaces == certificates.c.serial,
            _renewed.c.state == in_sql(CertState.PENDING_INSTALL.value),
        )
        .limit(1)
        .scalar_subquery()
        .label("pending_renewal"),
        position_roles.c.role_code.label("grant_role"),
        roles.c.name.label("grant_role_name"),
        role_permissions.c.permission.label("grant_permission"),
    )
    .join(certificates, certificates.c.person_id == people.c.person_id)
    .outerjoin(positions, positions.c.code == people.c.position_code)
    .outerjoin(position_roles, position_roles.c.position_code == people.c.position_code)
    .outerjoin(roles, roles.c.code == position_roles.c.role_code)
    .outerjoin(role_permissions, role_permissions.c.role_code == position_roles.c.role_code)
    .where(certificates.c.serial == bindparam("serial"))
)

# (role, role name, permission) a position gives; a role without permissions gives None.
Grants = list[tuple[str, str, str | None]]


def login_view(db: Database, serial: str) -> tuple[Any, Grants] | None:
    """The certificate `serial` with its holder (a person row plus `cert_*`, `position_name`,
    the unit's contact columns, the number of `announcements`, the serials of its `successor`
    and of its `pending_renewal`) and the grants of the holder's position, or None if it is no
    person's. One statement: no transaction needed."""
    return _view(db.fetch(_IDENTIFY, {"serial": serial}))


async def login_view_async(db: Database, serial: str) -> tuple[Any, Grants] | None:
    """`login_view` on the event loop (`Database.fetch_async`)."""
    return _view(await db.fetch_async(_IDENTIFY, {"serial": serial}))


def _view(rows: list[Any]) -> tuple[Any, Grants] | None:
    if not rows:
        return None
    grants = [
        (r.grant_role, r.grant_role_name, r.grant_permission)
        for r in rows
        if r.grant_role is not None and r.grant_role_name is not None
    ]
    return rows[0], grants
