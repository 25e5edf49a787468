"""Announcements and downloadable forms: everyone logged in reads them, the office publishes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from certdesk.services.content import FORM_TYPES, MAX_FORM_BYTES
from certdesk.web.api.common import PROBLEMS, Changing, Desk, Me
from certdesk.web.api.models import AnnouncementIn, AnnouncementOut, FormOut
from certdesk.web.portal.console import Bounded, read_upload

router = APIRouter(tags=["content"], responses=PROBLEMS)

UPLOAD: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "title": {"type": "string", "maxLength": 255},
                    },
                }
            }
        },
    }
}


@router.get("/announcements")
def list_announcements(me: Me, desk: Desk) -> list[AnnouncementOut]:
    return [AnnouncementOut.model_validate(a) for a in desk.announcements(me)]


@router.post("/announcements", status_code=201)
def publish(body: AnnouncementIn, me: Changing, desk: Desk) -> AnnouncementOut:
    return AnnouncementOut.model_validate(desk.publish_announcement(me, body.title, body.body))


@router.get("/forms")
def list_forms(me: Me, desk: Desk) -> list[FormOut]:
    return [FormOut.model_validate(f) for f in desk.forms(me)]


@router.post(
    "/forms",
    status_code=201,
    openapi_extra=UPLOAD,
    responses={413: PROBLEMS[403], 415: PROBLEMS[403]},
    description=f"Upload a form ({', '.join(sorted(FORM_TYPES))}; at most "
    f"{MAX_FORM_BYTES // 1024} KiB) as multipart/form-data with fields `file` and `title`.",
)
async def upload(request: Request, bounded: Bounded, me: Changing, desk: Desk) -> FormOut:
    name, title, data = await read_upload(request)
    return FormOut.model_validate(await run_in_threadpool(desk.upload_form, me, name, title, data))
