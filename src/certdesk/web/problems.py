"""RFC 9457 problem+json for every refusal, with the message in the client's language."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from certdesk.domain.errors import CertdeskError
from certdesk.domain.messages import Locale

PROBLEM_BASE = "urn:certdesk:problem:"


def request_locale(request: Request) -> Locale:
    accept = request.headers.get("accept-language", "").lower()
    return "zh-CN" if accept.startswith("zh") else "en"


def problem_response(request: Request, exc: CertdeskError) -> JSONResponse:
    locale = request_locale(request)
    body = {
        "type": PROBLEM_BASE + exc.code,
        "title": exc.code,
        "status": exc.status,
        "detail": exc.message(locale),
        "messages": exc.messages(),
        "code": exc.code,
    }
    headers = {"WWW-Authenticate": 'Basic realm="certdesk EST"'} if exc.status == 401 else None
    return JSONResponse(
        body, status_code=exc.status, media_type="application/problem+json", headers=headers
    )
