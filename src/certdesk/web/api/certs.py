"""Certificates (search, show, revoke) and one-time enrolment codes."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import APIRouter, Query

from certdesk.web.api.common import PROBLEMS, Changing, Desk, Me
from certdesk.web.api.models import (
    CertificateDetail,
    CertificateOut,
    CodeIn,
    CodeOut,
    RevokedOut,
    RevokeIn,
)

router = APIRouter(tags=["certificates"], responses=PROBLEMS)


@router.get("/certificates")
def list_certificates(
    me: Me,
    desk: Desk,
    q: str | None = None,
    state: str | None = None,
    limit: int = Query(200, ge=1, le=1000),
) -> list[CertificateOut]:
    """Newest first; `q` matches a serial prefix, a person id or part of the subject."""
    return [CertificateOut.model_validate(c) for c in desk.certificates(me, q, state, limit)]


@router.get("/certificates/{serial}")
def get_certificate(serial: str, me: Me, desk: Desk) -> CertificateDetail:
    record = desk.certificate(me, serial)
    pem = None
    if record.der:
        pem = x509.load_der_x509_certificate(record.der).public_bytes(Encoding.PEM).decode()
    return CertificateDetail(**CertificateOut.model_validate(record).model_dump(), pem=pem)


@router.post("/certificates/{serial}/revoke")
def revoke(serial: str, body: RevokeIn, me: Changing, desk: Desk) -> RevokedOut:
    """Revoke with an end-entity reason.

    One call: the console asks for a confirmation first, the API does not (a call is one)."""
    done = desk.revoke(me, serial, body.reason)
    return RevokedOut(
        serial=done.serial, reason=done.reason.value, previous_state=done.previous_state.value
    )


@router.post("/enrolment-codes", status_code=201)
def create_code(body: CodeIn, me: Changing, desk: Desk) -> CodeOut:
    """A one-time code for EST simpleenroll; it is in this answer only."""
    code, expires = desk.create_code(me, body.person_id, body.hours)
    return CodeOut(person_id=body.person_id, code=code, expires_at=expires)
