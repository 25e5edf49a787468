"""Console pages for token custody: stock, issue to a keeper, return, report lost."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from certdesk.web.portal.console import Changing, Desk, Me, done, page

router = APIRouter(prefix="/console", include_in_schema=False)
Text = Annotated[str, Form()]


@router.get("/tokens", response_class=HTMLResponse)
def tokens(request: Request, me: Me, desk: Desk) -> Response:
    return page(request, "console/tokens.html", tokens=desk.tokens(me))


@router.post("/tokens")
def register_token(me: Changing, desk: Desk, serial: Text, model: Text = "") -> Response:
    desk.register_token(me, serial, model)
    return done("/console/tokens", "token")


@router.post("/tokens/{serial}/assign")
def assign(serial: str, me: Changing, desk: Desk, person_id: Text) -> Response:
    desk.assign_token(me, serial, person_id)
    return done("/console/tokens", "assigned")


@router.post("/tokens/{serial}/return")
def give_back(serial: str, me: Changing, desk: Desk) -> Response:
    desk.return_token(me, serial)
    return done("/console/tokens", "returned")


@router.post("/tokens/{serial}/lost", response_class=HTMLResponse)
def lost(request: Request, serial: str, me: Changing, desk: Desk, confirm: Text = "") -> Response:
    """Two steps: the first post shows the certificates to be revoked; `confirm=yes` does it."""
    if confirm != "yes":
        preview = desk.lost_preview(me, serial)
        return page(request, "console/confirm_lost.html", preview=preview)
    desk.report_lost(me, serial)
    return done("/console/tokens", "lost")
