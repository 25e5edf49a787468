"""The office's paperwork as requests: filed by a unit's technical contact (or the office),
decided by an RA officer, carried out by the same use cases an officer runs directly.

Every move of a request goes through `services/lifecycle.transition` (one audit record naming the
actor). Approving is one transaction: approved, carried out, carried_out — or, when carrying it
out is refused, everything of it rolled back and the request recorded as approved then failed with
the refusal's code. The two-person rule is checked here, below the console, the API and the CLI.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from certdesk.domain.errors import CertdeskError
from certdesk.domain.requests import (
    OfficeRequest,
    RequestKind,
    check_decider,
    check_details,
    overdue_days,
    parse_kind,
)
from certdesk.domain.states import PersonState, RequestState
from certdesk.services import enrolment_codes, registry, tokens
from certdesk.services.content import check_form
from certdesk.services.context import Context
from certdesk.services.lifecycle import Move, transition
from certdesk.store import requests as request_store

S = RequestState
PDF = "application/pdf"
REMARK_MAX = 2000


@dataclass(frozen=True)
class Attachment:
    """The signed paper form: a PDF, checked like the office's downloadable forms."""

    name: str
    data: bytes


@dataclass(frozen=True)
class Decision:
    """A decided request and, for a re-enrolment by code, the code (shown once, never kept)."""

    request: OfficeRequest
    code: str | None = None


@dataclass(frozen=True)
class DueBack:
    """A token still with someone who left, and how long past its return date it is."""

    token_serial: str
    person_id: str
    name: str
    unit_code: str
    departed_at: dt.datetime
    overdue_days: int


def get_request(conn: Connection, request_id: str) -> OfficeRequest:
    found = request_store.get(conn, request_id)
    if found is None:
        raise CertdeskError("request.not_found", request_id=request_id)
    return found


def find_request(ctx: Context, request_id: str) -> OfficeRequest:
    with ctx.db.read() as conn:
        return get_request(conn, request_id)


def _move(
    conn: Connection,
    ctx: Context,
    request: OfficeRequest,
    before: RequestState,
    after: RequestState,
    **values: object,
) -> None:
    now = ctx.clock.now()
    note = {k: v for k, v in values.items() if k == "reason" and v}
    move = Move(request.request_id, before, after, values=values, note=note, kind="request")
    transition(conn, now, ctx.actor, f"request.{after.value}", [move])


def file_request(
    ctx: Context,
    kind: str,
    person_id: str,
    details: dict[str, Any] | None = None,
    remark: str = "",
    attachment: Attachment | None = None,
) -> OfficeRequest:
    """File a request as `ctx.actor` (who may file is the caller's check: the officer desk for
    the console and the API). A lost token is carried out in the same transaction."""
    wanted = parse_kind(kind)
    details = {k: str(v).strip() for k, v in (details or {}).items() if str(v or "").strip()}
    check_details(wanted, details)
    if len(remark) > REMARK_MAX:
        raise CertdeskError("input.invalid", detail=f"remark longer than {REMARK_MAX} characters")
    media_type = None if attachment is None else _checked(attachment)
    now = ctx.clock.now()
    request_id = f"{now:%Y%m%d}-{secrets.token_hex(4)}"
    with ctx.db.write() as conn:
        person = registry.get_person(conn, person_id)
        if person.state is PersonState.DEPARTED and wanted is not RequestKind.LOST_TOKEN:
            raise CertdeskError("person.already_departed", person_id=person_id)
        if wanted is RequestKind.POSITION_CHANGE:
            registry.require_position(conn, details["position_code"])
        elif wanted is RequestKind.LOST_TOKEN:
            tokens.kept_token(conn, details["token_serial"], person_id)
        values = {
            "request_id": request_id,
            "kind": wanted.value,
            "person_id": person_id,
            "unit_code": person.unit_code,
            "state": S.SUBMITTED.value,
            "details": details,
            "remark": remark.strip(),
            "filed_by": ctx.actor,
            "filed_at": now,
            "attachment_name": attachment.name if attachment else None,
            "attachment_type": media_type,
            "attachment": attachment.data if attachment else None,
        }
        request_store.insert_request(conn, values)
        ctx.record(
            conn,
            now,
            "request.file",
            "request",
            request_id,
            after={
                "kind": wanted.value,
                "person": person_id,
                "details": details,
                "attachment": attachment.name if attachment else None,
            },
        )
        request = get_request(conn, request_id)
        if wanted is RequestKind.LOST_TOKEN:
            _carry_out(conn, ctx, request, S.SUBMITTED)
        return get_request(conn, request_id)


def _checked(attachment: Attachment) -> str:
    """The media type of a signed form: a PDF, bounded and checked like the office's forms."""
    media_type = check_form(attachment.name, attachment.data)
    if media_type != PDF:
        raise CertdeskError(
            "form.wrong_type", name=attachment.name, detail="not a PDF", allowed=".pdf"
        )
    return media_type


def attach(ctx: Context, request_id: str, attachment: Attachment) -> OfficeRequest:
    """The filer adds the signed paper form while the request waits (or to a lost token's)."""
    media_type = _checked(attachment)
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        request = get_request(conn, request_id)
        if request.filed_by != ctx.actor:
            raise CertdeskError("request.not_filer", request_id=request_id)
        if request.state is not S.SUBMITTED and request.kind is not RequestKind.LOST_TOKEN:
            raise CertdeskError(
                "request.not_submitted", request_id=request_id, state=request.state.value
            )
        request_store.set_attachment(conn, request_id, attachment.name, media_type, attachment.data)
        ctx.record(
            conn,
            now,
            "request.attach",
            "request",
            request_id,
            before={"attachment": request.attachment_name},
            after={"attachment": attachment.name, "bytes": len(attachment.data)},
        )
        return get_request(conn, request_id)


def _carry_out(
    conn: Connection, ctx: Context, request: OfficeRequest, before: RequestState
) -> str | None:
    """Do what the request asks with the officer's own use cases, record what it did and move
    it to carried_out; returns a fresh enrolment code when one was made."""
    outcome: dict[str, object] = {}
    code = None
    person_id, details = request.person_id, request.details
    if request.kind is RequestKind.DEPARTURE:
        gone = registry.depart_in(conn, ctx, person_id)
        outcome = {"revoked": gone.revoked, "tokens_due_back": gone.tokens_to_return}
    elif request.kind is RequestKind.POSITION_CHANGE:
        registry.reposition_in(conn, ctx, person_id, details["position_code"])
        outcome = {"position_code": details["position_code"]}
    elif request.kind is RequestKind.LOST_TOKEN:
        lost = tokens.lost_in(conn, ctx, details["token_serial"])
        outcome = {"token": lost.token.serial, "revoked": lost.revoked}
    elif "token_serial" in details:
        if registry.get_person(conn, person_id).state is not PersonState.ACTIVE:
            raise CertdeskError("person.departed", person_id=person_id)
        tokens.hand_over(conn, ctx, details["token_serial"], person_id)
        outcome = {"token_assigned": details["token_serial"]}
    else:
        code, expires = enrolment_codes.create_code_in(conn, ctx, person_id)
        outcome = {"enrolment_code_expires_at": expires.isoformat()}
    request_store.set_outcome(conn, request.request_id, outcome)
    _move(conn, ctx, request, before, S.CARRIED_OUT)
    return code


def _decided(ctx: Context) -> dict[str, object]:
    return {"decided_by": ctx.actor, "decided_at": ctx.clock.now()}


def _decidable(conn: Connection, ctx: Context, request_id: str) -> OfficeRequest:
    request = get_request(conn, request_id)
    check_decider(request, ctx.actor, ctx.config.requests.two_person)
    return request


def preview_approval(ctx: Context, request_id: str) -> OfficeRequest:
    """The request `approve` would decide, or its refusal (two-person rule, already decided),
    without deciding: for the console's confirmation step."""
    with ctx.db.read() as conn:
        return _decidable(conn, ctx, request_id)


def approve(ctx: Context, request_id: str) -> Decision:
    """Approve and carry out in one transaction. If carrying out is refused, nothing of it
    stays and the request is recorded approved then failed, with the refusal's code as reason."""
    approved = False
    try:
        with ctx.db.write() as conn:
            request = _decidable(conn, ctx, request_id)
            _move(conn, ctx, request, S.SUBMITTED, S.APPROVED, **_decided(ctx))
            approved = True
            code = _carry_out(conn, ctx, request, S.APPROVED)
            return Decision(get_request(conn, request_id), code)
    except CertdeskError as refused:
        if not approved:
            raise
        failure = refused
    with ctx.db.write() as conn:
        request = _decidable(conn, ctx, request_id)
        _move(conn, ctx, request, S.SUBMITTED, S.APPROVED, **_decided(ctx))
        _move(conn, ctx, request, S.APPROVED, S.FAILED, reason=failure.code)
        return Decision(get_request(conn, request_id))


def reject(ctx: Context, request_id: str, reason: str) -> OfficeRequest:
    if not reason.strip():
        raise CertdeskError("request.reason_missing", request_id=request_id)
    with ctx.db.write() as conn:
        request = _decidable(conn, ctx, request_id)
        _move(conn, ctx, request, S.SUBMITTED, S.REJECTED, reason=reason.strip(), **_decided(ctx))
        return get_request(conn, request_id)


def withdraw(ctx: Context, request_id: str) -> OfficeRequest:
    """The filer takes back a request nobody has decided yet."""
    with ctx.db.write() as conn:
        request = get_request(conn, request_id)
        if request.filed_by != ctx.actor:
            raise CertdeskError("request.not_filer", request_id=request_id)
        if request.state is not S.SUBMITTED:
            raise CertdeskError(
                "request.not_submitted", request_id=request_id, state=request.state.value
            )
        _move(conn, ctx, request, S.SUBMITTED, S.WITHDRAWN)
        return get_request(conn, request_id)


def list_requests(
    ctx: Context,
    *,
    kind: str | None = None,
    unit_code: str | None = None,
    state: str | None = None,
    person_id: str | None = None,
    older_than_days: int | None = None,
) -> list[OfficeRequest]:
    """The queue, oldest first; `older_than_days` keeps those filed at least that long ago."""
    if kind:
        parse_kind(kind)
    if state and state not in {s.value for s in RequestState}:
        allowed = ", ".join(s.value for s in RequestState)
        raise CertdeskError("input.invalid", detail=f"state must be one of {allowed}")
    before = None
    if older_than_days is not None:
        before = ctx.clock.now() - dt.timedelta(days=max(0, older_than_days))
    with ctx.db.read() as conn:
        return request_store.search(
            conn,
            kind=kind,
            unit_code=unit_code,
            state=state,
            person_id=person_id,
            filed_before=before,
        )


def attachment_of(ctx: Context, request_id: str) -> tuple[OfficeRequest, bytes]:
    with ctx.db.read() as conn:
        request = get_request(conn, request_id)
        data = request_store.attachment(conn, request_id)
    if data is None:
        raise CertdeskError("request.no_attachment", request_id=request_id)
    return request, data


def tokens_due_back(ctx: Context) -> list[DueBack]:
    """Tokens a departed person still keeps, oldest departure first, until the token desk
    records the return (`services/tokens.return_token`)."""
    now = ctx.clock.now()
    days = ctx.config.requests.token_return_days
    with ctx.db.read() as conn:
        rows = request_store.due_back(conn)
    return [DueBack(t, p, n, u, at, overdue_days(at, days, now)) for t, p, n, u, at in rows]
