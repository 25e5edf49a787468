"""The unit's expiry dashboard judges the renewal window as the renewal service does."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from certdesk.domain.clock import FixedClock
from certdesk.domain.states import CertState
from certdesk.services.context import Context
from certdesk.services.enrolment.officer import OfficerEnrolment
from certdesk.services.expiry import ExpiryDashboard, expiry_dashboard
from certdesk.services.issuance import Issuance
from certdesk.services.policy import renewal_policy

DAY = dt.timedelta(days=1)
US = dt.timedelta(microseconds=1)


def group_of(board: ExpiryDashboard, person_id: str) -> str:
    for name in ("expired", "in_window", "upcoming", "without_certificate"):
        if person_id in [e.person_id for e in getattr(board, name)]:
            return name
    assert board.valid == 1
    return "valid"


@pytest.fixture
def not_after(issuance: Issuance) -> dt.datetime:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    issued = issuance.issue(OfficerEnrolment(issuance.ctx, "p-001", key))
    return issued.certificate.not_valid_after_utc


def at(ctx: Context, moment: dt.datetime) -> Context:
    assert isinstance(ctx.clock, FixedClock)
    ctx.clock.current = moment
    return ctx


@pytest.mark.parametrize(
    ("before_expiry", "group"),
    [
        (61 * DAY, "valid"),
        (60 * DAY + US, "valid"),
        (60 * DAY, "upcoming"),  # the horizon's edge is inside it
        (31 * DAY, "upcoming"),  # window + 1 day: not open yet
        (30 * DAY + US, "upcoming"),
        (30 * DAY, "in_window"),  # exactly the window left: open (the notice's boundary)
        (DAY, "in_window"),
        (dt.timedelta(0), "in_window"),  # the last instant of validity
        (-US, "expired"),
    ],
)
def test_groups_at_the_window_boundaries(
    issuance: Issuance, not_after: dt.datetime, before_expiry: dt.timedelta, group: str
) -> None:
    ctx = at(issuance.ctx, not_after - before_expiry)
    board = expiry_dashboard(ctx, "FIN")
    assert (board.window_days, board.horizon_days) == (30, 60)
    assert group_of(board, "p-001") == group
    # the renewal service's policy says the same about the window
    now = ctx.clock.now()
    assert renewal_policy(ctx.config).decide(CertState.ACTIVE, not_after, now).allowed is (
        group == "in_window"
    )


def test_the_configured_window_is_the_one_used(issuance: Issuance, not_after: dt.datetime) -> None:
    base = issuance.ctx
    ctx = Context(base.config.replace(policy={"renewal_window_days": 20}), base.db, base.clock)
    assert renewal_policy(ctx.config).window == 20 * DAY
    assert group_of(expiry_dashboard(at(ctx, not_after - 21 * DAY), "FIN"), "p-001") == "upcoming"
    board = expiry_dashboard(at(ctx, not_after - 20 * DAY), "FIN")
    assert board.window_days == 20 and group_of(board, "p-001") == "in_window"
