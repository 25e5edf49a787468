"""What the officer console's pages share: the desk (where authorisation is decided), the
Post/Redirect/Get answer with a fixed confirmation message, and bounded form uploads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.datastructures import UploadFile

from certdesk.domain.errors import CertdeskError
from certdesk.services.access import Principal
from certdesk.services.content import MAX_FORM_BYTES
from certdesk.services.officer import OfficerDesk
from certdesk.web.limits import MAX_UPLOAD_REQUEST
from certdesk.web.portal.guard import access, csrf_checked, logged_in
from certdesk.web.portal.render import render


def desk(request: Request) -> OfficerDesk:
    return OfficerDesk(access(request))


Desk = Annotated[OfficerDesk, Depends(desk)]
Me = Annotated[Principal, Depends(logged_in)]
Changing = Annotated[Principal, Depends(csrf_checked)]

# Confirmations after a change (?done=key). Fixed texts only: nothing from the query string is
# shown, so a crafted link cannot make the console say something it did not do.
DONE = {
    "unit": "Unit added.",
    "person": "Person registered.",
    "edited": "Details saved.",
    "position": "Position changed; it takes effect at the person's next request.",
    "departed": (
        "Marked departed; the person's certificates were revoked. Collect the tokens listed below."
    ),
    "token": "Token put into stock.",
    "assigned": "Token issued.",
    "returned": "Token returned.",
    "lost": "Token reported lost; the certificates on it were revoked (keyCompromise).",
    "revoked": "Certificate revoked.",
    "announcement": "Announcement published.",
    "form": "Form uploaded.",
    "crl": "CRL published.",
    "request_filed": "Request filed.",
    "request_rejected": "Request rejected.",
    "request_withdrawn": "Request withdrawn.",
    "position_saved": "Position saved; it applies at the next request of everyone who holds it.",
    "position_deleted": "Position deleted.",
    "role_saved": "Role saved; it applies at the next request of everyone whose position has it.",
    "rollover": (
        "New issuing CA generation made: it issues from now on. Restart certdesk serve and "
        "reload nginx so the TLS layer trusts it."
    ),
    "reminded": "Reminders queued; they go out with the next delivery round.",
}


def done(url: str, key: str) -> RedirectResponse:
    """Answer a successful form post with a redirect (a reload does not post again)."""
    assert key in DONE
    return RedirectResponse(f"{url}?done={key}", status_code=303)


def page(request: Request, template: str, **values: Any) -> HTMLResponse:
    notice = DONE.get(request.query_params.get("done") or "")
    return render(request, template, notice=notice, **values)


PAGE_SIZE = 50


@dataclass(frozen=True)
class Pager:
    """Links to the previous and next page of a listing (offset pages in a stable order), the
    filters kept; None where there is no such page."""

    offset: int
    previous: str | None
    next: str | None
    export: str | None = None


def paged(
    rows: list[Any], base: str, offset: int, filters: dict[str, str], export: str | None = None
) -> tuple[list[Any], Pager]:
    """`rows` fetched as PAGE_SIZE + 1 from `offset` → the page and its links."""
    kept = {k: v for k, v in filters.items() if v}

    def link(at: int) -> str:
        query = urlencode({**kept, **({"offset": str(at)} if at else {})})
        return f"{base}?{query}" if query else base

    more = len(rows) > PAGE_SIZE
    return rows[:PAGE_SIZE], Pager(
        offset,
        link(max(0, offset - PAGE_SIZE)) if offset > 0 else None,
        link(offset + PAGE_SIZE) if more else None,
        f"{export}?{urlencode(kept)}" if export and kept else export,
    )


def upload_limit(request: Request, me: Me) -> None:
    """Refuse an oversized upload by its declared length, before a byte of it is parsed."""
    declared = request.headers.get("content-length", "")
    if not declared.isdigit():
        raise CertdeskError("input.invalid", detail="the upload must declare its length")
    if int(declared) > MAX_UPLOAD_REQUEST:
        raise CertdeskError("form.too_large", limit=MAX_FORM_BYTES // 1024)


async def read_upload(request: Request) -> tuple[str, str, bytes]:
    """(file name, title, content) of a multipart form with fields `file` and `title`."""
    form = await request.form()
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise CertdeskError("input.invalid", detail="choose a file to upload")
    data = await upload.read(MAX_FORM_BYTES + 1)
    title = form.get("title")
    return upload.filename, title if isinstance(title, str) else "", data


Bounded = Annotated[None, Depends(upload_limit)]
