"""Officer enrolment: the office issues a person's first certificate for a key it was given
(a CSR, a key made on a token or in software). The person must be registered and active, hold no
active personal certificate, and any token must be in stock or already theirs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from certdesk.ca.csr import load_csr, requested_identity
from certdesk.ca.keys import PublicKey, as_public_key
from certdesk.domain.errors import CertdeskError
from certdesk.domain.identity import PersonIdentity
from certdesk.domain.registry import Person
from certdesk.services.context import Context
from certdesk.services.enrolment import Claim, Intent
from certdesk.services.enrolment.personal import (
    personal_intent,
    refuse_identity_change,
    registered_identity,
    require_active,
)
from certdesk.services.tokens import check_assignable
from certdesk.store import registry as registry_store


def check_enrolment(
    conn: Connection, ctx: Context, person_id: str, token_serial: str | None = None
) -> PersonIdentity:
    """The officer's rules; also run on their own before a key is made on a token."""
    found = registry_store.person_with_active_serial(conn, person_id)
    return _check_person(conn, ctx, person_id, token_serial, found)


def _check_person(
    conn: Connection,
    ctx: Context,
    person_id: str,
    token_serial: str | None,
    found: tuple[Person, str | None] | None,
) -> PersonIdentity:
    """`check_enrolment` on the person's row (`found`) already read."""
    if found is None:
        raise CertdeskError("person.not_found", person_id=person_id)
    person, active_serial = found
    require_active(person)
    if active_serial is not None:
        raise CertdeskError(
            "person.has_active_certificate", person_id=person_id, serial=active_serial
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
    # what a CSR asked to be named (nothing when the key was made on a token or in software)
    attributes: tuple[tuple[str, str], ...] = ()
    emails: tuple[str, ...] = ()

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
        """The subject comes from the registry; the CSR proves the key and may only repeat
        the registry's data."""
        csr = load_csr(csr_data)
        key = as_public_key(csr.public_key())
        attributes, emails = requested_identity(csr)
        return cls(ctx, person_id, key, token_serial, method, tuple(attributes), tuple(emails))

    def authorise(self, conn: Connection) -> Intent:
        found = registry_store.person_with_active_serial(conn, self.person_id)
        return self._authorise(conn, found)

    @classmethod
    def authorise_many(
        cls, conn: Connection, requests: Sequence[OfficerEnrolment]
    ) -> list[Intent | CertdeskError]:
        """`authorise` for each of `requests`, in order, with their people read in one query:
        a batch of enrolments costs one read, not one per request."""
        found = registry_store.people_with_active_serial(conn, (r.person_id for r in requests))
        outcomes: list[Intent | CertdeskError] = []
        for request in requests:
            try:
                outcomes.append(request._authorise(conn, found.get(request.person_id)))
            except CertdeskError as exc:
                outcomes.append(exc)
        return outcomes

    def _authorise(self, conn: Connection, found: tuple[Person, str | None] | None) -> Intent:
        identity = _check_person(conn, self.ctx, self.person_id, self.token_serial, found)
        refuse_identity_change(self.ctx.config, identity, self.attributes, self.emails)
        return personal_intent(
            identity,
            self.public_key,
            self.method,
            _second_in_batch(self.person_id),
            token_serial=self.token_serial,
        )
