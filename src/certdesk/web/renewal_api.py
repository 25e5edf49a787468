"""Wire front end of renewal: compact JWS in (`application/jose`), JSON out. Thin: the checks
are in `certdesk.services.renewal`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import APIRouter, Request, Response

from certdesk.domain.errors import CertdeskError
from certdesk.services.renewal import Renewals
from certdesk.services.renewal_install import Renewed
from certdesk.web.threads import issuing

MAX_BODY = 64 * 1024
router = APIRouter(prefix="/api/v1", tags=["renewal"])


def renewals(request: Request) -> Renewals:
    found: Renewals = request.app.state.services.renewals
    return found


T = TypeVar("T")


async def _signed(request: Request, response: Response, use_case: Callable[[str, str], T]) -> T:
    """Read the compact JWS body and run the (blocking) use case off the event loop; the
    client's address goes with it (a refusal is counted for the audit log by source).

    The answer carries the nonce for the client's next signed request (`Replay-Nonce`, as ACME
    does, RFC 8555 §7.2): the holder's tool signs profile, renewal and confirmation in a row
    with one nonce request instead of three."""

    async def in_thread(token: str, source: str) -> T:
        return await issuing(request, use_case, token, source)

    return await _on_loop(request, response, in_thread)


async def _on_loop(
    request: Request, response: Response, use_case: Callable[[str, str], Awaitable[T]]
) -> T:
    """`_signed` for the use cases that run on the event loop (`Renewals.renew`,
    `confirm`: they await the group committers' batches instead of a thread); the one
    place the next nonce is handed over."""
    done = await use_case(await _jws(request), _source(request))
    _hand_nonce(renewals(request), response)
    return done


def _source(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _hand_nonce(r: Renewals, response: Response) -> str:
    value = r.new_nonce()
    response.headers["Replay-Nonce"] = value
    response.headers["Cache-Control"] = "no-store"
    return value


async def _jws(request: Request) -> str:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise CertdeskError("input.invalid", detail=f"body larger than {MAX_BODY} bytes")
    try:
        return body.decode("ascii").strip()
    except UnicodeDecodeError:
        raise CertdeskError("jws.malformed", detail="not a compact JWS") from None


def _renewed(r: Renewals, renewed: Renewed, response: Response) -> dict[str, Any]:
    response.status_code = 201 if renewed.created else 200
    chain = r.issuer_certificate(renewed).public_bytes(Encoding.PEM)
    return {
        "serial": renewed.serial,
        "state": renewed.state.value,
        "replaces": renewed.replaces,
        "created": renewed.created,
        "certificate": renewed.pem.decode(),
        "chain": chain.decode(),
    }


async def nonce(request: Request, response: Response) -> dict[str, str]:
    """A one-time nonce for the next signed request (also in the Replay-Nonce header): an HMAC
    of the time and random bytes, no database, so it is answered on the event loop."""
    return {"nonce": _hand_nonce(renewals(request), response)}


# HEAD as ACME clients use it; each method its own operation in the OpenAPI document.
for _method in ("GET", "HEAD"):
    router.add_api_route(
        "/renewal/nonce", nonce, methods=[_method], operation_id=f"renewal_nonce_{_method.lower()}"
    )


@router.post("/renewal/profile")
async def profile(request: Request, response: Response) -> dict[str, Any]:
    """The holder's registry data and renewal window (JWS signed by the current key)."""
    return (await _signed(request, response, renewals(request).profile)).as_dict()


@router.post("/renewal", status_code=201)
async def renew(request: Request, response: Response) -> dict[str, Any]:
    """Issue the renewal as pending install (or return the one already pending): on the event
    loop, the group committer's batch awaited (`Renewals.renew`), no thread."""
    r = renewals(request)
    return _renewed(r, await _on_loop(request, response, r.renew), response)


@router.post("/renewal/pickup")
async def pickup(request: Request, response: Response) -> dict[str, Any]:
    """Fetch a renewal whose first answer was lost (signed by the current key)."""
    r = renewals(request)
    return _renewed(r, await _signed(request, response, r.pickup), response)


@router.post("/renewal/confirm")
async def confirm(request: Request, response: Response) -> dict[str, str]:
    """Signed by the new key once it is on the token: new active, old superseded (on the event
    loop, the confirmations' batch awaited)."""
    done = await _on_loop(request, response, renewals(request).confirm)
    return {"serial": done.serial, "state": "active", "superseded": done.superseded}


@router.post("/tokens/pin-changed")
async def pin_changed(request: Request, response: Response) -> dict[str, Any]:
    """The holder changed the token's initial PIN (signed by the token's key)."""
    serial = await _signed(request, response, renewals(request).report_pin_changed)
    return {"token": serial, "pin_changed": True}
