"""Console pages for the unit officer (their unit: people and expiry dashboard), the CA
administrator (CA information, publish a CRL, roll the issuing CA over) and the audit log
(records, verify the chain)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from certdesk.services.authorities import ISSUING
from certdesk.web.portal.console import Changing, Desk, Me, done, page

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/unit", response_class=HTMLResponse)
def unit(request: Request, me: Me, desk: Desk, unit: str = "") -> Response:
    """The officer's own unit; `?unit=` another one is refused (403, audited)."""
    people = desk.unit_people(me, unit or None)
    board = desk.unit_dashboard(me, unit or None)
    return page(
        request,
        "console/unit.html",
        people=people,
        board=board,
        position_names=desk.position_names(me),
    )


@router.get("/ca", response_class=HTMLResponse)
def ca(request: Request, me: Me, desk: Desk) -> Response:
    return page(request, "console/ca.html", authorities=desk.ca_info(me))


@router.post("/ca/crl")
def publish_crl(me: Changing, desk: Desk, issuer: Annotated[str, Form()] = ISSUING) -> Response:
    desk.publish_crl(me, issuer)
    return done("/console/ca", "crl")


@router.post("/ca/rollover", response_class=HTMLResponse)
def roll_over(
    request: Request, me: Changing, desk: Desk, confirm: Annotated[str, Form()] = ""
) -> Response:
    """Two steps: the first post shows what will happen; only `confirm=yes` rolls over."""
    if confirm != "yes":
        return page(request, "console/confirm_rollover.html", plan=desk.rollover_plan(me))
    desk.roll_over(me)
    return done("/console/ca", "rollover")


@router.get("/audit", response_class=HTMLResponse)
def audit(
    request: Request,
    me: Me,
    desk: Desk,
    before: int | None = None,
    action: str = "",
    actor: str = "",
) -> Response:
    records = desk.audit_records(me, before, 50, action, actor)
    return page(
        request,
        "console/audit.html",
        listing=records,
        action=action,
        actor=actor,
        before=before,
        actions=desk.audit_actions(me),
    )


@router.post("/audit/verify", response_class=HTMLResponse)
def verify(request: Request, me: Changing, desk: Desk) -> Response:
    report = desk.verify_audit(me)
    records = desk.audit_records(me, None, 50)
    return page(
        request,
        "console/audit.html",
        listing=records,
        report=report,
        action="",
        actor="",
        before=None,
        actions=desk.audit_actions(me),
    )
