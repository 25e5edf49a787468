"""When an issuer's next CRL is due: the rule the publishing job applies at every round.

A complete CRL is republished before its nextUpdate (so a relying party never holds an expired
one) and, without delta CRLs, as soon as a certificate went on the CRL since the last one was
published (the notice's business systems must see a lost key within minutes). With delta CRLs
(RFC 5280 §5.2.4) a revocation is published in a small delta CRL instead, which also follows
every new complete CRL (so the delta at the published URL always names the current base) and is
republished every interval. Complete and delta CRLs share one number sequence per issuer
(RFC 5280 §5.2.3); the numbers are reserved by `services/crl_publish.py`.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass


class CRLKind(enum.StrEnum):
    COMPLETE = "complete"
    DELTA = "delta"


class DueReason(enum.StrEnum):
    NONE_YET = "none_yet"  # nothing published for this issuer (or this base) yet
    NEXT_UPDATE_NEAR = "next_update_near"  # within the margin before the last one's nextUpdate
    ON_CRL_SINCE = "on_crl_since"  # a certificate went on the CRL since the last publication
    NEW_BASE = "new_base"  # a complete CRL is published now: the delta must follow it
    INTERVAL = "interval"  # the delta interval has passed


@dataclass(frozen=True)
class PublishedRecord:
    """What the record of a published CRL says (`base` is the base CRL's number for a delta)."""

    number: int
    this_update: dt.datetime
    next_update: dt.datetime
    entries: int = 0
    base: int | None = None


@dataclass(frozen=True)
class CRLSchedule:
    """From `[crl]`: `republish_before` the complete CRL's nextUpdate; deltas on or off, how
    often a delta is republished without changes and how long it is valid."""

    next_update: dt.timedelta
    republish_before: dt.timedelta
    delta: bool = False
    delta_every: dt.timedelta = dt.timedelta(hours=1)
    delta_next_update: dt.timedelta = dt.timedelta(hours=4)


@dataclass(frozen=True)
class CRLDue:
    """What to publish now (complete first, then delta) and why; `None` = not due."""

    complete: DueReason | None = None
    delta: DueReason | None = None

    @property
    def kinds(self) -> list[CRLKind]:
        return [
            k for k, why in ((CRLKind.COMPLETE, self.complete), (CRLKind.DELTA, self.delta)) if why
        ]


def newest(*records: PublishedRecord | None) -> PublishedRecord | None:
    """The last published of an issuer's complete and delta CRLs (the numbers are one sequence)."""
    known = [r for r in records if r is not None]
    return max(known, key=lambda r: r.number) if known else None


def crl_due(
    schedule: CRLSchedule,
    now: dt.datetime,
    complete: PublishedRecord | None,
    delta: PublishedRecord | None,
    on_crl_since_last: bool,
) -> CRLDue:
    """`complete`/`delta`: the issuer's last of each; `on_crl_since_last`: whether a certificate
    went on the CRL after the newest one was published (the service asks the store)."""
    if complete is None:
        full: DueReason | None = DueReason.NONE_YET
    elif now >= complete.next_update - schedule.republish_before:
        full = DueReason.NEXT_UPDATE_NEAR
    elif on_crl_since_last and not schedule.delta:
        full = DueReason.ON_CRL_SINCE
    else:
        full = None
    if not schedule.delta:
        return CRLDue(full)
    if full is not None:
        return CRLDue(full, DueReason.NEW_BASE)
    assert complete is not None  # `full` is due when there is no complete CRL
    if delta is None or delta.base != complete.number:
        return CRLDue(None, DueReason.NONE_YET)
    if on_crl_since_last:
        return CRLDue(None, DueReason.ON_CRL_SINCE)
    if now >= delta.this_update + schedule.delta_every:
        return CRLDue(None, DueReason.INTERVAL)
    return CRLDue()


def next_due_at(
    schedule: CRLSchedule, complete: PublishedRecord | None, delta: PublishedRecord | None
) -> dt.datetime | None:
    """When, without a revocation, the next CRL falls due (None: one is due already)."""
    if complete is None:
        return None
    at = complete.next_update - schedule.republish_before
    if schedule.delta and delta is not None:
        at = min(at, delta.this_update + schedule.delta_every)
    return at
