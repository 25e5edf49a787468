"""Console pages of the registration office: units and people (register, edit, change
position, mark departed). Authorisation is in `OfficerDesk`; these only translate HTTP."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from certdesk.web.portal.console import PAGE_SIZE, Changing, Desk, Me, done, page, paged
from certdesk.web.portal.display import csv_response

router = APIRouter(prefix="/console", include_in_schema=False)
Text = Annotated[str, Form()]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
PEOPLE_CSV = "/console/people.csv"


@router.get("/units", response_class=HTMLResponse)
def units(request: Request, me: Me, desk: Desk) -> Response:
    return page(request, "console/units.html", units=desk.units(me))


@router.post("/units")
def add_unit(
    me: Changing,
    desk: Desk,
    code: Text,
    name: Text,
    contact_name: Text = "",
    contact_email: Text = "",
    contact_phone: Text = "",
) -> Response:
    desk.add_unit(me, code, name, contact_name, contact_email, contact_phone)
    return done("/console/units", "unit")


@router.get("/people", response_class=HTMLResponse)
def people(
    request: Request, me: Me, desk: Desk, q: str = "", unit: str = "", offset: Offset = 0
) -> Response:
    rows = desk.people(me, q, unit, PAGE_SIZE + 1, offset)
    found, pager = paged(rows, "/console/people", offset, {"q": q, "unit": unit}, PEOPLE_CSV)
    units = desk.unit_choices(me)
    return page(
        request,
        "console/people.html",
        people=found,
        pager=pager,
        q=q,
        unit=unit,
        units=units,
        position_names=desk.position_names(me),
    )


@router.get("/people.csv")
def people_csv(me: Me, desk: Desk, q: str = "", unit: str = "") -> Response:
    """Everyone the filters match, as CSV (UTF-8 with BOM, for Excel)."""
    names = desk.position_names(me)
    rows = [
        (
            p.person_id,
            p.name,
            p.unit_code,
            p.unit_name,
            names.get(p.position_code or "", p.position_code or ""),
            p.email,
            p.phone,
            p.state.value,
        )
        for p in desk.people(me, q, unit)
    ]
    header = ("person_id", "name", "unit", "unit_name", "position", "email", "phone", "state")
    return csv_response("people.csv", header, rows)


@router.get("/people/new", response_class=HTMLResponse)
def new_person(request: Request, me: Me, desk: Desk) -> Response:
    return page(
        request,
        "console/person_new.html",
        positions=desk.positions(me),
        units=desk.unit_choices(me),
    )


@router.post("/people")
def register_person(
    me: Changing,
    desk: Desk,
    person_id: Text,
    name: Text,
    unit_code: Text,
    email: Text,
    phone: Text = "",
    position_code: Text = "",
) -> Response:
    person = desk.register_person(me, person_id, name, unit_code, email, phone, position_code)
    return done(f"/console/people/{person.person_id}", "person")


@router.get("/people/{person_id}", response_class=HTMLResponse)
def person(request: Request, person_id: str, me: Me, desk: Desk) -> Response:
    return page(
        request,
        "console/person.html",
        file=desk.person_file(me, person_id),
        positions=desk.positions(me),
        position_names=desk.position_names(me),
    )


@router.post("/people/{person_id}")
def edit_person(
    person_id: str, me: Changing, desk: Desk, name: Text, email: Text, phone: Text = ""
) -> Response:
    desk.update_person(me, person_id, name=name, email=email, phone=phone)
    return done(f"/console/people/{person_id}", "edited")


@router.post("/people/{person_id}/position")
def change_position(person_id: str, me: Changing, desk: Desk, position_code: Text) -> Response:
    desk.set_position(me, person_id, position_code)
    return done(f"/console/people/{person_id}", "position")


@router.post("/people/{person_id}/depart", response_class=HTMLResponse)
def depart(
    request: Request, person_id: str, me: Changing, desk: Desk, confirm: Text = ""
) -> Response:
    """Two steps: the first post shows the certificates to be revoked and the tokens to
    collect; only `confirm=yes` marks the person departed."""
    if confirm != "yes":
        preview = desk.departure_preview(me, person_id)
        return page(request, "console/confirm_depart.html", preview=preview)
    desk.depart(me, person_id)
    return done(f"/console/people/{person_id}", "departed")
