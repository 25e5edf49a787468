"""Console pages for certificates (search, show, revoke with a reason) and enrolment codes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from certdesk.domain.revocation import END_ENTITY_REASONS
from certdesk.web.portal.console import Changing, Desk, Me, done, page

router = APIRouter(prefix="/console", include_in_schema=False)
Text = Annotated[str, Form()]
STATES = ("active", "pending_install", "superseded", "revoked", "reserved", "abandoned")


@router.get("/certificates", response_class=HTMLResponse)
def certificates(request: Request, me: Me, desk: Desk, q: str = "", state: str = "") -> Response:
    found = desk.certificates(me, q, state)
    return page(
        request, "console/certificates.html", certificates=found, q=q, state=state, states=STATES
    )


@router.get("/certificates/{serial}", response_class=HTMLResponse)
def certificate(request: Request, serial: str, me: Me, desk: Desk) -> Response:
    return page(
        request,
        "console/certificate.html",
        cert=desk.certificate(me, serial),
        reasons=[r.value for r in END_ENTITY_REASONS],
    )


@router.post("/certificates/{serial}/revoke", response_class=HTMLResponse)
def revoke(
    request: Request, serial: str, me: Changing, desk: Desk, reason: Text, confirm: Text = ""
) -> Response:
    """Two steps: the first post shows what will happen; only `confirm=yes` revokes."""
    if confirm != "yes":
        preview = desk.revocation_preview(me, serial, reason)
        return page(request, "console/confirm_revoke.html", preview=preview)
    revoked = desk.revoke(me, serial, reason)
    return done(f"/console/certificates/{revoked.serial}", "revoked")


@router.get("/codes", response_class=HTMLResponse)
def codes(request: Request, me: Me, desk: Desk, person: str = "") -> Response:
    desk.may_create_codes(me)
    return page(request, "console/codes.html", person=person)


@router.post("/codes", response_class=HTMLResponse)
def create_code(
    request: Request, me: Changing, desk: Desk, person_id: Text, hours: Text = ""
) -> Response:
    """The code is shown on this answer only (never stored in clear, never in a URL)."""
    wanted = int(hours) if hours.strip().isdigit() else None
    code, expires = desk.create_code(me, person_id, wanted)
    response = page(
        request,
        "console/codes.html",
        person=person_id,
        code=code,
        expires=expires,
    )
    response.headers["Cache-Control"] = "no-store"
    return response
