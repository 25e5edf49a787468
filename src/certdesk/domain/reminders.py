"""When a holder is reminded of their certificate's expiry, and how an undelivered reminder is
retried. Pure: the certificates, the thresholds and `now` are passed in.

A threshold `T` (days) is reached once the certificate's expiry date (UTC calendar day) is at
most `T` days away; `0` is the day it expires. Only the smallest threshold reached is due: a job
that did not run for a week sends the reminder that fits today, not every one it missed. After
the expiry day nothing is due (the unit's digest lists the expired).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from certdesk.domain.states import CertState, PersonState

DEFAULT_THRESHOLDS = (30, 14, 7, 1, 0)


class OutboxState(enum.StrEnum):
    """A message's way out. `sending` holds a lease: a job that dies mid-send leaves the row
    `sending` until the lease ends, then it is sent again (at-least-once)."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


@dataclass(frozen=True)
class ReminderCandidate:
    """A personal certificate as the rule needs it."""

    serial: str
    not_after: dt.datetime
    state: CertState
    holder_state: PersonState
    renewed: bool  # a renewal of it is waiting to be installed or installed


@dataclass(frozen=True)
class DueReminder:
    serial: str
    threshold: int
    days_left: int

    @property
    def topic(self) -> str:
        """What the outbox's unique key is about: one reminder per (certificate, threshold)."""
        return f"reminder:{self.serial}:{self.threshold}"


def parse_thresholds(text: str) -> tuple[int, ...]:
    """`"30,14,7,1,0"` → (30, 14, 7, 1, 0); ValueError for anything but distinct days >= 0."""
    days = [int(part) for part in text.split(",") if part.strip()]
    if not days or any(d < 0 for d in days) or len(set(days)) != len(days):
        raise ValueError("thresholds must be distinct whole days >= 0, e.g. 30,14,7,1,0")
    return tuple(sorted(days, reverse=True))


def days_left(not_after: dt.datetime, now: dt.datetime) -> int:
    """Calendar days (UTC) from today to the expiry day: 0 on the day it expires."""
    return (not_after.astimezone(dt.UTC).date() - now.astimezone(dt.UTC).date()).days


def due_threshold(
    candidate: ReminderCandidate, thresholds: Sequence[int], now: dt.datetime
) -> DueReminder | None:
    """The reminder due for `candidate` at `now`, if any. Revoked, superseded, renewed
    certificates and departed holders get none."""
    if (
        candidate.state is not CertState.ACTIVE
        or candidate.holder_state is not PersonState.ACTIVE
        or candidate.renewed
    ):
        return None
    left = days_left(candidate.not_after, now)
    reached = [t for t in thresholds if 0 <= left <= t]
    if not reached:
        return None
    return DueReminder(candidate.serial, min(reached), left)


def due_reminders(
    candidates: Iterable[ReminderCandidate], thresholds: Sequence[int], now: dt.datetime
) -> list[DueReminder]:
    return [d for c in candidates if (d := due_threshold(c, thresholds, now)) is not None]


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: `base`, 2×, 4×… capped at `cap`; after `max_attempts` the message
    is `failed` and shown to officers (never dropped silently)."""

    max_attempts: int = 6
    base: dt.timedelta = dt.timedelta(minutes=1)
    cap: dt.timedelta = dt.timedelta(hours=6)

    def after_failure(self, attempts: int, now: dt.datetime) -> dt.datetime | None:
        """When to try again after the `attempts`-th failed attempt; None: give up."""
        if attempts >= self.max_attempts:
            return None
        return now + min(self.base * (1 << max(attempts - 1, 0)), self.cap)
