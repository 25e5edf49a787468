"""EST `simpleenroll` (RFC 7030) with a one-time enrolment code: the person's EST client
authenticates with their id and the code an officer gave them (HTTP Basic); then the officer's
rules apply as if the officer had enrolled them. The code is spent with the reservation."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from certdesk.ca.csr import load_csr
from certdesk.ca.keys import as_public_key
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
        key = as_public_key(load_csr(csr_data).public_key())
        return cls(ctx, person_id, code, OfficerEnrolment(ctx, person_id, key, method="est_code"))

    def authorise(self, conn: Connection) -> Intent:
        code_hash = check_code(conn, self.ctx, self.person_id, self.code)  # before anything
        intent = self.officer_rules.authorise(conn)
        spend_code(conn, self.ctx, self.person_id, code_hash)  # only once nothing refuses
        return intent
