"""What every personal method shares: the person must be active, and the certificate names
whoever the registry says (the notice: identity comes from the office, never from a request)."""

from __future__ import annotations

from certdesk.ca.keys import PublicKey
from certdesk.ca.profiles import Extensions, Profile, SubjectAltNames, make_name
from certdesk.config import Config
from certdesk.domain.errors import CertdeskError
from certdesk.domain.identity import PersonIdentity, identity_mismatch
from certdesk.domain.registry import Person
from certdesk.domain.states import CertState, PersonState
from certdesk.services.enrolment import Claim, Intent


def require_active(person: Person) -> None:
    """Departed staff get nothing (their account is closed)."""
    if person.state is not PersonState.ACTIVE:
        raise CertdeskError("person.departed", person_id=person.person_id)


def registered_identity(config: Config, person: Person) -> PersonIdentity:
    """The certificate's identity, from the registry and the CA's configuration only."""
    ca = config.ca
    return PersonIdentity(
        person.person_id, person.name, person.unit_name, ca.organisation, ca.country, person.email
    )


def refuse_identity_change(
    config: Config,
    identity: PersonIdentity,
    attributes: tuple[tuple[str, str], ...],
    emails: tuple[str, ...],
) -> None:
    """A CSR may leave its subject empty or repeat the registry's data; one that asks for any
    other name or address is refused with what differs — on every path that takes a CSR
    (officer, EST, renewal), never silently replaced by the registry's data."""
    mismatch = identity_mismatch(identity, list(attributes), list(emails))
    if mismatch is not None:
        raise CertdeskError(
            "enrolment.identity_change",
            field=mismatch.field,
            asked=mismatch.asked,
            registered=mismatch.registered,
            contacts=config.support.contacts(),
        )


def personal_intent(
    identity: PersonIdentity,
    public_key: PublicKey,
    method: str,
    claim: Claim,
    token_serial: str | None = None,
    replaces: str | None = None,
    state_after: CertState = CertState.ACTIVE,
) -> Intent:
    """A personal certificate naming `identity`: subject and e-mail SAN from the registry."""
    return Intent(
        Profile.PERSONAL,
        public_key,
        make_name(identity.subject_attributes()),
        Extensions(SubjectAltNames(emails=(identity.email,))),
        method,
        person_id=identity.person_id,
        token_serial=token_serial,
        replaces=replaces,
        state_after=state_after,
        claim=claim,
    )
