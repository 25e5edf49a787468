"""EST `simpleenroll` (RFC 7030) with a one-time enrolment code: the person's EST client
authenticates with their id and the code an officer gave them (HTTP Basic); then the officer's
rules apply as if the officer had enrolled them. The code is spent with the reservation, for
the key of the CSR.

An enrolment cut off by a crash (after the reservation, after signing, or after recording but
before the answer reached the client) never strands the person: a retry with the same code and
the same key finishes it — the certificate already issued for that key is returned, a
reservation left by a dead process is closed and the certificate issued — and never issues a
second one. The same code with another key is refused (`enrolcode.other_key`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import Connection

from certdesk.domain.errors import CertdeskError
from certdesk.domain.states import CertState
from certdesk.services.context import Context
from certdesk.services.enrolment import Intent, Issue
from certdesk.services.enrolment.officer import OfficerEnrolment
from certdesk.services.enrolment_codes import check_code, spend_code
from certdesk.services.issuance import IN_FLIGHT_GRACE, abandon
from certdesk.store import certificates as cert_store

_POLL_SECONDS = 0.05
# What a retry finds issued for its key: returned as it is.
_ISSUED = (CertState.ACTIVE.value, CertState.PENDING_INSTALL.value)


def key_sha256(public_key: CertificatePublicKeyTypes) -> str:
    """SHA-256 of the key's SubjectPublicKeyInfo (what a retry must present again)."""
    spki = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


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

    @property
    def key_sha256(self) -> str:
        return key_sha256(self.officer_rules.public_key)

    def authorise(self, conn: Connection) -> Intent:
        use = check_code(conn, self.ctx, self.person_id, self.code, self.key_sha256)  # first
        if use.resumed:
            self._refuse_if_done(conn)
        intent = self.officer_rules.authorise(conn)
        if not use.resumed:
            spend_code(conn, self.ctx, self.person_id, use.code_hash, self.key_sha256)
        return intent

    def _refuse_if_done(self, conn: Connection) -> None:
        """A retry: the certificate its key already has (`enrolcode.issued`), the reservation
        still open (`enrolcode.in_progress`), or nothing yet (it goes on to issue)."""
        for row in cert_store.personal_of_person(conn, self.person_id):
            if row.state == CertState.RESERVED.value:
                at = row.reserved_at.isoformat()
                raise CertdeskError("enrolcode.in_progress", serial=row.serial, reserved_at=at)
            if row.der is None:
                continue  # abandoned: never signed
            certificate = x509.load_der_x509_certificate(row.der)
            if key_sha256(certificate.public_key()) != self.key_sha256:
                continue
            if row.state in _ISSUED:
                raise CertdeskError("enrolcode.issued", serial=row.serial)
            used_at = f"{row.reserved_at:%Y-%m-%d %H:%M} UTC"
            raise CertdeskError("enrolcode.used", used_at=used_at)  # since revoked: finished


def enrol_with_code(
    ctx: Context, issue: Issue, person_id: str, code: str, csr_data: bytes
) -> x509.Certificate:
    """EST simpleenroll: issue, or finish an enrolment this code and key began and lost."""
    enrolment = EstCodeEnrolment.from_csr(ctx, person_id, code, csr_data)
    deadline = time.monotonic() + IN_FLIGHT_GRACE.total_seconds()
    while True:
        try:
            return issue(enrolment).certificate
        except CertdeskError as exc:
            if exc.code == "enrolcode.issued":
                return _stored(ctx, exc.params["serial"])
            if exc.code != "enrolcode.in_progress":
                raise
            reserved_at = dt.datetime.fromisoformat(exc.params["reserved_at"])
            if ctx.clock.now() - reserved_at > IN_FLIGHT_GRACE or time.monotonic() > deadline:
                abandon(ctx, exc.params["serial"], "EST enrolment retried after an interruption")
            else:
                time.sleep(_POLL_SECONDS)  # another worker is between reserving and recording


def _stored(ctx: Context, serial: str) -> x509.Certificate:
    with ctx.db.read() as conn:
        row = cert_store.get(conn, serial)
    assert row is not None and row.der is not None, "an issued certificate is stored"
    return x509.load_der_x509_certificate(row.der)
