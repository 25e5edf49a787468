"""Console page for what the office publishes: announcements and downloadable forms."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from certdesk.services.content import FORM_TYPES, MAX_FORM_BYTES
from certdesk.web.portal.console import Bounded, Changing, Desk, Me, done, page, read_upload

router = APIRouter(prefix="/console", include_in_schema=False)
Text = Annotated[str, Form()]


@router.get("/content", response_class=HTMLResponse)
def content(request: Request, me: Me, desk: Desk) -> Response:
    announcements, forms = desk.content_overview(me)
    return page(
        request,
        "console/content.html",
        announcements=announcements,
        forms=forms,
        accept=",".join(sorted(FORM_TYPES)),
        max_kib=MAX_FORM_BYTES // 1024,
    )


@router.post("/content/announcements")
def publish(me: Changing, desk: Desk, title: Text, body: Text) -> Response:
    desk.publish_announcement(me, title, body)
    return done("/console/content", "announcement")


@router.post("/content/forms")
async def upload(request: Request, bounded: Bounded, me: Changing, desk: Desk) -> Response:
    name, title, data = await read_upload(request)
    await run_in_threadpool(desk.upload_form, me, name, title, data)
    return done("/console/content", "form")
