"""Console pages for certificates (search, show, revoke with a reason) and enrolment codes."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from certdesk.domain.revocation import END_ENTITY_REASONS
from certdesk.web.portal.console import PAGE_SIZE, Changing, Desk, Me, done, page, paged
from certdesk.web.portal.display import csv_response, short_dn

router = APIRouter(prefix="/console", include_in_schema=False)
Text = Annotated[str, Form()]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
CERTIFICATES_CSV = "/console/certificates.csv"
STATES = ("active", "pending_install", "superseded", "revoked", "reserved", "abandoned")


@router.get("/certificates", response_class=HTMLResponse)
def certificates(
    request: Request, me: Me, desk: Desk, q: str = "", state: str = "", offset: Offset = 0
) -> Response:
    rows = desk.certificates(me, q, state, PAGE_SIZE + 1, offset)
    found, pager = paged(
        rows, "/console/certificates", offset, {"q": q, "state": state}, CERTIFICATES_CSV
    )
    return page(
        request,
        "console/certificates.html",
        certificates=found,
        pager=pager,
        q=q,
        state=state,
        states=STATES,
    )


@router.get("/certificates.csv")
def certificates_csv(me: Me, desk: Desk, q: str = "", state: str = "") -> Response:
    """Every certificate the filters match, as CSV (UTF-8 with BOM, for Excel)."""

    def when(value: dt.datetime | None) -> str:
        return f"{value:%Y-%m-%d %H:%M:%S}" if value else ""

    rows = [
        (
            c.serial,
            c.person_id or "",
            short_dn(c.subject),
            c.profile,
            c.state.value,
            when(c.not_before),
            when(c.not_after),
            c.token_serial or "",
            when(c.revoked_at),
            c.revocation_reason or "",
        )
        for c in desk.export_certificates(me, q, state)
    ]
    header = (
        "serial",
        "person_id",
        "subject",
        "profile",
        "state",
        "not_before_utc",
        "not_after_utc",
        "token",
        "revoked_at_utc",
        "revocation_reason",
    )
    return csv_response("certificates.csv", header, rows)


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
    listed, hours, now = desk.codes_overview(me)
    return page(
        request, "console/codes.html", person=person, codes=listed, default_hours=hours, now=now
    )


@router.post("/codes", response_class=HTMLResponse)
def create_code(
    request: Request, me: Changing, desk: Desk, person_id: Text, hours: Text = ""
) -> Response:
    """The code is shown on this answer only (never stored in clear, never in a URL)."""
    wanted = int(hours) if hours.strip().isdigit() else None
    code, expires = desk.create_code(me, person_id, wanted)
    listed, default_hours, now = desk.codes_overview(me)
    response = page(
        request,
        "console/codes.html",
        person=person_id,
        code=code,
        expires=expires,
        codes=listed,
        default_hours=default_hours,
        now=now,
    )
    response.headers["Cache-Control"] = "no-store"
    return response
