"""The renewal campaign as JSON: every unit (`ra.campaign.view`) or the officer's own
(`unit.expiry.view`); the same numbers as the console page and its exports."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter

from certdesk.services.campaign import Campaign
from certdesk.web.api.common import PROBLEMS, Desk, Me

router = APIRouter(responses=PROBLEMS)


@router.get("/campaign", tags=["campaign"])
def campaign(
    me: Me, desk: Desk, start: dt.date | None = None, end: dt.date | None = None, unit: str = ""
) -> Campaign:
    """Per unit (highest risk first): ending in the period, renewed, in the window and not
    renewed, expired without renewal, window not open yet, no active certificate; the people;
    expiries per week. The period defaults to today and the next 59 days."""
    return desk.campaign(me, start, end, unit)


@router.get("/units/{code}/campaign", tags=["unit"])
def unit_campaign(
    code: str, me: Me, desk: Desk, start: dt.date | None = None, end: dt.date | None = None
) -> Campaign:
    """The same for the officer's own unit."""
    return desk.unit_campaign(me, start, end, code)
