"""The renewal campaign in the console: every unit for the office (`ra.campaign.view`), the
officer's own unit (`unit.expiry.view`); the same page, chart and exports for both."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from certdesk.domain.errors import CertdeskError
from certdesk.domain.reminders import OutboxState
from certdesk.services.campaign import FIGURES, Campaign
from certdesk.services.reminders import Delivery
from certdesk.web.portal import campaign_view
from certdesk.web.portal.console import Changing, Desk, Me, done, page
from certdesk.web.portal.i18n import chosen_locale, translations

router = APIRouter(prefix="/console", include_in_schema=False)


def _date(text: str) -> dt.date | None:
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise CertdeskError("input.invalid", detail=f"date {text!r}: YYYY-MM-DD") from exc


def _page(
    request: Request,
    c: Campaign,
    base: str,
    unit: str,
    drill: bool,
    deliveries: list[Delivery] | None = None,
) -> Response:
    gettext = translations(chosen_locale(request)).gettext
    return page(
        request,
        "console/campaign.html",
        c=c,
        base=base,
        unit=unit,
        drill=drill,
        figures=FIGURES,
        labels=campaign_view.LABELS,
        chart=campaign_view.chart(c, gettext),
        timedelta_day=dt.timedelta(days=1),
        deliveries=deliveries,
    )


def _export(c: Campaign, format: str) -> Response:
    if format == "xlsx":
        return campaign_view.as_xlsx(c)
    if format == "csv":
        return campaign_view.as_csv(c)
    raise CertdeskError("input.invalid", detail="format: csv or xlsx")


@router.get("/campaign", response_class=HTMLResponse)
def campaign(
    request: Request, me: Me, desk: Desk, start: str = "", end: str = "", unit: str = ""
) -> Response:
    """All units sorted by risk; `?unit=` one unit with its people."""
    c = desk.campaign(me, _date(start), _date(end), unit)
    failed = desk.deliveries(me, OutboxState.FAILED.value)
    return _page(request, c, "/console/campaign", unit, bool(unit), failed)


@router.post("/campaign/remind")
def remind(me: Changing, desk: Desk, unit: Annotated[str, Form()]) -> Response:
    """ "Remind now" for one unit (queued through the outbox, audited)."""
    desk.remind_unit(me, unit)
    return done("/console/campaign", "reminded")


@router.get("/campaign/export")
def campaign_export(
    me: Me, desk: Desk, start: str = "", end: str = "", unit: str = "", format: str = "csv"
) -> Response:
    return _export(desk.campaign(me, _date(start), _date(end), unit), format)


@router.get("/unit/campaign", response_class=HTMLResponse)
def unit_campaign(
    request: Request, me: Me, desk: Desk, start: str = "", end: str = "", unit: str = ""
) -> Response:
    """The officer's own unit; `?unit=` another one is refused (403, audited)."""
    c = desk.unit_campaign(me, _date(start), _date(end), unit)
    return _page(request, c, "/console/unit/campaign", "", True)


@router.get("/unit/campaign/export")
def unit_campaign_export(
    me: Me, desk: Desk, start: str = "", end: str = "", unit: str = "", format: str = "csv"
) -> Response:
    return _export(desk.unit_campaign(me, _date(start), _date(end), unit), format)
