"""The office's requests: file, list, show, approve, reject, withdraw; tokens due back."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from certdesk.services.content import MAX_FORM_BYTES
from certdesk.services.requests import Attachment
from certdesk.web.api.common import PROBLEMS, Changing, Me
from certdesk.web.api.content import UPLOAD
from certdesk.web.api.models import DecisionOut, DueBackOut, RejectIn, RequestIn, RequestOut
from certdesk.web.portal.console import Bounded, read_upload
from certdesk.web.portal.console_requests import Requests

router = APIRouter(tags=["requests"], responses=PROBLEMS)


@router.post("/requests", status_code=201)
def file_request(body: RequestIn, me: Changing, desk: Requests) -> RequestOut:
    """A lost token is carried out at once (revoked, keyCompromise); the others wait for an
    RA officer's decision."""
    details = body.model_dump(include={"position_code", "token_serial"}, exclude_none=True)
    filed = desk.file(me, body.kind, body.person_id, details, body.remark)
    return RequestOut.model_validate(filed)


@router.get("/requests")
def list_requests(
    me: Me,
    desk: Requests,
    kind: str | None = None,
    unit: str | None = None,
    state: str | None = None,
    person: str | None = None,
    older_than_days: Annotated[int | None, Query(ge=0, le=3650)] = None,
) -> list[RequestOut]:
    """Oldest first. A unit's technical contact sees their own unit's requests only."""
    found = desk.queue(
        me,
        kind=kind,
        unit_code=unit,
        state=state,
        person_id=person,
        older_than_days=older_than_days,
    )
    return [RequestOut.model_validate(r) for r in found]


@router.get("/requests/due-back")
def tokens_due_back(me: Me, desk: Requests) -> list[DueBackOut]:
    """Tokens still kept by people who left, until the token desk records their return."""
    return [DueBackOut.model_validate(d) for d in desk.due_back(me)]


@router.get("/requests/{request_id}")
def show_request(request_id: str, me: Me, desk: Requests) -> RequestOut:
    return RequestOut.model_validate(desk.show(me, request_id))


@router.post(
    "/requests/{request_id}/attachment",
    openapi_extra=UPLOAD,
    responses={413: PROBLEMS[403], 415: PROBLEMS[403]},
    description=f"Attach the signed paper form (PDF, at most {MAX_FORM_BYTES // 1024} KiB) as "
    "multipart/form-data with field `file`; by its filer, before the request is decided.",
)
async def attach(
    request_id: str, request: Request, bounded: Bounded, me: Changing, desk: Requests
) -> RequestOut:
    name, _, data = await read_upload(request)
    attached = await run_in_threadpool(desk.attach, me, request_id, Attachment(name, data))
    return RequestOut.model_validate(attached)


@router.get("/requests/{request_id}/attachment")
def attachment(request_id: str, me: Me, desk: Requests) -> Response:
    found, data = desk.attachment(me, request_id)
    disposition = f'attachment; filename="{found.attachment_name}"'
    return Response(
        data,
        media_type=found.attachment_type,
        headers={"Content-Disposition": disposition, "X-Content-Type-Options": "nosniff"},
    )


@router.post("/requests/{request_id}/approve")
def approve(request_id: str, me: Changing, desk: Requests) -> DecisionOut:
    """Approved and carried out in one step; if carrying out is refused, the request is
    recorded as failed with the refusal's code and nothing else changes."""
    decided = desk.approve(me, request_id)
    return DecisionOut(
        request=RequestOut.model_validate(decided.request), enrolment_code=decided.code
    )


@router.post("/requests/{request_id}/reject")
def reject(request_id: str, body: RejectIn, me: Changing, desk: Requests) -> RequestOut:
    return RequestOut.model_validate(desk.reject(me, request_id, body.reason))


@router.post("/requests/{request_id}/withdraw")
def withdraw(request_id: str, me: Changing, desk: Requests) -> RequestOut:
    return RequestOut.model_validate(desk.withdraw(me, request_id))
