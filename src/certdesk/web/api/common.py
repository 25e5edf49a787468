"""What the API routes share: the caller, the desk, and the answers they may give."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends

from certdesk.services.access import Principal
from certdesk.services.officer import OfficerDesk
from certdesk.web.portal.console import desk
from certdesk.web.portal.guard import csrf_checked, logged_in

Desk = Annotated[OfficerDesk, Depends(desk)]
Me = Annotated[Principal, Depends(logged_in)]
Changing = Annotated[Principal, Depends(csrf_checked)]

_PROBLEM = {
    "description": "refused; application/problem+json with a stable code and zh-CN/en messages",
    "content": {"application/problem+json": {}},
}
# Documented for every endpoint: not logged in, not allowed (or bad CSRF token), bad body.
PROBLEMS: dict[int | str, dict[str, Any]] = {401: _PROBLEM, 403: _PROBLEM, 422: _PROBLEM}
