"""EST (RFC 7030) under /.well-known/est/: base64 bodies in, base64 PKCS#7 certs-only out.

`simpleenroll` is authenticated by HTTP Basic with the person's id and a one-time enrolment
code; `simplereenroll` by the TLS client certificate. The decisions are in `services`.
"""

from __future__ import annotations

import base64
import binascii

from cryptography import x509
from fastapi import APIRouter, Request, Response

from certdesk.domain.errors import CertdeskError
from certdesk.services.enrolment.est_code import enrol_with_code
from certdesk.web.est_formats import certs_only, csr_attributes
from certdesk.web.renewal_api import renewals
from certdesk.web.threads import issuing
from certdesk.web.tls import client_certificate_der

router = APIRouter(prefix="/.well-known/est", tags=["est"])
PKCS7 = "application/pkcs7-mime; smime-type=certs-only"
ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2"
MAX_BODY = 64 * 1024


def _b64_response(der: bytes, media_type: str) -> Response:
    body = base64.encodebytes(der)  # MIME base64, lines of 76
    return Response(body, media_type=media_type, headers={"Content-Transfer-Encoding": "base64"})


def _certs(certificates: list[x509.Certificate]) -> Response:
    return _b64_response(certs_only(certificates), PKCS7)


async def _csr(request: Request) -> bytes:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise CertdeskError("input.invalid", detail=f"body larger than {MAX_BODY} bytes")
    try:
        return base64.b64decode(b"".join(body.split()), validate=True)
    except (binascii.Error, ValueError):
        raise CertdeskError("input.malformed_csr", detail="the body is not base64") from None


def _basic(request: Request) -> tuple[str, str]:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise CertdeskError("enrolcode.invalid")
    try:
        user, sep, password = base64.b64decode(value).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise CertdeskError("enrolcode.invalid") from None
    if not sep:
        raise CertdeskError("enrolcode.invalid")
    return user, password


@router.get("/cacerts")
def cacerts(request: Request) -> Response:
    r = renewals(request)
    return _certs(r.trust_chain())


@router.post("/simpleenroll")
async def simpleenroll(request: Request) -> Response:
    person_id, code = _basic(request)
    csr = await _csr(request)
    services = request.app.state.services
    issued = await issuing(
        request, enrol_with_code, services.ctx, services.issue, person_id, code, csr
    )
    return _certs([issued])


@router.post("/simplereenroll")
async def simplereenroll(request: Request) -> Response:
    der = client_certificate_der(request.scope)
    if der is None:
        raise CertdeskError("est.client_certificate_required")
    csr = await _csr(request)
    renewed = await issuing(request, renewals(request).reenroll, der, csr)
    return _certs([renewed.certificate])


@router.get("/csrattrs")
def csrattrs() -> Response:
    return _b64_response(csr_attributes([ECDSA_WITH_SHA256]), "application/csrattrs")
