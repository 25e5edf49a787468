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
