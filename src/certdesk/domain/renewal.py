"""Renewal window of the notice: only an active, unexpired certificate with < N days left."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from certdesk.domain.states import CertState


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
