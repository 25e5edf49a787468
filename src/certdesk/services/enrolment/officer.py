"""Officer enrolment: the office issues a person's first certificate for a key it was given
(a CSR, a key made on a token or in software). The person must be registered and active, hold no
active personal certificate, and any token must be in stock or already theirs."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, bindparam

from certdesk.ca.csr import load_csr
from certdesk.ca.keys import PublicKey, as_public_key
from certdesk.domain.errors import CertdeskError
from certdesk.domain.identity import PersonIdentity
from certdesk.services.context import Context
from certdesk.services.enrolment import Claim, Intent
from certdesk.services.enrolment.personal import (
    personal_intent,
    registered_identity,
    require_active,
)
from certdesk.services.tokens import check_assignable
from certdesk.store.certificates import active_personal_serial_of
from certdesk.store.registry import person_from_row, person_query
from certdesk.store.tables import people

# One round trip: the person, their unit's name and their active certificate.
_ENROLMENT_VIEW = (
    person_query()
    .add_columns(active_personal_serial_of(people.c.person_id).label("active_serial"))
    .where(people.c.person_id == bindparam("pid"))
)


def check_enrolment(
    conn: Connection, ctx: Context, person_id: str, token_serial: str | None = None
) -> PersonIdentity:
    """The officer's rules; also run on their own before a key is made on a token."""
    row = conn.execute(_ENROLMENT_VIEW, {"pid": person_id}).first()
    if row is None:
        raise CertdeskError("person.not_found", person_id=person_id)
    person = person_from_row(row)
    require_active(person)
    if row.active_serial is not None:
        raise CertdeskError(
            "person.has_active_certificate", person_id=person_id, serial=row.active_serial
        )
    if token_serial is not None:
        check_assignable(conn, token_serial, person_id)
    return registered_identity(ctx.config, person)


def _second_in_batch(person_id: str) -> Claim:
    return Claim(
        f"person:{person_id}",
        lambda twin: CertdeskError(
            "person.has_active_certificate", person_id=person_id, serial=twin
        ),
    )


@dataclass(frozen=True)
class OfficerEnrolment:
    """An officer's request to issue `person_id`'s certificate for `public_key`."""

    ctx: Context
    person_id: str
    public_key: PublicKey
    token_serial: str | None = None
    method: str = "officer"

    def __post_init__(self) -> None:
        as_public_key(self.public_key)  # a key type we do not issue for is refused up front

    @classmethod
    def from_csr(
        cls,
        ctx: Context,
        person_id: str,
        csr_data: bytes,
        token_serial: str | None = None,
        method: str = "officer",
    ) -> OfficerEnrolment:
        """The subject comes from the registry; the CSR only proves the key."""
        key = as_public_key(load_csr(csr_data).public_key())
        return cls(ctx, person_id, key, token_serial, method)

    def authorise(self, conn: Connection) -> Intent:
        identity = check_enrolment(conn, self.ctx, self.person_id, self.token_serial)
        return personal_intent(
            identity,
            self.public_key,
            self.method,
            _second_in_batch(self.person_id),
            token_serial=self.token_serial,
        )
