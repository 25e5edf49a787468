"""The officer REST API under /api/v1: every console action as JSON, errors as problem+json.

Like the console pages, these routes only translate HTTP: who is asking comes from the client
certificate, and whether they may is decided by `certdesk.services.officer.OfficerDesk`.
State-changing calls carry the X-CSRF-Token header (from GET /api/v1/me).
"""

from __future__ import annotations

from fastapi import APIRouter

from certdesk.web.api import (
    campaign,
    certs,
    content,
    custody,
    oversight,
    positions,
    registry,
    requests,
)

router = APIRouter(prefix="/api/v1")
for part in (oversight, registry, positions, custody, certs, content, campaign, requests):
    router.include_router(part.router)
