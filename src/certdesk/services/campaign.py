"""The renewal campaign at a glance (issue 11): per unit, how many certificates end in a period,
how many are renewed, in the window and not renewed, expired without renewal; who holds no
active certificate; expiries per week for the chart. Units are sorted by risk: expired first,
then in the window and not renewed, then people without a certificate.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from certdesk.domain.campaign import STATUSES, CampaignStatus, campaign_status, week_of
from certdesk.domain.errors import CertdeskError
from certdesk.services.context import Context
from certdesk.services.policy import renewal_policy
from certdesk.store import campaign as campaign_store
from certdesk.store import registry as registry_store

DEFAULT_DAYS = 60
# The table's columns, in order (the page, the exports and the API share them).
FIGURES = ("expiring", "renewed", "in_window", "expired", "upcoming", "without_certificate")
MAX_DAYS = 800


@dataclass(frozen=True)
class CampaignPerson:
    unit_code: str
    person_id: str
    name: str
    serial: str | None  # None: no active certificate
    not_after: dt.datetime | None
    status: str  # a CampaignStatus, or "without_certificate"


@dataclass
class UnitCampaign:
    unit_code: str
    unit_name: str
    expiring: int = 0
    renewed: int = 0
    in_window: int = 0
    expired: int = 0
    upcoming: int = 0
    without_certificate: int = 0
    people: list[CampaignPerson] = field(default_factory=list)

    @property
    def figures(self) -> tuple[int, ...]:
        return tuple(getattr(self, name) for name in FIGURES)

    @property
    def risk(self) -> tuple[int, int, int]:
        return (self.expired, self.in_window, self.without_certificate)

    def count(self, person: CampaignPerson) -> None:
        if person.status == "without_certificate":
            self.without_certificate += 1
        else:
            self.expiring += 1
            name = CampaignStatus(person.status).value
            setattr(self, name, getattr(self, name) + 1)
        self.people.append(person)


@dataclass(frozen=True)
class WeekBar:
    week: dt.date  # its Monday
    counts: dict[str, int]  # by CampaignStatus value

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class Campaign:
    start: dt.datetime
    end: dt.datetime
    as_of: dt.datetime
    units: list[UnitCampaign]
    totals: UnitCampaign
    weeks: list[WeekBar]


def period(
    start: dt.date | None, end: dt.date | None, now: dt.datetime
) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) as UTC midnights; by default today and DEFAULT_DAYS on; end is inclusive
    as a date (the period 2027-02-01..2027-02-28 is February)."""
    first = start or now.astimezone(dt.UTC).date()
    last = end or first + dt.timedelta(days=DEFAULT_DAYS - 1)
    if last < first or (last - first).days >= MAX_DAYS:
        raise CertdeskError(
            "input.invalid",
            detail=f"period {first}..{last}: end before start or over {MAX_DAYS} days",
        )
    at = dt.time(tzinfo=dt.UTC)
    return dt.datetime.combine(first, at), dt.datetime.combine(last + dt.timedelta(days=1), at)


def campaign(
    ctx: Context,
    start: dt.date | None = None,
    end: dt.date | None = None,
    unit_code: str | None = None,
) -> Campaign:
    """The campaign of the period (all units, or one), judged at the context's clock."""
    now = ctx.clock.now()
    first, last = period(start, end, now)
    policy = renewal_policy(ctx.config)
    with ctx.db.read() as conn:
        units = {
            u.code: UnitCampaign(u.code, u.name)
            for u in registry_store.all_units(conn)
            if unit_code is None or u.code == unit_code
        }
        if unit_code is not None and not units:
            raise CertdeskError("unit.not_found", code=unit_code)
        ending = campaign_store.ending_between(conn, first, last, unit_code)
        without = campaign_store.without_active_certificate(conn, unit_code)
    weeks: dict[dt.date, Counter[str]] = {}
    week = week_of(first)
    while week < last.date():
        weeks[week] = Counter()
        week += dt.timedelta(days=7)
    for row in ending:
        status = campaign_status(row.not_after, bool(row.renewed), now, policy)
        units[row.unit_code].count(
            CampaignPerson(
                row.unit_code, row.person_id, row.name, row.serial, row.not_after, status
            )
        )
        weeks[week_of(row.not_after)][status] += 1
    for row in without:
        units[row.unit_code].count(
            CampaignPerson(
                row.unit_code, row.person_id, row.name, None, None, "without_certificate"
            )
        )
    totals = UnitCampaign("", "")
    for unit in units.values():
        for person in unit.people:
            totals.count(person)
    totals.people = []
    ranked = sorted(units.values(), key=lambda u: (tuple(-n for n in u.risk), u.unit_code))
    bars = [WeekBar(w, {s.value: c[s.value] for s in STATUSES}) for w, c in weeks.items()]
    return Campaign(first, last, now, ranked, totals, bars)
