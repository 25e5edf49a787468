"""Validity rule of the notice: from the moment of issue to the same date and time a year later."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

# CA and server certificates start this much before they are made, so that a client whose clock
# lags a little still accepts them. Holder certificates follow the notice exactly (no backdating).
CLOCK_SKEW = dt.timedelta(hours=1)


def add_years(moment: dt.datetime, years: int) -> dt.datetime:
    """Same calendar date and time `years` later; 29 Feb falls back to 28 Feb in common years."""
    target_year = moment.year + years
    try:
        return moment.replace(year=target_year)
    except ValueError:  # 29 Feb into a common year
        return moment.replace(year=target_year, day=28)


@dataclass(frozen=True)
class Validity:
    not_before: dt.datetime
    not_after: dt.datetime

    def contains(self, moment: dt.datetime) -> bool:
        return self.not_before <= moment <= self.not_after

    def remaining(self, moment: dt.datetime) -> dt.timedelta:
        return self.not_after - moment


def validity_from(issued_at: dt.datetime, years: int = 1) -> Validity:
    """Validity of a certificate issued at `issued_at` (seconds precision, as X.509 keeps it)."""
    if issued_at.tzinfo is None:
        raise ValueError("issued_at must be timezone-aware")
    start = issued_at.astimezone(dt.UTC).replace(microsecond=0)
    return Validity(not_before=start, not_after=add_years(start, years))
