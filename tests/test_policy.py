"""The notice's date rules as properties: validity of one year, the renewal window before expiry."""

from __future__ import annotations

import calendar
import datetime as dt

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from certdesk.domain.renewal import REMINDER_LEAD, Announcement, RenewalPolicy, RenewalRefusal
from certdesk.domain.states import CertState
from certdesk.domain.validity import add_years, validity_from

UTC = dt.UTC
US = dt.timedelta(microseconds=1)
SECOND = dt.timedelta(seconds=1)
DAY = dt.timedelta(days=1)

# Far enough from year 1 and 9999 that adding years and shifting zones never overflows.
naive_moments = st.datetimes(min_value=dt.datetime(1950, 1, 1), max_value=dt.datetime(9000, 1, 1))
utc_moments = naive_moments.map(lambda d: d.replace(tzinfo=UTC))
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda m: dt.timezone(dt.timedelta(minutes=m))
)
aware_moments = st.builds(lambda d, tz: d.replace(tzinfo=tz), naive_moments, offsets)
leap_days = st.builds(
    lambda year, h, m, s, us: dt.datetime(year, 2, 29, h, m, s, us, tzinfo=UTC),
    st.integers(1950, 8999).filter(calendar.isleap),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 59),
    st.integers(0, 999_999),
)
windows = st.timedeltas(min_value=dt.timedelta(0), max_value=dt.timedelta(days=400))
NOT_ACTIVE_REFUSALS = {
    CertState.REVOKED: RenewalRefusal.REVOKED,
    CertState.SUPERSEDED: RenewalRefusal.SUPERSEDED,
    CertState.RESERVED: RenewalRefusal.NOT_ACTIVE,
    CertState.PENDING_INSTALL: RenewalRefusal.NOT_ACTIVE,
    CertState.ABANDONED: RenewalRefusal.NOT_ACTIVE,
}


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


# -- validity -------------------------------------------------------------------------------------


@given(utc_moments, st.integers(min_value=1, max_value=50))
@example(at(2027, 2, 28, 23, 59, 59), 1)
@example(at(2028, 2, 28, 0, 0, 0), 1)
@example(at(2027, 3, 1, 0, 0, 0), 1)
@example(at(2028, 2, 29, 12, 0, 0), 1)
@example(at(2028, 2, 29, 12, 0, 0), 4)
def test_add_years_keeps_calendar_date_and_time(moment: dt.datetime, years: int) -> None:
    later = add_years(moment, years)
    assert later.year == moment.year + years
    assert later.time() == moment.time() and later.tzinfo is moment.tzinfo
    if (moment.month, moment.day) == (2, 29) and not calendar.isleap(later.year):
        assert (later.month, later.day) == (2, 28)
    else:
        assert (later.month, later.day) == (moment.month, moment.day)
    assert later > moment


@given(leap_days)
def test_leap_day_falls_back_to_28_feb_then_returns_to_29_feb(moment: dt.datetime) -> None:
    for years in (1, 2, 3):
        assert add_years(moment, years) == moment.replace(year=moment.year + years, day=28)
    four = add_years(moment, 4)
    if calendar.isleap(moment.year + 4):
        assert four == moment.replace(year=moment.year + 4)
    else:  # a century that is not a leap year (2100, 2200, ...)
        assert four == moment.replace(year=moment.year + 4, day=28)


@given(aware_moments, st.integers(min_value=1, max_value=5))
def test_validity_from_is_issue_moment_to_same_moment_years_later(
    issued_at: dt.datetime, years: int
) -> None:
    v = validity_from(issued_at, years)
    assert v.not_before.tzinfo is UTC and v.not_after.tzinfo is UTC
    assert v.not_before.microsecond == 0 and v.not_after.microsecond == 0
    # the issue moment itself, in UTC, truncated (never rounded up) to the second
    assert dt.timedelta(0) <= issued_at - v.not_before < SECOND
    assert v.not_after == add_years(v.not_before, years)
    assert v.not_after > v.not_before
    assert v.not_after.time() == v.not_before.time()
    # one year is 365 or 366 days, never anything else
    assert 365 * years <= (v.not_after - v.not_before).days <= 366 * years
    assert v.contains(v.not_before) and v.contains(v.not_after)
    assert not v.contains(v.not_before - US) and not v.contains(v.not_after + US)
    assert v.remaining(v.not_after) == dt.timedelta(0)


@given(naive_moments)
def test_validity_from_refuses_naive_datetime(naive: dt.datetime) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        validity_from(naive)


@pytest.mark.parametrize(
    ("issued", "not_after"),
    [
        (at(2026, 3, 1, 9, 30, 0, 123456), at(2027, 3, 1, 9, 30)),
        (at(2028, 2, 29, 10, 0), at(2029, 2, 28, 10, 0)),  # leap day -> 28 Feb
        (at(2027, 2, 28, 10, 0), at(2028, 2, 28, 10, 0)),  # not pushed to 29 Feb
        (at(2027, 3, 1, 10, 0), at(2028, 3, 1, 10, 0)),  # 366 days across 29 Feb 2028
        (at(2028, 12, 31, 23, 59, 59, 999999), at(2029, 12, 31, 23, 59, 59)),
        # +08:00 (China) is converted to UTC first: 29 Feb 05:00 local is 28 Feb 21:00 UTC
        (
            dt.datetime(2028, 2, 29, 5, 0, tzinfo=dt.timezone(dt.timedelta(hours=8))),
            at(2029, 2, 28, 21, 0),
        ),
    ],
)
def test_validity_examples(issued: dt.datetime, not_after: dt.datetime) -> None:
    v = validity_from(issued)
    assert v.not_before == issued.astimezone(UTC).replace(microsecond=0)
    assert v.not_after == not_after


def test_validity_from_leap_day_four_years() -> None:
    v = validity_from(at(2028, 2, 29, 8, 0), years=4)
    assert v.not_after == at(2032, 2, 29, 8, 0)


# -- renewal window ---------------------------------------------------------------------------


@given(utc_moments, utc_moments, windows)
def test_active_allowed_iff_inside_window(
    not_after: dt.datetime, now: dt.datetime, window: dt.timedelta
) -> None:
    d = RenewalPolicy(window).decide(CertState.ACTIVE, not_after, now)
    inside = not_after - window <= now <= not_after
    assert d.allowed is inside
    assert d.opens_at == not_after - window and d.closes_at == not_after
    if inside:
        assert d.refusal is None
    elif now > not_after:
        assert d.refusal is RenewalRefusal.EXPIRED
    else:
        assert d.refusal is RenewalRefusal.TOO_EARLY
        assert now < d.opens_at


@given(utc_moments, windows, st.sampled_from(list(NOT_ACTIVE_REFUSALS)))
def test_other_states_refused_with_their_code(
    not_after: dt.datetime, window: dt.timedelta, state: CertState
) -> None:
    policy = RenewalPolicy(window)
    # inside the window, before it and after expiry: the state's refusal wins every time
    for now in (not_after - window, not_after, not_after - window - DAY, not_after + DAY):
        d = policy.decide(state, not_after, now)
        assert not d.allowed
        assert d.refusal is NOT_ACTIVE_REFUSALS[state]
        assert d.opens_at == not_after - window


@given(utc_moments, windows)
def test_boundaries_are_exact(not_after: dt.datetime, window: dt.timedelta) -> None:
    policy = RenewalPolicy(window)
    opens = not_after - window
    assert policy.decide(CertState.ACTIVE, not_after, opens).allowed
    assert policy.decide(CertState.ACTIVE, not_after, not_after).allowed
    for early in (opens - US, opens - SECOND):
        d = policy.decide(CertState.ACTIVE, not_after, early)
        assert (d.allowed, d.refusal, d.opens_at) == (False, RenewalRefusal.TOO_EARLY, opens)
    for late in (not_after + US, not_after + SECOND):
        d = policy.decide(CertState.ACTIVE, not_after, late)
        assert (d.allowed, d.refusal) == (False, RenewalRefusal.EXPIRED)


@given(aware_moments, st.integers(min_value=1, max_value=120), st.data())
def test_window_length_is_configurable(issued: dt.datetime, days: int, data: st.DataObject) -> None:
    v = validity_from(issued)
    window = dt.timedelta(days=days)
    offset = data.draw(st.timedeltas(min_value=dt.timedelta(0), max_value=dt.timedelta(days=200)))
    now = v.not_after - offset
    d = RenewalPolicy(window).decide(CertState.ACTIVE, v.not_after, now)
    assert d.allowed is (offset <= window)
    assert d.opens_at == v.not_after - window


def test_default_window_is_30_days() -> None:
    assert RenewalPolicy().window == dt.timedelta(days=30)


def test_refusal_codes_are_stable() -> None:
    assert {r.value for r in RenewalRefusal} == {
        "renewal.not_active",
        "renewal.revoked",
        "renewal.superseded",
        "renewal.expired",
        "renewal.too_early",
    }


def test_notice_example_day_300_340_366() -> None:
    """Issued on day 0: at day 300 refused (names the opening date), day 340 open, 366 expired."""
    day0 = at(2026, 3, 1, 9, 30)
    v = validity_from(day0)
    assert v.not_after == at(2027, 3, 1, 9, 30)
    policy = RenewalPolicy(dt.timedelta(days=30))

    d300 = policy.decide(CertState.ACTIVE, v.not_after, day0 + 300 * DAY)
    assert not d300.allowed and d300.refusal is RenewalRefusal.TOO_EARLY
    assert d300.opens_at == at(2027, 1, 30, 9, 30)
    assert d300.opens_at.date() == dt.date(2027, 1, 30)

    d340 = policy.decide(CertState.ACTIVE, v.not_after, day0 + 340 * DAY)
    assert d340.allowed and d340.refusal is None

    d365 = policy.decide(CertState.ACTIVE, v.not_after, day0 + 365 * DAY)  # the last instant
    assert d365.allowed

    d366 = policy.decide(CertState.ACTIVE, v.not_after, day0 + 366 * DAY)
    assert not d366.allowed and d366.refusal is RenewalRefusal.EXPIRED


@pytest.mark.parametrize(
    ("issued", "opens_at", "not_after"),
    [
        # issued on a leap day: expires 28 Feb, the window opens 30 days before that
        (at(2028, 2, 29, 10, 0), at(2029, 1, 29, 10, 0), at(2029, 2, 28, 10, 0)),
        # expiring just after a leap day: the 30 days count 29 Feb
        (at(2027, 3, 1, 10, 0), at(2028, 1, 31, 10, 0), at(2028, 3, 1, 10, 0)),
        (at(2027, 3, 30, 0, 0), at(2028, 2, 29, 0, 0), at(2028, 3, 30, 0, 0)),
        (at(2031, 3, 15, 12, 0), at(2032, 2, 14, 12, 0), at(2032, 3, 15, 12, 0)),
    ],
)
def test_leap_day_windows(
    issued: dt.datetime, opens_at: dt.datetime, not_after: dt.datetime
) -> None:
    v = validity_from(issued)
    assert v.not_after == not_after
    policy = RenewalPolicy()
    assert policy.decide(CertState.ACTIVE, not_after, opens_at).allowed
    early = policy.decide(CertState.ACTIVE, not_after, opens_at - SECOND)
    assert early.refusal is RenewalRefusal.TOO_EARLY and early.opens_at == opens_at
    assert policy.decide(CertState.ACTIVE, not_after, not_after).allowed
    late = policy.decide(CertState.ACTIVE, not_after, not_after + SECOND)
    assert late.refusal is RenewalRefusal.EXPIRED


@given(utc_moments, windows, st.integers(0, 10**6))
def test_decision_is_monotonic_in_time(
    not_after: dt.datetime, window: dt.timedelta, seconds: int
) -> None:
    """TOO_EARLY never comes after allowed, and allowed never comes after EXPIRED."""
    policy = RenewalPolicy(window)
    start = not_after - window - dt.timedelta(seconds=seconds // 2)
    rank = {RenewalRefusal.TOO_EARLY: 0, None: 1, RenewalRefusal.EXPIRED: 2}
    step = dt.timedelta(seconds=seconds // 7 + 1)
    decisions = [policy.decide(CertState.ACTIVE, not_after, start + i * step) for i in range(10)]
    ranks = [rank[d.refusal] for d in decisions]
    assert ranks == sorted(ranks)


# -- what the holder is told ----------------------------------------------------------------------


def test_reminder_lead_is_14_days() -> None:
    assert dt.timedelta(days=14) == REMINDER_LEAD


@pytest.mark.parametrize(
    ("before_opening", "told"),
    [
        (REMINDER_LEAD + SECOND, None),
        (REMINDER_LEAD + US, None),
        (REMINDER_LEAD, Announcement.SOON),  # exactly the lead ahead: told
        (DAY, Announcement.SOON),
        (US, Announcement.SOON),
        (dt.timedelta(0), Announcement.OPEN),  # the window's first instant
        (-29 * DAY, Announcement.OPEN),
        (-30 * DAY, Announcement.OPEN),  # not_after itself
        (-30 * DAY - US, None),  # expired: nothing to renew
    ],
)
def test_announcement_around_the_window(before_opening: dt.timedelta, told: object) -> None:
    not_after = at(2027, 3, 1, 9, 30)
    opens = not_after - 30 * DAY
    now = opens - before_opening
    assert RenewalPolicy().decide(CertState.ACTIVE, not_after, now).announce(now) is told


@given(utc_moments, windows, st.sampled_from(list(NOT_ACTIVE_REFUSALS)))
def test_no_announcement_for_certificates_that_cannot_be_renewed(
    not_after: dt.datetime, window: dt.timedelta, state: CertState
) -> None:
    policy = RenewalPolicy(window)
    for now in (not_after - window - DAY, not_after - window, not_after):
        assert policy.decide(state, not_after, now).announce(now) is None


def test_announcement_lead_can_be_given() -> None:
    not_after = at(2027, 3, 1, 9, 30)
    now = not_after - 30 * DAY - 20 * DAY
    decision = RenewalPolicy().decide(CertState.ACTIVE, not_after, now)
    assert decision.announce(now) is None
    assert decision.announce(now, lead=20 * DAY) is Announcement.SOON
