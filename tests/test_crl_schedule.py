"""The publishing rule (domain/crl_schedule.py): when a complete or delta CRL is due, and why."""

from __future__ import annotations

import datetime as dt

import pytest

from certdesk.config import Config
from certdesk.domain.crl_schedule import (
    CRLDue,
    CRLKind,
    CRLSchedule,
    DueReason,
    PublishedRecord,
    crl_due,
    next_due_at,
)
from certdesk.domain.errors import CertdeskError

T0 = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
FULL = CRLSchedule(next_update=24 * H, republish_before=6 * H)
DELTAS = CRLSchedule(24 * H, 6 * H, delta=True, delta_every=H, delta_next_update=4 * H)
COMPLETE = PublishedRecord(7, T0, T0 + 24 * H)
DELTA = PublishedRecord(8, T0, T0 + 4 * H, base=7)


def test_first_crl_is_due_and_a_delta_follows_it_when_deltas_are_on() -> None:
    assert crl_due(FULL, T0, None, None, False) == CRLDue(DueReason.NONE_YET)
    due = crl_due(DELTAS, T0, None, None, False)
    assert due == CRLDue(DueReason.NONE_YET, DueReason.NEW_BASE)
    assert due.kinds == [CRLKind.COMPLETE, CRLKind.DELTA]


def test_complete_crl_republished_within_the_margin_before_next_update() -> None:
    before = T0 + 18 * H - dt.timedelta(seconds=1)
    assert crl_due(FULL, before, COMPLETE, None, False) == CRLDue()
    assert next_due_at(FULL, COMPLETE, None) == T0 + 18 * H
    near = crl_due(FULL, T0 + 18 * H, COMPLETE, None, False)
    assert near == CRLDue(DueReason.NEXT_UPDATE_NEAR)
    # with deltas: a new base, and a delta against it
    assert crl_due(DELTAS, T0 + 18 * H, COMPLETE, DELTA, False).kinds == [
        CRLKind.COMPLETE,
        CRLKind.DELTA,
    ]


def test_a_revocation_republishes_the_complete_crl_without_deltas_and_a_delta_with_them() -> None:
    soon = T0 + dt.timedelta(seconds=30)
    assert crl_due(FULL, soon, COMPLETE, None, True) == CRLDue(DueReason.ON_CRL_SINCE)
    assert crl_due(DELTAS, soon, COMPLETE, DELTA, True) == CRLDue(None, DueReason.ON_CRL_SINCE)
    assert crl_due(DELTAS, soon, COMPLETE, DELTA, False) == CRLDue()


def test_delta_follows_a_new_base_and_its_interval() -> None:
    stale = PublishedRecord(6, T0 - H, T0 + 3 * H, base=5)  # against an older complete CRL
    assert crl_due(DELTAS, T0, COMPLETE, stale, False) == CRLDue(None, DueReason.NONE_YET)
    assert crl_due(DELTAS, T0, COMPLETE, None, False) == CRLDue(None, DueReason.NONE_YET)
    assert crl_due(DELTAS, T0 + H - dt.timedelta(seconds=1), COMPLETE, DELTA, False) == CRLDue()
    assert crl_due(DELTAS, T0 + H, COMPLETE, DELTA, False) == CRLDue(None, DueReason.INTERVAL)
    assert next_due_at(DELTAS, COMPLETE, DELTA) == T0 + H


@pytest.mark.parametrize(
    "crl",
    [
        {"republish_before_hours": 24},
        {"republish_before_hours": -1},
        {"delta": True, "delta_every_minutes": 240},
        {"delta": True, "delta_every_minutes": 0},
    ],
)
def test_margins_that_would_republish_at_every_round_are_refused(crl: dict[str, object]) -> None:
    with pytest.raises(CertdeskError) as err:
        Config().replace(crl=crl).crl.schedule()
    assert err.value.code == "config.invalid"


def test_defaults() -> None:
    assert Config().crl.schedule() == FULL
