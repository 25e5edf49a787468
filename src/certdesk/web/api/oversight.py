"""Who am I; the CA administrator's CA, CRL and rollover; the audit log; the unit officer's unit."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from certdesk.web.api.common import PROBLEMS, Changing, Desk, Me
from certdesk.web.api.models import (
    AuditPageOut,
    AuthorityOut,
    CertificateBrief,
    ChainProblemOut,
    CrlIn,
    CrlOut,
    DashboardOut,
    GenerationOut,
    MeOut,
    PersonOut,
    RolloverOut,
    VerifyOut,
)
from certdesk.web.portal.guard import access

router = APIRouter(responses=PROBLEMS)


@router.get("/me", tags=["me"])
def me_(request: Request, me: Me) -> MeOut:
    """The person behind the client certificate, what they may do, and their CSRF token."""
    p = me.person
    return MeOut(
        person_id=p.person_id,
        name=p.name,
        unit_code=p.unit_code,
        unit_name=p.unit_name,
        position_code=p.position_code,
        position_name=me.position_name,
        roles=sorted(me.roles),
        permissions=sorted(me.permissions),
        certificate=CertificateBrief(
            serial=me.serial, not_before=me.not_before, not_after=me.not_after
        ),
        csrf_token=access(request).csrf_token(me),
    )


@router.get("/ca", tags=["ca"])
def ca_info(me: Me, desk: Desk) -> list[AuthorityOut]:
    return [AuthorityOut.model_validate(a) for a in desk.ca_info(me)]


@router.post("/crl", tags=["ca"], status_code=201)
def publish_crl(me: Changing, desk: Desk, body: CrlIn | None = None) -> CrlOut:
    """Publish a new CRL now (issuing CA unless the body names `root`)."""
    published = desk.publish_crl(me, (body or CrlIn()).issuer)
    return CrlOut(
        issuer=published.issuer,
        number=published.number,
        this_update=published.this_update,
        next_update=published.next_update,
        entries=published.entries,
    )


@router.post("/ca/rollover", tags=["ca"], status_code=201)
def roll_over(me: Changing, desk: Desk) -> RolloverOut:
    """Make a new issuing CA generation (its key where the configuration says); it issues from
    now on and the active ones become retiring. Returned: the new one and what the retiring
    ones still answer for. One call, no confirmation step (scripts confirm by calling)."""
    plan, made = desk.roll_over(me)
    return RolloverOut(
        name=made.name,
        generation=made.generation,
        subject=made.subject,
        sha256_fingerprint=made.fingerprint,
        retiring=[GenerationOut.model_validate(g) for g in plan.retiring],
    )


@router.get("/audit", tags=["audit"])
def audit_records(
    me: Me,
    desk: Desk,
    before: int | None = Query(None, ge=1),
    limit: int = Query(50, ge=1, le=500),
    action: str | None = None,
    actor: str | None = None,
) -> AuditPageOut:
    """Newest first; continue with `before=next_before`."""
    return AuditPageOut.model_validate(desk.audit_records(me, before, limit, action, actor))


@router.post("/audit/verify", tags=["audit"])
def verify(me: Changing, desk: Desk) -> VerifyOut:
    report = desk.verify_audit(me)
    return VerifyOut(
        ok=report.ok,
        records=report.records,
        problems=[ChainProblemOut.model_validate(p) for p in report.problems],
    )


@router.get("/units/{code}/people", tags=["unit"])
def unit_people(code: str, me: Me, desk: Desk) -> list[PersonOut]:
    """The unit officer's own unit only (another unit: 403, audited)."""
    return [PersonOut.model_validate(p) for p in desk.unit_people(me, code)]


@router.get("/units/{code}/dashboard", tags=["unit"])
def unit_dashboard(code: str, me: Me, desk: Desk) -> DashboardOut:
    """Expired, in the renewal window, expiring within 60 days, without a certificate."""
    return DashboardOut.model_validate(desk.unit_dashboard(me, code))
