"""Console pages where the office edits positions (the roles they carry), roles (the
permissions they grant) and deletes unused positions. The registry service decides and audits
(before/after), refusing a position in use and leaving nobody with a kept permission; changes
apply at the next request of everyone affected."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from certdesk.domain.errors import CertdeskError
from certdesk.domain.registry import Grants
from certdesk.services.registry import PositionsOverview
from certdesk.web.portal.console import Changing, Desk, Me, done, page

router = APIRouter(prefix="/console", include_in_schema=False)
Text = Annotated[str, Form()]
Codes = Annotated[list[str] | None, Form()]
HOME = "/console/positions"


def _one(found: list[Grants], code: str, missing: str) -> Grants:
    """The entry `code` of a listing, or the listing's not-found refusal naming the others."""
    for entry in found:
        if entry.code == code:
            return entry
    raise CertdeskError(missing, code=code, known=", ".join(e.code for e in found) or "-")


@router.get("/positions", response_class=HTMLResponse)
def overview(request: Request, me: Me, desk: Desk) -> Response:
    return page(request, "console/positions.html", view=desk.positions_overview(me))


@router.get("/positions/{code}", response_class=HTMLResponse)
def position(request: Request, code: str, me: Me, desk: Desk) -> Response:
    view: PositionsOverview = desk.positions_overview(me)
    edited = _one(view.positions, code, "position.not_found")
    return page(request, "console/position.html", view=view, edited=edited)


@router.post("/positions")
def save_position(
    me: Changing, desk: Desk, code: Text, name: Text, roles: Codes = None
) -> Response:
    saved = desk.define_position(me, code, name, roles or [])
    return done(f"{HOME}/{saved.code}", "position_saved")


@router.post("/positions/{code}/delete", response_class=HTMLResponse)
def delete_position(
    request: Request, code: str, me: Changing, desk: Desk, confirm: Text = ""
) -> Response:
    """Two steps: the first post names the position (or refuses: in use, with its holders);
    only `confirm=yes` deletes it."""
    if confirm != "yes":
        doomed = desk.position_deletion(me, code)
        return page(request, "console/confirm_delete_position.html", doomed=doomed)
    desk.delete_position(me, code)
    return done(HOME, "position_deleted")


@router.get("/roles/{code}", response_class=HTMLResponse)
def role(request: Request, code: str, me: Me, desk: Desk) -> Response:
    view = desk.positions_overview(me)
    edited = _one(view.roles, code, "role.not_found")
    return page(request, "console/role.html", view=view, edited=edited)


@router.post("/roles")
def save_role(
    me: Changing,
    desk: Desk,
    code: Text,
    name: Text,
    permissions: Codes = None,
    other: Text = "",
) -> Response:
    """`other`: permissions not listed yet (the business system's), separated by spaces or
    commas."""
    extra = [p for p in re.split(r"[\s,]+", other) if p]
    saved = desk.define_role(me, code, name, [*(permissions or []), *extra])
    return done(f"/console/roles/{saved.code}", "role_saved")
