"""Token custody: stock, issue, return, lost."""

from __future__ import annotations

from fastapi import APIRouter

from certdesk.web.api.common import PROBLEMS, Changing, Desk, Me
from certdesk.web.api.models import AssignIn, LostOut, TokenIn, TokenOut

router = APIRouter(tags=["tokens"], responses=PROBLEMS)


@router.get("/tokens")
def list_tokens(me: Me, desk: Desk) -> list[TokenOut]:
    return [TokenOut.model_validate(t) for t in desk.tokens(me)]


@router.post("/tokens", status_code=201)
def register_token(body: TokenIn, me: Changing, desk: Desk) -> TokenOut:
    return TokenOut.model_validate(desk.register_token(me, body.serial, body.model))


@router.post("/tokens/{serial}/assign")
def assign_token(serial: str, body: AssignIn, me: Changing, desk: Desk) -> TokenOut:
    return TokenOut.model_validate(desk.assign_token(me, serial, body.person_id))


@router.post("/tokens/{serial}/return")
def return_token(serial: str, me: Changing, desk: Desk) -> TokenOut:
    return TokenOut.model_validate(desk.return_token(me, serial))


@router.post("/tokens/{serial}/lost")
def report_lost(serial: str, me: Changing, desk: Desk) -> LostOut:
    """Mark lost and revoke the certificates on it (keyCompromise) in the same transaction.

    One call: the console asks for a confirmation first, the API does not (a call is one)."""
    lost = desk.report_lost(me, serial)
    return LostOut(token=TokenOut.model_validate(lost.token), revoked=lost.revoked)
