"""Positions, the roles they carry and the permissions roles grant: listed, defined (PUT
replaces), a position nobody holds deleted. Audited before/after by the registry service; a
change applies at the next request of everyone affected."""

from __future__ import annotations

from fastapi import APIRouter, Response

from certdesk.domain.registry import Grants
from certdesk.web.api.common import PROBLEMS, Changing, Desk, Me
from certdesk.web.api.models import PositionDefIn, PositionDefOut, RoleDefIn, RoleDefOut

# also: 400 a code that is not one, 404 an unknown position, 409 in use or the last holder
router = APIRouter(
    tags=["positions"],
    responses={**PROBLEMS, 400: PROBLEMS[403], 404: PROBLEMS[403], 409: PROBLEMS[403]},
)


def _position(found: Grants, holders: list[str]) -> PositionDefOut:
    return PositionDefOut(
        code=found.code, name=found.name, roles=list(found.grants), holders=holders
    )


def _role(found: Grants) -> RoleDefOut:
    return RoleDefOut(code=found.code, name=found.name, permissions=list(found.grants))


@router.get("/positions")
def list_positions(me: Me, desk: Desk) -> list[PositionDefOut]:
    view = desk.positions_overview(me)
    return [_position(p, view.holders.get(p.code, [])) for p in view.positions]


@router.put("/positions/{code}")
def define_position(code: str, body: PositionDefIn, me: Changing, desk: Desk) -> PositionDefOut:
    """Create the position, or rename it and replace its roles. Refused (409
    `position.last_holder`) if nobody active would keep `ca.rollover` or `ra.people.manage`."""
    saved = desk.define_position(me, code, body.name, body.roles)
    holders = desk.positions_overview(me).holders.get(code, [])
    return _position(saved, holders)


@router.delete("/positions/{code}", status_code=204)
def delete_position(code: str, me: Changing, desk: Desk) -> Response:
    """Refused while anyone holds it (409 `position.in_use`, naming them)."""
    desk.delete_position(me, code)
    return Response(status_code=204)


@router.get("/roles")
def list_roles(me: Me, desk: Desk) -> list[RoleDefOut]:
    return [_role(r) for r in desk.positions_overview(me).roles]


@router.put("/roles/{code}")
def define_role(code: str, body: RoleDefIn, me: Changing, desk: Desk) -> RoleDefOut:
    """Create the role, or rename it and replace its permissions."""
    return _role(desk.define_role(me, code, body.name, body.permissions))
