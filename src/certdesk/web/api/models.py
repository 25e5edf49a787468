"""Request and response bodies of the officer API (they make the OpenAPI document).

Request bodies refuse unknown fields: a body that tries to set something the endpoint does not
change (say, a person's unit through PATCH) is refused as a whole instead of half-applied.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from certdesk.services.enrolment_codes import CODE_HOURS_MAX, CODE_HOURS_MIN


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# -- registry ------------------------------------------------------------------------------------


class UnitIn(Body):
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=255)
    contact_name: str = Field("", max_length=255)
    contact_email: str = Field("", max_length=255)
    contact_phone: str = Field("", max_length=64)


class UnitOut(Out):
    code: str
    name: str
    contact_name: str
    contact_email: str
    contact_phone: str


class PersonIn(Body):
    person_id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=255)
    unit_code: str = Field(min_length=1, max_length=64)
    email: str = Field(min_length=3, max_length=255)
    phone: str = Field("", max_length=64)
    position_code: str | None = Field(None, min_length=1, max_length=64)


class PersonPatch(Body):
    """Only the fields given change; the unit and the position have their own endpoints."""

    name: str | None = Field(None, min_length=1, max_length=255)
    email: str | None = Field(None, min_length=3, max_length=255)
    phone: str | None = Field(None, max_length=64)


class PositionIn(Body):
    position_code: str = Field(min_length=1, max_length=64)


class PositionDefIn(Body):
    """A position's name and exactly the roles it carries (replacing what it had)."""

    name: str = Field(min_length=1, max_length=64)
    roles: list[str] = Field(max_length=100)


class RoleDefIn(Body):
    """A role's name and exactly the permissions it grants (replacing what it had)."""

    name: str = Field(min_length=1, max_length=64)
    permissions: list[str] = Field(max_length=200)


class PositionDefOut(BaseModel):
    code: str
    name: str
    roles: list[str]
    holders: list[str] = Field(description="people recorded in the position (any state)")


class RoleDefOut(BaseModel):
    code: str
    name: str
    permissions: list[str]


class PersonOut(Out):
    person_id: str
    name: str
    unit_code: str
    unit_name: str
    position_code: str | None
    email: str
    phone: str
    state: str


class TokenOut(Out):
    serial: str
    model: str
    state: str
    keeper_id: str | None
    pin_changed: bool


class CertificateOut(Out):
    serial: str
    profile: str
    state: str
    person_id: str | None
    token_serial: str | None
    subject: str
    not_before: dt.datetime | None
    not_after: dt.datetime | None
    fingerprint: str | None
    revoked_at: dt.datetime | None
    revocation_reason: str | None


class PersonDetail(PersonOut):
    certificates: list[CertificateOut]
    tokens: list[TokenOut]


class DepartureOut(BaseModel):
    person: PersonOut
    revoked: list[str] = Field(description="certificates revoked (affiliationChanged)")
    tokens_to_return: list[str] = Field(description="tokens the person still keeps")


# -- tokens --------------------------------------------------------------------------------------


class TokenIn(Body):
    serial: str = Field(min_length=1, max_length=64)
    model: str = Field("", max_length=128)


class AssignIn(Body):
    person_id: str = Field(min_length=1, max_length=64)


class LostOut(BaseModel):
    token: TokenOut
    revoked: list[str] = Field(description="certificates revoked (keyCompromise)")


# -- certificates and codes ----------------------------------------------------------------------


class CertificateDetail(CertificateOut):
    pem: str | None


class RevokeIn(Body):
    reason: str = Field(
        min_length=1,
        max_length=32,
        description="RFC 5280 reason: unspecified, keyCompromise, affiliationChanged, "
        "superseded, cessationOfOperation or privilegeWithdrawn",
    )


class RevokedOut(BaseModel):
    serial: str
    reason: str
    previous_state: str


class CodeIn(Body):
    person_id: str = Field(min_length=1, max_length=64)
    hours: int | None = Field(None, ge=CODE_HOURS_MIN, le=CODE_HOURS_MAX)  # the service's bound


class CodeOut(BaseModel):
    person_id: str
    code: str = Field(description="shown once; only its hash is stored")
    expires_at: dt.datetime


# -- content -------------------------------------------------------------------------------------


class AnnouncementIn(Body):
    title: str = Field(min_length=1, max_length=255)
    body: str = Field(min_length=1, max_length=20000)


class AnnouncementOut(Out):
    id: int
    title: str
    body: str
    author: str
    published_at: dt.datetime


class FormOut(Out):
    name: str
    title: str
    media_type: str
    size: int
    uploaded_at: dt.datetime


# -- CA, audit, unit -----------------------------------------------------------------------------


class AuthorityOut(Out):
    name: str
    subject: str
    serial: str
    not_before: dt.datetime
    not_after: dt.datetime
    key_type: str
    key_storage: str
    crl_number: int
    crl_this_update: dt.datetime | None
    crl_next_update: dt.datetime | None
    role: str
    generation: int
    state: str
    valid_certificates: int | None = Field(
        description="issuing CAs: their certificates valid now (a retiring one retires at 0)"
    )
    last_valid_until: dt.datetime | None


class CrlIn(Body):
    issuer: str = Field(default="issuing", pattern=r"^(root|issuing(-[0-9]{1,6})?)$")


class GenerationOut(Out):
    name: str
    generation: int
    valid_certificates: int
    last_valid_until: dt.datetime | None


class RolloverOut(Out):
    name: str = Field(description="the new issuing CA's id, e.g. issuing-2")
    generation: int
    subject: str
    sha256_fingerprint: str
    retiring: list[GenerationOut] = Field(
        description="the generations that stopped issuing, and what they still answer for"
    )


class CrlOut(BaseModel):
    issuer: str
    number: int
    this_update: dt.datetime
    next_update: dt.datetime
    entries: int


class AuditRecordOut(Out):
    seq: int
    at: dt.datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    before: str | None
    after: str | None
    prev_hash: str
    hash: str


class AuditPageOut(Out):
    records: list[AuditRecordOut]
    next_before: int | None = Field(description="pass as `before` for older records")


class ChainProblemOut(Out):
    seq: int
    kind: str
    detail: str


class VerifyOut(BaseModel):
    ok: bool
    records: int
    problems: list[ChainProblemOut]


class ExpiryEntryOut(Out):
    person_id: str
    name: str
    serial: str | None
    not_after: dt.datetime | None
    days_left: int | None


class DashboardOut(Out):
    unit_code: str
    unit_name: str
    as_of: dt.datetime
    window_days: int
    horizon_days: int
    expired: list[ExpiryEntryOut]
    in_window: list[ExpiryEntryOut]
    upcoming: list[ExpiryEntryOut]
    without_certificate: list[ExpiryEntryOut]
    valid: int


class CertificateBrief(BaseModel):
    serial: str
    not_before: dt.datetime
    not_after: dt.datetime


class MeOut(BaseModel):
    person_id: str
    name: str
    unit_code: str
    unit_name: str
    position_code: str | None
    position_name: str
    roles: list[str]
    permissions: list[str]
    certificate: CertificateBrief
    csrf_token: str = Field(description="send as X-CSRF-Token on every state-changing call")


# -- requests ------------------------------------------------------------------------------------


class RequestIn(Body):
    kind: str = Field(
        pattern=r"^(departure|position_change|lost_token|re_enrolment)$",
        description="departure, position_change, lost_token (carried out at once) or "
        "re_enrolment (an enrolment code, or the token given in token_serial)",
    )
    person_id: str = Field(min_length=1, max_length=64)
    position_code: str | None = Field(None, min_length=1, max_length=64)
    token_serial: str | None = Field(None, min_length=1, max_length=64)
    remark: str = Field("", max_length=2000)


class RejectIn(Body):
    reason: str = Field(min_length=1, max_length=2000)


class RequestOut(Out):
    request_id: str
    kind: str
    person_id: str
    unit_code: str
    state: str
    filed_by: str
    filed_at: dt.datetime
    details: dict[str, str]
    remark: str
    decided_by: str | None
    decided_at: dt.datetime | None
    reason: str | None = Field(description="why it was rejected, or the code of why it failed")
    outcome: dict[str, object] = Field(description="what carrying it out did")
    attachment_name: str | None


class DecisionOut(BaseModel):
    request: RequestOut
    enrolment_code: str | None = Field(
        None, description="re-enrolment by code: shown once; only its hash is stored"
    )


class DueBackOut(Out):
    token_serial: str
    person_id: str
    name: str
    unit_code: str
    departed_at: dt.datetime
    overdue_days: int
