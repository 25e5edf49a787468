"""The renewal campaign's classification of a certificate that ends in the chosen period.

Judged at `now` with the renewal window of `RenewalPolicy`, so the campaign, the reminders and
the renewal service agree about who is "in the window".
"""

from __future__ import annotations

import datetime as dt
import enum

from certdesk.domain.renewal import RenewalPolicy
from certdesk.domain.states import CertState


class CampaignStatus(enum.StrEnum):
    RENEWED = "renewed"  # a renewal is installed or waiting to be installed
    IN_WINDOW = "in_window"  # renewal open now, not renewed yet
    EXPIRED = "expired"  # ended without renewal
    UPCOMING = "upcoming"  # window not open yet


# The chart stacks in this order; the table's risk counts the last two.
STATUSES = (
    CampaignStatus.RENEWED,
    CampaignStatus.UPCOMING,
    CampaignStatus.IN_WINDOW,
    CampaignStatus.EXPIRED,
)


def campaign_status(
    not_after: dt.datetime, renewed: bool, now: dt.datetime, policy: RenewalPolicy
) -> CampaignStatus:
    if renewed:
        return CampaignStatus.RENEWED
    if now > not_after:
        return CampaignStatus.EXPIRED
    if policy.decide(CertState.ACTIVE, not_after, now).allowed:
        return CampaignStatus.IN_WINDOW
    return CampaignStatus.UPCOMING


def week_of(moment: dt.datetime) -> dt.date:
    """The Monday (UTC) of the week `moment` falls in: the chart's bars."""
    day = moment.astimezone(dt.UTC).date()
    return day - dt.timedelta(days=day.weekday())
