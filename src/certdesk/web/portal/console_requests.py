"""Console pages for the office's requests: a unit contact's list and filing form, the RA
queue with filters, one request with approve (two steps, confirm macro) / reject / withdraw, and
the tokens due back after a departure. Every decision is the request desk's."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from certdesk.services.content import MAX_FORM_BYTES
from certdesk.services.request_desk import RequestDesk
from certdesk.services.requests import Attachment
from certdesk.web.portal.console import Bounded, Changing, Me, done, page
from certdesk.web.portal.guard import access

router = APIRouter(prefix="/console", include_in_schema=False)
Text = Annotated[str, Form()]


def request_desk(request: Request) -> RequestDesk:
    return RequestDesk(access(request))


Requests = Annotated[RequestDesk, Depends(request_desk)]
KINDS = ("departure", "position_change", "lost_token", "re_enrolment")
STATES = ("submitted", "approved", "rejected", "carried_out", "failed", "withdrawn")


@router.get("/requests", response_class=HTMLResponse)
def queue(
    request: Request,
    me: Me,
    desk: Requests,
    kind: str = "",
    unit: str = "",
    state: str = "",
    person: str = "",
    older_than_days: int | None = None,
) -> Response:
    found = desk.queue(
        me,
        kind=kind or None,
        unit_code=unit or None,
        state=state or None,
        person_id=person or None,
        older_than_days=older_than_days,
    )
    return page(
        request,
        "console/requests.html",
        requests=found,
        filters={"kind": kind, "unit": unit, "state": state, "person": person},
        kinds=KINDS,
        states=STATES,
        deciding=me.can("ra.requests.manage"),
    )


@router.post("/requests")
async def file_request(
    me: Changing,
    desk: Requests,
    bounded: Bounded,
    kind: Text,
    person_id: Text,
    position_code: Text = "",
    token_serial: Text = "",
    remark: Text = "",
    form: Annotated[UploadFile | None, File()] = None,
) -> Response:
    attachment = None
    if form is not None and form.filename:
        attachment = Attachment(form.filename, await form.read(MAX_FORM_BYTES + 1))
    details = {"position_code": position_code, "token_serial": token_serial}
    filed = desk.file(me, kind, person_id, details, remark, attachment)
    return done(f"/console/requests/{filed.request_id}", "request_filed")


@router.get("/requests/due-back", response_class=HTMLResponse)
def due_back(request: Request, me: Me, desk: Requests) -> Response:
    return page(request, "console/due_back.html", due=desk.due_back(me))


@router.get("/requests/{request_id}", response_class=HTMLResponse)
def show(request: Request, request_id: str, me: Me, desk: Requests) -> Response:
    return page(
        request,
        "console/request.html",
        req=desk.show(me, request_id),
        deciding=me.can("ra.requests.manage"),
        code=None,
    )


@router.get("/requests/{request_id}/attachment")
def attachment(request_id: str, me: Me, desk: Requests) -> Response:
    found, data = desk.attachment(me, request_id)
    return Response(
        data,
        media_type=found.attachment_type,
        headers={"Content-Disposition": f'attachment; filename="{found.attachment_name}"'},
    )


@router.post("/requests/{request_id}/approve", response_class=HTMLResponse)
def approve(
    request: Request, request_id: str, me: Changing, desk: Requests, confirm: Text = ""
) -> Response:
    """Two steps: the first post asks for confirmation; `confirm=yes` approves and carries out
    (an enrolment code is shown once, on this answer)."""
    if confirm != "yes":
        preview = desk.approval_preview(me, request_id)
        return page(request, "console/confirm_request.html", req=preview)
    decided = desk.approve(me, request_id)
    answer = page(
        request, "console/request.html", req=decided.request, deciding=True, code=decided.code
    )
    answer.headers["Cache-Control"] = "no-store"
    return answer


@router.post("/requests/{request_id}/reject")
def reject(request_id: str, me: Changing, desk: Requests, reason: Text) -> Response:
    desk.reject(me, request_id, reason)
    return done(f"/console/requests/{request_id}", "request_rejected")


@router.post("/requests/{request_id}/withdraw")
def withdraw(request_id: str, me: Changing, desk: Requests) -> Response:
    desk.withdraw(me, request_id)
    return done(f"/console/requests/{request_id}", "request_withdrawn")
