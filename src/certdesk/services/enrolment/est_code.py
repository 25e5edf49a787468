"""EST `simpleenroll` (RFC 7030) with a one-time enrolment code: the person's EST client
authenticates with their id and the code an officer gave them (HTTP Basic); then the officer's
rules apply as if the officer had enrolled them. The code is spent with the reservation."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from certdesk.services.context import Context
from certdesk.services.enrolment import Intent
from certdesk.services.enrolment.officer import OfficerEnrolment
from certdesk.services.enrolment_codes import check_code, spend_code


@dataclass(frozen=True)
class EstCodeEnrolment:
    ctx: Context
    person_id: str
    code: str
    officer_rules: OfficerEnrolment

    @classmethod
    def from_csr(cls, ctx: Context, person_id: str, code: str, csr_data: bytes) -> EstCodeEnrolment:
        officer_rules = OfficerEnrolment.from_csr(ctx, person_id, csr_data, method="est_code")
        return cls(ctx, person_id, code, officer_rules)

    def authorise(self, conn: Connection) -> Intent:
        code_hash = check_code(conn, self.ctx, self.person_id, self.code)  # before anything
        intent = self.officer_rules.authorise(conn)
        spend_code(conn, self.ctx, self.person_id, code_hash)  # only once nothing refuses
        return intent
