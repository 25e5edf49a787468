"""Renewal window of the notice: only an active, unexpired certificate with < N days left."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from certdesk.domain.states import CertState

# The holder is told when the window will open this long before it does (the portal's banner).
REMINDER_LEAD = dt.timedelta(days=14)


class Announcement(enum.StrEnum):
    """What to tell a holder about renewal: the window is open, or opens soon."""

    OPEN = "open"
    SOON = "soon"


class RenewalRefusal(enum.StrEnum):
    NOT_ACTIVE = "renewal.not_active"
    REVOKED = "renewal.revoked"
    SUPERSEDED = "renewal.superseded"
    EXPIRED = "renewal.expired"
    TOO_EARLY = "renewal.too_early"


@dataclass(frozen=True)
class RenewalDecision:
    allowed: bool
    refusal: RenewalRefusal | None
    opens_at: dt.datetime
    """First moment the window is open (not_after - window); meaningful even when allowed."""
    closes_at: dt.datetime

    def announce(self, now: dt.datetime, lead: dt.timedelta = REMINDER_LEAD) -> Announcement | None:
        """OPEN while renewal is allowed; SOON when it is only too early and the window opens
        within `lead`; else nothing (a holder is not reminded months ahead)."""
        if self.allowed:
            return Announcement.OPEN
        if self.refusal is RenewalRefusal.TOO_EARLY and self.opens_at - now <= lead:
            return Announcement.SOON
        return None


@dataclass(frozen=True)
class RenewalPolicy:
    window: dt.timedelta = dt.timedelta(days=30)

    def decide(self, state: CertState, not_after: dt.datetime, now: dt.datetime) -> RenewalDecision:
        """Whether renewal is allowed at `now`, and if not, why and from when.

        The window is open while `not_after - window <= now <= not_after`, i.e. strictly less
        than `window` left is open, and the boundary itself too (the notice: "less than a month").
        """
        opens_at = not_after - self.window
        refusal: RenewalRefusal | None = None
        if state is CertState.REVOKED:
            refusal = RenewalRefusal.REVOKED
        elif state is CertState.SUPERSEDED:
            refusal = RenewalRefusal.SUPERSEDED
        elif state is not CertState.ACTIVE:
            refusal = RenewalRefusal.NOT_ACTIVE
        elif now > not_after:
            refusal = RenewalRefusal.EXPIRED
        elif now < opens_at:
            refusal = RenewalRefusal.TOO_EARLY
        return RenewalDecision(refusal is None, refusal, opens_at, not_after)
