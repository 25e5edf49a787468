"""The unit officer's expiry dashboard (rule 15): who in the unit has to act, and by when.

Every active person of the unit falls in exactly one group, judged at the context's clock:
expired, in the renewal window, expiring within the horizon (window not open yet), without an
active certificate, or fine. Expired and in-window are what `RenewalPolicy.decide` says, so the
dashboard and the renewal service cannot disagree about the window.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from certdesk.domain.renewal import RenewalRefusal
from certdesk.domain.states import CertState
from certdesk.services.context import Context
from certdesk.services.policy import renewal_policy
from certdesk.services.registry import get_unit
from certdesk.store import registry as registry_store

HORIZON_DAYS = 60


@dataclass(frozen=True)
class ExpiryEntry:
    person_id: str
    name: str
    serial: str | None
    not_after: dt.datetime | None
    days_left: int | None


@dataclass(frozen=True)
class ExpiryDashboard:
    unit_code: str
    unit_name: str
    as_of: dt.datetime
    window_days: int
    horizon_days: int
    expired: list[ExpiryEntry] = field(default_factory=list)
    in_window: list[ExpiryEntry] = field(default_factory=list)
    upcoming: list[ExpiryEntry] = field(default_factory=list)
    without_certificate: list[ExpiryEntry] = field(default_factory=list)
    valid: int = 0


def expiry_dashboard(
    ctx: Context, unit_code: str, horizon_days: int = HORIZON_DAYS
) -> ExpiryDashboard:
    now = ctx.clock.now()
    policy = renewal_policy(ctx.config)
    horizon = dt.timedelta(days=horizon_days)
    with ctx.db.read() as conn:
        unit = get_unit(conn, unit_code)
        rows = registry_store.active_members(conn, unit_code)
    groups: dict[str, list[ExpiryEntry]] = {
        "expired": [],
        "in_window": [],
        "upcoming": [],
        "without_certificate": [],
    }
    valid = 0
    for row in rows:
        if row.serial is None or row.not_after is None:
            groups["without_certificate"].append(
                ExpiryEntry(row.person_id, row.name, None, None, None)
            )
            continue
        left = row.not_after - now
        entry = ExpiryEntry(row.person_id, row.name, row.serial, row.not_after, left.days)
        decision = policy.decide(CertState.ACTIVE, row.not_after, now)
        if decision.refusal is RenewalRefusal.EXPIRED:
            groups["expired"].append(entry)
        elif decision.allowed:
            groups["in_window"].append(entry)
        elif left <= horizon:
            groups["upcoming"].append(entry)
        else:
            valid += 1
    return ExpiryDashboard(
        unit.code,
        unit.name,
        now,
        policy.window.days,
        horizon_days,
        expired=groups["expired"],
        in_window=groups["in_window"],
        upcoming=groups["upcoming"],
        without_certificate=groups["without_certificate"],
        valid=valid,
    )
