"""Who may file, see and decide the office's requests (console and API alike).

A unit's technical contact (`unit.requests.file`) files and sees requests for the people of
their own unit; an RA officer (`ra.requests.manage`) files for anyone, sees the whole queue and
decides. Deciding also needs the permission the officer would need to do the thing directly, so
a request never does what its approver could not.
"""

from __future__ import annotations

from typing import Any

from certdesk.domain.requests import OfficeRequest, RequestKind
from certdesk.services import registry, requests
from certdesk.services.access import Access, Principal
from certdesk.services.context import Context
from certdesk.services.officer import CODES, PEOPLE, TOKENS
from certdesk.services.officer import REQUESTS_DECIDE as DECIDE
from certdesk.services.officer import REQUESTS_FILE as FILE

# What an officer needs to carry out each kind directly.
CARRY_OUT: dict[RequestKind, str] = {
    RequestKind.DEPARTURE: PEOPLE,
    RequestKind.POSITION_CHANGE: PEOPLE,
    RequestKind.LOST_TOKEN: TOKENS,
    RequestKind.RE_ENROLMENT: CODES,
}


class RequestDesk:
    def __init__(self, access: Access) -> None:
        self.access = access
        self.ctx = access.ctx

    def _as(self, who: Principal) -> Context:
        return self.ctx.acting_as(who.actor)

    def _for_unit(self, who: Principal, unit_code: str) -> None:
        """An RA officer anywhere, a unit contact in their own unit only (else 403, audited)."""
        if not who.can(DECIDE):
            self.access.require(who, FILE, unit_code)

    def file(
        self,
        who: Principal,
        kind: str,
        person_id: str,
        details: dict[str, Any] | None = None,
        remark: str = "",
        attachment: requests.Attachment | None = None,
    ) -> OfficeRequest:
        person = registry.find_person(self.ctx, person_id)
        self._for_unit(who, person.unit_code)
        return requests.file_request(self._as(who), kind, person_id, details, remark, attachment)

    def queue(
        self,
        who: Principal,
        *,
        kind: str | None = None,
        unit_code: str | None = None,
        state: str | None = None,
        person_id: str | None = None,
        older_than_days: int | None = None,
    ) -> list[OfficeRequest]:
        """The whole queue for an RA officer; a unit contact sees their own unit's only."""
        if not who.can(DECIDE):
            unit_code = unit_code or who.person.unit_code
            self.access.require(who, FILE, unit_code)
        return requests.list_requests(
            self.ctx,
            kind=kind,
            unit_code=unit_code,
            state=state,
            person_id=person_id,
            older_than_days=older_than_days,
        )

    def show(self, who: Principal, request_id: str) -> OfficeRequest:
        found = requests.find_request(self.ctx, request_id)
        self._for_unit(who, found.unit_code)
        return found

    def attachment(self, who: Principal, request_id: str) -> tuple[OfficeRequest, bytes]:
        self.show(who, request_id)
        return requests.attachment_of(self.ctx, request_id)

    def _deciding(self, who: Principal, request_id: str) -> Context:
        self.access.require(who, DECIDE)
        found = requests.find_request(self.ctx, request_id)
        self.access.require(who, CARRY_OUT[found.kind])
        return self._as(who)

    def approval_preview(self, who: Principal, request_id: str) -> OfficeRequest:
        return requests.preview_approval(self._deciding(who, request_id), request_id)

    def approve(self, who: Principal, request_id: str) -> requests.Decision:
        return requests.approve(self._deciding(who, request_id), request_id)

    def reject(self, who: Principal, request_id: str, reason: str) -> OfficeRequest:
        return requests.reject(self._deciding(who, request_id), request_id, reason)

    def attach(
        self, who: Principal, request_id: str, attachment: requests.Attachment
    ) -> OfficeRequest:
        self.show(who, request_id)
        return requests.attach(self._as(who), request_id, attachment)

    def withdraw(self, who: Principal, request_id: str) -> OfficeRequest:
        self.show(who, request_id)
        return requests.withdraw(self._as(who), request_id)

    def due_back(self, who: Principal) -> list[requests.DueBack]:
        self.access.require(who, TOKENS)
        return requests.tokens_due_back(self.ctx)
