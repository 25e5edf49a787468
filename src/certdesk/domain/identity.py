"""Who a personal certificate names: always taken from the registry, never from a request."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PersonIdentity:
    person_id: str
    name: str
    unit_name: str
    organisation: str
    country: str
    email: str

    def subject_attributes(self) -> tuple[tuple[str, str], ...]:
        """Subject as (attribute, value) pairs, most significant first (C O OU CN serialNumber)."""
        return (
            ("C", self.country),
            ("O", self.organisation),
            ("OU", self.unit_name),
            ("CN", self.name),
            ("serialNumber", self.person_id),
        )


@dataclass(frozen=True)
class Mismatch:
    field: str
    asked: str
    registered: str


def identity_mismatch(
    identity: PersonIdentity, attributes: list[tuple[str, str]], emails: list[str]
) -> Mismatch | None:
    """The first thing a request asks for that the registry does not say (None: nothing).

    A request may leave its subject empty or repeat the registry's data; anything else is an
    attempt to change the identity, which only the office may do (the notice, rule 6).
    """
    registered = dict(identity.subject_attributes())
    registered["emailAddress"] = identity.email
    for name, value in attributes:
        if registered.get(name, "") != value:
            return Mismatch(name, value, registered.get(name, ""))
    for email in emails:
        if email.lower() != identity.email.lower():
            return Mismatch("email", email, identity.email)
    return None
