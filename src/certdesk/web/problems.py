"""RFC 9457 problem+json for every refusal, with the message in the client's language."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from certdesk.domain.errors import CertdeskError
from certdesk.domain.messages import Locale

PROBLEM_BASE = "urn:certdesk:problem:"


def locale_of(accept_language: str) -> Locale:
    return "zh-CN" if accept_language.lower().startswith("zh") else "en"


def request_locale(request: Request) -> Locale:
    return locale_of(request.headers.get("accept-language", ""))


def problem_json(
    exc: CertdeskError,
    locale: Locale,
    status: int | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    status = status or exc.status
    body = {
        "type": PROBLEM_BASE + exc.code,
        "title": exc.code,
        "status": status,
        "detail": exc.message(locale),
        "messages": exc.messages(),
        "code": exc.code,
        **(extra or {}),
    }
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": 'Basic realm="certdesk EST"'}
    return JSONResponse(
        body, status_code=status, media_type="application/problem+json", headers=headers
    )


def problem_response(
    request: Request,
    exc: CertdeskError,
    status: int | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    return problem_json(exc, request_locale(request), status, extra)


def validation_error(exc: RequestValidationError) -> tuple[CertdeskError, list[dict[str, Any]]]:
    """A malformed request as `input.invalid` (both languages) plus where and what, without
    echoing the submitted values back."""
    errors = [
        {
            "loc": [str(part) for part in e.get("loc", ())],
            "msg": e.get("msg", ""),
            "type": e.get("type", ""),
        }
        for e in exc.errors()
    ]
    summary = "; ".join(f"{'.'.join(e['loc'][1:] or e['loc'])}: {e['msg']}" for e in errors[:5])
    return CertdeskError("input.invalid", detail=summary[:500] or "malformed request"), errors


def http_error(request: Request, exc: HTTPException) -> CertdeskError:
    """Starlette's own refusals (no route, wrong method, a body that cannot be parsed: deep
    nesting, invalid UTF-8, numbers too long to convert) as catalog codes, not `{"detail": …}`."""
    if exc.status_code == 404:
        return CertdeskError("route.not_found")
    if exc.status_code == 405:
        return CertdeskError("request.method_not_allowed", method=request.method)
    return CertdeskError("input.invalid", detail=str(exc.detail)[:200])
