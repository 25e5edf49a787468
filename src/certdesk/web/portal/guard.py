"""Route dependencies: who is logged in, and the permission a route needs (decided in services)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, Request

from certdesk.services.access import LoginRefusal, Principal
from certdesk.web.portal.identity import access, who_async

__all__ = ["access", "csrf_checked", "logged_in", "permitted"]


async def logged_in(request: Request) -> Principal:
    """The person behind the certificate, or the refusal that explains why not (login.*)."""
    identity = await who_async(request)
    if isinstance(identity, LoginRefusal):
        raise identity.error()
    return identity


def permitted(permission: str) -> Callable[[Request], Principal]:
    """A dependency: logged in *and* holding `permission` (else 403, audited)."""

    def check(request: Request, me: Principal = Depends(logged_in)) -> Principal:
        access(request).require(me, permission)
        return me

    return check


async def csrf_checked(request: Request, me: Principal = Depends(logged_in)) -> Principal:
    """For state changes: the token from the form field or the X-CSRF-Token header."""
    token = request.headers.get("x-csrf-token")
    if token is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        token = str((await request.form()).get("csrf_token") or "")
    access(request).check_csrf(me, token)
    return me
