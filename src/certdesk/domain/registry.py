"""The office's records of units, positions, people and tokens: what `store/` reads them into,
what the use cases decide on and what the console, the API and the CLI show."""

from __future__ import annotations

from dataclasses import dataclass

from certdesk.domain.states import PersonState, TokenState


@dataclass(frozen=True)
class Unit:
    code: str
    name: str
    contact_name: str
    contact_email: str
    contact_phone: str


@dataclass(frozen=True)
class Position:
    code: str
    name: str


@dataclass(frozen=True)
class Grants:
    """A position with the roles it carries, or a role with the permissions it grants."""

    code: str
    name: str
    grants: tuple[str, ...]


@dataclass(frozen=True)
class Person:
    person_id: str
    name: str
    unit_code: str
    unit_name: str
    position_code: str | None
    email: str
    phone: str
    state: PersonState


@dataclass(frozen=True)
class Token:
    serial: str
    model: str
    state: TokenState
    keeper_id: str | None
    pin_changed: bool
