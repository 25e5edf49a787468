"""Units and people."""

from __future__ import annotations

from fastapi import APIRouter

from certdesk.services.officer import PersonFile
from certdesk.web.api.common import PROBLEMS, Changing, Desk, Me
from certdesk.web.api.models import (
    CertificateOut,
    DepartureOut,
    PersonDetail,
    PersonIn,
    PersonOut,
    PersonPatch,
    PositionIn,
    TokenOut,
    UnitIn,
    UnitOut,
)

router = APIRouter(tags=["registry"], responses=PROBLEMS)


@router.get("/units")
def list_units(me: Me, desk: Desk) -> list[UnitOut]:
    return [UnitOut.model_validate(u) for u in desk.units(me)]


@router.post("/units", status_code=201)
def add_unit(body: UnitIn, me: Changing, desk: Desk) -> UnitOut:
    return UnitOut.model_validate(desk.add_unit(me, **body.model_dump()))


@router.get("/people")
def list_people(
    me: Me, desk: Desk, q: str | None = None, unit: str | None = None
) -> list[PersonOut]:
    """All people, or those of `unit` and/or matching `q` (id, name or e-mail)."""
    return [PersonOut.model_validate(p) for p in desk.people(me, q, unit)]


def detail(found: PersonFile) -> PersonDetail:
    return PersonDetail(
        **PersonOut.model_validate(found.person).model_dump(),
        certificates=[CertificateOut.model_validate(c) for c in found.certificates],
        tokens=[TokenOut.model_validate(t) for t in found.tokens],
    )


@router.get("/people/{person_id}")
def get_person(person_id: str, me: Me, desk: Desk) -> PersonDetail:
    return detail(desk.person_file(me, person_id))


@router.post("/people", status_code=201)
def register_person(body: PersonIn, me: Changing, desk: Desk) -> PersonOut:
    return PersonOut.model_validate(desk.register_person(me, **body.model_dump()))


@router.patch("/people/{person_id}")
def update_person(person_id: str, body: PersonPatch, me: Changing, desk: Desk) -> PersonOut:
    changes = body.model_dump(exclude_unset=True)
    return PersonOut.model_validate(desk.update_person(me, person_id, **changes))


@router.put("/people/{person_id}/position")
def set_position(person_id: str, body: PositionIn, me: Changing, desk: Desk) -> PersonOut:
    """Takes effect at the person's next request; no new certificate."""
    return PersonOut.model_validate(desk.set_position(me, person_id, body.position_code))


@router.post("/people/{person_id}/depart")
def depart(person_id: str, me: Changing, desk: Desk) -> DepartureOut:
    """Close the account and revoke the person's certificates in one step.

    One call: the console asks for a confirmation first, the API does not (a call is one)."""
    gone = desk.depart(me, person_id)
    return DepartureOut(
        person=PersonOut.model_validate(gone.person),
        revoked=gone.revoked,
        tokens_to_return=gone.tokens_to_return,
    )
